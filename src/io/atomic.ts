/**
 * Atomic text files: written to a temporary file beside the destination, synced, then renamed
 * over it, so a reader (or a crash) never sees half a file.
 *
 * @module
 */

/**
 * Writes a text file atomically: the text goes to a temporary file beside `path`, which is
 * synced and renamed over `path`; on failure the temporary file is removed and `path` is left
 * as it was.
 *
 * Requires `--allow-write` for `path`'s directory.
 *
 * @param path Destination file.
 * @param text Contents.
 * @throws One line naming `path`.
 *
 * @example
 * ```ts ignore
 * import { writeTextFileAtomic } from "./atomic.ts";
 * await writeTextFileAtomic("out/latest_ckpt", "out/run1/ckpt_iter_100.safetensors");
 * ```
 */
export function writeTextFileAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, [new TextEncoder().encode(text)]);
}

/**
 * Writes the concatenation of `chunks` to `path` atomically, as
 * {@linkcode writeTextFileAtomic} does.
 *
 * @throws One line naming `path`.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic.ts";
 * const path = await Deno.makeTempFile();
 * await writeFileAtomic(path, [new Uint8Array([1, 2]), new Uint8Array([3])]);
 * console.log(await Deno.readFile(path)); // Uint8Array(3) [ 1, 2, 3 ]
 * await Deno.remove(path);
 * ```
 */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  const random = crypto.getRandomValues(new Uint8Array(4));
  const suffix = [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
  const tmp = `${path}.tmp-${Deno.pid}-${suffix}`;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      for (const bytes of chunks) {
        let done = 0;
        while (done < bytes.length) done += await file.write(bytes.subarray(done));
      }
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write "${path}": ${(e as Error).message}`, { cause: e });
  }
}
