/**
 * Pretokenization: stories → 1-D uint16 `.npy` token shards, byte-identical to what the
 * reference's `data/tinystories/prepare.py` (microsoft/BST) writes.
 *
 * What the reference does, and this module too, per split (`train`, then `val`):
 *
 * 1. Each story, in source order, becomes the document `[EOS] + tokenizer.encode(story)`
 *    (EOS = 1 for the TinyStories tokenizer; no other special tokens are added).
 * 2. Documents are concatenated and cut into shards of `shardTokens` tokens (the reference's
 *    `SHARD_SIZE = 1e8`); a document crossing a shard boundary continues at the start of the
 *    next shard, and the last shard holds the rest (no empty shard is written).
 * 3. Shard i of a split is `{prefix}_{split}_{i:06d}.npy`, written as `np.save` writes a 1-D
 *    `uint16` array (format 1.0, `'<u2'`, data at byte 128).
 *
 * Beyond the reference: stories are tokenized on worker threads (in batches, results kept in
 * source order); each shard is written atomically (temporary file, then rename); an id that
 * does not fit in uint16 is an error naming the story (the reference asserts); and a manifest
 * `{prefix}_manifest.json` records the tokenizer's sha256, the EOS id, the shard size, the
 * sources, and per shard its token count, sha256 and where in the source it ends. A re-run
 * with the same settings and sources keeps the shards the manifest lists (present with the
 * right size), and continues after the last of them; a split marked complete is skipped. When
 * the settings or sources differ, the split is written again from the start.
 *
 * Memory: a few batches of stories and their tokens in flight, whatever the shard size (shards
 * are streamed to disk).
 *
 * Requires `--allow-read` for the sources and `--allow-write` for the output folder; worker
 * threads need read access to `src/data` and `src/tokenizers` (without it the stories are
 * tokenized on the calling thread: same bytes, slower).
 *
 * @module
 */

import { HfTokenizer } from "../tokenizers/hf_bpe.ts";
import { encodeNpyHeader, NpyWriter } from "../io/npy.ts";
import { createHash } from "node:crypto";
import { type EncodedStories, encodeStories, MAX_TOKEN_ID } from "./_pretokenize_encode.ts";
import type { StorySource } from "./tinystories_sources.ts";

/** The reference's shard size: 100 M tokens. */
export const DEFAULT_SHARD_TOKENS = 100_000_000;

/** What the manifest format is called (changes if its meaning ever does). */
export const MANIFEST_FORMAT = "bst-webgpu pretokenize 1";

/** A source file as the manifest records it. */
export interface SourceInfo {
  path: string;
  /** Size in bytes. */
  bytes: number;
}

/** Where a shard ends in the split's documents: the next token is `offset` of document `story`. */
export interface ShardEnd {
  story: number;
  offset: number;
}

/** One written shard. */
export interface ShardRecord {
  /** File name, in the output folder. */
  file: string;
  tokens: number;
  /** sha256 of the whole file, lowercase hex. */
  sha256: string;
  end: ShardEnd;
}

/** A split in the manifest. */
export interface SplitRecord {
  sources: SourceInfo[];
  /** Every story is in the shards. */
  complete: boolean;
  /** Stories and tokens in the shards (the totals once complete). */
  stories: number;
  tokens: number;
  shards: ShardRecord[];
}

/** `{prefix}_manifest.json`. */
export interface Manifest {
  format: string;
  prefix: string;
  tokenizer_sha256: string;
  eos_id: number;
  shard_tokens: number;
  splits: Record<string, SplitRecord>;
}

/** Progress of one split. */
export interface PretokenizeProgress {
  split: string;
  /** Stories tokenized by this run (stories skipped on resume are not counted). */
  stories: number;
  /** Tokens written by this run. */
  tokens: number;
  /** UTF-8 bytes of the stories tokenized by this run. */
  bytes: number;
  /** Shards of the split finished so far (kept ones included). */
  shards: number;
}

/** Options of {@linkcode pretokenizeSplit}. */
export interface PretokenizeOptions {
  /** `train` or `val` (any name: it goes into the file names). */
  split: string;
  /** The stories, in order. */
  source: StorySource;
  /** The source files, recorded in the manifest (a change restarts the split). */
  sourceInfo: SourceInfo[];
  /** The tokenizer file's text (a Hugging Face `tokenizer.json`). */
  tokenizerJson: string;
  /** Id put before every story (TinyStories: 1). */
  eosId: number;
  /** Folder of the shards and the manifest (created if missing). */
  outputDir: string;
  /** File name prefix (the reference's `tinystories2`). */
  prefix: string;
  /** Tokens per shard (default {@linkcode DEFAULT_SHARD_TOKENS}). */
  shardTokens?: number;
  /** Worker threads (default: the CPUs, at most 8; 0: tokenize on this thread). */
  workers?: number;
  /** Stories per batch handed to a worker (default 256). */
  batchStories?: number;
  /** Called after each batch and each shard. */
  onProgress?: (p: PretokenizeProgress) => void;
  /** Called with one line on what a re-run keeps or why it starts over. */
  onNote?: (line: string) => void;
}

/** What {@linkcode pretokenizeSplit} did. */
export interface PretokenizeResult {
  /** The split's record as now in the manifest. */
  record: SplitRecord;
  /** Shards kept from an earlier run. */
  kept: number;
  /** Shards written by this run. */
  written: number;
  /** Stories, tokens and UTF-8 bytes tokenized by this run. */
  stories: number;
  tokens: number;
  bytes: number;
}

/**
 * The reference's shard name: `{prefix}_{split}_{index:06d}.npy`.
 *
 * @example
 * ```ts
 * import { shardFileName } from "./pretokenize.ts";
 * console.log(shardFileName("tinystories2", "train", 3)); // tinystories2_train_000003.npy
 * ```
 */
export function shardFileName(prefix: string, split: string, index: number): string {
  return `${prefix}_${split}_${String(index).padStart(6, "0")}.npy`;
}

/**
 * The manifest's file name: `{prefix}_manifest.json`.
 *
 * @example
 * ```ts
 * import { manifestFileName } from "./pretokenize.ts";
 * console.log(manifestFileName("tinystories2")); // tinystories2_manifest.json
 * ```
 */
export function manifestFileName(prefix: string): string {
  return `${prefix}_manifest.json`;
}

/**
 * sha256 of a string's UTF-8 bytes, lowercase hex (the manifest's tokenizer hash).
 *
 * @example
 * ```ts
 * import { sha256Text } from "./pretokenize.ts";
 * console.log(sha256Text("abc")); // ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
 * ```
 */
export function sha256Text(text: string): string {
  return createHash("sha256").update(new TextEncoder().encode(text)).digest("hex");
}

/**
 * sha256 of a file, read 1 MiB at a time, lowercase hex.
 *
 * @example
 * ```ts
 * import { sha256File } from "./pretokenize.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * console.log(await sha256File(path)); // ba7816bf…
 * await Deno.remove(path);
 * ```
 */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}

/**
 * Reads `{prefix}_manifest.json` from `dir`; undefined when absent or not a manifest.
 *
 * @example
 * ```ts
 * import { readManifest } from "./pretokenize.ts";
 * const dir = await Deno.makeTempDir();
 * console.log(await readManifest(dir, "tinystories2")); // undefined
 * await Deno.remove(dir);
 * ```
 */
export async function readManifest(dir: string, prefix: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(joinPath(dir, manifestFileName(prefix)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    const m = JSON.parse(text);
    if (m?.format !== MANIFEST_FORMAT || typeof m.splits !== "object" || m.splits === null) {
      return undefined;
    }
    return m as Manifest;
  } catch {
    return undefined;
  }
}

async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write "${path}": ${(e as Error).message}`, { cause: e });
  }
}

function joinPath(dir: string, name: string): string {
  return dir === "" ? name : `${dir.replace(/\/+$/, "")}/${name}`;
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Bytes of a 1-D uint16 `.npy` file of `tokens` elements. */
function shardBytes(tokens: number): number {
  return encodeNpyHeader("u2", [tokens]).length + 2 * tokens;
}

function sameSources(a: SourceInfo[], b: SourceInfo[]): boolean {
  return a.length === b.length && a.every((s, i) => s.path === b[i].path && s.bytes === b[i].bytes);
}

// ---------------------------------------------------------------------------------------------
// Tokenizing on worker threads

/** Whether workers may load the modules under `urls` without a permission prompt. */
function workersAllowed(urls: URL[]): boolean {
  for (const url of urls) {
    if (url.protocol !== "file:") return false;
    const dir = decodeURIComponent(new URL(".", url).pathname);
    if (Deno.permissions.querySync({ name: "read", path: dir }).state !== "granted") return false;
  }
  return true;
}

function defaultWorkers(): number {
  return Math.min(8, navigator.hardwareConcurrency ?? 1);
}

/** Characters per batch beyond which a batch is sent early (bounds memory on long stories). */
const BATCH_CHARS = 1 << 20;

/** Batches of consecutive stories: `[first index, texts]`. */
async function* storyBatches(
  source: StorySource,
  start: number,
  batchStories: number,
): AsyncGenerator<{ first: number; stories: string[] }> {
  let batch: string[] = [];
  let chars = 0;
  let first = start;
  for await (const story of source.stories(start)) {
    batch.push(story);
    chars += story.length;
    if (batch.length >= batchStories || chars >= BATCH_CHARS) {
      yield { first, stories: batch };
      first += batch.length;
      batch = [];
      chars = 0;
    }
  }
  if (batch.length > 0) yield { first, stories: batch };
}

/**
 * The documents of stories `start…` in order, a batch at a time, tokenized by `workers`
 * threads (or this one).
 */
async function* encodedBatches(
  source: StorySource,
  start: number,
  tokenizerJson: string,
  eosId: number,
  workers: number,
  batchStories: number,
): AsyncGenerator<EncodedStories> {
  const url = new URL("./_pretokenize_worker.ts", import.meta.url);
  const tokenizerUrl = new URL("../tokenizers/hf_bpe.ts", import.meta.url);
  let pool: Worker[] = [];
  if (workers > 0 && workersAllowed([url, tokenizerUrl])) {
    try {
      pool = Array.from({ length: workers }, () => new Worker(url, { type: "module" }));
    } catch {
      pool = [];
    }
  }
  const batches = storyBatches(source, start, batchStories);
  if (pool.length === 0) {
    const tokenizer = HfTokenizer.fromJSON(tokenizerJson);
    for await (const b of batches) yield encodeStories(tokenizer, eosId, b.stories, b.first);
    return;
  }
  type Pending = { resolve: (r: EncodedStories) => void; reject: (e: Error) => void };
  const pending = new Map<number, Pending>();
  const results = new Map<number, Promise<EncodedStories>>();
  let failure: Error | undefined;
  for (const w of pool) {
    w.onmessage = (
      e: MessageEvent<
        { id: number; tokens?: Uint16Array; lengths?: Uint32Array; bytes?: number; error?: string }
      >,
    ) => {
      const p = pending.get(e.data.id);
      if (!p) return;
      pending.delete(e.data.id);
      if (e.data.error !== undefined) p.reject(new Error(e.data.error));
      else p.resolve({ tokens: e.data.tokens!, lengths: e.data.lengths!, bytes: e.data.bytes! });
    };
    w.onerror = (e) => {
      e.preventDefault();
      failure = new Error(`A tokenizer worker failed: ${e.message}`);
      for (const p of pending.values()) p.reject(failure);
      pending.clear();
    };
    w.postMessage({ tokenizer: tokenizerJson, eosId });
  }
  let nextId = 0;
  let sourceDone = false;
  /** Hands the next batch of stories to a worker; false when there is none. */
  const submit = async (): Promise<boolean> => {
    if (sourceDone) return false;
    const b = await batches.next();
    if (b.done) {
      sourceDone = true;
      return false;
    }
    const id = nextId++;
    const promise = new Promise<EncodedStories>((resolve, reject) => {
      if (failure) reject(failure);
      else pending.set(id, { resolve, reject });
    });
    promise.catch(() => {}); // awaited in order below; avoid an unhandled rejection meanwhile
    results.set(id, promise);
    pool[id % pool.length].postMessage({ id, first: b.value.first, stories: b.value.stories });
    return true;
  };
  try {
    // Keep two batches per worker in flight.
    for (let i = 0; i < 2 * pool.length; i++) if (!(await submit())) break;
    for (let id = 0; results.has(id); id++) {
      const r = await results.get(id)!;
      results.delete(id);
      await submit();
      yield r;
    }
  } finally {
    for (const w of pool) w.terminate();
    await batches.return(undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing shards

/**
 * Pretokenizes one split into `{prefix}_{split}_{i:06d}.npy` shards in `outputDir` and records
 * them in the manifest, continuing a previous run where its manifest allows (see the module
 * documentation).
 *
 * @param o What to tokenize, with what, and where to write it.
 * @returns The split's record and what this run did.
 * @throws One line naming the problem: an id that does not fit in uint16, an unreadable source,
 *   an unwritable folder. Shards finished before the error stay, listed in the manifest.
 *
 * @example
 * ```ts
 * import { pretokenizeSplit } from "./pretokenize.ts";
 * import { storiesFromStrings } from "./tinystories_sources.ts";
 * const json = await Deno.readTextFile(
 *   new URL("../tokenizers/tinystories_tokenizer.json", import.meta.url),
 * );
 * const dir = await Deno.makeTempDir();
 * const r = await pretokenizeSplit({
 *   split: "train",
 *   source: storiesFromStrings("demo", ["The cat sat.", "Lily saw 12 cats."]),
 *   sourceInfo: [],
 *   tokenizerJson: json,
 *   eosId: 1,
 *   outputDir: dir,
 *   prefix: "demo",
 *   shardTokens: 10,
 *   workers: 0,
 * });
 * console.log(r.record.shards.map((s) => [s.file, s.tokens]));
 * // [ [ "demo_train_000000.npy", 10 ], [ "demo_train_000001.npy", 5 ] ]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function pretokenizeSplit(o: PretokenizeOptions): Promise<PretokenizeResult> {
  const shardTokens = o.shardTokens ?? DEFAULT_SHARD_TOKENS;
  if (!Number.isSafeInteger(shardTokens) || shardTokens < 1) {
    throw new Error(`Shard size must be a positive integer, got ${shardTokens}`);
  }
  if (!Number.isInteger(o.eosId) || o.eosId < 0 || o.eosId > MAX_TOKEN_ID) {
    throw new Error(`EOS id must be an integer in [0, 65535], got ${o.eosId}`);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(o.prefix) || !/^[A-Za-z0-9._-]+$/.test(o.split)) {
    throw new Error(
      `Prefix and split name may hold only letters, digits, ".", "_" and "-", got "${o.prefix}" and "${o.split}"`,
    );
  }
  const dir = o.outputDir.replace(/\/+$/, "") || "/";
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new Error(`Cannot create output folder "${dir}": ${(e as Error).message}`, { cause: e });
  }
  const tokenizerSha = sha256Text(o.tokenizerJson);
  const manifestPath = joinPath(dir, manifestFileName(o.prefix));
  const note = o.onNote ?? (() => {});

  // The manifest: kept when its settings match, else started afresh (other splits dropped).
  let manifest = await readManifest(dir, o.prefix);
  const settingsMatch = manifest !== undefined && manifest.prefix === o.prefix &&
    manifest.tokenizer_sha256 === tokenizerSha && manifest.eos_id === o.eosId &&
    manifest.shard_tokens === shardTokens;
  const old = manifest?.splits[o.split];
  if (!settingsMatch) {
    if (manifest !== undefined) {
      note(`${manifestFileName(o.prefix)}: tokenizer, EOS id or shard size changed: starting over`);
    }
    manifest = {
      format: MANIFEST_FORMAT,
      prefix: o.prefix,
      tokenizer_sha256: tokenizerSha,
      eos_id: o.eosId,
      shard_tokens: shardTokens,
      splits: {},
    };
  }

  // Shards to keep: the listed ones, in order, while present with the right size.
  const kept: ShardRecord[] = [];
  if (settingsMatch && old) {
    if (!sameSources(old.sources, o.sourceInfo)) {
      note(`${o.split}: the sources changed: starting over`);
    } else {
      for (const [i, s] of old.shards.entries()) {
        if (s.file !== shardFileName(o.prefix, o.split, i)) break;
        if ((await fileSize(joinPath(dir, s.file))) !== shardBytes(s.tokens)) break;
        kept.push(s);
      }
      if (old.complete && kept.length === old.shards.length) {
        note(`${o.split}: ${kept.length} shards up to date, skipped`);
        return { record: old, kept: kept.length, written: 0, stories: 0, tokens: 0, bytes: 0 };
      }
      if (kept.length > 0) note(`${o.split}: keeping ${kept.length} finished shards`);
    }
  }
  const stale = (old?.shards ?? []).map((s) => s.file);
  const record: SplitRecord = {
    sources: o.sourceInfo,
    complete: false,
    stories: kept.at(-1)?.end.story ?? 0,
    tokens: kept.reduce((a, s) => a + s.tokens, 0),
    shards: [...kept],
  };
  const saveManifest = async () => {
    manifest!.splits[o.split] = record;
    await writeTextAtomic(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  };
  await saveManifest();

  const start: ShardEnd = kept.at(-1)?.end ?? { story: 0, offset: 0 };
  let skip = start.offset; // tokens of the first document already in the kept shards
  let story = start.story; // index of the document the next token belongs to
  let offset = start.offset; // position of the next token in that document
  let writer: NpyWriter | undefined;
  let inShard = 0;
  const done = { stories: 0, tokens: 0, bytes: 0 };
  const progress = () => o.onProgress?.({ split: o.split, ...done, shards: record.shards.length });

  const finishShard = async () => {
    const w = writer!;
    writer = undefined;
    await w.close();
    const sha256 = await sha256File(w.path);
    record.shards.push({
      file: shardFileName(o.prefix, o.split, record.shards.length),
      tokens: inShard,
      sha256,
      end: { story, offset },
    });
    record.tokens += inShard;
    record.stories = story;
    inShard = 0;
    await saveManifest();
    progress();
  };

  try {
    for await (
      const batch of encodedBatches(
        o.source,
        start.story,
        o.tokenizerJson,
        o.eosId,
        o.workers ?? defaultWorkers(),
        o.batchStories ?? 256,
      )
    ) {
      const { tokens, lengths } = batch;
      let pos = Math.min(skip, tokens.length); // next token of the batch to write
      skip -= pos;
      let doc = 0; // the document `pos` is in, and where it starts in the batch
      let docStart = 0;
      while (pos < tokens.length) {
        if (!writer) {
          const path = joinPath(dir, shardFileName(o.prefix, o.split, record.shards.length));
          writer = await NpyWriter.create(path, "u2");
        }
        const take = Math.min(shardTokens - inShard, tokens.length - pos);
        await writer.append(tokens.subarray(pos, pos + take));
        pos += take;
        inShard += take;
        done.tokens += take;
        if (inShard === shardTokens) {
          while (doc < lengths.length && docStart + lengths[doc] <= pos) docStart += lengths[doc++];
          story = start.story + done.stories + doc;
          offset = pos - docStart;
          await finishShard();
        }
      }
      done.stories += lengths.length;
      done.bytes += batch.bytes;
      story = start.story + done.stories;
      offset = 0;
      progress();
    }
    if (writer) await finishShard();
  } catch (e) {
    await writer?.abort();
    await saveManifest().catch(() => {});
    throw e;
  }
  record.complete = true;
  record.stories = story;
  await saveManifest();
  // Shards of an earlier, longer run that this run did not rewrite.
  const fresh = new Set(record.shards.map((s) => s.file));
  for (const file of stale) {
    if (!fresh.has(file)) await Deno.remove(joinPath(dir, file)).catch(() => {});
  }
  return {
    record,
    kept: kept.length,
    written: record.shards.length - kept.length,
    ...done,
  };
}

/**
 * Several story sources read one after another, as one source (`--train A B` of the
 * pretokenize task).
 *
 * @param sources The sources, in order.
 * @returns A source whose stories are those of `sources[0]`, then `sources[1]`, …
 *
 * @example
 * ```ts
 * import { concatSources } from "./pretokenize.ts";
 * import { storiesFromStrings } from "./tinystories_sources.ts";
 * const s = concatSources([storiesFromStrings("a", ["x", "y"]), storiesFromStrings("b", ["z"])]);
 * const got: string[] = [];
 * for await (const t of s.stories(1)) got.push(t);
 * console.log(s.name, await s.count(), got); // a + b 3 [ "y", "z" ]
 * ```
 */
export function concatSources(sources: readonly StorySource[]): StorySource {
  if (sources.length === 1) return sources[0];
  const name = sources.map((s) => s.name).join(" + ");
  let counts: number[] | undefined;
  const allCounts = async (): Promise<number[]> => {
    if (!counts) {
      const c: number[] = [];
      for (const s of sources) c.push(await s.count());
      counts = c;
    }
    return counts;
  };
  return {
    name,
    async count() {
      return (await allCounts()).reduce((a, b) => a + b, 0);
    },
    async *stories(start = 0, end?: number) {
      if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && !(end >= start))) {
        throw new Error(`Bad story range [${start}, ${end}) for ${name}`);
      }
      let offset = 0; // index of the first story of source i
      for (let i = 0; i < sources.length; i++) {
        if (end !== undefined && offset >= end) return;
        // Counting a text file costs a pass: skip it only when the range starts past it.
        const last = i === sources.length - 1;
        const n = start > offset || end !== undefined ? await sources[i].count() : undefined;
        if (n !== undefined && start >= offset + n && !last) {
          offset += n;
          continue;
        }
        const lo = Math.max(start - offset, 0);
        const hi = end === undefined ? undefined : end - offset;
        let read = 0;
        for await (const story of sources[i].stories(lo, hi)) {
          read++;
          yield story;
        }
        offset += n ?? lo + read;
      }
    },
  };
}
