/**
 * safetensors reading and writing, with no dependencies.
 *
 * Format: an 8-byte little-endian unsigned header length `n`, `n` bytes of UTF-8 JSON, then
 * the data section. The JSON maps each tensor name to `{ dtype, shape, data_offsets }`
 * (offsets relative to the data section) and may hold `__metadata__`, a string → string map.
 * Data is raw little-endian, row-major.
 *
 * Reading validates the header as strictly as the reference Rust library
 * (huggingface/safetensors `Metadata::validate`): the tensors, in offset order, must tile the
 * data section exactly — the first starts at 0, each starts where the previous ends, the last
 * ends at the end of the file — so gaps, overlaps and trailing bytes are all errors.
 *
 * Writing follows the reference writer's layout, so the bytes depend only on the content:
 * tensors ordered by dtype in descending alignment (the Rust `Dtype` enum order, reversed:
 * U64, I64, F64, F32, U32, I32, BF16, F16, U16, I16, F8_E4M3, F8_E5M2, I8, U8, BOOL), then by
 * name in UTF-8 byte order; compact JSON with `__metadata__` first (keys sorted, omitted when
 * empty), then the tensors in data order; the header padded with spaces to a multiple of 8.
 * Every tensor's data then starts at a multiple of its element size.
 *
 * @module
 */

/** The safetensors element types (the reference library's `Dtype`, minus sub-byte kinds). */
export type SafetensorsDtype =
  | "BOOL"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

/**
 * Bytes per element of each dtype. Key order is the reference library's `Dtype` enum order
 * (increasing alignment), which the writer sorts by.
 */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

const DTYPE_RANK = new Map<string, number>(
  Object.keys(SAFETENSORS_DTYPE_BYTES).map((d, i) => [d, i]),
);

/** One tensor: dtype, shape and its raw little-endian, row-major bytes. */
export interface SafeTensor {
  /** Element type. */
  dtype: SafetensorsDtype;
  /** Shape; `[]` is a scalar. */
  shape: number[];
  /** Raw little-endian bytes, `numel(shape) × SAFETENSORS_DTYPE_BYTES[dtype]` long. */
  data: Uint8Array;
}

/** A parsed safetensors file: tensors in file (offset) order and the `__metadata__` map. */
export interface SafetensorsFile {
  /** Tensors by name, in the order of their data in the file. */
  tensors: Map<string, SafeTensor>;
  /** The `__metadata__` map; `{}` when the file has none. */
  metadata: Record<string, string>;
}

/** The reference library refuses headers above this size (100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === "string" && DTYPE_RANK.has(x);
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Element count of a shape, or -1 when it is not a list of non-negative safe integers. */
function checkedNumel(shape: unknown): number {
  if (!Array.isArray(shape)) return -1;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) return -1;
    n *= d;
  }
  return Number.isSafeInteger(n) ? n : -1;
}

function isOffset(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Parses a safetensors file held in memory, validating the whole header.
 *
 * The tensors' `data` are views into `bytes` (no copy). Every problem is one line starting
 * `Cannot read checkpoint "<source>": `.
 *
 * @param bytes The whole file.
 * @param source What to call the file in errors (usually its path).
 * @returns The tensors in file order and the `__metadata__` map.
 *
 * @example Parse bytes written by {@linkcode serializeSafetensors}
 * ```ts
 * import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32 } from "./safetensors.ts";
 * const bytes = serializeSafetensors({ w: fromFloat32(new Float32Array([1, 2]), [2]) }, {
 *   step: "3",
 * });
 * const { tensors, metadata } = parseSafetensors(bytes, "example.safetensors");
 * console.log(toFloat32(tensors.get("w")!), metadata.step); // Float32Array [1, 2] "3"
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, source = "<bytes>"): SafetensorsFile {
  const fail = (why: string): never => {
    throw new Error(`Cannot read checkpoint "${source}": ${clip(why)}`);
  };
  if (bytes.byteLength < 8) {
    fail(
      `file has ${bytes.byteLength} bytes, too short for a safetensors file (at least 8)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.byteLength - 8)) {
    fail(
      `header length ${headerLength} is larger than the ${bytes.byteLength - 8} bytes after ` +
        `the length field (truncated or not a safetensors file)`,
    );
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES) {
    fail(`header of ${n} bytes is larger than the limit of ${MAX_HEADER_BYTES}`);
  }
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail("header is not valid UTF-8 (not a safetensors file?)");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const dataStart = 8 + n;
  const dataLength = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; begin: number; end: number; tensor: SafeTensor }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      // The reference reads `__metadata__` as Option<HashMap<String, String>>: null is none.
      if (info === null) continue;
      if (typeof info !== "object" || Array.isArray(info)) {
        fail("__metadata__ is not a map of strings to strings");
      }
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== "string") {
          fail(`__metadata__ entry "${k}" is ${JSON.stringify(v)}, expected a string`);
        }
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof info !== "object" || info === null || Array.isArray(info)) {
      fail(`tensor "${name}" has no {dtype, shape, data_offsets} entry`);
    }
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (!isDtype(dtype)) fail(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
    const numel = checkedNumel(shape);
    if (numel < 0) {
      fail(
        `tensor "${name}" has shape ${JSON.stringify(shape)}, expected a list of ` +
          `non-negative integers`,
      );
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isOffset)) {
      fail(
        `tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, expected [begin, end] ` +
          `non-negative integers`,
      );
    }
    const [begin, end] = offsets as number[];
    if (end < begin) fail(`tensor "${name}" has data_offsets [${begin}, ${end}]: end < begin`);
    const dt = dtype as SafetensorsDtype;
    const sh = shape as number[];
    const want = numel * SAFETENSORS_DTYPE_BYTES[dt];
    if (end - begin !== want) {
      fail(
        `tensor "${name}" has ${end - begin} bytes, expected ${want} for ${dt} ${shapeText(sh)}`,
      );
    }
    if (end > dataLength) {
      fail(
        `tensor "${name}" has data_offsets [${begin}, ${end}] outside the data section of ` +
          `${dataLength} bytes (truncated file?)`,
      );
    }
    const data = bytes.subarray(dataStart + begin, dataStart + end);
    entries.push({ name, begin, end, tensor: { dtype: dt, shape: [...sh], data } });
  }
  // Like the reference: in offset order, the tensors must tile the data section exactly.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = "";
  for (const e of entries) {
    if (e.begin < covered) {
      fail(
        `tensor "${e.name}" (bytes ${e.begin}..${e.end}) overlaps tensor "${previous}" ` +
          `(ends at ${covered})`,
      );
    }
    if (e.begin > covered) {
      fail(
        `${e.begin - covered} bytes before tensor "${e.name}" (at ${e.begin}) belong to no ` +
          `tensor; safetensors requires the tensors to cover the data section exactly`,
      );
    }
    covered = e.end;
    previous = e.name;
  }
  if (covered !== dataLength) {
    fail(
      `${dataLength - covered} bytes after the last tensor belong to no tensor; safetensors ` +
        `requires the tensors to cover the data section exactly`,
    );
  }
  return { tensors: new Map(entries.map((e) => [e.name, e.tensor])), metadata };
}

/** A message part cut to 300 characters on one line (headers can hold megabyte-long names). */
function clip(text: string): string {
  const line = text.replace(/[\r\n\u2028\u2029]/g, " ");
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

function compareUtf8(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** The header bytes (length field included) and the tensor data in file order. */
interface Prepared {
  head: Uint8Array;
  chunks: Uint8Array[];
  total: number;
}

function prepare(
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata: Record<string, string> | undefined,
  fail: (why: string) => never,
): Prepared {
  const enc = new TextEncoder();
  const list = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).map(
    ([name, t]) => ({ name, key: enc.encode(name), t }),
  );
  for (const { name, t } of list) {
    if (name === "__metadata__") fail(`"__metadata__" cannot be a tensor name`);
    if (!isDtype(t.dtype)) fail(`tensor "${name}" has unknown dtype ${JSON.stringify(t.dtype)}`);
    const numel = checkedNumel(t.shape);
    if (numel < 0) {
      fail(
        `tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected a list of ` +
          `non-negative integers`,
      );
    }
    const want = numel * SAFETENSORS_DTYPE_BYTES[t.dtype];
    if (!(t.data instanceof Uint8Array) || t.data.byteLength !== want) {
      fail(
        `tensor "${name}" has ${t.data?.byteLength} bytes, expected ${want} for ${t.dtype} ` +
          `${shapeText(t.shape)}`,
      );
    }
  }
  list.sort((a, b) =>
    DTYPE_RANK.get(b.t.dtype)! - DTYPE_RANK.get(a.t.dtype)! || compareUtf8(a.key, b.key)
  );
  const parts: string[] = [];
  const meta = Object.entries(metadata ?? {}).map(([k, v]) => ({ k, key: enc.encode(k), v }));
  for (const { k, v } of meta) {
    if (typeof v !== "string") {
      fail(`metadata entry "${k}" is ${JSON.stringify(v)}, expected a string`);
    }
  }
  if (meta.length > 0) {
    meta.sort((a, b) => compareUtf8(a.key, b.key));
    const body = meta.map(({ k, v }) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",");
    parts.push(`"__metadata__":{${body}}`);
  }
  let offset = 0;
  for (const { name, t } of list) {
    const end = offset + t.data.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],` +
        `"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = enc.encode(`{${parts.join(",")}}`);
  const n = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + n).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return { head, chunks: list.map((e) => e.t.data), total: head.length + offset };
}

/**
 * Serializes tensors and metadata to safetensors bytes, deterministically: the bytes depend
 * only on the names, dtypes, shapes, data and metadata, never on insertion order. Layout as
 * the reference writer: dtype (descending alignment) then name order, `__metadata__` first
 * with sorted keys (left out when empty), header padded with spaces to a multiple of 8.
 *
 * @param tensors Tensors by name.
 * @param metadata Optional `__metadata__` strings.
 * @returns The file's bytes.
 *
 * @example
 * ```ts
 * import { fromInt32, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors({ ids: fromInt32(new Int32Array([7]), [1]) });
 * console.log(bytes.length); // 8 + 56 header bytes + 4 data bytes = 68
 * ```
 */
export function serializeSafetensors(
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const { head, chunks, total } = prepare(tensors, metadata, (why) => {
    throw new Error(`Cannot serialize safetensors: ${why}`);
  });
  const out = new Uint8Array(total);
  out.set(head, 0);
  let at = head.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Reads and parses a safetensors file.
 *
 * Requires `--allow-read` for `path`.
 *
 * @param path The file.
 * @returns The tensors in file order and the `__metadata__` map.
 * @throws One line naming `path` when the file is missing, unreadable or malformed.
 *
 * @example
 * ```ts ignore
 * import { readSafetensors } from "./safetensors.ts";
 * const { tensors, metadata } = await readSafetensors("out/run/last.safetensors");
 * ```
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readCheckpointBytes(path), path);
}

/**
 * Reads a checkpoint file's bytes.
 *
 * Requires `--allow-read` for `path`.
 *
 * @param path The file.
 * @returns Its bytes.
 * @throws One line naming `path` when the file is missing or unreadable.
 *
 * @example
 * ```ts ignore
 * import { readCheckpointBytes } from "./safetensors.ts";
 * const bytes = await readCheckpointBytes("out/run/last.safetensors");
 * ```
 */
export async function readCheckpointBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "file not found"
      : e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied
      ? `no permission to read it (${(e as Error).message})`
      : (e as Error).message;
    throw new Error(`Cannot read checkpoint "${path}": ${why}`, { cause: e });
  }
}

/** Options of {@linkcode writeSafetensorsAtomic}. */
export interface WriteSafetensorsOptions {
  /**
   * Aborting stops the write before the next chunk or before the rename; the temporary file
   * is removed and any existing file at the path is left untouched.
   */
  signal?: AbortSignal;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/**
 * Writes a safetensors file atomically: the bytes (same layout as
 * {@linkcode serializeSafetensors}) go to a temporary file beside `path`, which is synced
 * and then renamed over `path`. On any failure the temporary file is removed and an existing
 * file at `path` is left as it was. Tensors are written one by one, never concatenated in
 * memory. A process killed mid-write can leave a `<path>.tmp-<pid>-<hex>` file behind, never
 * a partial file at `path`.
 *
 * Requires `--allow-read` and `--allow-write` for `path`'s directory.
 *
 * @param path Destination file.
 * @param tensors Tensors by name.
 * @param metadata Optional `__metadata__` strings.
 * @param options Abort signal.
 * @throws One line naming `path`.
 *
 * @example
 * ```ts ignore
 * import { fromFloat32, writeSafetensorsAtomic } from "./safetensors.ts";
 * await writeSafetensorsAtomic("out/run/last.safetensors", {
 *   "model.lm_head.weight": fromFloat32(new Float32Array(6), [2, 3]),
 * }, { step: "100" });
 * ```
 */
export async function writeSafetensorsAtomic(
  path: string,
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata?: Record<string, string>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const fail = (why: string, cause?: unknown): never => {
    throw new Error(`Cannot write checkpoint "${path}": ${why}`, { cause });
  };
  const { head, chunks } = prepare(tensors, metadata, fail);
  const { signal } = options;
  const random = crypto.getRandomValues(new Uint8Array(4));
  const suffix = [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
  const tmp = `${path}.tmp-${Deno.pid}-${suffix}`;
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    for (const chunk of [head, ...chunks]) {
      signal?.throwIfAborted();
      await writeAll(file, chunk);
    }
    await file.sync();
    file.close();
    file = undefined;
    signal?.throwIfAborted();
    await Deno.rename(tmp, path);
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    const why = signal?.aborted && e === signal.reason
      ? "the write was aborted, the previous file is unchanged"
      : (e as Error).message;
    fail(why, e);
  }
}

function bytesOf(t: SafeTensor, what: string): DataView {
  const numel = checkedNumel(t.shape);
  const size = SAFETENSORS_DTYPE_BYTES[t.dtype];
  if (numel < 0 || size === undefined || t.data.byteLength !== numel * size) {
    throw new Error(
      `Cannot convert ${what}: ${t.dtype} ${JSON.stringify(t.shape)} does not match its ` +
        `${t.data.byteLength} bytes`,
    );
  }
  return new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** An aligned copy of the bytes viewed as `T` (fast path on little-endian hosts). */
function alignedCopy(t: SafeTensor): ArrayBuffer {
  return t.data.slice().buffer;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 → float16 bits, rounding to nearest even; overflow gives ±Infinity. */
function floatToHalf(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // a carry into the exponent is right
  return sign | h;
}

/** float32 → bfloat16 bits, rounding to nearest even. */
function floatToBf16(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  if (Number.isNaN(x)) return ((b >>> 16) & 0x8000) | 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Converts a tensor to float32: F32, F16, BF16, F64 and all integer and BOOL dtypes
 * (64-bit integers through `Number`, then rounded to float32). FP8 is not supported.
 *
 * @param t The tensor.
 * @param name What to call it in errors.
 * @returns A new array (never a view of `t.data`).
 *
 * @example
 * ```ts
 * import { toFloat32 } from "./safetensors.ts";
 * // F16 1.0 is 0x3c00, BF16 -2.0 is 0xc000 (little-endian bytes)
 * console.log(toFloat32({ dtype: "F16", shape: [1], data: new Uint8Array([0x00, 0x3c]) })); // [1]
 * console.log(toFloat32({ dtype: "BF16", shape: [1], data: new Uint8Array([0x00, 0xc0]) })); // [-2]
 * ```
 */
export function toFloat32(t: SafeTensor, name = "tensor"): Float32Array {
  const v = bytesOf(t, `"${name}" to float32`);
  const size = SAFETENSORS_DTYPE_BYTES[t.dtype];
  const n = t.data.byteLength / size;
  if (t.dtype === "F32" && LITTLE_ENDIAN) return new Float32Array(alignedCopy(t));
  const out = new Float32Array(n);
  const readers: Partial<Record<SafetensorsDtype, (i: number) => number>> = {
    F32: (i: number) => v.getFloat32(4 * i, true),
    F64: (i: number) => v.getFloat64(8 * i, true),
    F16: (i: number) => halfToFloat(v.getUint16(2 * i, true)),
    BF16: (i: number) => {
      u32Scratch[0] = v.getUint16(2 * i, true) << 16;
      return f32Scratch[0];
    },
    BOOL: (i: number) => (v.getUint8(i) ? 1 : 0),
    U8: (i: number) => v.getUint8(i),
    I8: (i: number) => v.getInt8(i),
    I16: (i: number) => v.getInt16(2 * i, true),
    U16: (i: number) => v.getUint16(2 * i, true),
    I32: (i: number) => v.getInt32(4 * i, true),
    U32: (i: number) => v.getUint32(4 * i, true),
    I64: (i: number) => Number(v.getBigInt64(8 * i, true)),
    U64: (i: number) => Number(v.getBigUint64(8 * i, true)),
  };
  const read = readers[t.dtype];
  if (!read) throw new Error(`Cannot convert "${name}" to float32: ${t.dtype} is not supported`);
  for (let i = 0; i < n; i++) out[i] = read(i);
  return out;
}

/**
 * Converts an integer (or BOOL) tensor to int32, checking that every value fits.
 *
 * @param t The tensor: I32, I64, U32, U64, I16, U16, I8, U8 or BOOL.
 * @param name What to call it in errors.
 * @returns A new array.
 *
 * @example
 * ```ts
 * import { toInt32 } from "./safetensors.ts";
 * const data = new Uint8Array(new BigInt64Array([-3n, 5n]).buffer);
 * console.log(toInt32({ dtype: "I64", shape: [2], data })); // Int32Array [-3, 5]
 * ```
 */
export function toInt32(t: SafeTensor, name = "tensor"): Int32Array {
  const v = bytesOf(t, `"${name}" to int32`);
  const n = t.data.byteLength / SAFETENSORS_DTYPE_BYTES[t.dtype];
  if (t.dtype === "I32" && LITTLE_ENDIAN) return new Int32Array(alignedCopy(t));
  const readers: Partial<Record<SafetensorsDtype, (i: number) => number | bigint>> = {
    I32: (i: number) => v.getInt32(4 * i, true),
    U32: (i: number) => v.getUint32(4 * i, true),
    I64: (i: number) => v.getBigInt64(8 * i, true),
    U64: (i: number) => v.getBigUint64(8 * i, true),
    I16: (i: number) => v.getInt16(2 * i, true),
    U16: (i: number) => v.getUint16(2 * i, true),
    I8: (i: number) => v.getInt8(i),
    U8: (i: number) => v.getUint8(i),
    BOOL: (i: number) => (v.getUint8(i) ? 1 : 0),
  };
  const read = readers[t.dtype];
  if (!read) {
    throw new Error(`Cannot convert "${name}" to int32: ${t.dtype} is not an integer dtype`);
  }
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const x = read(i);
    if (x < -2147483648 || x > 2147483647) {
      throw new Error(
        `Cannot convert "${name}" to int32: element ${i} is ${x}, outside the int32 range`,
      );
    }
    out[i] = Number(x);
  }
  return out;
}

function checkLength(length: number, shape: readonly number[], what: string): void {
  const numel = checkedNumel(shape);
  if (numel < 0) {
    throw new Error(
      `Cannot make ${what} tensor: shape ${JSON.stringify(shape)} is not a list of ` +
        `non-negative integers`,
    );
  }
  if (numel !== length) {
    throw new Error(
      `Cannot make ${what} tensor: ${length} values do not fill shape ${shapeText(shape)} ` +
        `(${numel} elements)`,
    );
  }
}

/**
 * Makes a tensor from float32 values, stored as F32 (a copy) or rounded to F16 or BF16
 * (round to nearest even).
 *
 * @param values The elements, row-major.
 * @param shape Their shape; its element count must equal `values.length`.
 * @param dtype Storage type.
 * @returns The tensor.
 *
 * @example
 * ```ts
 * import { fromFloat32, toFloat32 } from "./safetensors.ts";
 * const t = fromFloat32(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * console.log(t.dtype, t.shape, t.data.length); // "F32" [2, 3] 24
 * console.log(toFloat32(fromFloat32(new Float32Array([0.1]), [1], "BF16"))); // [0.10009765625]
 * ```
 */
export function fromFloat32(
  values: Float32Array,
  shape: readonly number[],
  dtype: "F32" | "F16" | "BF16" = "F32",
): SafeTensor {
  checkLength(values.length, shape, dtype);
  if (dtype === "F32") {
    const copy = new Float32Array(values);
    if (!LITTLE_ENDIAN) {
      const v = new DataView(copy.buffer);
      for (let i = 0; i < copy.length; i++) v.setFloat32(4 * i, values[i], true);
    }
    return { dtype, shape: [...shape], data: new Uint8Array(copy.buffer) };
  }
  const data = new Uint8Array(2 * values.length);
  const v = new DataView(data.buffer);
  const convert = dtype === "F16" ? floatToHalf : floatToBf16;
  for (let i = 0; i < values.length; i++) v.setUint16(2 * i, convert(values[i]), true);
  return { dtype, shape: [...shape], data };
}

/**
 * Makes an I32 tensor from int32 values (a copy).
 *
 * @param values The elements, row-major.
 * @param shape Their shape; its element count must equal `values.length`.
 * @returns The tensor.
 *
 * @example
 * ```ts
 * import { fromInt32 } from "./safetensors.ts";
 * console.log(fromInt32(new Int32Array([1, 2, 3, 4]), [2, 2]).dtype); // "I32"
 * ```
 */
export function fromInt32(values: Int32Array, shape: readonly number[]): SafeTensor {
  checkLength(values.length, shape, "I32");
  const data = new Uint8Array(4 * values.length);
  const v = new DataView(data.buffer);
  for (let i = 0; i < values.length; i++) v.setInt32(4 * i, values[i], true);
  return { dtype: "I32", shape: [...shape], data };
}
