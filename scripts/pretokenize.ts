/**
 * `deno task pretokenize`: TinyStories (or any stories) → uint16 `.npy` token shards, as
 * microsoft/BST `data/tinystories/prepare.py` writes them: each story becomes `[EOS] + ids`,
 * the documents are concatenated and cut into `{prefix}_{train|val}_{i:06d}.npy` shards of
 * `--shard_tokens` tokens. The work is done by `src/data/pretokenize.ts`; this script reads
 * the flags, opens the sources and draws the progress bar.
 *
 * Sources: by default the reference's Hugging Face dataset `cyrilzhang/TinyStories2-ascii`,
 * downloaded into `data/tinystories/` on first use; or `--train PATH...` (and optionally
 * `--val PATH...`): `.parquet` files, folders of them, or TinyStoriesV2-style `.txt` files.
 * With `--train` and no `--val`, the last 1% of the training stories becomes the validation
 * split.
 *
 * Permissions (`-P=pretokenize`): read and write `./data`, read `./src/data` and
 * `./src/tokenizers` (the worker threads' modules), net to the Hugging Face hosts, env
 * `HF_ENDPOINT`. For sources or an output folder elsewhere run
 * `deno run --allow-read=src,PATHS --allow-write=DIR scripts/pretokenize.ts ...`.
 *
 * @module
 */

import shippedTokenizer from "../src/tokenizers/tinystories_tokenizer.json" with { type: "text" };
import { HfTokenizer } from "../src/tokenizers/hf_bpe.ts";
import { DEFAULT_TINYSTORIES_DIR, downloadTinyStories } from "../src/data/hub_download.ts";
import {
  holdOutLast,
  openStorySource,
  parquetFilesSource,
  type StorySource,
} from "../src/data/tinystories_sources.ts";
import {
  concatSources,
  DEFAULT_SHARD_TOKENS,
  manifestFileName,
  type PretokenizeProgress,
  pretokenizeSplit,
  type SourceInfo,
} from "../src/data/pretokenize.ts";
import { createParquetTextReader } from "./_parquet.ts";
import { parseCli, runMain, UsageError } from "./_cli.ts";

const { values } = parseCli({
  usage: "deno task pretokenize [--train PATH... [--val PATH...]] [flags]",
  about:
    `Tokenizes stories into uint16 .npy shards exactly as microsoft/BST's data/tinystories/prepare.py
does: each story becomes [EOS] + its ids, in source order, concatenated and cut into
OUTPUT_DIR/{prefix}_{train|val}_{i:06d}.npy of --shard_tokens tokens (a story crossing a shard
boundary continues in the next shard; the last shard holds the rest). Without --train, the
reference's Hugging Face dataset cyrilzhang/TinyStories2-ascii is downloaded into
${DEFAULT_TINYSTORIES_DIR}/ first.`,
  flags: {
    train: {
      type: "string",
      multiple: true,
      arg: "PATH",
      help: "training stories: .parquet files, folders of them, or TinyStoriesV2 .txt files",
    },
    val: {
      type: "string",
      multiple: true,
      arg: "PATH",
      help: "validation stories (default with --train: its last 1%)",
    },
    tokenizer: {
      type: "string",
      file: true,
      help: "a Hugging Face tokenizer.json (default: the reference's TinyStories tokenizer)",
    },
    eos_id: {
      type: "integer",
      min: 0,
      help: "id put before each story (default: the tokenizer's <|eos|> or <|endoftext|>)",
    },
    output_dir: {
      type: "string",
      arg: "DIR",
      default: "data/tinystories/tinystories2-ascii",
      help: "where the shards go (default data/tinystories/tinystories2-ascii)",
    },
    prefix: {
      type: "string",
      default: "tinystories2",
      help: "shard name prefix (default tinystories2)",
    },
    shard_tokens: {
      type: "integer",
      min: 1,
      default: DEFAULT_SHARD_TOKENS,
      help: `tokens per shard (default ${DEFAULT_SHARD_TOKENS})`,
    },
    workers: {
      type: "integer",
      min: 0,
      help: "tokenizer threads (default: the CPUs, at most 8; 0: the main thread)",
    },
    quiet: { type: "boolean", help: "no progress bar" },
  },
  notes: `Writes each shard atomically (temporary file, then rename) and a manifest
OUTPUT_DIR/{prefix}_manifest.json (tokenizer sha256, sources, token counts, sha256 per shard);
a re-run with the same settings keeps the shards it lists and continues after them. Ids must
be below 65,536. A summary per split goes to stdout, the progress bar to stderr. The task may
read and write under ./data only; for other folders run
  deno run --allow-read=src,PATHS --allow-write=DIR scripts/pretokenize.ts ...`,
});

/** The files a path stands for: a folder's .parquet files in name order, or the path. */
async function sourceFiles(path: string): Promise<SourceInfo[]> {
  const info = await Deno.stat(path);
  if (!info.isDirectory) return [{ path, bytes: info.size }];
  const names: string[] = [];
  for await (const e of Deno.readDir(path)) {
    if (e.isFile && e.name.endsWith(".parquet")) names.push(e.name);
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const dir = path.replace(/\/+$/, "");
  const out: SourceInfo[] = [];
  for (const n of names) {
    out.push({ path: `${dir}/${n}`, bytes: (await Deno.stat(`${dir}/${n}`)).size });
  }
  return out;
}

/** A split to tokenize, and how to estimate its progress. */
interface Split {
  name: string;
  source: StorySource;
  info: SourceInfo[];
  /** Stories in the split, when cheap to know (parquet metadata, or counted already). */
  stories?: number;
  /** Bytes of its text files (progress by text bytes when the story count is unknown). */
  textBytes?: number;
}

/** Checks that `path` (given to `--flag`) can be read: a usage error (exit 2) if not. */
async function mustExist(flag: string, path: string): Promise<void> {
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`--${flag} path "${path}" not found`);
    }
    if (e instanceof Deno.errors.NotCapable) {
      throw new UsageError(
        `Cannot read "${path}": the task may read under ./data only; run deno run ` +
          `--allow-read=src,${path} --allow-write=DIR scripts/pretokenize.ts ...`,
      );
    }
    throw e;
  }
}

async function localSplit(name: string, paths: string[]): Promise<Split> {
  for (const p of paths) await mustExist(name, p);
  const parquet = createParquetTextReader();
  const sources: StorySource[] = [];
  const info: SourceInfo[] = [];
  for (const p of paths) {
    sources.push(await openStorySource(p, parquet));
    info.push(...await sourceFiles(p));
  }
  const allParquet = info.every((f) => f.path.endsWith(".parquet"));
  const source = concatSources(sources);
  return {
    name,
    source,
    info,
    stories: allParquet ? await source.count() : undefined,
    textBytes: allParquet ? undefined : info.reduce((a, f) => a + f.bytes, 0),
  };
}

async function openSplits(): Promise<Split[]> {
  if (values.train.length === 0) {
    if (values.val.length > 0) throw new UsageError("--val needs --train");
    const files = await downloadTinyStories({ progress: !values.quiet });
    const parquet = createParquetTextReader();
    const split = async (name: string, paths: string[]): Promise<Split> => {
      const source = parquetFilesSource(name, paths, parquet);
      const info: SourceInfo[] = [];
      for (const p of paths) info.push({ path: p, bytes: (await Deno.stat(p)).size });
      return { name, source, info, stories: await source.count() };
    };
    return [await split("train", files.train), await split("val", files.validation)];
  }
  const train = await localSplit("train", values.train);
  if (values.val.length > 0) return [train, await localSplit("val", values.val)];
  const held = await holdOutLast(train.source);
  const n = await held.val.count();
  const note = { path: `last ${n} of ${held.total} training stories`, bytes: 0 };
  return [
    { ...train, source: held.train, stories: held.total - n, textBytes: undefined },
    { name: "val", source: held.val, info: [...train.info, note], stories: n },
  ];
}

function eosIdOf(json: string, path: string): number {
  // Parsed even with --eos_id: a broken tokenizer is reported here, naming its file.
  const tok = HfTokenizer.fromJSON(json);
  if (values.eos_id !== undefined) return values.eos_id;
  const id = tok.tokenToId("<|eos|>") ?? tok.tokenToId("<|endoftext|>");
  if (id === undefined) {
    throw new UsageError(
      `Tokenizer "${path}" has no <|eos|> or <|endoftext|> token: give --eos_id`,
    );
  }
  return id;
}

const enc = new TextEncoder();
let barDrawn = false;

function drawBar(split: Split, p: PretokenizeProgress, started: number, done = false): void {
  const secs = (performance.now() - started) / 1000;
  let fraction: number | undefined;
  if (done) fraction = 1;
  else if (split.stories) fraction = p.stories / split.stories;
  else if (split.textBytes) fraction = Math.min(0.999, p.bytes / split.textBytes);
  const width = 30;
  const filled = fraction === undefined ? 0 : Math.round(Math.min(1, fraction) * width);
  const bar = fraction === undefined
    ? ""
    : `|${"█".repeat(filled)}${" ".repeat(width - filled)}| ${(fraction * 100).toFixed(1)}% `;
  const line = `\r${split.name}: ${bar}${p.stories} stories, ${p.tokens} tokens, ` +
    `${p.shards} shards, ${(p.bytes / 1e6 / Math.max(secs, 1e-9)).toFixed(1)} MB/s `;
  Deno.stderr.writeSync(enc.encode(line));
  barDrawn = true;
}

function endBar(): void {
  if (barDrawn) Deno.stderr.writeSync(enc.encode("\n"));
  barDrawn = false;
}

await runMain(async () => {
  let json = shippedTokenizer;
  const tokenizerPath = values.tokenizer ?? "the shipped TinyStories tokenizer";
  if (values.tokenizer !== undefined) {
    try {
      json = await Deno.readTextFile(values.tokenizer);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "no such file"
        : e instanceof Deno.errors.NotCapable
        ? "the task may read under ./data only; run deno run " +
          `--allow-read=src,${values.tokenizer} --allow-write=DIR scripts/pretokenize.ts ...`
        : (e as Error).message;
      throw new UsageError(`Cannot read tokenizer "${values.tokenizer}": ${why}`);
    }
  }
  let eosId: number;
  try {
    eosId = eosIdOf(json, tokenizerPath);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new Error(`Tokenizer "${tokenizerPath}": ${(e as Error).message}`);
  }
  const splits = await openSplits();
  for (const split of splits) {
    const started = performance.now();
    let r;
    let last: PretokenizeProgress | undefined;
    try {
      r = await pretokenizeSplit({
        split: split.name,
        source: split.source,
        sourceInfo: split.info,
        tokenizerJson: json,
        eosId,
        outputDir: values.output_dir,
        prefix: values.prefix,
        shardTokens: values.shard_tokens,
        workers: values.workers,
        onProgress: values.quiet ? undefined : (p) => drawBar(split, last = p, started),
        onNote: (line) => {
          endBar();
          console.error(line);
        },
      });
      if (last && last.stories === r.stories) drawBar(split, last, started, true);
    } finally {
      endBar();
    }
    const secs = (performance.now() - started) / 1000;
    const mb = r.bytes / 1e6;
    console.log(
      `${split.name}: ${r.record.shards.length} shards (${r.written} written, ${r.kept} kept), ` +
        `${r.record.stories} stories, ${r.record.tokens} tokens; this run: ${r.stories} stories, ` +
        `${mb.toFixed(2)} MB of text in ${secs.toFixed(2)} s (${
          (mb / Math.max(secs, 1e-9)).toFixed(1)
        } MB/s)`,
    );
  }
  console.log(`${values.output_dir.replace(/\/+$/, "")}/${manifestFileName(values.prefix)}`);
}, {
  hint: (message) =>
    /NotCapable|Requires (read|write|net) access/.test(message)
      ? "the task may read and write under ./data only; for other paths run " +
        "deno run --allow-read=src,PATHS --allow-write=DIR scripts/pretokenize.ts ..."
      : undefined,
});
