/**
 * Deferred readback: f32 values copied, inside the submissions that compute them, into one
 * host-readable buffer, then read with a single wait.
 *
 * Every wait for the GPU from Deno costs at least one device poll (about 10 ms) whatever the
 * work, and while the host waits it prepares nothing. So figures the host needs later — the
 * training loss and gradient norm of a log step, the losses of every validation batch — are not
 * read where they are computed: a {@linkcode Readback} plans buffer copies of them into a
 * `MAP_READ` buffer (appended to the ops that write them), and the host maps that buffer once,
 * when it needs the numbers, after more work has been queued behind it.
 *
 * @module
 */

import type { Gpu } from "./device.ts";
import type { BufferCopy } from "./kernel.ts";
import type { Tensor } from "./tensor.ts";

/**
 * A host-readable buffer collecting f32 values from tensors. Each {@linkcode Readback.copy}
 * returns a copy op to submit after the ops that write the values; {@linkcode Readback.read}
 * (one wait) then hands each copy's values to its callback, in the order the copies were
 * planned, and empties the buffer.
 *
 * Every copy must be submitted before `read()` is called: a buffer that is being mapped cannot
 * be used by a later submission.
 *
 * @example
 * ```ts ignore
 * const rb = new Readback(gpu, "val", 1024);
 * let loss = 0;
 * for (const batch of batches) {
 *   await rb.reserve(1); // reads earlier values first when full
 *   submit(gpu, [...batch.ops, rb.copy(batch.loss, 0, 1, (v) => loss += v[0])]);
 * }
 * await rb.read(); // one wait for all batches
 * ```
 */
export class Readback {
  readonly #buffer: GPUBuffer; // (capacity) f32, MAP_READ | COPY_DST
  readonly #uses: { start: number; count: number; use: (values: Float32Array) => void }[] = [];
  #used = 0;

  /**
   * @param gpu The GPU.
   * @param label The buffer's label.
   * @param capacity How many f32 values it holds between two reads.
   */
  constructor(gpu: Gpu, label: string, readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new Error(`Readback capacity must be a positive integer, got ${capacity}`);
    }
    this.#buffer = gpu.device.createBuffer({
      label: `${label}.readback`,
      size: capacity * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Values not yet planned into (capacity − planned). */
  get free(): number {
    return this.capacity - this.#used;
  }

  /** Whether copies or callbacks wait for a {@linkcode Readback.read}. */
  get pending(): boolean {
    return this.#uses.length > 0;
  }

  /**
   * Makes room for `count` values: reads what is planned first (one wait) when they do not fit.
   * Call it before planning a submission's copies, never between planning and submitting them.
   */
  async reserve(count: number): Promise<void> {
    if (count > this.capacity) {
      throw new Error(`Cannot read back ${count} values through a buffer of ${this.capacity}`);
    }
    if (count > this.free) await this.read();
  }

  /**
   * The copy of `count` f32 values of `src` from element `start` into the buffer; `use`
   * receives them at the next {@linkcode Readback.read}. `count` 0 plans no copy (returns
   * null) but still calls `use`, with no values, in its turn. Throws when there is no room
   * (see {@linkcode Readback.reserve}).
   */
  copy(
    src: Tensor,
    start: number,
    count: number,
    use: (values: Float32Array) => void,
  ): BufferCopy | null {
    if (src.dtype !== "f32") {
      throw new Error(`Cannot read back "${src.label}": its dtype is ${src.dtype}, not f32`);
    }
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0) {
      throw new Error(`Cannot read back ${count} values of "${src.label}" from ${start}`);
    }
    if (start + count > src.numel) {
      throw new Error(
        `Cannot read back values ${start}…${start + count - 1} of "${src.label}" ` +
          `(${src.numel} values)`,
      );
    }
    if (count > this.free) {
      throw new Error(
        `Cannot read back ${count} more values of "${src.label}": ${this.free} of ` +
          `${this.capacity} free (reserve() first)`,
      );
    }
    const at = this.#used;
    this.#uses.push({ start: at, count, use });
    this.#used += count;
    if (count === 0) return null;
    return {
      label: `${src.label}.readback`,
      copy: {
        src: src.buffer,
        srcOffset: src.offset + start * 4,
        dst: this.#buffer,
        dstOffset: at * 4,
        size: count * 4,
      },
    };
  }

  /** Calls `use` at the next {@linkcode Readback.read}, after the callbacks planned before. */
  after(use: () => void): void {
    this.#uses.push({ start: this.#used, count: 0, use });
  }

  /** Frees the buffer (planned values are dropped). */
  destroy(): void {
    this.#uses.length = 0;
    this.#used = 0;
    this.#buffer.destroy();
  }

  /**
   * Maps the buffer (waits for the submissions holding the copies), gives each copy's values
   * to its callback in planning order, and empties the buffer. Nothing planned: no wait.
   */
  async read(): Promise<void> {
    if (this.#uses.length === 0) return;
    const uses = this.#uses.splice(0);
    const bytes = this.#used * 4;
    this.#used = 0;
    let values = new Float32Array(0);
    if (bytes > 0) {
      await this.#buffer.mapAsync(GPUMapMode.READ, 0, bytes);
      values = new Float32Array(this.#buffer.getMappedRange(0, bytes).slice(0));
      this.#buffer.unmap();
    }
    for (const u of uses) u.use(values.subarray(u.start, u.start + u.count));
  }
}
