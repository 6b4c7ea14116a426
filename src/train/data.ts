/**
 * Training data for a config, with the sizes the model derives from it (the reference's
 * `update_config`):
 *
 * - `stargraph`: the star-graph file (generated when missing, if its name says how)
 *   tokenized into rows and split as the reference does; vocabulary, block size and context
 *   length come from the file.
 * - `pretokenized`: `.npy` token files (`deno task pretokenize` writes them) under
 *   `data.pretokenized_data_path`, weighted as the reference's `WeightedConcatDataset`, cut
 *   into `model.block_size` rows read from disk on demand; vocabulary `model.vocab_size`, EOS
 *   `data.tokenizer_eos_id` (as the reference's `update_config`, which changes nothing).
 * - `tinystories`: stories from the Hugging Face dataset `cyrilzhang/TinyStories2-ascii`
 *   (downloaded into `data/tinystories/` on first use) or from `data.tinystories_path`
 *   (a .parquet file, a folder of them, or a TinyStoriesV2 .txt), tokenized with the
 *   reference's tokenizer and packed into `model.block_size` rows as its
 *   `ConstantLengthDataset` does (FIM rows for the GPT baseline in `fim` mode). The
 *   vocabulary is the tokenizer's: 1000, or 1001 with `<|fim|>` (id 1000) in FIM mode; EOS
 *   is id 1. Memory stays bounded: one buffer of stories at a time.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import { DATA_ROOTS, resolveContained } from "../io/safe_paths.ts";
import { generateStarGraphFile, parseStarGraphFileName } from "../data/stargraph_generate.ts";
import { loadStarGraph } from "../data/stargraph.ts";
import { trainTestSplitIndices } from "../data/split.ts";
import { downloadTinyStories } from "../data/hub_download.ts";
import type { PackingOptions } from "../data/packing.ts";
import {
  holdOutLast,
  openStorySource,
  parquetFilesSource,
  type ParquetTextReader,
  type StorySource,
} from "../data/tinystories_sources.ts";
import { openPretokenizedData, pretokenizedValidationBatches } from "../data/pretokenized.ts";
import { HfTokenizer } from "../tokenizers/hf_bpe.ts";
import { tinyStoriesTokenizer } from "../tokenizers/tinystories.ts";
import { packedTrainRows, packedValRows, pretokenizedTrainRows } from "./rows.ts";
import { tableData, type TrainData } from "./run.ts";

/** Options of {@linkcode loadTrainData}. */
export interface LoadTrainDataOptions {
  /** Generate a missing star-graph file named `graph_{paths}_{length}_sample_{n}.txt`. */
  generate?: boolean;
  /** Progress messages (default: stderr). */
  log?: (line: string) => void;
  /**
   * Reads the `text` column of parquet files (TinyStories). It needs an npm package, so the
   * task passes it in (`scripts/_parquet.ts`); without it only .txt sources work.
   */
  parquet?: ParquetTextReader;
  /** Hub endpoint for the TinyStories download (default: `HF_ENDPOINT`, else huggingface.co). */
  hubEndpoint?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Loads (and if needed generates) the data a config names. */
export async function loadTrainData(
  config: Config,
  options: LoadTrainDataOptions = {},
): Promise<TrainData> {
  const d = config.data;
  if (d.dataset === "tinystories") return await loadTinyStories(config, options);
  if (d.dataset === "pretokenized") return await loadPretokenized(config);
  return await loadStarGraphData(config, options);
}

async function loadStarGraphData(
  config: Config,
  options: LoadTrainDataOptions,
): Promise<TrainData> {
  const log = options.log ?? ((l: string) => console.error(l));
  const d = config.data;
  const path = d.stargraph_data_path;
  if (!path) throw new Error("data.stargraph_data_path is empty");
  await resolveContained(path, { roots: DATA_ROOTS, key: "data.stargraph_data_path" });
  if (!(await exists(path))) {
    const spec = parseStarGraphFileName(path);
    if (!options.generate || spec === null) {
      throw new Error(
        `Star-graph data file "${path}" not found; make it with deno task prepare:stargraph`,
      );
    }
    log(
      `Generating ${path} (${spec.numSamples} samples, ${spec.numPaths} paths of length ` +
        `${spec.pathLength}, ${d.stargraph_max_nodes} nodes)`,
    );
    await generateStarGraphFile({ ...spec, maxNodes: d.stargraph_max_nodes, path });
  }
  const ds = await loadStarGraph(path, d.stargraph_max_nodes);
  const T = ds.blockSize;
  const { train, test } = trainTestSplitIndices(ds.rows);
  const take = (idx: Int32Array) => {
    const out = new Int32Array(idx.length * T);
    idx.forEach((r, i) => out.set(ds.tokens.subarray(r * T, (r + 1) * T), i * T));
    return out;
  };
  const prefixLen = ds.contextLength + 1; // tokens through "="; the path follows, then EOS
  return tableData({
    seqLen: T,
    vocabSize: ds.vocabSize,
    eosTokenId: ds.eosTokenId,
    contextLength: ds.contextLength,
    train: take(train),
    val: take(test),
    pathTask: { prefixLen, pathLen: T - prefixLen - 1 },
    decode: (ids) => ds.tokenizer.decode(ids),
  }, config.seed);
}

/** The tokenizer.json that `data.tokenizer_name_or_path` names. */
async function loadTokenizerFile(path: string): Promise<HfTokenizer> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read data.tokenizer_name_or_path "${path}": ${(e as Error).message}`);
  }
  return HfTokenizer.fromJSON(text, path);
}

/** The reference's TinyStories tokenizer, or `data.tokenizer_name_or_path` when set. */
async function tinyStoriesTokenizerFor(config: Config, fim: boolean): Promise<HfTokenizer> {
  const path = config.data.tokenizer_name_or_path;
  if (!path) return tinyStoriesTokenizer({ fim });
  const tok = await loadTokenizerFile(path);
  if (fim && tok.tokenToId("<|fim|>") === undefined) tok.addSpecialTokens(["<|fim|>"]);
  return tok;
}

/** The TinyStories train and validation stories a config names (downloading if needed). */
async function tinyStoriesSources(
  config: Config,
  options: LoadTrainDataOptions,
): Promise<{ train: StorySource; val: StorySource }> {
  const d = config.data;
  if (d.tinystories_path) {
    const source = await openStorySource(d.tinystories_path, options.parquet);
    if (d.tinystories_val_path) {
      return { train: source, val: await openStorySource(d.tinystories_val_path, options.parquet) };
    }
    const { train, val } = await holdOutLast(source);
    return { train, val };
  }
  if (d.tinystories_val_path) {
    throw new Error("data.tinystories_val_path is set but data.tinystories_path is empty");
  }
  const files = await downloadTinyStories({ endpoint: options.hubEndpoint });
  if (!options.parquet) {
    throw new Error("Cannot read the TinyStories parquet files: no parquet reader was given");
  }
  return {
    train: parquetFilesSource("TinyStories train", files.train, options.parquet),
    val: parquetFilesSource("TinyStories validation", files.validation, options.parquet),
  };
}

async function loadTinyStories(
  config: Config,
  options: LoadTrainDataOptions,
): Promise<TrainData> {
  const fim = !config.use_bst && config.model.gpt_mode === "fim";
  const tok = await tinyStoriesTokenizerFor(config, fim);
  const eos = tok.tokenToId("<|eos|>");
  if (eos === undefined) throw new Error("The TinyStories tokenizer has no <|eos|> token");
  const fimTokenId = fim ? tok.tokenToId("<|fim|>") : undefined;
  const T = config.model.block_size;
  if (!(Number.isInteger(T) && T >= 2)) {
    throw new Error(`model.block_size must be at least 2 for TinyStories, got ${T}`);
  }
  const { train, val } = await tinyStoriesSources(config, options);
  const packing: PackingOptions = {
    blockSize: T,
    encode: (text) => tok.encode(text),
    seed: config.seed,
    eosTokenId: eos,
    fimTokenId,
  };
  return {
    seqLen: T,
    vocabSize: tok.vocabSize,
    eosTokenId: eos,
    contextLength: config.model.context_length,
    fimTokenId,
    train: packedTrainRows(train, packing),
    val: packedValRows(val, packing),
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }).replaceAll("##", ""),
    // The reference's inference: validation stories in order, each encoded with truncation
    // to the block size and no EOS; the record's original is the story's text.
    async *samples() {
      for await (const story of val.stories()) {
        yield { tokens: new Int32Array(tok.encode(story).slice(0, T)), original: story };
      }
    },
  };
}

async function loadPretokenized(config: Config): Promise<TrainData> {
  const d = config.data;
  const T = config.model.block_size;
  const tok = d.tokenizer_name_or_path
    ? await loadTokenizerFile(d.tokenizer_name_or_path)
    : undefined;
  const { train, val } = await openPretokenizedData({
    dataPath: d.pretokenized_data_path,
    train: d.pretokenized_train_data,
    val: d.pretokenized_val_data,
    blockSize: T,
  });
  const options = { batchSize: d.effective_batch_size, seed: config.seed };
  const decode = tok
    ? (ids: ArrayLike<number>) => tok.decode(ids, { skipSpecialTokens: true })
    : undefined;
  return {
    seqLen: T,
    vocabSize: config.model.vocab_size,
    eosTokenId: d.tokenizer_eos_id,
    contextLength: config.model.context_length,
    train: pretokenizedTrainRows(train, options),
    val: { batches: (batchSize) => pretokenizedValidationBatches(val, batchSize) },
    decode,
    async *samples() {
      for await (const rows of pretokenizedValidationBatches(val, 1)) {
        yield { tokens: rows, original: decode ? decode(rows) : rows.join(" ") };
      }
    },
  };
}
