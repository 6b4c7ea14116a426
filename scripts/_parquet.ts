/**
 * The parquet reader the TinyStories sources need, built on `hyparquet` (pure JavaScript) and
 * `hyparquet-compressors` (SNAPPY, GZIP, BROTLI, ZSTD, LZ4). It lives with the scripts because
 * npm packages must stay out of the library's (`mod.ts`) import graph; the library takes it
 * as a {@linkcode ParquetTextReader}.
 *
 * Memory stays bounded: the file is read through positioned reads of a `Deno.FsFile` (never
 * loaded whole), the footer metadata once per file, and rows one row group at a time (the
 * Hugging Face TinyStories files hold a few thousand stories per row group).
 *
 * Requires `--allow-read` for the files.
 *
 * @module
 */

// Full specifiers on purpose: files imported by URL ignore the import map. The same versions
// are pinned in deno.json's imports and in deno.lock.
// deno-lint-ignore no-import-prefix
import * as hyparquet from "npm:hyparquet@1.31.5";
// deno-lint-ignore no-import-prefix
import { compressors } from "npm:hyparquet-compressors@1.1.2";
import type { ParquetTextReader } from "../src/data/tinystories_sources.ts";

type AsyncBuffer = hyparquet.AsyncBuffer;

/**
 * An `AsyncBuffer` over an open file: each `slice` is a seek and a read. Reads are
 * serialized, because hyparquet may ask for several ranges at once and a file has one
 * position.
 *
 * @param file An open file (read permission).
 * @param byteLength Its size in bytes.
 * @returns The buffer; `slice(start, end)` follows `ArrayBuffer.slice`'s bounds.
 *
 * @example
 * ```ts
 * import { asyncBufferFromFsFile } from "./_parquet.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array([1, 2, 3, 4, 5]));
 * const file = await Deno.open(path);
 * const buf = asyncBufferFromFsFile(file, 5);
 * console.log([...new Uint8Array(await buf.slice(1, 3))]); // [ 2, 3 ]
 * file.close();
 * await Deno.remove(path);
 * ```
 */
export function asyncBufferFromFsFile(file: Deno.FsFile, byteLength: number): AsyncBuffer {
  let queue: Promise<unknown> = Promise.resolve();
  const read = async (start: number, end: number): Promise<ArrayBuffer> => {
    const out = new Uint8Array(end - start);
    await file.seek(start, Deno.SeekMode.Start);
    let done = 0;
    while (done < out.length) {
      const n = await file.read(out.subarray(done));
      if (n === null) throw new Error(`file ended at byte ${start + done} of ${byteLength}`);
      done += n;
    }
    return out.buffer;
  };
  return {
    byteLength,
    slice(start: number, end?: number): Promise<ArrayBuffer> {
      const s = start < 0 ? Math.max(0, byteLength + start) : Math.min(start, byteLength);
      const e0 = end === undefined ? byteLength : end < 0 ? byteLength + end : end;
      const e = Math.max(s, Math.min(e0, byteLength));
      const result = queue.then(() => read(s, e));
      queue = result.catch(() => {});
      return result;
    },
  };
}

/** Largest uncompressed page accepted: bounds the buffer a hostile page size can ask for. */
const MAX_PAGE_BYTES = 1 << 28;
/** Deepest nesting of thrift structures and containers accepted in a page header. */
const MAX_THRIFT_DEPTH = 32;

/** Fields of a thrift struct by id: integers, and the integer fields of nested structs. */
type Fields = Map<number, number | Fields>;

/** Whether `v` is an integer field holding a safe integer ≥ 0. */
function isCount(v: number | Fields | undefined): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * A reader of the thrift compact protocol, just enough to walk page headers: the integer
 * fields of the outer struct are kept, everything else is skipped. Every step consumes at
 * least one byte, so a walk over hostile bytes ends.
 */
class CompactReader {
  constructor(readonly bytes: Uint8Array, public at: number) {}

  #byte(): number {
    if (this.at >= this.bytes.length) throw new Error("a page header runs past its column chunk");
    return this.bytes[this.at++];
  }

  #advance(n: number): void {
    if (!(n >= 0 && this.at + n <= this.bytes.length)) {
      throw new Error("a page header runs past its column chunk");
    }
    this.at += n;
  }

  #varint(): number {
    let value = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      const b = this.#byte();
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new Error("a page header has a malformed integer");
  }

  #zigzag(): number {
    const v = this.#varint();
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }

  /** Skips a value of compact type `type` (booleans in containers take a byte). */
  #skip(type: number, depth: number, inContainer: boolean): void {
    if (depth > MAX_THRIFT_DEPTH) throw new Error("a page header is nested too deeply");
    switch (type) {
      case 1: // true
      case 2: // false
        if (inContainer) this.#advance(1);
        return;
      case 3: // byte
        return this.#advance(1);
      case 4: // i16
      case 5: // i32
      case 6: // i64
        this.#varint();
        return;
      case 7: // double
        return this.#advance(8);
      case 8: // binary
        return this.#advance(this.#varint());
      case 9: // list
      case 10: { // set
        const head = this.#byte();
        const n = head >> 4 === 15 ? this.#varint() : head >> 4;
        for (let i = 0; i < n; i++) this.#skip(head & 15, depth + 1, true);
        return;
      }
      case 11: { // map
        const n = this.#varint();
        if (n === 0) return;
        const kinds = this.#byte();
        for (let i = 0; i < n; i++) {
          this.#skip(kinds >> 4, depth + 1, true);
          this.#skip(kinds & 15, depth + 1, true);
        }
        return;
      }
      case 12: // struct
        this.struct(depth + 1);
        return;
      default:
        throw new Error(`a page header has a field of unknown type ${type}`);
    }
  }

  /**
   * Reads a struct. At depths 0 and 1 it returns its integer fields by id and (at depth 0)
   * its struct fields' integer fields; deeper, the values are skipped.
   */
  struct(depth = 0): Fields {
    const fields: Fields = new Map();
    let id = 0;
    for (;;) {
      const head = this.#byte();
      if (head === 0) return fields;
      const type = head & 15;
      id = head >> 4 === 0 ? this.#zigzag() : id + (head >> 4);
      if (depth <= 1 && type >= 4 && type <= 6) fields.set(id, this.#zigzag());
      else if (depth === 0 && type === 12) fields.set(id, this.struct(1));
      else this.#skip(type, depth, false);
    }
  }
}

/**
 * Walks the page headers of a column chunk as hyparquet will and checks that each one moves
 * forward within the chunk: a known page type, sizes that are integers ≥ 0, the compressed
 * page inside the chunk, the uncompressed one at most {@linkcode MAX_PAGE_BYTES}. hyparquet
 * trusts these fields (a missing compressed size makes its read loop spin forever).
 *
 * @throws What is wrong, without the file's name.
 */
function checkPageHeaders(chunk: Uint8Array): void {
  let at = 0;
  // hyparquet stops when fewer than 2 bytes are left.
  while (at < chunk.length - 1) {
    const reader = new CompactReader(chunk, at);
    const fields = reader.struct();
    const bad = (what: string): never => {
      throw new Error(`the page header at byte ${at} of a column chunk has ${what}`);
    };
    const type = fields.get(1);
    const uncompressed = fields.get(2);
    const compressed = fields.get(3);
    if (!(isCount(type) && type <= 3)) bad(`an unknown page type`);
    if (!isCount(compressed) || reader.at + (compressed as number) > chunk.length) {
      bad(`a compressed size outside the chunk's ${chunk.length} bytes`);
    }
    if (!isCount(uncompressed) || (uncompressed as number) > MAX_PAGE_BYTES) {
      bad(`an uncompressed size that is not an integer in [0, ${MAX_PAGE_BYTES}]`);
    }
    // The page's own header (data v1: 5, index: 6, dictionary: 7, data v2: 8) and the counts
    // hyparquet reads from it: num_values (all), num_nulls, num_rows and the byte lengths of
    // the levels (v2).
    const own = [5, 6, 7, 8][type as number];
    const header = fields.get(own);
    if (own !== 6) {
      if (!(header instanceof Map) || !isCount(header.get(1))) bad("no valid num_values");
      if (own === 8) {
        const h = header as Fields;
        if (![2, 3, 5, 6].every((id) => isCount(h.get(id)))) {
          bad("a data page v2 header without valid counts");
        }
        const levels = (h.get(5) as number) + (h.get(6) as number);
        if (levels > (compressed as number)) bad("levels longer than the page");
      }
    }
    at = reader.at + (compressed as number);
  }
}

/**
 * The bytes of `column`'s chunk in row group `group`, as hyparquet asks for them, after
 * {@linkcode checkPageHeaders}.
 */
async function checkedColumnChunk(
  buffer: AsyncBuffer,
  group: hyparquet.FileMetaData["row_groups"][number],
  column: string,
): Promise<void> {
  for (const chunk of group.columns) {
    const meta = chunk.meta_data;
    if (!meta || meta.path_in_schema[0] !== column) continue;
    const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
    const end = start + Number(meta.total_compressed_size);
    checkPageHeaders(new Uint8Array(await buffer.slice(start, end)));
  }
}

/** An open parquet file and its metadata. */
interface OpenFile {
  file: Deno.FsFile;
  buffer: AsyncBuffer;
  metadata: hyparquet.FileMetaData;
  /** Its rows, checked against the row groups. */
  rows: number;
  /** Names of its top-level columns. */
  columns: string[];
}

async function openParquet(path: string): Promise<OpenFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
  }
  try {
    const size = (await file.stat()).size;
    const buffer = asyncBufferFromFsFile(file, size);
    const metadata = await hyparquet.parquetMetadataAsync(buffer);
    // hyparquet trusts these: a mutated file must fail here, not deep in a read.
    const rows = Number(metadata.num_rows);
    let groupRows = 0;
    for (const g of metadata.row_groups) groupRows += Number(g.num_rows);
    if (!(Number.isSafeInteger(rows) && rows >= 0 && groupRows === rows)) {
      throw new Error(`its row groups hold ${groupRows} rows, its metadata says ${rows}`);
    }
    const columns = hyparquet.parquetSchema(metadata).children.map((c) => c.element.name);
    return { file, buffer, metadata, rows, columns };
  } catch (e) {
    file.close();
    throw new Error(`Cannot read "${path}" as parquet: ${(e as Error).message}`, { cause: e });
  }
}

/** Options of {@linkcode createParquetTextReader}. */
export interface ParquetTextReaderOptions {
  /** The string column holding the stories (default `text`, as the Hugging Face dataset). */
  column?: string;
}

/**
 * A {@linkcode ParquetTextReader} for local parquet files.
 *
 * @param options `column`: the column to read (default `text`).
 * @returns The reader.
 *
 * @example
 * ```ts
 * import { createParquetTextReader } from "./_parquet.ts";
 * const path = new URL("../tests/fixtures/parquet/strings.parquet", import.meta.url).pathname;
 * const reader = createParquetTextReader({ column: "c_utf8" });
 * console.log(await reader.rowCount(path)); // 4
 * for await (const rows of reader.readText(path, 1, 3)) console.log(rows); // [ "bravo", "charlie" ]
 * ```
 */
export function createParquetTextReader(
  options: ParquetTextReaderOptions = {},
): ParquetTextReader {
  const column = options.column ?? "text";
  return {
    async rowCount(path: string): Promise<number> {
      const f = await openParquet(path);
      f.file.close();
      return f.rows;
    },

    async *readText(path: string, start: number, end: number): AsyncGenerator<string[]> {
      const f = await openParquet(path);
      try {
        const top = f.columns;
        if (!top.includes(column)) {
          throw new Error(
            `Cannot read "${path}": it has no column "${column}" (columns: ${top.join(", ")})`,
          );
        }
        const total = f.rows;
        if (!(Number.isSafeInteger(start) && start >= 0 && end >= start && end <= total)) {
          throw new Error(`Cannot read rows [${start}, ${end}) of "${path}": it has ${total}`);
        }
        let groupStart = 0;
        for (const group of f.metadata.row_groups) {
          const groupEnd = groupStart + Number(group.num_rows);
          const lo = Math.max(start, groupStart);
          const hi = Math.min(end, groupEnd);
          if (lo < hi) {
            let rows: unknown[][] = [];
            try {
              await checkedColumnChunk(f.buffer, group, column);
              await hyparquet.parquetRead({
                file: f.buffer,
                metadata: f.metadata,
                columns: [column],
                rowStart: lo,
                rowEnd: hi,
                compressors,
                onComplete: (r: unknown[][]) => (rows = r),
              });
            } catch (e) {
              throw new Error(
                `Cannot read rows [${lo}, ${hi}) of "${path}": ${(e as Error).message}`,
                { cause: e },
              );
            }
            if (rows.length !== hi - lo) {
              throw new Error(
                `Cannot read rows [${lo}, ${hi}) of "${path}": got ${rows.length} rows`,
              );
            }
            yield rows.map((row, i) => {
              const value = row[0];
              if (typeof value !== "string") {
                throw new Error(
                  `Cannot read "${path}": row ${lo + i} of column "${column}" is ${
                    value === null || value === undefined ? "null" : typeof value
                  }, not a string`,
                );
              }
              return value;
            });
          }
          groupStart = groupEnd;
          if (groupStart >= end) break;
        }
      } finally {
        f.file.close();
      }
    },
  };
}
