/**
 * Where a run's rows come from. Training asks {@linkcode TrainRows} for the rows of each
 * optimizer step in turn; validation walks {@linkcode ValRows} from the start each time.
 *
 * - A token table in memory (the star graph): step s takes a slice of the epoch's seeded
 *   permutation, so any step's rows are known without state ({@linkcode tableTrainRows}).
 * - A stream (TinyStories, packed from stories as the reference's `ConstantLengthDataset`
 *   does): rows come in order and the position is saved in checkpoints
 *   ({@linkcode packedTrainRows}), so a resumed run continues with exactly the rows it would
 *   have seen.
 *
 * @module
 */

import { Xoshiro128 } from "../core/rng.ts";
import {
  type PackingOptions,
  TrainBatches,
  type TrainBatchesState,
  validationBatches,
} from "../data/packing.ts";
import {
  type PretokenizedDataset,
  PretokenizedTrainBatches,
  type PretokenizedTrainState,
} from "../data/pretokenized.ts";
import type { StorySource } from "../data/tinystories_sources.ts";

/** The training rows of a run, one optimizer step at a time. */
export interface TrainRows {
  /**
   * The (batchSize, T) rows of optimizer step `step` (0-based) and the epoch they come from.
   * Streams are read in order: after a restore, call it from the restored step on.
   */
  batch(step: number, batchSize: number): Promise<{ tokens: Int32Array; epoch: number }>;
  /** Where a stream stands (JSON text for checkpoint metadata); absent for tables. */
  state?(): string;
  /** Continues a stream from {@linkcode TrainRows.state}'s text; `source` names it in errors. */
  restore?(state: string, source: string): void;
  /** Figures for the training log (e.g. stories skipped as too short for FIM). */
  logs?(): Record<string, number>;
}

/** The validation rows of a run, the same rows in the same order every time. */
export interface ValRows {
  /** (batchSize, T) batches in order; the incomplete last batch is dropped. */
  batches(batchSize: number): AsyncIterable<Int32Array>;
}

/**
 * The training rows of a (n, T) token table: step s of epoch e takes rows
 * `[s·B, (s+1)·B)` of the epoch's permutation (seeded by (seed, e)); the last partial batch of
 * an epoch is dropped (the reference's `DataLoader(shuffle=True, drop_last=True)`).
 *
 * @example
 * ```ts
 * import { tableTrainRows } from "./rows.ts";
 * const table = new Int32Array(10 * 2).map((_, i) => i); // 10 rows of T = 2
 * const rows = tableTrainRows(table, 2, 1337);
 * const { tokens, epoch } = await rows.batch(5, 3); // 3 rows per step: step 5 is in epoch 1
 * console.log(tokens.length, epoch); // 6 1
 * ```
 */
export function tableTrainRows(table: Int32Array, T: number, seed: number): TrainRows {
  const n = table.length / T;
  return {
    batch(step, batchSize) {
      const { rows, epoch } = stepRows(n, batchSize, seed, step);
      return Promise.resolve({ tokens: gatherRows(rows, table, T), epoch });
    },
  };
}

/**
 * The validation rows of a (n, T) token table, in table order.
 *
 * @example
 * ```ts
 * import { tableValRows } from "./rows.ts";
 * const table = new Int32Array(5 * 2).map((_, i) => i); // 5 rows of T = 2
 * const got: number[][] = [];
 * for await (const b of tableValRows(table, 2).batches(2)) got.push([...b]);
 * console.log(got); // [ [ 0, 1, 2, 3 ], [ 4, 5, 6, 7 ] ]
 * ```
 */
export function tableValRows(table: Int32Array, T: number): ValRows {
  return {
    async *batches(batchSize) {
      const n = Math.floor(table.length / T / batchSize);
      for (let b = 0; b < n; b++) yield table.subarray(b * batchSize * T, (b + 1) * batchSize * T);
    },
  };
}

/** Checkpoint metadata key of a stream's position ({@linkcode TrainRows.state}). */
export const DATA_STATE_KEY = "data_state";

/**
 * Training rows packed from stories ({@linkcode TrainBatches}: buffers of stories shuffled,
 * tokenized, joined with EOS, cut into rows, rows shuffled; each epoch reshuffled from the
 * run's seed). Steps must be asked for in order.
 *
 * @example
 * ```ts
 * import { packedTrainRows } from "./rows.ts";
 * import { storiesFromStrings } from "../data/tinystories_sources.ts";
 * const stories = storiesFromStrings("tiny", ["abcdefg", "hijklmn", "opqrstu"]);
 * const encode = (t: string) => [...t].map((c) => c.charCodeAt(0) - 90);
 * const a = packedTrainRows(stories, { blockSize: 4, encode, seed: 7 });
 * await a.batch(0, 2);
 * const b = packedTrainRows(stories, { blockSize: 4, encode, seed: 7 });
 * b.restore!(a.state!(), "checkpoint");
 * console.log([...(await a.batch(1, 2)).tokens].join() === [...(await b.batch(1, 2)).tokens].join());
 * // true
 * ```
 */
export function packedTrainRows(source: StorySource, options: PackingOptions): TrainRows {
  let batches: TrainBatches | undefined;
  let size = 0;
  let restored: TrainBatchesState | undefined;
  return {
    async batch(step, batchSize) {
      if (!batches || size !== batchSize) {
        batches = new TrainBatches(source, options, batchSize, restored);
        size = batchSize;
      }
      if (batches.state.batches !== step) {
        throw new Error(
          `Packed rows of ${source.name} are read in order: step ${step} asked for, ` +
            `${batches.state.batches} expected`,
        );
      }
      const tokens = await batches.next();
      return { tokens, epoch: batches.epoch };
    },
    state: () => JSON.stringify(batches?.state ?? restored ?? null),
    restore(text, where) {
      const state = parseDataState(text, where);
      if (!isBatchesState(state)) {
        throw new Error(`Cannot resume from "${where}": ${DATA_STATE_KEY} is not a packing state`);
      }
      restored = state;
      batches = undefined;
    },
    logs(): Record<string, number> {
      return options.fimTokenId === undefined ? {} : { fim_skipped: batches?.fimSkipped ?? 0 };
    },
  };
}

/** A checkpoint's `data_state` text as JSON; one line naming the checkpoint when it is not. */
function parseDataState(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`Cannot resume from "${where}": ${DATA_STATE_KEY} is not JSON`);
  }
}

function isBatchesState(x: unknown): x is TrainBatchesState {
  if (typeof x !== "object" || x === null) return false;
  const s = x as Record<string, unknown>;
  const p = s.position as Record<string, unknown> | undefined;
  const nat = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  return nat(s.batches) && typeof p === "object" && p !== null &&
    ["epoch", "buffer", "storyStart", "row", "fimSkipped"].every((k) => nat(p[k]));
}

/**
 * Training rows of pretokenized token files ({@linkcode PretokenizedTrainBatches}: each epoch a
 * seeded permutation of the weighted rows), read in order and resumable from their position.
 */
export function pretokenizedTrainRows(
  dataset: PretokenizedDataset,
  options: { batchSize: number; seed: number },
): TrainRows {
  let batches: PretokenizedTrainBatches | undefined;
  return {
    async batch(step, batchSize) {
      batches ??= new PretokenizedTrainBatches(dataset, options);
      if (batches.batchSize !== batchSize || batches.state.batches !== step) {
        throw new Error(
          `Pretokenized rows are read in order: step ${step} of ${batchSize} rows asked for, ` +
            `step ${batches.state.batches} of ${batches.batchSize} expected`,
        );
      }
      const tokens = await batches.next();
      return { tokens, epoch: batches.epoch };
    },
    state: () => JSON.stringify((batches ??= new PretokenizedTrainBatches(dataset, options)).state),
    restore(text, where) {
      const state = parseDataState(text, where) as PretokenizedTrainState;
      try {
        batches = new PretokenizedTrainBatches(dataset, options, state);
      } catch (e) {
        throw new Error(`Cannot resume from "${where}": ${(e as Error).message}`);
      }
    },
  };
}

/**
 * Validation rows packed from stories with a fixed seed, in order (the same rows at every
 * validation, whatever the run's seed).
 */
export function packedValRows(source: StorySource, options: PackingOptions): ValRows {
  return { batches: (batchSize) => validationBatches(source, options, batchSize) };
}

/**
 * The rows of optimizer step `step` (0-based): a slice of the epoch's permutation of the
 * training rows, the epoch's permutation drawn from (seed, epoch). The last partial batch of
 * an epoch is dropped.
 */
export function stepRows(
  nTrain: number,
  batchSize: number,
  seed: number,
  step: number,
): { rows: Int32Array; epoch: number } {
  const perEpoch = Math.floor(nTrain / batchSize);
  if (perEpoch === 0) {
    throw new Error(
      `The training split has ${nTrain} rows, fewer than one batch of ${batchSize}`,
    );
  }
  const epoch = Math.floor(step / perEpoch);
  const perm = epochPermutation(nTrain, seed, epoch);
  const start = (step % perEpoch) * batchSize;
  return { rows: perm.subarray(start, start + batchSize), epoch };
}

const permCache = new Map<string, Int32Array>();

function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const key = `${n}:${seed}:${epoch}`;
  let p = permCache.get(key);
  if (!p) {
    p = new Int32Array(n).map((_, i) => i);
    const rng = Xoshiro128.fromSeed(seed, 3 + epoch);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng.nextFloat64() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    if (permCache.size > 4) permCache.clear();
    permCache.set(key, p);
  }
  return p;
}

/** The rows `rows` of a (n, T) token table, as one (rows.length, T) batch. */
export function gatherRows(rows: ArrayLike<number>, table: Int32Array, T: number): Int32Array {
  const out = new Int32Array(rows.length * T);
  for (let i = 0; i < rows.length; i++) {
    out.set(table.subarray(rows[i] * T, (rows[i] + 1) * T), i * T);
  }
  return out;
}
