/**
 * Zip archives of stored (uncompressed) entries, from bytes and to bytes, with no
 * dependencies and no `Deno.*`: the container of PyTorch's `torch.save` files.
 *
 * Reading walks the central directory (zip64 included), checks each entry's local header,
 * that its bytes lie inside the archive and that its CRC-32 matches, and returns views of the
 * entries' bytes (no copy). Only the stored method is read: `torch.save` never compresses, so a
 * deflated entry is refused with a line naming it rather than inflated.
 *
 * Writing lays entries out as PyTorch's writer does: each entry's data starts at a multiple of
 * 64 bytes (padding in an extra field of the local header), no data descriptors, fixed
 * timestamps, and zip64 records only when an offset or size needs them. The archive comes
 * back as a list of chunks (headers and the callers' data, never concatenated), so a writer
 * can stream a multi-gigabyte checkpoint to disk.
 *
 * @module
 */

/** Raises the one-line error of the caller (it names the file). */
export type Fail = (why: string) => never;

/** Signatures and sizes of the zip records (APPNOTE.TXT 6.3). */
const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;
const END64 = 0x06064b50;
const END64_LOCATOR = 0x07064b50;
const LOCAL_SIZE = 30;
const CENTRAL_SIZE = 46;
const END_SIZE = 22;
const END64_SIZE = 56;
const LOCATOR_SIZE = 20;
const ZIP64_EXTRA = 0x0001;
/** The extra-field id PyTorch pads local headers with ("FB"). */
const PAD_EXTRA = 0x4246;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;

const METHODS: Record<number, string> = {
  8: "deflate",
  9: "deflate64",
  12: "bzip2",
  14: "lzma",
  93: "zstd",
  95: "xz",
};

let crcTable: Uint32Array | undefined;

/**
 * CRC-32 (the zip/PNG polynomial 0xEDB88320) of `bytes`, continuing from `crc`.
 *
 * @example
 * ```ts
 * import { crc32 } from "./zip.ts";
 * console.log(crc32(new TextEncoder().encode("123456789")).toString(16)); // "cbf43926"
 * ```
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    // Slicing by 4: table k holds the CRC of a byte followed by k zero bytes.
    crcTable = new Uint32Array(4 * 256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
    for (let n = 0; n < 256; n++) {
      for (let k = 1; k < 4; k++) {
        const prev = crcTable[(k - 1) * 256 + n];
        crcTable[k * 256 + n] = (crcTable[prev & 0xff] ^ (prev >>> 8)) >>> 0;
      }
    }
  }
  const t = crcTable;
  let c = ~crc >>> 0;
  let i = 0;
  const n4 = bytes.length - (bytes.length % 4);
  for (; i < n4; i += 4) {
    c ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    c = t[768 + (c & 0xff)] ^ t[512 + ((c >>> 8) & 0xff)] ^ t[256 + ((c >>> 16) & 0xff)] ^
      t[c >>> 24];
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** A little-endian reader over the archive that fails (never throws RangeError) past its end. */
class Reader {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly fail: Fail) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  check(at: number, n: number, what: string): void {
    if (at < 0 || at + n > this.bytes.length) {
      this.fail(`${what} at byte ${at} runs past the end of the ${this.bytes.length}-byte file`);
    }
  }
  u16(at: number): number {
    return this.view.getUint16(at, true);
  }
  u32(at: number): number {
    return this.view.getUint32(at, true);
  }
  u64(at: number, what: string): number {
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is not a usable offset`);
    return Number(v);
  }
}

/** Where the central directory is, from the end record (and its zip64 form). */
function findDirectory(r: Reader): { offset: number; size: number; count: number; end: number } {
  const n = r.bytes.length;
  if (n < END_SIZE) r.fail(`file has ${n} bytes, too short for a zip archive (truncated?)`);
  // The end record is the last 22 bytes plus a comment of up to 65535 bytes.
  let end = -1;
  for (let at = n - END_SIZE; at >= Math.max(0, n - END_SIZE - MAX16); at--) {
    if (r.u32(at) === END && at + END_SIZE + r.u16(at + 20) === n) {
      end = at;
      break;
    }
  }
  if (end < 0) r.fail("no end-of-central-directory record (truncated, or not a zip archive)");
  if (r.u16(end + 4) !== 0 || r.u16(end + 6) !== 0) r.fail("multi-disk zip archives are not read");
  let count = r.u16(end + 10);
  let size = r.u32(end + 12);
  let offset = r.u32(end + 16);
  let dirEnd = end;
  if (count === MAX16 || size === MAX32 || offset === MAX32) {
    const loc = end - LOCATOR_SIZE;
    if (loc < 0 || r.u32(loc) !== END64_LOCATOR) {
      r.fail("the end record asks for zip64 but there is no zip64 locator before it");
    }
    const at = r.u64(loc + 8, "zip64 end record offset");
    r.check(at, END64_SIZE, "zip64 end record");
    if (r.u32(at) !== END64) r.fail(`no zip64 end record at byte ${at}`);
    count = r.u64(at + 32, "zip64 entry count");
    size = r.u64(at + 40, "zip64 central directory size");
    offset = r.u64(at + 48, "zip64 central directory offset");
    dirEnd = at;
  }
  if (offset + size > dirEnd) {
    r.fail(
      `the central directory (${size} bytes at ${offset}) overlaps the end records at ${dirEnd} ` +
        `(truncated file?)`,
    );
  }
  if (count * CENTRAL_SIZE > size) {
    r.fail(`${count} entries cannot fit a ${size}-byte central directory`);
  }
  return { offset, size, count, end: dirEnd };
}

/** The zip64 extended-information values that replace the 0xFFFFFFFF fields, in order. */
function zip64Values(
  r: Reader,
  at: number,
  length: number,
  want: number,
  name: string,
): number[] {
  const stop = at + length;
  while (at + 4 <= stop) {
    const id = r.u16(at);
    const size = r.u16(at + 2);
    if (at + 4 + size > stop) break;
    if (id === ZIP64_EXTRA) {
      if (size < 8 * want) r.fail(`entry "${name}" has a zip64 field too short for its sizes`);
      return Array.from({ length: want }, (_, i) => r.u64(at + 4 + 8 * i, `entry "${name}" size`));
    }
    at += 4 + size;
  }
  return r.fail(`entry "${name}" needs zip64 sizes but has no zip64 extra field`);
}

/**
 * The entries of a zip archive of stored entries: name → bytes (views into `bytes`).
 *
 * @param bytes The whole archive.
 * @param fail Raises the caller's one-line error (it should name the file).
 * @returns Entries in central-directory order.
 * @throws Through `fail`: a truncated or malformed archive, an entry that is compressed,
 * encrypted, duplicated, outside the archive, or whose CRC-32 does not match.
 *
 * @example
 * ```ts
 * import { concatBytes, readZip, zipStored } from "./zip.ts";
 * const bytes = concatBytes(zipStored([{ name: "a/b", data: new Uint8Array([1, 2, 3]) }]));
 * const entries = readZip(bytes, (why) => { throw new Error(why); });
 * console.log(entries.get("a/b")); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export function readZip(bytes: Uint8Array, fail: Fail): Map<string, Uint8Array> {
  const r = new Reader(bytes, fail);
  const dir = findDirectory(r);
  const names = new TextDecoder("utf-8", { fatal: false });
  const entries = new Map<string, Uint8Array>();
  let at = dir.offset;
  const stop = dir.offset + dir.size;
  for (let i = 0; i < dir.count; i++) {
    r.check(at, CENTRAL_SIZE, "central directory entry");
    if (at + CENTRAL_SIZE > stop || r.u32(at) !== CENTRAL) {
      fail(`central directory entry ${i} at byte ${at} is malformed`);
    }
    const flags = r.u16(at + 8);
    const method = r.u16(at + 10);
    const crc = r.u32(at + 16);
    let csize = r.u32(at + 20);
    let usize = r.u32(at + 24);
    const nameLength = r.u16(at + 28);
    const extraLength = r.u16(at + 30);
    const commentLength = r.u16(at + 32);
    let local = r.u32(at + 42);
    r.check(at + CENTRAL_SIZE, nameLength + extraLength + commentLength, "entry name");
    const name = names.decode(bytes.subarray(at + CENTRAL_SIZE, at + CENTRAL_SIZE + nameLength));
    const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
    if (usize === MAX32 || csize === MAX32 || local === MAX32) {
      const wanted = [usize, csize, local].filter((v) => v === MAX32).length;
      const values = zip64Values(r, at + CENTRAL_SIZE + nameLength, extraLength, wanted, shown);
      if (usize === MAX32) usize = values.shift()!;
      if (csize === MAX32) csize = values.shift()!;
      if (local === MAX32) local = values.shift()!;
    }
    if (flags & 1) fail(`entry "${shown}" is encrypted`);
    if (method !== 0) {
      const kind = METHODS[method] ?? "an unknown method";
      fail(
        `entry "${shown}" is compressed (method ${method}, ${kind}); torch.save writes ` +
          `uncompressed (stored) entries only: was the file re-zipped?`,
      );
    }
    if (csize !== usize) {
      fail(`entry "${shown}" is stored but claims ${csize} bytes stored for ${usize} bytes`);
    }
    r.check(local, LOCAL_SIZE, `local header of entry "${shown}"`);
    if (r.u32(local) !== LOCAL) fail(`entry "${shown}" has no local header at byte ${local}`);
    const start = local + LOCAL_SIZE + r.u16(local + 26) + r.u16(local + 28);
    if (start + csize > dir.offset) {
      fail(
        `entry "${shown}" claims ${csize} bytes at byte ${start}, past the start of the ` +
          `central directory at ${dir.offset} (truncated file or a size that lies)`,
      );
    }
    if (entries.has(name)) fail(`entry "${shown}" appears twice`);
    const data = bytes.subarray(start, start + csize);
    if (crc32(data) !== crc) fail(`entry "${shown}" fails its CRC-32 check (corrupted file)`);
    entries.set(name, data);
    at += CENTRAL_SIZE + nameLength + extraLength + commentLength;
  }
  return entries;
}

/**
 * The chunks joined into one array (for a small archive, or a browser download).
 *
 * @example
 * ```ts
 * import { concatBytes } from "./zip.ts";
 * console.log(concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])])); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** One entry to write: its name and its bytes, in one piece or several. */
export interface ZipInput {
  name: string;
  data: Uint8Array | readonly Uint8Array[];
}

/** Options of {@linkcode zipStored}. */
export interface ZipOptions {
  /** Each entry's data starts at a multiple of this many bytes (default 64, as PyTorch). */
  align?: number;
  /** Write zip64 records even when no size or offset needs them (for tests). */
  forceZip64?: boolean;
}

function le16(v: DataView, at: number, x: number): void {
  v.setUint16(at, x, true);
}
function le32(v: DataView, at: number, x: number): void {
  v.setUint32(at, x, true);
}
function le64(v: DataView, at: number, x: number): void {
  v.setBigUint64(at, BigInt(x), true);
}

/**
 * A zip archive of stored entries, as chunks to write in order: each local header (with
 * padding so the data starts at a multiple of `align`), the entry's data chunks as given,
 * then the central directory and end records. Timestamps are fixed (1980-01-01), so the bytes
 * depend only on the names and data.
 *
 * @param entries Names (UTF-8, unique) and data, in archive order.
 * @param options Alignment and zip64.
 * @returns The archive's chunks.
 *
 * @example
 * ```ts
 * import { zipStored } from "./zip.ts";
 * const chunks = zipStored([{ name: "x/version", data: new TextEncoder().encode("3\n") }]);
 * console.log(chunks.reduce((n, c) => n + c.length, 0) > 0); // true
 * ```
 */
export function zipStored(entries: readonly ZipInput[], options: ZipOptions = {}): Uint8Array[] {
  const align = options.align ?? 64;
  const force = options.forceZip64 ?? false;
  const enc = new TextEncoder();
  const out: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const e of entries) {
    if (seen.has(e.name)) throw new Error(`Cannot write zip entry "${e.name}" twice`);
    seen.add(e.name);
    const name = enc.encode(e.name);
    const chunks = e.data instanceof Uint8Array ? [e.data] : e.data;
    let size = 0;
    let crc = 0;
    for (const c of chunks) {
      size += c.length;
      crc = crc32(c, crc);
    }
    const zip64 = force || size >= MAX32 || offset >= MAX32;
    const extra64 = zip64 ? 4 + 16 : 0; // local: uncompressed and compressed sizes
    const fixed = LOCAL_SIZE + name.length + extra64;
    // Padding extra field (id + length + pad bytes) up to the alignment.
    let pad = (align - ((offset + fixed + 4) % align)) % align;
    if (align <= 1) pad = -4;
    const head = new Uint8Array(fixed + pad + 4);
    const v = new DataView(head.buffer);
    le32(v, 0, LOCAL);
    le16(v, 4, zip64 ? 45 : 20); // version needed
    le16(v, 6, 0x800); // flags: UTF-8 names
    le16(v, 8, 0); // stored
    le16(v, 10, 0); // time
    le16(v, 12, 0x21); // date 1980-01-01
    le32(v, 14, crc);
    le32(v, 18, zip64 ? MAX32 : size);
    le32(v, 22, zip64 ? MAX32 : size);
    le16(v, 26, name.length);
    le16(v, 28, head.length - LOCAL_SIZE - name.length);
    head.set(name, LOCAL_SIZE);
    let x = LOCAL_SIZE + name.length;
    if (zip64) {
      le16(v, x, ZIP64_EXTRA);
      le16(v, x + 2, 16);
      le64(v, x + 4, size);
      le64(v, x + 12, size);
      x += 20;
    }
    if (pad >= 0) {
      le16(v, x, PAD_EXTRA);
      le16(v, x + 2, pad);
    }
    out.push(head, ...chunks);
    // Central directory entry: zip64 values for the fields that overflow (or all, forced).
    const big = [size, size, offset].map((n) => force || n >= MAX32);
    const values = [size, size, offset].filter((_, i) => big[i]);
    const cextra = values.length ? 4 + 8 * values.length : 0;
    const c = new Uint8Array(CENTRAL_SIZE + name.length + cextra);
    const cv = new DataView(c.buffer);
    le32(cv, 0, CENTRAL);
    le16(cv, 4, zip64 ? 45 : 20); // version made by
    le16(cv, 6, zip64 ? 45 : 20);
    le16(cv, 8, 0x800);
    le16(cv, 10, 0);
    le16(cv, 12, 0);
    le16(cv, 14, 0x21);
    le32(cv, 16, crc);
    le32(cv, 20, big[1] ? MAX32 : size);
    le32(cv, 24, big[0] ? MAX32 : size);
    le16(cv, 28, name.length);
    le16(cv, 30, cextra);
    le32(cv, 42, big[2] ? MAX32 : offset);
    c.set(name, CENTRAL_SIZE);
    if (cextra) {
      le16(cv, CENTRAL_SIZE + name.length, ZIP64_EXTRA);
      le16(cv, CENTRAL_SIZE + name.length + 2, 8 * values.length);
      values.forEach((n, i) => le64(cv, CENTRAL_SIZE + name.length + 4 + 8 * i, n));
    }
    central.push(c);
    offset += head.length + size;
  }
  const dirOffset = offset;
  const dirSize = central.reduce((n, c) => n + c.length, 0);
  for (const c of central) out.push(c);
  const zip64 = force || entries.length >= MAX16 || dirOffset >= MAX32 || dirSize >= MAX32;
  if (zip64) {
    const z = new Uint8Array(END64_SIZE + LOCATOR_SIZE);
    const v = new DataView(z.buffer);
    le32(v, 0, END64);
    le64(v, 4, END64_SIZE - 12);
    le16(v, 12, 45);
    le16(v, 14, 45);
    le64(v, 24, entries.length);
    le64(v, 32, entries.length);
    le64(v, 40, dirSize);
    le64(v, 48, dirOffset);
    le32(v, END64_SIZE, END64_LOCATOR);
    le64(v, END64_SIZE + 8, dirOffset + dirSize);
    le32(v, END64_SIZE + 16, 1);
    out.push(z);
  }
  const end = new Uint8Array(END_SIZE);
  const v = new DataView(end.buffer);
  le32(v, 0, END);
  le16(v, 8, zip64 ? MAX16 : entries.length);
  le16(v, 10, zip64 ? MAX16 : entries.length);
  le32(v, 12, zip64 ? MAX32 : dirSize);
  le32(v, 16, zip64 ? MAX32 : dirOffset);
  out.push(end);
  return out;
}
