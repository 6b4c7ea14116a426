/**
 * Training from pretokenized `.npy` token files, as the reference's `PretokenizedDataModule`
 * (microsoft/BST `data/pretokenized.py`) does:
 *
 * - `data.pretokenized_data_path` is a folder; `data.pretokenized_train_data` and
 *   `data.pretokenized_val_data` list files in it, each a file name (weight 1) or a
 *   `[file, weight]` pair.
 * - Each file is a 1-D array of token ids (`LMDataset`); its rows are the non-overlapping
 *   `block_size` slices, ⌊tokens / block_size⌋ of them (the tail is dropped).
 * - The files are concatenated with weights (`WeightedConcatDataset`): file i contributes
 *   ⌈rows_i · w_i⌉ rows, index j of its part mapping to row j mod rows_i — weight 2 repeats
 *   every row, 0.5 keeps the first half, 0 none.
 * - Training batches walk a fresh shuffle of all those rows every epoch; validation batches
 *   take them in order; both drop the last incomplete batch (`DataLoader(shuffle=…,
 *   drop_last=True)`).
 *
 * The shuffle of epoch e is `numpy.random.RandomState([seed, e]).permutation(n)` (as the
 * project's star-graph batches), not PyTorch's `RandomSampler` stream, so orders differ from
 * the reference's while being fully determined by the seed; a run resumes exactly from a
 * small JSON state ({@linkcode PretokenizedTrainState}).
 *
 * Memory stays bounded whatever the files' sizes (Deno has no mmap): rows are read on demand
 * with positioned reads, the rows of a batch sorted and neighbouring rows read together, and a
 * sequential reader (validation) reads ahead {@linkcode READ_AHEAD_BYTES} per file into a
 * one-chunk cache. The only per-row memory is the epoch's permutation (4 bytes a row).
 * Token files may be `uint8`, `uint16`, `int32` or `int64` (ids must fit in int32).
 *
 * Requires `--allow-read` for the files.
 *
 * @module
 */

import { numpyPermutation } from "./mt19937.ts";
import { npyItemSize, NpyReader } from "../io/npy.ts";

/** A data file entry: a file name (weight 1) or a `[file, weight]` pair. */
export type PretokenizedFileEntry = string | readonly [file: string, weight: number];

/** Bytes a sequential reader fetches at once from a file. */
export const READ_AHEAD_BYTES = 1 << 16;

/** One file of a {@linkcode PretokenizedDataset}. */
export interface PretokenizedFile {
  /** The file's path (root joined with its name). */
  path: string;
  weight: number;
  /** Rows in the file: ⌊tokens / blockSize⌋. */
  rows: number;
  /** Rows it contributes: ⌈rows · weight⌉. */
  effectiveRows: number;
}

/**
 * Checks a data list and joins its names to `root`: one line naming the entry when an entry is
 * not a name or a `[name, weight]` pair with a finite weight ≥ 0, or the list is empty.
 *
 * @param root The folder (`data.pretokenized_data_path`; `""`: names are paths).
 * @param entries The list.
 * @param what What messages call the list (e.g. `data.pretokenized_train_data`).
 * @returns Paths and weights.
 *
 * @example
 * ```ts
 * import { resolveDataFiles } from "./pretokenized.ts";
 * console.log(resolveDataFiles("data/x", ["a.npy", ["b.npy", 2]], "train"));
 * // [ { path: "data/x/a.npy", weight: 1 }, { path: "data/x/b.npy", weight: 2 } ]
 * ```
 */
export function resolveDataFiles(
  root: string,
  entries: readonly PretokenizedFileEntry[],
  what: string,
): { path: string; weight: number }[] {
  if (!Array.isArray(entries) || entries.length === 0) {
    throw new Error(`${what} lists no files: give file names or [file, weight] pairs`);
  }
  return entries.map((entry) => {
    const pair = Array.isArray(entry) && entry.length === 2;
    const [file, weight] = typeof entry === "string" ? [entry, 1] : pair ? entry : ["", NaN];
    if (
      typeof file !== "string" || file === "" || typeof weight !== "number" ||
      !(Number.isFinite(weight) && weight >= 0)
    ) {
      throw new Error(
        `${what}: bad entry ${JSON.stringify(entry)} (expected a file name or [file, weight] ` +
          `with a weight >= 0)`,
      );
    }
    const path = root === "" || file.startsWith("/") ? file : `${root.replace(/\/+$/, "")}/${file}`;
    return { path, weight };
  });
}

/** A file's reader and its one-chunk read-ahead cache. */
interface Source {
  reader: NpyReader;
  /** Elements [start, start + data.length) of the file, from the last read. */
  cacheStart: number;
  cache: Int32Array;
  /** Element after the last one asked for: a read starting here is sequential. */
  lastEnd: number;
}

function toInt32(data: ArrayLike<number | bigint>, path: string): Int32Array {
  if (data instanceof Int32Array) return data;
  if (data instanceof BigInt64Array) {
    const out = new Int32Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v < -2147483648n || v > 2147483647n) {
        throw new Error(`Cannot read "${path}": token id ${v} does not fit in int32`);
      }
      out[i] = Number(v);
    }
    return out;
  }
  return Int32Array.from(data as ArrayLike<number>);
}

/**
 * The rows of weighted, concatenated token files (the reference's `WeightedConcatDataset` of
 * `LMDataset`s), read from disk on demand.
 *
 * @example
 * ```ts
 * import { PretokenizedDataset } from "./pretokenized.ts";
 * import { writeNpy } from "../io/npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpy(`${dir}/a.npy`, Uint16Array.from({ length: 10 }, (_, i) => i)); // 3 rows of 3
 * const ds = await PretokenizedDataset.open(dir, [["a.npy", 0.5]], 3);
 * console.log(ds.length, [...await ds.readRows([1, 0])]); // 2 [ 3, 4, 5, 0, 1, 2 ]
 * ds.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class PretokenizedDataset {
  /** Total rows: the sum of the files' effective rows. */
  readonly length: number;
  readonly #sources: Source[];
  /** Cumulative effective rows: rows of files 0..i. */
  readonly #cumulative: number[];

  private constructor(
    readonly files: readonly PretokenizedFile[],
    readonly blockSize: number,
    sources: Source[],
  ) {
    this.#sources = sources;
    let total = 0;
    this.#cumulative = files.map((f) => (total += f.effectiveRows));
    this.length = total;
  }

  /**
   * Opens the files of a data list and checks each is a readable 1-D integer `.npy`.
   *
   * @param root The folder of the files (`data.pretokenized_data_path`).
   * @param entries File names or `[file, weight]` pairs.
   * @param blockSize Tokens per row (`model.block_size`).
   * @param what What messages call the list (default `pretokenized data`).
   * @throws One line naming the file or entry at fault.
   */
  static async open(
    root: string,
    entries: readonly PretokenizedFileEntry[],
    blockSize: number,
    what = "pretokenized data",
  ): Promise<PretokenizedDataset> {
    if (!(Number.isSafeInteger(blockSize) && blockSize >= 1)) {
      throw new Error(`Block size must be a positive integer, got ${blockSize}`);
    }
    const specs = resolveDataFiles(root, entries, what);
    const sources: Source[] = [];
    const files: PretokenizedFile[] = [];
    try {
      for (const { path, weight } of specs) {
        const reader = await NpyReader.open(path, { rank: 1 });
        sources.push({ reader, cacheStart: 0, cache: new Int32Array(0), lastEnd: 0 });
        if (reader.dtype === "f4") {
          throw new Error(`Cannot use "${path}" as token ids: its dtype is float32`);
        }
        const rows = Math.floor(reader.rows / blockSize);
        files.push({ path, weight, rows, effectiveRows: Math.ceil(rows * weight) });
      }
    } catch (e) {
      for (const s of sources) s.reader.close();
      throw e;
    }
    return new PretokenizedDataset(files, blockSize, sources);
  }

  /**
   * Which file and row index `i` stands for, as `WeightedConcatDataset.__getitem__`.
   *
   * @throws When `i` is not an integer in [0, length).
   */
  locate(i: number): { file: number; row: number } {
    if (!(Number.isInteger(i) && i >= 0 && i < this.length)) {
      throw new Error(`Row ${i} is out of range for a dataset of ${this.length} rows`);
    }
    // searchsorted(cumulative, i, side="right")
    let lo = 0;
    let hi = this.#cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#cumulative[mid] > i) hi = mid;
      else lo = mid + 1;
    }
    const before = lo === 0 ? 0 : this.#cumulative[lo - 1];
    return { file: lo, row: (i - before) % this.files[lo].rows };
  }

  /**
   * The rows at `indices`, one after another: `(indices.length, blockSize)` token ids. Rows of
   * the same file are read in file order, neighbours together.
   */
  async readRows(indices: ArrayLike<number>): Promise<Int32Array> {
    const T = this.blockSize;
    const out = new Int32Array(indices.length * T);
    const wanted = Array.from({ length: indices.length }, (_, k) => {
      const { file, row } = this.locate(indices[k]);
      return { file, row, k };
    }).sort((a, b) => a.file - b.file || a.row - b.row);
    for (let a = 0; a < wanted.length;) {
      // A run: rows of one file, each equal to or one after the previous.
      let b = a + 1;
      while (
        b < wanted.length && wanted[b].file === wanted[a].file &&
        wanted[b].row - wanted[b - 1].row <= 1
      ) b++;
      const first = wanted[a].row;
      const tokens = await this.#read(wanted[a].file, first * T, (wanted[b - 1].row + 1) * T);
      for (let j = a; j < b; j++) {
        const at = (wanted[j].row - first) * T;
        out.set(tokens.subarray(at, at + T), wanted[j].k * T);
      }
      a = b;
    }
    return out;
  }

  /** Elements [start, end) of file `f`, through its read-ahead cache. */
  async #read(f: number, start: number, end: number): Promise<Int32Array> {
    const s = this.#sources[f];
    const sequential = start === s.lastEnd;
    s.lastEnd = end;
    if (start >= s.cacheStart && end <= s.cacheStart + s.cache.length) {
      return s.cache.subarray(start - s.cacheStart, end - s.cacheStart);
    }
    const item = npyItemSize(s.reader.dtype);
    const limit = this.files[f].rows * this.blockSize;
    const stop = sequential ? Math.min(limit, Math.max(end, start + READ_AHEAD_BYTES / item)) : end;
    const data = toInt32(await s.reader.readRows(start, stop), s.reader.path);
    if (sequential) {
      s.cacheStart = start;
      s.cache = data;
    }
    return data.subarray(0, end - start);
  }

  /**
   * One line per file, as the reference prints them: `path: N samples, M effective samples
   * (weight=w)`.
   */
  describe(): string[] {
    return this.files.map((f) =>
      `${f.path}: ${f.rows} samples, ${f.effectiveRows} effective samples (weight=${f.weight})`
    );
  }

  /** Closes the files (idempotent). */
  close(): void {
    for (const s of this.#sources) s.reader.close();
  }
}

/** Where {@linkcode PretokenizedTrainBatches} stands: plain JSON, for checkpoints. */
export interface PretokenizedTrainState {
  /** The current epoch (0-based). */
  epoch: number;
  /** The next batch's index within the epoch. */
  batch: number;
  /** Batches returned so far, over all epochs. */
  batches: number;
}

/**
 * Training batches: epoch e walks `numpy.random.RandomState([seed, e]).permutation(length)`
 * `batchSize` rows at a time, dropping the incomplete last batch, then epoch e + 1.
 *
 * @example
 * ```ts
 * import { PretokenizedDataset, PretokenizedTrainBatches } from "./pretokenized.ts";
 * import { writeNpy } from "../io/npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpy(`${dir}/a.npy`, Uint16Array.from({ length: 40 }, (_, i) => i));
 * const ds = await PretokenizedDataset.open(dir, ["a.npy"], 4); // 10 rows
 * const a = new PretokenizedTrainBatches(ds, { batchSize: 3, seed: 1337 });
 * await a.next();
 * const b = new PretokenizedTrainBatches(ds, { batchSize: 3, seed: 1337 }, JSON.parse(JSON.stringify(a.state)));
 * console.log([...await a.next()].join() === [...await b.next()].join()); // true
 * ds.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class PretokenizedTrainBatches {
  readonly batchSize: number;
  readonly seed: number;
  /** Full batches per epoch: ⌊length / batchSize⌋. */
  readonly batchesPerEpoch: number;
  #state: PretokenizedTrainState;
  #permutation: { epoch: number; perm: Int32Array } | undefined;

  /**
   * @param dataset The rows.
   * @param options `batchSize`: rows per batch; `seed`: the run's seed, in [0, 2³²).
   * @param state Where to resume (default: the first batch of epoch 0).
   * @throws When the data do not fill one batch, or the options or state are malformed.
   */
  constructor(
    readonly dataset: PretokenizedDataset,
    options: { batchSize: number; seed: number },
    state?: PretokenizedTrainState,
  ) {
    const { batchSize, seed } = options;
    if (!(Number.isSafeInteger(batchSize) && batchSize >= 1)) {
      throw new Error(`Batch size must be a positive integer, got ${batchSize}`);
    }
    if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
      throw new Error(`Data seed must be an integer in [0, 2^32), got ${seed}`);
    }
    this.batchSize = batchSize;
    this.seed = seed;
    this.batchesPerEpoch = Math.floor(dataset.length / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new Error(
        `The pretokenized training data (${dataset.length} rows of ${dataset.blockSize} tokens) ` +
          `do not fill one batch of ${batchSize} rows`,
      );
    }
    const s = state ?? { epoch: 0, batch: 0, batches: 0 };
    const ok = [s.epoch, s.batch, s.batches].every((v) => Number.isSafeInteger(v) && v >= 0) &&
      s.batch <= this.batchesPerEpoch;
    if (!ok) throw new Error(`Bad pretokenized data position ${JSON.stringify(state)}`);
    this.#state = { epoch: s.epoch, batch: s.batch, batches: s.batches };
  }

  /** Where the next batch comes from (JSON). */
  get state(): PretokenizedTrainState {
    return { ...this.#state };
  }

  /** The current epoch (0-based). */
  get epoch(): number {
    return this.#state.epoch;
  }

  /** The next batch: (batchSize, blockSize) token ids. */
  async next(): Promise<Int32Array> {
    const s = this.#state;
    if (s.batch >= this.batchesPerEpoch) {
      s.epoch++;
      s.batch = 0;
    }
    if (this.#permutation?.epoch !== s.epoch) {
      this.#permutation = {
        epoch: s.epoch,
        perm: numpyPermutation(this.dataset.length, [this.seed, s.epoch]),
      };
    }
    const start = s.batch * this.batchSize;
    const rows = this.#permutation.perm.subarray(start, start + this.batchSize);
    const out = await this.dataset.readRows(rows);
    s.batch++;
    s.batches++;
    return out;
  }
}

/**
 * Validation batches: the rows in order, `batchSize` at a time, the incomplete last batch
 * dropped. The same batches on every call.
 *
 * @param dataset The validation rows.
 * @param batchSize Rows per batch.
 * @returns (batchSize, blockSize) batches.
 *
 * @example
 * ```ts
 * import { PretokenizedDataset, pretokenizedValidationBatches } from "./pretokenized.ts";
 * import { writeNpy } from "../io/npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpy(`${dir}/v.npy`, Uint16Array.from({ length: 7 }, (_, i) => i));
 * const ds = await PretokenizedDataset.open(dir, ["v.npy"], 2); // 3 rows
 * for await (const b of pretokenizedValidationBatches(ds, 2)) console.log([...b]); // [ 0, 1, 2, 3 ]
 * ds.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* pretokenizedValidationBatches(
  dataset: PretokenizedDataset,
  batchSize: number,
): AsyncGenerator<Int32Array> {
  if (!(Number.isSafeInteger(batchSize) && batchSize >= 1)) {
    throw new Error(`Batch size must be a positive integer, got ${batchSize}`);
  }
  const rows = new Int32Array(batchSize);
  for (let start = 0; start + batchSize <= dataset.length; start += batchSize) {
    for (let k = 0; k < batchSize; k++) rows[k] = start + k;
    yield await dataset.readRows(rows);
  }
}

/** What {@linkcode openPretokenizedData} needs: the `data.*` keys and the block size. */
export interface PretokenizedDataConfig {
  /** `data.pretokenized_data_path`. */
  dataPath: string;
  /** `data.pretokenized_train_data`. */
  train: readonly PretokenizedFileEntry[];
  /** `data.pretokenized_val_data`. */
  val: readonly PretokenizedFileEntry[];
  /** `model.block_size`. */
  blockSize: number;
}

/**
 * Opens the training and validation files of a pretokenized run.
 *
 * @param c The folder, the two lists and the block size.
 * @returns Both datasets (close them when done).
 * @throws One line naming the list, entry or file at fault.
 *
 * @example
 * ```ts
 * import { openPretokenizedData } from "./pretokenized.ts";
 * import { writeNpy } from "../io/npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpy(`${dir}/t.npy`, new Uint16Array(64));
 * await writeNpy(`${dir}/v.npy`, new Uint16Array(16));
 * const { train, val } = await openPretokenizedData({
 *   dataPath: dir, train: [["t.npy", 2]], val: ["v.npy"], blockSize: 8,
 * });
 * console.log(train.length, val.length); // 16 2
 * train.close();
 * val.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openPretokenizedData(
  c: PretokenizedDataConfig,
): Promise<{ train: PretokenizedDataset; val: PretokenizedDataset }> {
  const train = await PretokenizedDataset.open(
    c.dataPath,
    c.train,
    c.blockSize,
    "data.pretokenized_train_data",
  );
  try {
    const val = await PretokenizedDataset.open(
      c.dataPath,
      c.val,
      c.blockSize,
      "data.pretokenized_val_data",
    );
    return { train, val };
  } catch (e) {
    train.close();
    throw e;
  }
}
