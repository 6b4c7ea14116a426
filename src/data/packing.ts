/**
 * Packing stories into fixed-length training rows, as the reference's TinyStories data module
 * does with TRL's `ConstantLengthDataset` (and its own `ConstantLengthDatasetFIM` for the
 * fill-in-the-middle GPT baseline).
 *
 * What the reference executes (`data/tinystories.py` of microsoft/BST, with TRL's
 * `ConstantLengthDataset.__iter__` of the same era), one buffer at a time:
 *
 * 1. Fill a buffer with stories while the characters already in it are fewer than
 *    `max_buffer_size = seq_length × chars_per_token × num_of_sequences = block_size × 3.6 ×
 *    1024` (the check comes before each story is added, so the buffer ends with the story that
 *    reaches the limit; characters are Python's, i.e. code points). In FIM mode each story also
 *    counts one character for its `<|fim|>` token.
 * 2. Shuffle the buffer (`random.shuffle`).
 * 3. Tokenize each story (no special tokens: the reference's tokenizer has no post-processor).
 * 4. FIM mode only: per story (in the shuffled order) draw a goal length
 *    g = `random.randint(25, min(50, len − 2))` and rebuild the story as
 *    `story[−g:] + [<|fim|>] + story[:−g]`. The reference's data module never passes
 *    `data.goal_range`, so (25, 50) is what runs. A story with fewer than 27 tokens makes
 *    `randint` raise in the reference; here it is skipped and counted
 *    ({@linkcode PackedRows.fimSkipped}).
 * 5. Append the concat token, EOS (id 1), after every story (after the whole FIM row in FIM
 *    mode: row = `story[−g:] + [fim] + story[:−g] + [EOS]`), concatenate the buffer's stories,
 *    and cut the tokens into `block_size` rows, dropping the buffer's incomplete tail.
 * 6. Shuffle the rows (`random.shuffle` again) and yield them; then the next buffer.
 *
 * Randomness: the reference draws from Python's global `random` state seeded by
 * `seed_everything(1337)`; here every buffer has its own CPython-compatible Mersenne Twister
 * ({@linkcode PyRandom}) seeded from (seed, epoch, buffer index). Rows are therefore not
 * bit-identical to Python's, but are fully determined by the seed, differ each epoch, and a
 * run can resume from a small JSON position ({@linkcode PackPosition}) and continue with
 * exactly the rows it would have produced: re-reading the current buffer's stories from its
 * first story index and re-tokenizing them is all it takes.
 *
 * Memory: one buffer of text and its tokens (block_size 256: about 0.9 M characters and
 * 0.25 M tokens), whatever the dataset's size.
 *
 * @module
 */

import { PyRandom } from "./mt19937.ts";
import type { StorySource } from "./tinystories_sources.ts";

/** Turns a text into token ids (no special tokens added). */
export type Encode = (text: string) => number[];

/** The reference's `<|eos|>` id in the TinyStories tokenizer, used as the concat token. */
export const TINYSTORIES_EOS_ID = 1;
/** TRL's `chars_per_token` default. */
export const CHARS_PER_TOKEN = 3.6;
/** TRL's `num_of_sequences` default. */
export const NUM_OF_SEQUENCES = 1024;
/** The FIM goal-length range the reference's data module executes. */
export const FIM_GOAL_RANGE: readonly [number, number] = [25, 50];
/** The seed validation rows are packed with, whatever the run's seed. */
export const VALIDATION_SEED = 0;

/** How stories become rows. */
export interface PackingOptions {
  /** Row length: the model's `block_size`. */
  blockSize: number;
  /** The tokenizer. */
  encode: Encode;
  /** Seed of the run (training) or {@linkcode VALIDATION_SEED}. */
  seed: number;
  /** Concat token appended after every story (default {@linkcode TINYSTORIES_EOS_ID}). */
  eosTokenId?: number;
  /** Set for the FIM baseline: the `<|fim|>` token id; rows are built by {@linkcode fimRow}. */
  fimTokenId?: number;
  /** FIM goal-length range (default {@linkcode FIM_GOAL_RANGE}). */
  goalRange?: readonly [number, number];
  /** Shuffle buffers and rows (default true, as the reference). */
  shuffle?: boolean;
  /** Buffer size in characters (default `blockSize × 3.6 × 1024`). */
  bufferChars?: number;
}

/**
 * Where packing stands: the next row is row `row` of buffer `buffer` of epoch `epoch`, whose
 * first story is story `storyStart` of the source. Plain JSON.
 */
export interface PackPosition {
  epoch: number;
  buffer: number;
  storyStart: number;
  row: number;
  /** Stories skipped as too short for FIM in the buffers before this one, this epoch. */
  fimSkipped: number;
}

/**
 * The position of the first row of an epoch.
 *
 * @example
 * ```ts
 * import { startOfEpoch } from "./packing.ts";
 * console.log(startOfEpoch(2)); // { epoch: 2, buffer: 0, storyStart: 0, row: 0, fimSkipped: 0 }
 * ```
 */
export function startOfEpoch(epoch: number): PackPosition {
  return { epoch, buffer: 0, storyStart: 0, row: 0, fimSkipped: 0 };
}

/**
 * Python's `len(s)`: code points (a surrogate pair counts once).
 *
 * @example
 * ```ts
 * import { codePointLength } from "./packing.ts";
 * console.log(codePointLength("a😀b")); // 3
 * ```
 */
export function codePointLength(s: string): number {
  if (!HIGH_SURROGATE.test(s)) return s.length; // the common case, a fast regex scan
  return s.length - (s.match(SURROGATE_PAIR)?.length ?? 0);
}

const HIGH_SURROGATE = /[\uD800-\uDBFF]/;
const SURROGATE_PAIR = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g;

/**
 * Python's `random.randint(a, b)`: `a + _randbelow(b − a + 1)`.
 *
 * @example
 * ```ts
 * import { randint } from "./packing.ts";
 * import { PyRandom } from "./mt19937.ts";
 * const r = randint(new PyRandom(0), 25, 50);
 * console.log(r >= 25 && r <= 50); // true
 * ```
 */
export function randint(rng: PyRandom, a: number, b: number): number {
  if (!(Number.isInteger(a) && Number.isInteger(b) && b >= a)) {
    throw new Error(`randint(${a}, ${b}): empty range`);
  }
  return a + rng.randbelow(b - a + 1);
}

/**
 * The FIM goal length for a story of `length` tokens: uniform in
 * [lo, min(hi, length − 2)], or `undefined` when that range is empty (the reference raises).
 *
 * @example
 * ```ts
 * import { drawGoalLength } from "./packing.ts";
 * import { PyRandom } from "./mt19937.ts";
 * console.log(drawGoalLength(new PyRandom(1), 20)); // undefined
 * console.log(drawGoalLength(new PyRandom(1), 27)); // 25
 * ```
 */
export function drawGoalLength(
  rng: PyRandom,
  length: number,
  range: readonly [number, number] = FIM_GOAL_RANGE,
): number | undefined {
  const hi = Math.min(range[1], length - 2);
  if (hi < range[0]) return undefined;
  return randint(rng, range[0], hi);
}

/**
 * The reference's `apply_fim` plus the concat token: `story[−g:] + [fim] + story[:−g] + [eos]`.
 *
 * @param ids The story's tokens.
 * @param goalLength g, 1 ≤ g < ids.length.
 * @param fimTokenId The `<|fim|>` id.
 * @param eosTokenId The concat token.
 * @returns A row of ids.length + 2 tokens.
 *
 * @example
 * ```ts
 * import { fimRow } from "./packing.ts";
 * console.log(fimRow([10, 11, 12, 13, 14], 2, 99, 1)); // [ 13, 14, 99, 10, 11, 12, 1 ]
 * ```
 */
export function fimRow(
  ids: readonly number[],
  goalLength: number,
  fimTokenId: number,
  eosTokenId: number,
): number[] {
  if (!(Number.isInteger(goalLength) && goalLength >= 1 && goalLength < ids.length)) {
    throw new Error(`FIM goal length ${goalLength} is outside [1, ${ids.length - 1}]`);
  }
  const cut = ids.length - goalLength;
  return [...ids.slice(cut), fimTokenId, ...ids.slice(0, cut), eosTokenId];
}

/** The generator of one buffer: seeded from (seed, epoch, buffer) as one big integer. */
function bufferRng(seed: number, epoch: number, buffer: number): PyRandom {
  const word = (x: number) => BigInt.asUintN(32, BigInt(x));
  const key = (BigInt(buffer) << 64n) | (BigInt(epoch) << 32n) | word(seed);
  return new PyRandom(key);
}

/** One buffer's rows. */
interface PackedBuffer {
  /** (rows, blockSize) tokens, rows in their final (shuffled) order. */
  tokens: Int32Array;
  rows: number;
  /** Stories taken from the source. */
  stories: number;
  fimSkipped: number;
}

function checkOptions(o: PackingOptions): void {
  if (!(Number.isInteger(o.blockSize) && o.blockSize >= 1)) {
    throw new Error(`block_size must be a positive integer, got ${o.blockSize}`);
  }
  if (!Number.isSafeInteger(o.seed)) throw new Error(`Seed must be an integer, got ${o.seed}`);
  const g = o.goalRange ?? FIM_GOAL_RANGE;
  if (!(Number.isInteger(g[0]) && Number.isInteger(g[1]) && g[0] >= 1 && g[1] >= g[0])) {
    throw new Error(`FIM goal range must be two integers 1 ≤ lo ≤ hi, got [${g}]`);
  }
}

/**
 * Packs one buffer: the stories from `iterator` (already positioned at the buffer's first
 * story), steps 1–6 of the module description.
 */
async function packBuffer(
  iterator: AsyncIterator<string>,
  o: PackingOptions,
  rng: PyRandom,
): Promise<PackedBuffer | undefined> {
  const fim = o.fimTokenId !== undefined;
  const limit = o.bufferChars ?? o.blockSize * CHARS_PER_TOKEN * NUM_OF_SEQUENCES;
  const buffer: string[] = [];
  let chars = 0;
  while (chars < limit) {
    const next = await iterator.next();
    if (next.done) break;
    buffer.push(next.value);
    chars += codePointLength(next.value) + (fim ? 1 : 0);
  }
  if (buffer.length === 0) return undefined;
  const shuffle = o.shuffle ?? true;
  if (shuffle) rng.shuffle(buffer);
  const eos = o.eosTokenId ?? TINYSTORIES_EOS_ID;
  const pieces: number[][] = [];
  let total = 0;
  let fimSkipped = 0;
  for (const text of buffer) {
    const ids = o.encode(text);
    let piece: number[];
    if (fim) {
      const g = drawGoalLength(rng, ids.length, o.goalRange);
      if (g === undefined) {
        fimSkipped++;
        continue;
      }
      piece = fimRow(ids, g, o.fimTokenId!, eos);
    } else {
      ids.push(eos);
      piece = ids;
    }
    pieces.push(piece);
    total += piece.length;
  }
  const T = o.blockSize;
  const rows = Math.floor(total / T);
  const flat = new Int32Array(rows * T);
  let at = 0;
  for (const piece of pieces) {
    const n = Math.min(piece.length, flat.length - at);
    for (let i = 0; i < n; i++) flat[at + i] = piece[i];
    at += n;
    if (at === flat.length) break;
  }
  const order = new Int32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i;
  if (shuffle) rng.shuffle(order);
  const tokens = new Int32Array(rows * T);
  for (let r = 0; r < rows; r++) tokens.set(flat.subarray(order[r] * T, order[r] * T + T), r * T);
  return { tokens, rows, stories: buffer.length, fimSkipped };
}

/**
 * The rows of one epoch, from a position on: a resumable iterator.
 *
 * @example
 * ```ts
 * import { PackedRows } from "./packing.ts";
 * import { storiesFromStrings } from "./tinystories_sources.ts";
 * const src = storiesFromStrings("m", ["ab", "cde", "f"]);
 * // A stand-in tokenizer: one id per character.
 * const encode = (t: string) => [...t].map((c) => c.charCodeAt(0) - 95);
 * const rows = new PackedRows(src, { blockSize: 3, encode, seed: 0, shuffle: false });
 * const got: number[][] = [];
 * for (let r = await rows.next(); r; r = await rows.next()) got.push([...r]);
 * console.log(got); // [ [ 2, 3, 1 ], [ 4, 5, 6 ], [ 1, 7, 1 ] ]
 * ```
 */
export class PackedRows {
  #position: PackPosition;
  #iterator: AsyncIterator<string> | undefined;
  #current: PackedBuffer | undefined;
  #done = false;

  /**
   * @param source The stories.
   * @param options How to pack them.
   * @param position Where to start (default: the start of epoch 0).
   */
  constructor(
    readonly source: StorySource,
    readonly options: PackingOptions,
    position: PackPosition = startOfEpoch(0),
  ) {
    checkOptions(options);
    this.#position = { ...position };
  }

  /** The position of the next row (JSON-serializable; pass it back to resume). */
  get position(): PackPosition {
    return { ...this.#position };
  }

  /** Stories skipped as too short for FIM so far this epoch (including the current buffer). */
  get fimSkipped(): number {
    return this.#position.fimSkipped + (this.#current?.fimSkipped ?? 0);
  }

  /** The next row (blockSize tokens), or `undefined` at the end of the epoch. */
  async next(): Promise<Int32Array | undefined> {
    const p = this.#position;
    for (;;) {
      if (this.#done) return undefined;
      if (!this.#current) {
        this.#iterator ??= this.source.stories(p.storyStart)[Symbol.asyncIterator]();
        const rng = bufferRng(this.options.seed, p.epoch, p.buffer);
        this.#current = await packBuffer(this.#iterator, this.options, rng);
        if (!this.#current) {
          this.#done = true;
          await this.#iterator.return?.();
          return undefined;
        }
      }
      const b = this.#current;
      if (p.row < b.rows) {
        const T = this.options.blockSize;
        const row = b.tokens.slice(p.row * T, p.row * T + T);
        p.row++;
        return row;
      }
      p.storyStart += b.stories;
      p.fimSkipped += b.fimSkipped;
      p.buffer++;
      p.row = 0;
      this.#current = undefined;
    }
  }

  /** Stops reading the source early (only needed when the epoch is not read to its end). */
  async close(): Promise<void> {
    this.#done = true;
    await this.#iterator?.return?.();
  }
}

/** The state of {@linkcode TrainBatches}: plain JSON, for checkpoints. */
export interface TrainBatchesState {
  position: PackPosition;
  /** Batches returned so far, over all epochs. */
  batches: number;
}

/**
 * Training batches: `batchSize` consecutive packed rows at a time, epoch after epoch (each
 * epoch reshuffled; the incomplete last batch of an epoch dropped, as the reference's
 * `DataLoader(drop_last=True)`), resumable from {@linkcode TrainBatches.state}.
 *
 * @example
 * ```ts
 * import { TrainBatches } from "./packing.ts";
 * import { storiesFromStrings } from "./tinystories_sources.ts";
 * const src = storiesFromStrings("m", ["abcdefg", "hijklmn", "opqrstu"]);
 * const encode = (t: string) => [...t].map((c) => c.charCodeAt(0) - 90);
 * const opts = { blockSize: 4, encode, seed: 7 };
 * const a = new TrainBatches(src, opts, 2);
 * await a.next();
 * const saved = JSON.stringify(a.state);
 * const b = new TrainBatches(src, opts, 2, JSON.parse(saved));
 * console.log([...await a.next()].join() === [...await b.next()].join()); // true
 * ```
 */
export class TrainBatches {
  #rows: PackedRows;
  #batches: number;
  #epochHadBatch = false;

  constructor(
    readonly source: StorySource,
    readonly options: PackingOptions,
    readonly batchSize: number,
    state?: TrainBatchesState,
  ) {
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
      throw new Error(`Batch size must be a positive integer, got ${batchSize}`);
    }
    this.#rows = new PackedRows(source, options, state?.position);
    this.#batches = state?.batches ?? 0;
    this.#epochHadBatch = (state?.position.buffer ?? 0) > 0 || (state?.position.row ?? 0) > 0;
  }

  /** Where the next batch comes from (JSON). */
  get state(): TrainBatchesState {
    return { position: this.#rows.position, batches: this.#batches };
  }

  /** The current epoch (0-based). */
  get epoch(): number {
    return this.#rows.position.epoch;
  }

  /** Stories skipped as too short for FIM so far this epoch. */
  get fimSkipped(): number {
    return this.#rows.fimSkipped;
  }

  /**
   * The next batch, (batchSize, blockSize) tokens in row order.
   *
   * @throws When a whole epoch does not fill one batch.
   */
  async next(): Promise<Int32Array> {
    const T = this.options.blockSize;
    for (;;) {
      const start = this.#rows.position;
      const out = new Int32Array(this.batchSize * T);
      let r = 0;
      for (; r < this.batchSize; r++) {
        const row = await this.#rows.next();
        if (!row) break;
        out.set(row, r * T);
      }
      if (r === this.batchSize) {
        this.#batches++;
        this.#epochHadBatch = true;
        return out;
      }
      if (!this.#epochHadBatch) {
        throw new Error(
          `The stories of ${this.source.name} do not fill one batch of ${this.batchSize} rows of ` +
            `${T} tokens (epoch ${start.epoch})`,
        );
      }
      this.#epochHadBatch = false;
      this.#rows = new PackedRows(this.source, this.options, startOfEpoch(start.epoch + 1));
    }
  }
}

/**
 * Validation batches: the source packed with {@linkcode VALIDATION_SEED}, the same rows in the
 * same order on every call, the incomplete last batch dropped.
 *
 * @param source The validation stories.
 * @param options How to pack them (its `seed` is ignored).
 * @param batchSize Rows per batch.
 * @returns (batchSize, blockSize) batches.
 *
 * @example
 * ```ts
 * import { validationBatches } from "./packing.ts";
 * import { storiesFromStrings } from "./tinystories_sources.ts";
 * const src = storiesFromStrings("m", ["abcdefg", "hijklmn", "opqrstu"]);
 * const encode = (t: string) => [...t].map((c) => c.charCodeAt(0) - 90);
 * let n = 0;
 * for await (const b of validationBatches(src, { blockSize: 4, encode, seed: 3 }, 2)) n++;
 * console.log(n); // 3
 * ```
 */
export async function* validationBatches(
  source: StorySource,
  options: PackingOptions,
  batchSize: number,
): AsyncGenerator<Int32Array> {
  const rows = new PackedRows(source, { ...options, seed: VALIDATION_SEED });
  const T = options.blockSize;
  try {
    for (;;) {
      const out = new Int32Array(batchSize * T);
      for (let r = 0; r < batchSize; r++) {
        const row = await rows.next();
        if (!row) return;
        out.set(row, r * T);
      }
      yield out;
    }
  } finally {
    await rows.close();
  }
}
