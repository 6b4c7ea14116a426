/**
 * A small tensor type over GPU storage buffers: buffer (or a view into one), shape, dtype,
 * label. Plus labelled buffer creation with limit checks, a buffer pool, upload and readback.
 *
 * @module
 */

import type { Gpu } from "./device.ts";

/** Element types the kernels use. */
export type DType = "f32" | "i32" | "u32";

/** A typed array matching a {@linkcode DType}. */
export type TypedArrayOf<D extends DType> = D extends "f32" ? Float32Array
  : D extends "i32" ? Int32Array
  : Uint32Array;

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, i32: 4, u32: 4 };

/** Usage flags of every tensor buffer: storage, copy in and out. */
export const TENSOR_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Rounds `n` up to a multiple of `m`. */
export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * A tensor: `numel(shape)` elements of `dtype` at byte `offset` of `buffer`, row-major.
 * Views into a shared buffer (e.g. one buffer for all parameters) have a non-zero offset
 * aligned to the device's `minStorageBufferOffsetAlignment`.
 *
 * @example
 * ```ts
 * import { getGpu, readTensor, uploadTensor } from "../../mod.ts";
 * const gpu = await getGpu();
 * const data = new Float32Array(3 * 64).map((_, i) => i);
 * const t = uploadTensor(gpu, data, [3, 64], "example.rows"); // (3, 64)
 * const last = t.rows(1, 2); // a view of rows 1 and 2: no copy (offsets align to 256 bytes)
 * console.log(last.shape, (await readTensor(gpu, last))[0]); // [ 2, 64 ] 64
 * ```
 */
export class Tensor {
  /** Number of elements. */
  readonly numel: number;
  /** Bytes of data (numel × element size). */
  readonly byteLength: number;

  constructor(
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly label: string,
    readonly offset = 0,
  ) {
    this.numel = numel(shape);
    this.byteLength = this.numel * DTYPE_BYTES[dtype];
    if (offset + this.byteLength > buffer.size) {
      throw new Error(
        `Tensor "${label}" of shape [${shape}] at offset ${offset} does not fit in buffer ` +
          `"${buffer.label}" of ${buffer.size} bytes`,
      );
    }
  }

  /** The binding resource for a bind group entry (binding size at least 4 bytes). */
  binding(): GPUBufferBinding {
    return { buffer: this.buffer, offset: this.offset, size: Math.max(4, this.byteLength) };
  }

  /** A view of the same bytes with another shape of equal element count. */
  reshape(shape: readonly number[], label = this.label): Tensor {
    if (numel(shape) !== this.numel) {
      throw new Error(`Cannot reshape "${this.label}" from [${this.shape}] to [${shape}]`);
    }
    return new Tensor(this.buffer, shape, this.dtype, label, this.offset);
  }

  /**
   * A view of rows `[start, start + count)` along the first dimension. Bound as a storage
   * buffer, the view's byte offset must be a multiple of the adapter's
   * `minStorageBufferOffsetAlignment` (256 on most GPUs); this checks 256 so a plan that works
   * here works everywhere.
   */
  rows(start: number, count: number, label = `${this.label}[${start}:${start + count}]`): Tensor {
    const rowElems = this.shape.length === 0 ? 1 : this.numel / this.shape[0];
    if (start < 0 || count < 0 || start + count > (this.shape[0] ?? 1)) {
      throw new Error(
        `Cannot view rows ${start}..${start + count} of "${this.label}" ${this.shapeString()}`,
      );
    }
    const offset = this.offset + start * rowElems * DTYPE_BYTES[this.dtype];
    if (offset % 256 !== 0) {
      throw new Error(
        `Cannot view rows from ${start} of "${this.label}": byte offset ${offset} is not a ` +
          `multiple of 256`,
      );
    }
    return new Tensor(this.buffer, [count, ...this.shape.slice(1)], this.dtype, label, offset);
  }

  /** Shape as a string like `[2, 3]`, for messages. */
  shapeString(): string {
    return `[${this.shape.join(", ")}]`;
  }
}

/**
 * Checks a buffer request against the device's limits and throws a message naming the label
 * when it cannot be satisfied.
 */
export function checkBufferSize(gpu: Gpu, label: string, bytes: number, storage = true): void {
  if (!Number.isFinite(bytes) || bytes < 0) {
    throw new Error(`Cannot create buffer "${label}": invalid size ${bytes}`);
  }
  if (bytes > gpu.limits.maxBufferSize) {
    throw new Error(
      `Cannot create buffer "${label}": ${bytes} bytes exceeds the adapter's maxBufferSize ` +
        `of ${gpu.limits.maxBufferSize} bytes`,
    );
  }
  if (storage && bytes > gpu.limits.maxStorageBufferBindingSize) {
    throw new Error(
      `Cannot create buffer "${label}": ${bytes} bytes exceeds the adapter's ` +
        `maxStorageBufferBindingSize of ${gpu.limits.maxStorageBufferBindingSize} bytes`,
    );
  }
}

/**
 * Creates a labelled buffer after checking the adapter's limits. Size is rounded to 16.
 *
 * @param boundWhole the whole buffer will be bound as one storage binding, so it must fit
 *   `maxStorageBufferBindingSize` (default: true for storage buffers). Flat buffers that are
 *   only ever bound through smaller views pass false.
 */
export function createBuffer(
  gpu: Gpu,
  label: string,
  bytes: number,
  usage: number = TENSOR_USAGE,
  boundWhole = (usage & GPUBufferUsage.STORAGE) !== 0,
): GPUBuffer {
  checkBufferSize(gpu, label, bytes, boundWhole);
  return gpu.device.createBuffer({ label, size: Math.max(16, roundUp(bytes, 16)), usage });
}

/**
 * Creates a zero-filled tensor with its own buffer.
 *
 * @param gpu the shared GPU.
 * @param shape dimensions, row-major.
 * @param dtype element type (default f32).
 * @param label GPU object label, e.g. "bst.encoder_f.block0.attn.qkv".
 */
export function createTensor(
  gpu: Gpu,
  shape: readonly number[],
  label: string,
  dtype: DType = "f32",
): Tensor {
  const bytes = numel(shape) * DTYPE_BYTES[dtype];
  return new Tensor(createBuffer(gpu, label, bytes), shape, dtype, label);
}

/**
 * Creates a zero-filled 1-D f32 tensor that is bound only through views (e.g. all parameters
 * of a model, bound tensor by tensor), so it may exceed `maxStorageBufferBindingSize` (but
 * not `maxBufferSize`).
 */
export function createFlatTensor(gpu: Gpu, n: number, label: string): Tensor {
  return new Tensor(createBuffer(gpu, label, n * 4, TENSOR_USAGE, false), [n], "f32", label);
}

/**
 * Creates a tensor holding `data` (length must equal the shape's element count).
 *
 * @example
 * ```ts
 * import { getGpu, readTensor, uploadTensor } from "../../mod.ts";
 * const gpu = await getGpu();
 * const t = uploadTensor(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], "example.t");
 * console.log(t.shape, [...await readTensor(gpu, t)]); // [2, 3] [1, 2, 3, 4, 5, 6]
 * ```
 */
export function uploadTensor<D extends DType>(
  gpu: Gpu,
  data: TypedArrayOf<D>,
  shape: readonly number[],
  label: string,
  dtype?: D,
): Tensor {
  const dt: DType = dtype ??
    (data instanceof Float32Array ? "f32" : data instanceof Int32Array ? "i32" : "u32");
  const t = createTensor(gpu, shape, label, dt);
  writeTensor(gpu, t, data);
  return t;
}

/** Writes `data` into `tensor` through the queue (ordered before later submissions). */
export function writeTensor(
  gpu: Gpu,
  tensor: Tensor,
  data: Float32Array | Int32Array | Uint32Array,
): void {
  if (data.length !== tensor.numel) {
    throw new Error(
      `Cannot write ${data.length} elements into "${tensor.label}" of shape ` +
        `${tensor.shapeString()} (${tensor.numel} elements)`,
    );
  }
  if (data.length === 0) return;
  gpu.queue.writeBuffer(
    tensor.buffer,
    tensor.offset,
    data.buffer as ArrayBuffer,
    data.byteOffset,
    data.byteLength,
  );
}

async function readBytes(gpu: Gpu, tensor: Tensor): Promise<ArrayBuffer> {
  const bytes = roundUp(tensor.byteLength, 4);
  const out = new ArrayBuffer(bytes);
  if (bytes === 0) return out;
  const staging = gpu.device.createBuffer({
    label: `readback ${tensor.label}`,
    size: roundUp(bytes, 16),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = gpu.device.createCommandEncoder({ label: `readback ${tensor.label}` });
  enc.copyBufferToBuffer(tensor.buffer, tensor.offset, staging, 0, bytes);
  gpu.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  new Uint8Array(out).set(new Uint8Array(staging.getMappedRange(0, bytes)));
  staging.unmap();
  staging.destroy();
  return out;
}

function expectDtype(tensor: Tensor, dtype: DType): void {
  if (tensor.dtype !== dtype) {
    throw new Error(`Cannot read "${tensor.label}" as ${dtype}: its dtype is ${tensor.dtype}`);
  }
}

/**
 * Reads an f32 tensor back to the CPU (waits for submitted work that writes it). A readback
 * waits for the GPU: keep it out of training steps.
 *
 * @example
 * ```ts
 * import { getGpu, readTensor, uploadTensor } from "../../mod.ts";
 * const gpu = await getGpu();
 * const t = uploadTensor(gpu, new Float32Array([0.5, -2]), [2], "example.read");
 * console.log(await readTensor(gpu, t)); // Float32Array(2) [ 0.5, -2 ]
 * ```
 */
export async function readTensor(gpu: Gpu, tensor: Tensor): Promise<Float32Array> {
  expectDtype(tensor, "f32");
  return new Float32Array(await readBytes(gpu, tensor), 0, tensor.numel);
}

/** Reads an i32 tensor back to the CPU. */
export async function readTensorI32(gpu: Gpu, tensor: Tensor): Promise<Int32Array> {
  expectDtype(tensor, "i32");
  return new Int32Array(await readBytes(gpu, tensor), 0, tensor.numel);
}

/**
 * A pool of storage buffers keyed by rounded size, so temporaries of the same size are
 * reused instead of re-created.
 */
export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #live = 0;

  constructor(readonly gpu: Gpu) {}

  /** Number of buffers handed out and not yet released. */
  get live(): number {
    return this.#live;
  }

  /** Takes a tensor from the pool (contents undefined). */
  acquire(shape: readonly number[], label: string, dtype: DType = "f32"): Tensor {
    const bytes = Math.max(16, roundUp(numel(shape) * DTYPE_BYTES[dtype], 256));
    const list = this.#free.get(bytes);
    // A reused buffer keeps its first GPU label; the tensor carries the current one.
    const buffer = list?.pop() ?? createBuffer(this.gpu, label, bytes);
    this.#live++;
    return new Tensor(buffer, shape, dtype, label);
  }

  /** Returns a tensor's buffer to the pool; the tensor must not be used afterwards. */
  release(tensor: Tensor): void {
    if (tensor.offset !== 0) {
      throw new Error(`Cannot release view "${tensor.label}" to the pool`);
    }
    const list = this.#free.get(tensor.buffer.size) ?? [];
    list.push(tensor.buffer);
    this.#free.set(tensor.buffer.size, list);
    this.#live--;
  }
}
