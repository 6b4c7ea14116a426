/**
 * TinyStories story sources: the texts of a dataset, in source order, as async iterators of
 * strings, read in bounded memory whatever the dataset's size.
 *
 * - a TinyStoriesV2-style `.txt` file ({@linkcode textFileSource}): stories separated by lines
 *   holding only `<|endoftext|>`; a story is the text between two separators with its
 *   surrounding whitespace trimmed, and empty stories are skipped. The file is read in 1 MiB
 *   chunks, never as one string.
 * - a `.parquet` file or a folder of them, read in name order ({@linkcode parquetFilesSource}):
 *   one story per row of the `text` column, as is (the reference's Hugging Face dataset
 *   `cyrilzhang/TinyStories2-ascii` yields its rows untouched). Parquet decoding needs an npm
 *   package, which must stay out of the library's import graph, so it is injected as a
 *   {@linkcode ParquetTextReader} (the project's scripts pass one built on `hyparquet`).
 * - {@linkcode holdOutLast}: with a local training source and no validation source, the last
 *   1% of the stories (at least one) becomes the validation split. Counting needs one pass
 *   over a text file (a story count per file is cheap for parquet: it is in the metadata);
 *   nothing is held in memory.
 *
 * Requires `--allow-read` for the files.
 *
 * @module
 */

/**
 * The texts of a dataset in a fixed order, readable any number of times from any index.
 *
 * @example
 * ```ts
 * import { storiesFromStrings } from "./tinystories_sources.ts";
 * const src = storiesFromStrings("mem", ["a", "b", "c"]);
 * const got: string[] = [];
 * for await (const s of src.stories(1)) got.push(s);
 * console.log(await src.count(), got); // 3 [ "b", "c" ]
 * ```
 */
export interface StorySource {
  /** What messages call it (a path, or a list of paths). */
  readonly name: string;
  /** The number of stories. */
  count(): Promise<number>;
  /**
   * Stories `[start, end)` in source order (defaults: all of them). Starting late costs a
   * scan for text files and nothing for parquet files, whose row counts are in metadata.
   */
  stories(start?: number, end?: number): AsyncIterable<string>;
}

/**
 * Reads the `text` column of parquet files, a bounded batch at a time (at most a row group).
 * Implemented outside the library (it needs an npm package); see `scripts/_parquet.ts`.
 */
export interface ParquetTextReader {
  /** Rows in the file, from its metadata. */
  rowCount(path: string): Promise<number>;
  /** The `text` values of rows `[start, end)` in order, in batches of at most a row group. */
  readText(path: string, start: number, end: number): AsyncIterable<string[]>;
}

/** The line that separates stories in TinyStoriesV2 `.txt` files. */
export const STORY_SEPARATOR = "<|endoftext|>";

/** Longest story accepted from a text file, in UTF-16 code units: bounds memory. */
export const MAX_STORY_CHARS = 1 << 24;

const CHUNK_BYTES = 1 << 20;

function checkRange(name: string, start: number, end: number | undefined): void {
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && !(end >= start))) {
    throw new Error(`Bad story range [${start}, ${end}) for ${name}`);
  }
}

/**
 * An in-memory source (tests, small demos).
 *
 * @param name What messages call it.
 * @param texts The stories.
 * @returns A source over `texts` (not copied).
 */
export function storiesFromStrings(name: string, texts: readonly string[]): StorySource {
  return {
    name,
    count: () => Promise.resolve(texts.length),
    async *stories(start = 0, end?: number) {
      checkRange(name, start, end);
      const stop = Math.min(end ?? texts.length, texts.length);
      for (let i = start; i < stop; i++) yield texts[i];
    },
  };
}

/** Splits the lines of a text stream into trimmed, non-empty stories. */
async function* splitStories(
  path: string,
  chunks: AsyncIterable<string>,
  maxChars: number,
): AsyncGenerator<string> {
  let carry = ""; // an incomplete last line
  let parts: string[] = []; // lines of the story being read
  let size = 0;
  let index = 0;
  const finish = (): string | undefined => {
    const story = parts.join("\n").trim();
    parts = [];
    size = 0;
    return story.length > 0 ? story : undefined;
  };
  const add = (line: string) => {
    size += line.length + 1;
    if (size > maxChars) {
      throw new Error(
        `Cannot read "${path}": story ${index} is longer than ${maxChars} characters ` +
          `(stories must be separated by lines holding only ${STORY_SEPARATOR})`,
      );
    }
    parts.push(line);
  };
  for await (const chunk of chunks) {
    const text = carry + chunk;
    let from = 0;
    for (;;) {
      const nl = text.indexOf("\n", from);
      if (nl < 0) break;
      const line = text.slice(from, nl);
      from = nl + 1;
      if (line.trim() === STORY_SEPARATOR) {
        const story = finish();
        if (story !== undefined) {
          index++;
          yield story;
        }
      } else {
        add(line);
      }
    }
    carry = text.slice(from);
    if (carry.length > maxChars) add(carry); // throws: a line longer than any story
  }
  if (carry.trim() !== STORY_SEPARATOR) add(carry);
  const story = finish();
  if (story !== undefined) yield story;
}

async function* readChunks(path: string): AsyncGenerator<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
  }
  try {
    const decoder = new TextDecoder("utf-8");
    const buf = new Uint8Array(CHUNK_BYTES);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      yield decoder.decode(buf.subarray(0, n), { stream: true });
    }
    const rest = decoder.decode();
    if (rest) yield rest;
  } finally {
    file.close();
  }
}

/**
 * A TinyStoriesV2-style `.txt` file: stories separated by lines holding only
 * `<|endoftext|>` (whitespace around it ignored); each story trimmed, empty ones skipped.
 *
 * @param path The file.
 * @param options `maxStoryChars`: longest story accepted (default {@linkcode MAX_STORY_CHARS});
 *   a longer one is an error, which bounds memory on a file without separators.
 * @returns A source; `count()` reads the whole file once (and remembers the count).
 *
 * @example
 * ```ts
 * import { textFileSource } from "./tinystories_sources.ts";
 * const path = await Deno.makeTempFile({ suffix: ".txt" });
 * await Deno.writeTextFile(path, "Once.\n<|endoftext|>\n\n<|endoftext|>\n  The end. \n");
 * const src = textFileSource(path);
 * const got: string[] = [];
 * for await (const s of src.stories()) got.push(s);
 * console.log(got); // [ "Once.", "The end." ]
 * await Deno.remove(path);
 * ```
 */
export function textFileSource(
  path: string,
  options: { maxStoryChars?: number } = {},
): StorySource {
  const maxChars = options.maxStoryChars ?? MAX_STORY_CHARS;
  let counted: number | undefined;
  async function* stories(start = 0, end?: number): AsyncGenerator<string> {
    checkRange(path, start, end);
    let i = 0;
    for await (const story of splitStories(path, readChunks(path), maxChars)) {
      if (end !== undefined && i >= end) return;
      if (i >= start) yield story;
      i++;
    }
  }
  return {
    name: path,
    async count() {
      if (counted === undefined) {
        let n = 0;
        for await (const _ of stories()) n++;
        counted = n;
      }
      return counted;
    },
    stories,
  };
}

/**
 * Parquet files read one after another, in the order given: one story per row of the `text`
 * column, as stored.
 *
 * @param name What messages call the source.
 * @param paths The files.
 * @param reader The parquet decoder.
 * @returns A source; counts come from the files' metadata.
 *
 * @example
 * ```ts
 * import { parquetFilesSource, type ParquetTextReader } from "./tinystories_sources.ts";
 * // A stand-in reader: each "file" is a list of rows.
 * const files: Record<string, string[]> = { a: ["x", "y"], b: ["z"] };
 * const reader: ParquetTextReader = {
 *   rowCount: (p) => Promise.resolve(files[p].length),
 *   async *readText(p, s, e) { yield files[p].slice(s, e); },
 * };
 * const src = parquetFilesSource("ab", ["a", "b"], reader);
 * const got: string[] = [];
 * for await (const s of src.stories(1)) got.push(s);
 * console.log(await src.count(), got); // 3 [ "y", "z" ]
 * ```
 */
export function parquetFilesSource(
  name: string,
  paths: readonly string[],
  reader: ParquetTextReader,
): StorySource {
  let counts: number[] | undefined;
  const fileCounts = async (): Promise<number[]> => {
    if (!counts) {
      const c: number[] = [];
      for (const p of paths) c.push(await reader.rowCount(p));
      counts = c;
    }
    return counts;
  };
  return {
    name,
    async count() {
      return (await fileCounts()).reduce((a, b) => a + b, 0);
    },
    async *stories(start = 0, end?: number) {
      checkRange(name, start, end);
      const c = await fileCounts();
      let offset = 0; // index of the first row of file i
      for (let i = 0; i < paths.length; i++) {
        const lo = Math.max(start - offset, 0);
        const hi = Math.min(end === undefined ? c[i] : end - offset, c[i]);
        if (lo < hi) {
          for await (const batch of reader.readText(paths[i], lo, hi)) yield* batch;
        }
        offset += c[i];
        if (end !== undefined && offset >= end) return;
      }
    },
  };
}

/**
 * Opens a local source by what `path` is: a folder (its `*.parquet` files in name order), a
 * `.parquet` file, or else a TinyStoriesV2-style text file.
 *
 * @param path The file or folder.
 * @param parquet The parquet decoder (needed only for parquet sources).
 * @returns The source.
 * @throws One line naming `path` when it is missing, an empty folder, or parquet without a
 *   decoder.
 *
 * @example
 * ```ts
 * import { openStorySource } from "./tinystories_sources.ts";
 * const path = await Deno.makeTempFile({ suffix: ".txt" });
 * await Deno.writeTextFile(path, "A.\n<|endoftext|>\nB.\n<|endoftext|>\n");
 * const src = await openStorySource(path); // a .txt: no parquet reader needed
 * console.log(await src.count()); // 2
 * await Deno.remove(path);
 * ```
 */
export async function openStorySource(
  path: string,
  parquet?: ParquetTextReader,
): Promise<StorySource> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new Error(`Cannot read stories from "${path}": ${(e as Error).message}`, { cause: e });
  }
  const needReader = (): ParquetTextReader => {
    if (!parquet) throw new Error(`Cannot read "${path}": no parquet reader was given`);
    return parquet;
  };
  if (info.isDirectory) {
    const names: string[] = [];
    for await (const e of Deno.readDir(path)) {
      if (e.isFile && e.name.endsWith(".parquet")) names.push(e.name);
    }
    if (names.length === 0) {
      throw new Error(`Cannot read stories from "${path}": no .parquet files`);
    }
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const sep = path.endsWith("/") ? "" : "/";
    return parquetFilesSource(path, names.map((n) => path + sep + n), needReader());
  }
  if (path.endsWith(".parquet")) return parquetFilesSource(path, [path], needReader());
  return textFileSource(path);
}

/**
 * Stories `[start, end)` of another source, as a source.
 *
 * @example
 * ```ts
 * import { sliceSource, storiesFromStrings } from "./tinystories_sources.ts";
 * const s = sliceSource(storiesFromStrings("m", ["a", "b", "c", "d"]), 1, 3);
 * const got: string[] = [];
 * for await (const t of s.stories()) got.push(t);
 * console.log(await s.count(), got); // 2 [ "b", "c" ]
 * ```
 */
export function sliceSource(source: StorySource, start: number, end: number): StorySource {
  checkRange(source.name, start, end);
  return {
    name: `${source.name}[${start}:${end}]`,
    count: () => Promise.resolve(end - start),
    stories(from = 0, to?: number) {
      checkRange(source.name, from, to);
      const hi = Math.min(start + (to ?? end - start), end);
      return source.stories(Math.min(start + from, hi), hi);
    },
  };
}

/** The train and validation splits of one source. */
export interface HeldOutSplit {
  train: StorySource;
  val: StorySource;
  /** Stories in the whole source. */
  total: number;
}

/**
 * Holds out the last 1% of a source's stories (⌊n / 100⌋, at least one) for validation.
 *
 * @param source The stories (counted once: a full pass over a text file).
 * @returns The first n − h stories as `train`, the last h as `val`.
 * @throws When the source has fewer than 2 stories.
 *
 * @example
 * ```ts
 * import { holdOutLast, storiesFromStrings } from "./tinystories_sources.ts";
 * const texts = Array.from({ length: 250 }, (_, i) => `story ${i}`);
 * const { train, val } = await holdOutLast(storiesFromStrings("m", texts));
 * console.log(await train.count(), await val.count()); // 248 2
 * ```
 */
export async function holdOutLast(source: StorySource): Promise<HeldOutSplit> {
  const total = await source.count();
  if (total < 2) {
    throw new Error(
      `Cannot hold out validation stories from "${source.name}": it has ${total} ` +
        `(at least 2 are needed; or give a validation source)`,
    );
  }
  const held = Math.max(1, Math.floor(total / 100));
  return {
    train: sliceSource(source, 0, total - held),
    val: sliceSource(source, total - held, total),
    total,
  };
}
