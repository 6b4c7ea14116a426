/**
 * Star-graph datasets: a generated file tokenized into fixed-length rows, with the sizes the
 * reference's `update_config` derives from it (vocab size, block size, context length), the
 * reference's train/validation split, and batches.
 *
 * Files are parsed as bytes in chunks, never as one string: the default 8,000,000-sample
 * G(5,5) file is about 1 GB, more than a JavaScript string can hold. Its token table is
 * 8,000,000 × 69 int32 = 2.2 GB.
 *
 * Batches: training batches of `batchSize` rows walk a fresh permutation of the
 * training split each epoch and drop the last partial batch (the reference's
 * `DataLoader(shuffle=True, drop_last=True)`); epoch e's permutation is
 * `numpy.random.RandomState([seed, e]).permutation(n_train)`, so any step's batch is found
 * directly (resuming fast-forwards in O(n_train), not O(steps)). Validation batches take the
 * validation split in order (the reference's `shuffle=False, drop_last=True`).
 *
 * @module
 */

import { StarGraphTokenizer } from "../tokenizers/stargraph.ts";
import { numpyPermutation } from "./mt19937.ts";
import { trainTestSplitIndices } from "./split.ts";

/**
 * A tokenized star-graph file.
 *
 * @example
 * ```ts
 * import { parseStarGraph } from "./stargraph.ts";
 * const ds = parseStarGraph("1,2|1,3/1,2=1,2\n4,5|4,6/4,6=4,6\n", 10, "inline");
 * console.log(ds.rows, ds.blockSize, ds.contextLength, ds.vocabSize); // 2 12 8 16
 * ```
 */
export interface StarGraphDataset {
  /** (rows, blockSize) token ids, one line plus EOS per row, in file order. */
  tokens: Int32Array;
  /** Lines of the file. */
  rows: number;
  /** Tokens of a full line plus EOS: the reference's `block_size`. */
  blockSize: number;
  /**
   * The reference's `context_length`: tokens of the prefix through `=`, plus EOS, minus 2 —
   * the position of `=`, where pairs start.
   */
  contextLength: number;
  /** max_nodes + 6: the reference's `vocab_size`. */
  vocabSize: number;
  /** max_nodes + 4. */
  eosTokenId: number;
  /** Node ids are 0..maxNodes−1. */
  maxNodes: number;
  tokenizer: StarGraphTokenizer;
  /** The file (or name) the rows came from, as errors name it. */
  source: string;
}

/**
 * The model sizes the reference's `StarGraphDataModule.update_config` writes into
 * `config.model`.
 *
 * @example
 * ```ts
 * import { parseStarGraph, starGraphModelSizes } from "./stargraph.ts";
 * const ds = parseStarGraph("1,2|1,3/1,2=1,2\n", 10, "inline");
 * console.log(starGraphModelSizes(ds)); // { vocab_size: 16, context_length: 8, block_size: 12 }
 * ```
 */
export function starGraphModelSizes(
  ds: StarGraphDataset,
): { vocab_size: number; context_length: number; block_size: number } {
  return { vocab_size: ds.vocabSize, context_length: ds.contextLength, block_size: ds.blockSize };
}

const NEWLINE = 0x0a;
/** Bytes read from a file at a time. */
const CHUNK = 8 << 20;

/** Receives line `lineNo` (1-based) as `buf[start, end)`, without its newline. */
type LineFn = (buf: Uint8Array, start: number, end: number, lineNo: number) => void;

/**
 * Calls `onLine` for each line of `view` that ends in a newline; returns the offset after
 * the last newline.
 */
function completeLines(view: Uint8Array, firstLine: number, onLine: LineFn): {
  consumed: number;
  lines: number;
} {
  let pos = 0;
  let lines = 0;
  for (;;) {
    const nl = view.indexOf(NEWLINE, pos);
    if (nl < 0) break;
    onLine(view, pos, nl, firstLine + lines++);
    pos = nl + 1;
  }
  return { consumed: pos, lines };
}

/** Lines of in-memory bytes as Python's `readlines` splits them; returns the line count. */
function forEachLine(bytes: Uint8Array, onLine: LineFn): number {
  const { consumed, lines } = completeLines(bytes, 1, onLine);
  if (consumed < bytes.length) {
    onLine(bytes, consumed, bytes.length, lines + 1);
    return lines + 1;
  }
  return lines;
}

/** Lines of a file, read in chunks; returns the line count. */
async function forEachFileLine(path: string, chunk: number, onLine: LineFn): Promise<number> {
  const file = await Deno.open(path, { read: true });
  try {
    let buf = new Uint8Array(chunk);
    let have = 0;
    let lines = 0;
    for (;;) {
      if (have === buf.length) {
        // A line longer than the buffer: grow it.
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const n = await file.read(buf.subarray(have));
      if (n === null) break;
      have += n;
      const done = completeLines(buf.subarray(0, have), lines + 1, onLine);
      lines += done.lines;
      buf.copyWithin(0, done.consumed, have);
      have -= done.consumed;
    }
    if (have > 0) onLine(buf, 0, have, ++lines);
    return lines;
  } finally {
    file.close();
  }
}

/** Python's `str.strip()` whitespace among ASCII bytes. */
function isSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d) || (b >= 0x1c && b <= 0x1f);
}

/**
 * The two passes over a star-graph source: `measure` sees every line and reads line 1 (row
 * length, position of "="); after `allocate(rows)`, `fill` tokenizes every line into its row.
 */
class StarGraphParser {
  readonly tok: StarGraphTokenizer;
  readonly file: string;
  T = 0;
  eq = -1;
  tokens = new Int32Array(0);
  rows = 0;

  constructor(readonly source: string, readonly maxNodes: number) {
    this.tok = new StarGraphTokenizer(maxNodes);
    this.file = `Star-graph data file "${source}"`;
  }

  /** The line without Python's `strip()` whitespace; throws when nothing is left. */
  #trim(buf: Uint8Array, start: number, end: number, lineNo: number): [number, number] {
    while (start < end && isSpace(buf[start])) start++;
    while (end > start && isSpace(buf[end - 1])) end--;
    if (start === end) throw new Error(`${this.file} line ${lineNo} is empty`);
    return [start, end];
  }

  /** Pass 1: line 1 sets the row length and the position of "=". */
  measure: LineFn = (buf, s, e, lineNo) => {
    if (lineNo !== 1) return;
    const [start, end] = this.#trim(buf, s, e, lineNo);
    const first = new Int32Array(end - start);
    const n = this.tok.encodeBytes(buf, start, end, first, 0, first.length, `${this.file} line 1`);
    this.eq = first.subarray(0, n).indexOf(this.tok.equals);
    if (this.eq < 0) {
      throw new Error(`${this.file} line 1 has no "=" between the graph and the path`);
    }
    this.T = n + 1;
  };

  /** Between the passes: the table for `rows` lines. */
  allocate(rows: number): void {
    if (rows === 0) throw new Error(`${this.file} is empty`);
    this.rows = rows;
    this.tokens = new Int32Array(rows * this.T);
  }

  /** Pass 2: tokenize every line into its row, EOS last. */
  fill: LineFn = (buf, s, e, lineNo) => {
    if (lineNo > this.rows) return;
    const [start, end] = this.#trim(buf, s, e, lineNo);
    const { T, eq, tok, tokens } = this;
    const where = () => `${this.file} line ${lineNo}`;
    const row = (lineNo - 1) * T;
    const n = tok.encodeBytes(buf, start, end, tokens, row, row + T - 1, where);
    if (n + 1 !== T) {
      throw new Error(`${where()} has ${n + 1} tokens with EOS, but line 1 has ${T}`);
    }
    if (tokens[row + eq] !== tok.equals) {
      throw new Error(`${where()} has no "=" at token ${eq + 1}, where line 1 has it`);
    }
    tokens[row + T - 1] = tok.eosTokenId;
  };

  /** The dataset, once pass 2 has seen `seen` lines. */
  finish(seen: number): StarGraphDataset {
    if (seen !== this.rows) {
      throw new Error(`${this.file} changed while it was read (${this.rows} lines, then ${seen})`);
    }
    return {
      tokens: this.tokens,
      rows: this.rows,
      blockSize: this.T,
      // The prefix through "=" is eq + 1 tokens; plus EOS, minus 2, is eq.
      contextLength: this.eq,
      vocabSize: this.tok.vocabSize,
      eosTokenId: this.tok.eosTokenId,
      maxNodes: this.maxNodes,
      tokenizer: this.tok,
      source: this.source,
    };
  }
}

/**
 * Tokenizes star-graph text or bytes (a whole file's contents), as the reference's
 * `StarGraphDataModule` does: each line stripped, tokenized, EOS appended.
 *
 * @param data the file's contents.
 * @param maxNodes the reference's `stargraph_max_nodes`.
 * @param source names the data in errors.
 * @throws One line naming `source` and the line number for an empty input, an empty line,
 *   an unknown symbol, a node id ≥ max_nodes, a line 1 without `=`, or a line whose token
 *   count or `=` position differs from line 1's.
 *
 * @example
 * ```ts
 * import { parseStarGraph } from "./stargraph.ts";
 * try {
 *   parseStarGraph("1,2/1,2=1,2\n1,2/1,2=1,2,3\n", 10, "g.txt");
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // Star-graph data file "g.txt" line 2 has 10 tokens with EOS, but line 1 has 9
 * }
 * ```
 */
export function parseStarGraph(
  data: string | Uint8Array,
  maxNodes: number,
  source: string,
): StarGraphDataset {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const p = new StarGraphParser(source, maxNodes);
  p.allocate(forEachLine(bytes, p.measure));
  return p.finish(forEachLine(bytes, p.fill));
}

/**
 * Reads and tokenizes a star-graph file in chunks (see {@linkcode parseStarGraph}): two
 * passes, the first counting lines, so memory holds only the token table and one chunk.
 * Requires read access to `path`.
 *
 * @param path the file.
 * @param maxNodes the reference's `stargraph_max_nodes`.
 * @param options `chunkBytes`: bytes read at a time (default 8 MiB; grows for longer lines).
 *
 * @throws One line naming the file: not found, unreadable, empty, or a malformed line with
 *   its line number.
 *
 * @example
 * ```ts ignore
 * import { loadStarGraph } from "./stargraph.ts";
 * const ds = await loadStarGraph("data/stargraph/graph_5_5_sample_8000000.txt", 50);
 * console.log(ds.rows, ds.blockSize, ds.contextLength); // 8000000 69 61
 * ```
 */
export async function loadStarGraph(
  path: string,
  maxNodes: number,
  options: { chunkBytes?: number } = {},
): Promise<StarGraphDataset> {
  const chunk = options.chunkBytes ?? CHUNK;
  if (!Number.isSafeInteger(chunk) || chunk < 1) {
    throw new Error(`chunkBytes must be a positive integer, got ${chunk}`);
  }
  try {
    const p = new StarGraphParser(path, maxNodes);
    p.allocate(await forEachFileLine(path, chunk, p.measure));
    return p.finish(await forEachFileLine(path, chunk, p.fill));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`Star-graph data file "${path}" not found`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new Error(`Star-graph data file "${path}" is a directory`);
    }
    if (e instanceof Error && e.message.startsWith(`Star-graph data file "${path}"`)) throw e;
    throw new Error(`Cannot read star-graph data file "${path}": ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * Positions in the training split of optimizer step `step`'s rows (0-based step): the
 * `step mod batchesPerEpoch`-th slice of `batchSize` entries of epoch e's permutation,
 * `numpy.random.RandomState([seed, e]).permutation(nTrain)`, where e = ⌊step /
 * batchesPerEpoch⌋ and batchesPerEpoch = ⌊nTrain / batchSize⌋ (the last partial batch of
 * an epoch is dropped). Any step is computed directly: this is the fast-forward on resume.
 *
 * @param nTrain rows in the training split.
 * @param batchSize rows per optimizer step (`effective_batch_size`).
 * @param seed the run's seed, an integer in [0, 2³²).
 * @param step the optimizer step.
 * @returns the positions (a view of a cached permutation: copy before changing it) and the
 *   epoch.
 * @throws When the split holds fewer rows than one batch.
 *
 * @example
 * ```ts
 * import { trainBatchRows } from "./stargraph.ts";
 * const { rows, epoch } = trainBatchRows(10, 4, 1337, 2); // 2 batches per epoch
 * console.log(rows.length, epoch); // 4 1
 * ```
 */
export function trainBatchRows(
  nTrain: number,
  batchSize: number,
  seed: number,
  step: number,
): { rows: Int32Array; epoch: number } {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new Error(`Batch size must be a positive integer, got ${batchSize}`);
  }
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new Error(`Step must be a non-negative integer, got ${step}`);
  }
  const perEpoch = Math.floor(nTrain / batchSize);
  if (perEpoch === 0) {
    throw new Error(`The training split has ${nTrain} rows, fewer than one batch of ${batchSize}`);
  }
  const epoch = Math.floor(step / perEpoch);
  const start = (step % perEpoch) * batchSize;
  return { rows: epochPermutation(nTrain, seed, epoch).subarray(start, start + batchSize), epoch };
}

let lastPermutation: { key: string; perm: Int32Array } | undefined;

/** Epoch `epoch`'s order of the training split (the last one is cached). */
function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const key = `${n}:${seed}:${epoch}`;
  if (lastPermutation?.key !== key) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`Data seed must be an integer in [0, 2^32), got ${seed}`);
    }
    if (epoch > 0xffffffff) throw new Error(`Epoch ${epoch} is beyond 2^32 - 1`);
    lastPermutation = { key, perm: numpyPermutation(n, [seed, epoch]) };
  }
  return lastPermutation.perm;
}

/** Options of {@linkcode StarGraphBatches}. */
export interface StarGraphBatchOptions {
  /** Rows per batch (`effective_batch_size`). */
  batchSize: number;
  /** The run's seed (default 1337): the training order of every epoch comes from it. */
  seed?: number;
  /** Validation fraction of the split (default 0.1, the reference's). */
  testSize?: number;
  /** Seed of the split (default 42, the reference's). */
  splitSeed?: number;
  /**
   * Drop the last partial validation batch (default true, as the reference's validation
   * `DataLoader(drop_last=True)`).
   */
  dropLastVal?: boolean;
}

/** One batch: (rows, blockSize) tokens. */
export interface StarGraphBatch {
  /** (rows, blockSize) token ids. */
  tokens: Int32Array;
  /** Rows in this batch. */
  rows: number;
  /** Training: the optimizer step; validation: the batch index. */
  index: number;
  /** Training: the epoch of the step; validation: 0. */
  epoch: number;
}

/**
 * Training and validation batches of a star-graph dataset on the reference's split.
 *
 * @example
 * ```ts
 * import { parseStarGraph, StarGraphBatches } from "./stargraph.ts";
 * const lines = Array.from({ length: 20 }, (_, i) => `${i},${i + 1}/${i},${i + 1}=${i},${i + 1}`);
 * const ds = parseStarGraph(lines.join("\n") + "\n", 30, "inline");
 * const batches = new StarGraphBatches(ds, { batchSize: 4, seed: 1337 });
 * console.log(batches.trainRows, batches.valRows, batches.batchesPerEpoch); // 18 2 4
 * for (const b of batches.train(5)) { // resume at step 5: epoch 1, second batch
 *   console.log(b.index, b.epoch, b.tokens.length); // 5 1 32
 *   break;
 * }
 * ```
 */
export class StarGraphBatches {
  /** Dataset row indices of the training split, in split order. */
  readonly trainIndices: Int32Array;
  /** Dataset row indices of the validation split, in split order. */
  readonly valIndices: Int32Array;
  readonly batchSize: number;
  readonly seed: number;
  readonly #dropLastVal: boolean;

  /** Splits `dataset` as the reference does; throws when a training batch does not fit. */
  constructor(readonly dataset: StarGraphDataset, options: StarGraphBatchOptions) {
    const { train, test } = trainTestSplitIndices(dataset.rows, {
      testSize: options.testSize,
      seed: options.splitSeed,
    });
    this.trainIndices = train;
    this.valIndices = test;
    this.batchSize = options.batchSize;
    this.seed = options.seed ?? 1337;
    this.#dropLastVal = options.dropLastVal ?? true;
    trainBatchRows(train.length, this.batchSize, this.seed, 0); // checks sizes and seed
  }

  /** Rows of the training split. */
  get trainRows(): number {
    return this.trainIndices.length;
  }

  /** Rows of the validation split. */
  get valRows(): number {
    return this.valIndices.length;
  }

  /** Optimizer steps per epoch (the last partial batch is dropped). */
  get batchesPerEpoch(): number {
    return Math.floor(this.trainRows / this.batchSize);
  }

  /** Validation batches in one pass. */
  get valBatchCount(): number {
    const full = Math.floor(this.valRows / this.batchSize);
    return this.#dropLastVal || this.valRows % this.batchSize === 0 ? full : full + 1;
  }

  /**
   * The batch of optimizer step `step` (0-based), computed directly from the step.
   *
   * @param out optional (batchSize, blockSize) table to fill instead of a new one.
   */
  trainBatch(step: number, out?: Int32Array): StarGraphBatch {
    const { rows, epoch } = trainBatchRows(this.trainRows, this.batchSize, this.seed, step);
    return {
      tokens: this.#gather(rows, this.trainIndices, out),
      rows: rows.length,
      index: step,
      epoch,
    };
  }

  /**
   * Training batches from step `fromStep` on (default 0), without end: epochs follow each
   * other with fresh orders. Starting at a later step is the resume fast-forward.
   */
  *train(fromStep = 0): Generator<StarGraphBatch> {
    for (let step = fromStep;; step++) yield this.trainBatch(step);
  }

  /** Validation batch `index` (rows in split order). */
  valBatch(index: number, out?: Int32Array): StarGraphBatch {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.valBatchCount) {
      throw new Error(`Validation batch ${index} is out of range 0..${this.valBatchCount - 1}`);
    }
    const start = index * this.batchSize;
    const end = Math.min(start + this.batchSize, this.valRows);
    const positions = new Int32Array(end - start).map((_, i) => start + i);
    return {
      tokens: this.#gather(positions, this.valIndices, out),
      rows: end - start,
      index,
      epoch: 0,
    };
  }

  /**
   * Validation batches in order: all of them, or the first `limit` (the reference's
   * `val_batches`; negative means all).
   */
  *val(limit = -1): Generator<StarGraphBatch> {
    const count = limit < 0 ? this.valBatchCount : Math.min(limit, this.valBatchCount);
    for (let i = 0; i < count; i++) yield this.valBatch(i);
  }

  /** Rows `split[positions[i]]` of the dataset as one table. */
  #gather(positions: Int32Array, split: Int32Array, out?: Int32Array): Int32Array {
    const T = this.dataset.blockSize;
    const size = positions.length * T;
    if (out !== undefined && out.length < size) {
      throw new Error(`Batch buffer holds ${out.length} tokens, ${size} needed`);
    }
    const table = out ?? new Int32Array(size);
    const src = this.dataset.tokens;
    for (let i = 0; i < positions.length; i++) {
      const r = split[positions[i]];
      table.set(src.subarray(r * T, (r + 1) * T), i * T);
    }
    return table;
  }
}
