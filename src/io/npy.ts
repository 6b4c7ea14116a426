/**
 * NumPy `.npy` files: read and write them byte for byte as `numpy.save` / `numpy.load` do.
 *
 * Supported: format versions 1.0, 2.0 and 3.0; C-order arrays of any rank; the little-endian
 * dtypes `|u1`, `<u2`, `<i4`, `<i8` and `<f4` (as {@linkcode Uint8Array},
 * {@linkcode Uint16Array}, {@linkcode Int32Array}, {@linkcode BigInt64Array} and
 * {@linkcode Float32Array}). Anything else (Fortran order, big-endian or structured dtypes, a
 * malformed header, a body shorter than the shape says) fails with one line naming the file and
 * the problem.
 *
 * The layout (numpy's `numpy/lib/format.py`):
 *
 * ```text
 * \x93NUMPY <major> <minor> <header length: uint16 LE (1.0) or uint32 LE (2.0, 3.0)>
 * {'descr': '<u2', 'fortran_order': False, 'shape': (N,), }<spaces>\n
 * <data, C order, starting at a multiple of 64 bytes>
 * ```
 *
 * The header is the Python `repr` of a dict with its keys sorted, followed by
 * `21 − len(repr(shape[0]))` spaces of room to grow the first dimension in place (none for a
 * 0-d array), then spaces and one newline so that the data starts at a multiple of 64 bytes
 * (the padding is 1 to 64 bytes: numpy never pads with zero spaces). Version 1.0 is written
 * unless the header exceeds 65,535 bytes; 3.0 differs from 2.0 only in allowing UTF-8 in the
 * header, which these dtypes never need. Because the room to grow makes the header's length
 * independent of the first dimension, {@linkcode NpyWriter} writes a placeholder header,
 * streams the rows, and patches the final count in place.
 *
 * Big files are read a row range at a time ({@linkcode NpyReader}: seek + read), so memory
 * stays bounded whatever the file size. Every file is written atomically (a temporary file
 * beside the destination, synced and renamed over it). Data is read and written in the host's
 * byte order, which is little-endian on every platform Deno supports.
 *
 * Requires `--allow-read` for files read and `--allow-write` for the folders written to.
 *
 * @module
 */

import { writeFileAtomic } from "./atomic.ts";

/** The element types supported, as numpy's type codes without the byte-order character. */
export type NpyDtype = "u1" | "u2" | "i4" | "i8" | "f4";

/** The typed array holding each {@linkcode NpyDtype}. */
export type NpyArray = Uint8Array | Uint16Array | Int32Array | BigInt64Array | Float32Array;

/** What an `.npy` header says. */
export interface NpyHeader {
  /** Format major version: 1, 2 or 3. */
  version: 1 | 2 | 3;
  dtype: NpyDtype;
  /** Dimensions, outermost first (C order). `[]` for a 0-d array. */
  shape: number[];
  /** Byte offset of the data (a multiple of 64 in files numpy writes). */
  dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** numpy's `GROWTH_AXIS_MAX_DIGITS`: room left in the header to grow the first dimension. */
const GROWTH_AXIS_MAX_DIGITS = 21;
/**
 * Longest header read, in bytes: far above any header of the supported dtypes (about 128
 * bytes), it bounds the memory and time a hostile header length can cost.
 */
const MAX_HEADER_BYTES = 1 << 20;
/** Most dimensions of an array, as numpy 2 (`NPY_MAXDIMS`). */
const MAX_DIMS = 64;
/** Deepest nesting of brackets accepted in a header (numpy writes 1: the shape tuple). */
const MAX_HEADER_DEPTH = 16;
/** Characters of a malformed header quoted in the error message. */
const QUOTED_HEADER_CHARS = 80;
const ARRAY_ALIGN = 64;

const DESCR: Record<NpyDtype, string> = {
  u1: "|u1",
  u2: "<u2",
  i4: "<i4",
  i8: "<i8",
  f4: "<f4",
};

const ITEM_SIZE: Record<NpyDtype, number> = { u1: 1, u2: 2, i4: 4, i8: 8, f4: 4 };

/** Accepted spellings of each dtype (numpy writes the first; `<u1` and `=` are equivalent). */
const FROM_DESCR: Record<string, NpyDtype> = {
  "|u1": "u1",
  "<u1": "u1",
  "u1": "u1",
  "<u2": "u2",
  "<i4": "i4",
  "<i8": "i8",
  "<f4": "f4",
};

/**
 * Bytes per element of a dtype.
 *
 * @example
 * ```ts
 * import { npyItemSize } from "./npy.ts";
 * console.log(npyItemSize("u2")); // 2
 * ```
 */
export function npyItemSize(dtype: NpyDtype): number {
  return ITEM_SIZE[dtype];
}

/**
 * The dtype of a typed array, or an error for a type `.npy` support here does not cover.
 *
 * @example
 * ```ts
 * import { npyDtypeOf } from "./npy.ts";
 * console.log(npyDtypeOf(new Uint16Array(3))); // "u2"
 * ```
 */
export function npyDtypeOf(data: NpyArray): NpyDtype {
  if (data instanceof Uint8Array) return "u1";
  if (data instanceof Uint16Array) return "u2";
  if (data instanceof Int32Array) return "i4";
  if (data instanceof BigInt64Array) return "i8";
  if (data instanceof Float32Array) return "f4";
  throw new Error(`Unsupported array type ${(data as object).constructor?.name}`);
}

function allocate(dtype: NpyDtype, buffer: ArrayBuffer, count: number): NpyArray {
  switch (dtype) {
    case "u1":
      return new Uint8Array(buffer, 0, count);
    case "u2":
      return new Uint16Array(buffer, 0, count);
    case "i4":
      return new Int32Array(buffer, 0, count);
    case "i8":
      return new BigInt64Array(buffer, 0, count);
    case "f4":
      return new Float32Array(buffer, 0, count);
  }
}

function product(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`Shape dimensions must be non-negative integers, got (${shape.join(", ")})`);
    }
  }
}

/** Python's `repr` of a tuple of ints: `()`, `(3,)`, `(2, 3)`. */
function tupleRepr(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(", ")})`;
}

/**
 * The header bytes numpy's `np.save` writes for a C-order array (magic, version, length,
 * dict, padding, newline). With no `version`, 1.0 unless the header needs more than 65,535
 * bytes (then 2.0), as numpy chooses.
 *
 * @param dtype Element type.
 * @param shape Dimensions, outermost first.
 * @param version Format major version to force (1, 2 or 3).
 * @returns The header; its length is a multiple of 64.
 *
 * @example
 * ```ts
 * import { encodeNpyHeader } from "./npy.ts";
 * const h = encodeNpyHeader("u2", [3]);
 * console.log(h.length); // 128
 * console.log(new TextDecoder().decode(h.subarray(10)).trimEnd());
 * // {'descr': '<u2', 'fortran_order': False, 'shape': (3,), }
 * ```
 */
export function encodeNpyHeader(
  dtype: NpyDtype,
  shape: readonly number[],
  version?: 1 | 2 | 3,
): Uint8Array {
  checkShape(shape);
  if (!(dtype in DESCR)) throw new Error(`Unsupported dtype "${dtype}"`);
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${tupleRepr(shape)}, }`;
  if (shape.length > 0) {
    dict += " ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  }
  const body = new TextEncoder().encode(dict); // ASCII only: same bytes in latin-1 and UTF-8
  const wrap = (v: 1 | 2 | 3): Uint8Array | undefined => {
    const lengthBytes = v === 1 ? 2 : 4;
    const hlen = body.length + 1;
    const padlen = ARRAY_ALIGN - ((MAGIC.length + 2 + lengthBytes + hlen) % ARRAY_ALIGN);
    const total = hlen + padlen;
    if (v === 1 && total > 0xffff) return undefined;
    const out = new Uint8Array(MAGIC.length + 2 + lengthBytes + total);
    out.set(MAGIC, 0);
    out[6] = v;
    out[7] = 0;
    const view = new DataView(out.buffer);
    if (v === 1) view.setUint16(8, total, true);
    else view.setUint32(8, total, true);
    let at = MAGIC.length + 2 + lengthBytes;
    out.set(body, at);
    at += body.length;
    out.fill(0x20, at, at + padlen);
    out[out.length - 1] = 0x0a;
    return out;
  };
  if (version !== undefined) {
    if (version !== 1 && version !== 2 && version !== 3) {
      throw new Error(`Unsupported .npy format version ${version}`);
    }
    const h = wrap(version);
    if (!h) throw new Error(`Header too long for .npy format version 1.0`);
    return h;
  }
  return wrap(1) ?? wrap(2)!;
}

// ---- header parsing: the Python literal numpy writes ----

type PyValue = string | boolean | number | PyValue[] | { tuple: number[] };

class LiteralParser {
  #at = 0;
  constructor(readonly text: string) {}

  #ws(): void {
    while (this.#at < this.text.length && " \t\r\n".includes(this.text[this.#at])) this.#at++;
  }

  #depth = 0;

  #fail(what: string): never {
    throw new Error(`${what} at character ${this.#at} of the header`);
  }

  #expect(ch: string): void {
    this.#ws();
    if (this.text[this.#at] !== ch) this.#fail(`expected "${ch}"`);
    this.#at++;
  }

  #peek(): string {
    this.#ws();
    return this.text[this.#at] ?? "";
  }

  dict(): Map<string, PyValue> {
    const out = new Map<string, PyValue>();
    this.#expect("{");
    while (this.#peek() !== "}") {
      const key = this.#value();
      if (typeof key !== "string") this.#fail("expected a string key");
      this.#expect(":");
      if (out.has(key)) this.#fail(`duplicate key '${excerpt(key)}'`);
      out.set(key, this.#value());
      if (this.#peek() === ",") this.#at++;
      else if (this.#peek() !== "}") this.#fail(`expected "," or "}"`);
    }
    this.#at++;
    this.#ws();
    if (this.#at !== this.text.length) this.#fail("unexpected text after the dict");
    return out;
  }

  #value(): PyValue {
    const c = this.#peek();
    if (c === "'" || c === '"') {
      const end = this.text.indexOf(c, this.#at + 1);
      if (end < 0) this.#fail("unterminated string");
      const s = this.text.slice(this.#at + 1, end);
      if (s.includes("\\")) this.#fail("escapes in strings are not supported");
      this.#at = end + 1;
      return s;
    }
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      if (++this.#depth > MAX_HEADER_DEPTH) this.#fail(`nesting deeper than ${MAX_HEADER_DEPTH}`);
      this.#at++;
      const items: PyValue[] = [];
      while (this.#peek() !== close) {
        if (this.#peek() === "") this.#fail(`unterminated "${c}"`);
        items.push(this.#value());
        if (this.#peek() === ",") this.#at++;
        else if (this.#peek() !== close) this.#fail(`expected "," or "${close}"`);
      }
      this.#at++;
      this.#depth--;
      if (c === "[") return items;
      if (!items.every((v) => typeof v === "number")) return items;
      return { tuple: items as number[] };
    }
    const literal = /True|False|-?\d+L?/y; // sticky: matches at #at only, without copying
    literal.lastIndex = this.#at;
    const m = literal.exec(this.text);
    if (!m) this.#fail("unexpected value");
    this.#at += m[0].length;
    if (m[0] === "True") return true;
    if (m[0] === "False") return false;
    return Number(m[0].replace("L", ""));
  }
}

/**
 * Parses an `.npy` header from the start of a file.
 *
 * @param bytes At least the whole header (the data may follow).
 * @param name The file name for error messages.
 * @returns The header, or `undefined` when `bytes` is too short to hold all of it (read more).
 * @throws One line naming `name` for a header that is not a supported `.npy` header.
 *
 * @example
 * ```ts
 * import { encodeNpyHeader, parseNpyHeader } from "./npy.ts";
 * const h = parseNpyHeader(encodeNpyHeader("f4", [2, 3]), "x.npy");
 * console.log(h?.dtype, h?.shape, h?.dataOffset); // f4 [ 2, 3 ] 128
 * ```
 */
export function parseNpyHeader(bytes: Uint8Array, name: string): NpyHeader | undefined {
  const fail = (why: string): never => {
    throw new Error(`Cannot read "${name}": ${why}`);
  };
  if (bytes.length < 10) {
    if (MAGIC.every((b, i) => i >= bytes.length || bytes[i] === b)) return undefined;
    fail("not a .npy file (bad magic string)");
  }
  if (!MAGIC.every((b, i) => bytes[i] === b)) fail("not a .npy file (bad magic string)");
  const major = bytes[6];
  const minor = bytes[7];
  if (!(major >= 1 && major <= 3) || minor !== 0) {
    fail(`unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (hlen > MAX_HEADER_BYTES) {
    fail(`header of ${hlen} bytes is longer than the limit of ${MAX_HEADER_BYTES}`);
  }
  const dataOffset = 8 + lengthBytes + hlen;
  if (bytes.length < dataOffset) return undefined;
  const raw = bytes.subarray(8 + lengthBytes, dataOffset);
  let text: string;
  try {
    text = major === 3 ? new TextDecoder("utf-8", { fatal: true }).decode(raw) : latin1(raw);
  } catch {
    return fail("bad header (not valid UTF-8)");
  }
  let dict: Map<string, PyValue>;
  try {
    dict = new LiteralParser(text).dict();
  } catch (e) {
    return fail(`bad header (${(e as Error).message}): "${excerpt(text.trim())}"`);
  }
  const keys = [...dict.keys()].sort().join(", ");
  if (keys !== "descr, fortran_order, shape") {
    fail(`bad header: keys are ${excerpt(keys || "none")}, expected descr, fortran_order, shape`);
  }
  const descr = dict.get("descr");
  if (typeof descr !== "string") {
    fail(
      `unsupported dtype ${excerpt(JSON.stringify(descr))} (structured dtypes are not supported)`,
    );
  }
  const dtype = FROM_DESCR[descr as string];
  if (!dtype) {
    fail(
      `unsupported dtype '${excerpt(descr as string)}' (supported: ${
        Object.values(DESCR).join(", ")
      })`,
    );
  }
  const fortran = dict.get("fortran_order");
  if (typeof fortran !== "boolean") fail("bad header: fortran_order is not True or False");
  if (fortran) fail("Fortran-order arrays are not supported (save it in C order)");
  const shape = dict.get("shape");
  if (
    typeof shape !== "object" || !("tuple" in shape) ||
    !shape.tuple.every((d) => Number.isSafeInteger(d) && d >= 0)
  ) {
    return fail("bad header: shape is not a tuple of non-negative integers");
  }
  if (shape.tuple.length > MAX_DIMS) {
    fail(`bad header: shape has ${shape.tuple.length} dimensions (numpy allows ${MAX_DIMS})`);
  }
  return { version: major as 1 | 2 | 3, dtype, shape: shape.tuple, dataOffset };
}

/**
 * `text` cut to its first characters, escaped as in a JSON string (newlines become `\n`):
 * messages quote hostile headers briefly and on one line.
 */
function excerpt(text: string): string {
  const cut = text.length > QUOTED_HEADER_CHARS ? `${text.slice(0, QUOTED_HEADER_CHARS)}...` : text;
  return JSON.stringify(cut).slice(1, -1);
}

/** Bytes as latin-1 text, a slice at a time (a spread of a long header overflows the stack). */
function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

function checkRank(header: NpyHeader, rank: number | undefined, name: string): void {
  if (rank !== undefined && header.shape.length !== rank) {
    throw new Error(
      `Cannot read "${name}": expected a ${rank}-d array, found shape ${tupleRepr(header.shape)}`,
    );
  }
}

/** An array with its shape. */
export interface NpyData {
  dtype: NpyDtype;
  shape: number[];
  /** Elements in C order. */
  data: NpyArray;
}

/**
 * Decodes a whole `.npy` file held in memory.
 *
 * @param bytes The file.
 * @param name The file name for error messages.
 * @param options `rank`: the number of dimensions required.
 * @returns The array (its data copied out of `bytes`).
 *
 * @example
 * ```ts
 * import { decodeNpy, encodeNpy } from "./npy.ts";
 * const a = decodeNpy(encodeNpy(new Int32Array([1, 2, 3, 4, 5, 6]), [2, 3]), "x.npy");
 * console.log(a.shape, [...a.data]); // [ 2, 3 ] [ 1, 2, 3, 4, 5, 6 ]
 * ```
 */
export function decodeNpy(
  bytes: Uint8Array,
  name: string,
  options: { rank?: number } = {},
): NpyData {
  const header = parseNpyHeader(bytes, name);
  if (!header) throw new Error(`Cannot read "${name}": truncated header`);
  checkRank(header, options.rank, name);
  const count = product(header.shape);
  const nbytes = count * ITEM_SIZE[header.dtype];
  const have = bytes.length - header.dataOffset;
  if (have < nbytes) {
    throw new Error(
      `Cannot read "${name}": truncated body: shape ${
        tupleRepr(header.shape)
      } needs ${nbytes} bytes of data, found ${have}`,
    );
  }
  const buffer = new ArrayBuffer(nbytes);
  new Uint8Array(buffer).set(bytes.subarray(header.dataOffset, header.dataOffset + nbytes));
  return { dtype: header.dtype, shape: header.shape, data: allocate(header.dtype, buffer, count) };
}

function resolveShape(data: NpyArray, shape: readonly number[] | undefined): number[] {
  const s = shape ? [...shape] : [data.length];
  checkShape(s);
  if (product(s) !== data.length) {
    throw new Error(`Shape (${s.join(", ")}) does not match ${data.length} elements`);
  }
  return s;
}

function bytesOf(data: NpyArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Encodes an array as the bytes `np.save` writes.
 *
 * @param data Elements in C order; the typed array's type gives the dtype.
 * @param shape Dimensions (default: 1-d, `[data.length]`).
 * @param options `version`: format major version to force (default as numpy: 1.0).
 * @returns The file's bytes.
 *
 * @example
 * ```ts
 * import { encodeNpy } from "./npy.ts";
 * const bytes = encodeNpy(new Uint16Array([1, 2, 3]));
 * console.log(bytes.length, [...bytes.subarray(128)]); // 134 [ 1, 0, 2, 0, 3, 0 ]
 * ```
 */
export function encodeNpy(
  data: NpyArray,
  shape?: readonly number[],
  options: { version?: 1 | 2 | 3 } = {},
): Uint8Array {
  const s = resolveShape(data, shape);
  const header = encodeNpyHeader(npyDtypeOf(data), s, options.version);
  const out = new Uint8Array(header.length + data.byteLength);
  out.set(header, 0);
  out.set(bytesOf(data), header.length);
  return out;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/** Reads exactly `into.length` bytes or returns how many were read before the end. */
async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const n = await file.read(into.subarray(done));
    if (n === null) break;
    done += n;
  }
  return done;
}

function tempPath(path: string): string {
  const random = crypto.getRandomValues(new Uint8Array(4));
  const suffix = [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${path}.tmp-${Deno.pid}-${suffix}`;
}

/**
 * Reads a whole `.npy` file.
 *
 * Requires `--allow-read` for `path`.
 *
 * @param path The file.
 * @param options `rank`: the number of dimensions required.
 * @returns The array.
 * @throws One line naming `path` and the problem.
 *
 * @example
 * ```ts
 * import { readNpy, writeNpy } from "./npy.ts";
 * const path = await Deno.makeTempFile({ suffix: ".npy" });
 * await writeNpy(path, new Float32Array([0.5, 1.5]));
 * const a = await readNpy(path, { rank: 1 });
 * console.log(a.dtype, [...a.data]); // f4 [ 0.5, 1.5 ]
 * await Deno.remove(path);
 * ```
 */
export async function readNpy(path: string, options: { rank?: number } = {}): Promise<NpyData> {
  const reader = await NpyReader.open(path, options);
  try {
    return {
      dtype: reader.header.dtype,
      shape: reader.header.shape,
      data: await reader.readRows(0, reader.rows),
    };
  } finally {
    reader.close();
  }
}

/**
 * Writes an array as `np.save` would, atomically (temporary file, sync, rename).
 *
 * Requires `--allow-write` for `path`'s folder.
 *
 * @param path Destination.
 * @param data Elements in C order; the typed array's type gives the dtype.
 * @param options `shape` (default 1-d), `version` (default as numpy: 1.0).
 * @throws One line naming `path`; an existing `path` is left as it was on failure.
 *
 * @example
 * ```ts
 * import { writeNpy } from "./npy.ts";
 * const path = await Deno.makeTempFile({ suffix: ".npy" });
 * await writeNpy(path, new Uint16Array([7, 8]), { shape: [1, 2] });
 * console.log((await Deno.stat(path)).size); // 132
 * await Deno.remove(path);
 * ```
 */
export async function writeNpy(
  path: string,
  data: NpyArray,
  options: { shape?: readonly number[]; version?: 1 | 2 | 3 } = {},
): Promise<void> {
  const s = resolveShape(data, options.shape);
  const header = encodeNpyHeader(npyDtypeOf(data), s, options.version);
  await writeFileAtomic(path, [header, bytesOf(data)]);
}

/**
 * Positioned reads of an `.npy` file: the header is read and checked on open (including that
 * the file is long enough for its shape), then any range of rows (slices along the first
 * axis) is read with a seek and a read, so a 200 MB shard never needs to be in memory.
 *
 * Requires `--allow-read` for the file.
 *
 * @example
 * ```ts
 * import { NpyReader, writeNpy } from "./npy.ts";
 * const path = await Deno.makeTempFile({ suffix: ".npy" });
 * await writeNpy(path, new Int32Array([0, 1, 2, 3, 4, 5]), { shape: [3, 2] });
 * const r = await NpyReader.open(path, { rank: 2 });
 * console.log(r.rows, r.rowLength, [...await r.readRows(1, 3)]); // 3 2 [ 2, 3, 4, 5 ]
 * r.close();
 * await Deno.remove(path);
 * ```
 */
export class NpyReader {
  /** Elements per row: the product of the dimensions after the first (1 for a 1-d array). */
  readonly rowLength: number;
  /** The first dimension (1 for a 0-d array). */
  readonly rows: number;
  #file: Deno.FsFile | undefined;

  private constructor(
    readonly path: string,
    readonly header: NpyHeader,
    file: Deno.FsFile,
  ) {
    this.#file = file;
    this.rows = header.shape.length === 0 ? 1 : header.shape[0];
    this.rowLength = product(header.shape.slice(1));
  }

  /**
   * Opens `path` and checks its header and length.
   *
   * @param path The file.
   * @param options `rank`: the number of dimensions required.
   * @throws One line naming `path` and the problem.
   */
  static async open(path: string, options: { rank?: number } = {}): Promise<NpyReader> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      throw new Error(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
    }
    try {
      let buf = new Uint8Array(256);
      let have = 0;
      let header: NpyHeader | undefined;
      for (;;) {
        const n = await file.read(buf.subarray(have));
        if (n === null) break;
        have += n;
        header = parseNpyHeader(buf.subarray(0, have), path);
        if (header) break;
        if (have === buf.length) {
          // Unreachable for a header within MAX_HEADER_BYTES; kept as a bound on the loop.
          if (buf.length > 2 * MAX_HEADER_BYTES) {
            throw new Error(`Cannot read "${path}": header too long`);
          }
          const bigger = new Uint8Array(buf.length * 4);
          bigger.set(buf);
          buf = bigger;
        }
      }
      if (!header) {
        header = parseNpyHeader(buf.subarray(0, have), path);
        if (!header) {
          throw new Error(
            have === 0
              ? `Cannot read "${path}": empty file`
              : `Cannot read "${path}": truncated header`,
          );
        }
      }
      checkRank(header, options.rank, path);
      const nbytes = product(header.shape) * ITEM_SIZE[header.dtype];
      const size = (await file.stat()).size;
      if (size - header.dataOffset < nbytes) {
        throw new Error(
          `Cannot read "${path}": truncated body: shape ${
            tupleRepr(header.shape)
          } needs ${nbytes} bytes of data, found ${Math.max(0, size - header.dataOffset)}`,
        );
      }
      return new NpyReader(path, header, file);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** The dtype of the elements. */
  get dtype(): NpyDtype {
    return this.header.dtype;
  }

  /**
   * Reads rows `[start, end)` (all their elements, in C order) into a new typed array.
   *
   * @throws When the range is outside `[0, rows]` or the file was closed or shrank.
   */
  async readRows(start: number, end: number): Promise<NpyArray> {
    if (!this.#file) throw new Error(`Cannot read "${this.path}": the file is closed`);
    if (
      !(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end &&
        end <= this.rows)
    ) {
      throw new Error(
        `Cannot read rows [${start}, ${end}) of "${this.path}": it has ${this.rows} rows`,
      );
    }
    const item = ITEM_SIZE[this.header.dtype];
    const count = (end - start) * this.rowLength;
    const buffer = new ArrayBuffer(count * item);
    const bytes = new Uint8Array(buffer);
    await this.#file.seek(
      this.header.dataOffset + start * this.rowLength * item,
      Deno.SeekMode.Start,
    );
    const got = await readFull(this.#file, bytes);
    if (got < bytes.length) {
      throw new Error(
        `Cannot read "${this.path}": truncated body: rows [${start}, ${end}) need ${bytes.length} bytes, found ${got}`,
      );
    }
    return allocate(this.header.dtype, buffer, count);
  }

  /** Closes the file (idempotent). */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

/**
 * Streams rows into an `.npy` file whose first dimension is known only at the end. The
 * header is written for 0 rows, rows are appended, and {@linkcode NpyWriter.close} patches
 * the final count into the header in place (numpy leaves room for 21 digits, so the header
 * keeps its length) before syncing and renaming the temporary file over `path`. The result is
 * byte-identical to `np.save` of the whole array.
 *
 * Requires `--allow-write` for `path`'s folder.
 *
 * @example
 * ```ts
 * import { NpyWriter, readNpy } from "./npy.ts";
 * const path = await Deno.makeTempFile({ suffix: ".npy" });
 * const w = await NpyWriter.create(path, "u2");
 * await w.append(new Uint16Array([1, 2]));
 * await w.append(new Uint16Array([3]));
 * await w.close();
 * console.log([...(await readNpy(path)).data]); // [ 1, 2, 3 ]
 * await Deno.remove(path);
 * ```
 */
export class NpyWriter {
  #file: Deno.FsFile | undefined;
  #rows = 0;
  #pending = 0; // elements of a partial row appended so far
  readonly #tmp: string;
  readonly #headerLength: number;

  private constructor(
    readonly path: string,
    readonly dtype: NpyDtype,
    readonly rowShape: readonly number[],
    readonly version: 1 | 2 | 3 | undefined,
    tmp: string,
    file: Deno.FsFile,
    headerLength: number,
  ) {
    this.#tmp = tmp;
    this.#file = file;
    this.#headerLength = headerLength;
  }

  /**
   * Creates the temporary file beside `path` and writes a placeholder header.
   *
   * @param path Destination (appears only on {@linkcode NpyWriter.close}).
   * @param dtype Element type.
   * @param options `rowShape`: dimensions after the first (default `[]`, a 1-d file);
   *   `version`: format major version to force (default as numpy: 1.0).
   */
  static async create(
    path: string,
    dtype: NpyDtype,
    options: { rowShape?: readonly number[]; version?: 1 | 2 | 3 } = {},
  ): Promise<NpyWriter> {
    const rowShape = [...(options.rowShape ?? [])];
    if (rowShape.some((d) => d === 0)) {
      throw new Error(`Cannot write "${path}": rowShape must not contain a zero dimension`);
    }
    const header = encodeNpyHeader(dtype, [0, ...rowShape], options.version);
    const tmp = tempPath(path);
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(tmp, { write: true, createNew: true });
      await writeAll(file, header);
    } catch (e) {
      file?.close();
      await Deno.remove(tmp).catch(() => {});
      throw new Error(`Cannot write "${path}": ${(e as Error).message}`, { cause: e });
    }
    return new NpyWriter(path, dtype, rowShape, options.version, tmp, file, header.length);
  }

  /** Complete rows appended so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Appends elements (any number; they must add up to whole rows by {@linkcode close}). */
  async append(data: NpyArray): Promise<void> {
    if (!this.#file) throw new Error(`Cannot write "${this.path}": the writer is closed`);
    if (npyDtypeOf(data) !== this.dtype) {
      throw new Error(
        `Cannot write "${this.path}": appended ${npyDtypeOf(data)} data to a ${this.dtype} file`,
      );
    }
    try {
      await writeAll(this.#file, bytesOf(data));
    } catch (e) {
      await this.abort();
      throw new Error(`Cannot write "${this.path}": ${(e as Error).message}`, { cause: e });
    }
    const rowLength = product(this.rowShape);
    const total = this.#pending + data.length;
    this.#rows += Math.floor(total / rowLength);
    this.#pending = total % rowLength;
  }

  /**
   * Patches the header with the final row count, syncs, and renames the file into place.
   *
   * @throws When the elements appended do not make whole rows (the file is then removed).
   */
  async close(): Promise<void> {
    const file = this.#file;
    if (!file) throw new Error(`Cannot write "${this.path}": the writer is closed`);
    try {
      if (this.#pending !== 0) {
        throw new Error(
          `${this.#pending} elements left over after ${this.#rows} rows of ${
            product(this.rowShape)
          }`,
        );
      }
      const header = encodeNpyHeader(this.dtype, [this.#rows, ...this.rowShape], this.version);
      if (header.length !== this.#headerLength) throw new Error("header length changed");
      await file.seek(0, Deno.SeekMode.Start);
      await writeAll(file, header);
      await file.sync();
      file.close();
      this.#file = undefined;
      await Deno.rename(this.#tmp, this.path);
    } catch (e) {
      await this.abort();
      throw new Error(`Cannot write "${this.path}": ${(e as Error).message}`, { cause: e });
    }
  }

  /** Stops writing and removes the temporary file; `path` is left as it was (idempotent). */
  async abort(): Promise<void> {
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = undefined;
    await Deno.remove(this.#tmp).catch(() => {});
  }
}
