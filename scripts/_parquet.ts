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

/** An open parquet file and its metadata. */
interface OpenFile {
  file: Deno.FsFile;
  buffer: AsyncBuffer;
  metadata: hyparquet.FileMetaData;
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
    return { file, buffer, metadata };
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
      return Number(f.metadata.num_rows);
    },

    async *readText(path: string, start: number, end: number): AsyncGenerator<string[]> {
      const f = await openParquet(path);
      try {
        const top = hyparquet.parquetSchema(f.metadata).children.map((c) => c.element.name);
        if (!top.includes(column)) {
          throw new Error(
            `Cannot read "${path}": it has no column "${column}" (columns: ${top.join(", ")})`,
          );
        }
        const total = Number(f.metadata.num_rows);
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
