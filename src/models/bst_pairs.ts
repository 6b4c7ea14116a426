/**
 * BST training pairs and their loss weights, built on the CPU from the
 * token ids, so the GPU only gathers encoder states and runs a weighted cross-entropy.
 *
 * Reference (microsoft/BST `model_bst.py`): `BST._create_pair_indices`,
 * `BST._create_valid_pairs`, `BST._get_pair_subsample_target`, `BST._update_pair_stats` and
 * `BST.compute_loss`. What they do, exactly:
 *
 * 1. **Candidates** (per row of length T): `cartesian_prod(arange(context_length, T),
 *    arange(min_gap, max_gap))` with `max_gap ≤ 0 → T`, as (t_f, t_b = t_f + gap), keeping
 *    t_b < T. Order: t_f ascending, then gap ascending. The maximum gap is exclusive.
 * 2. **Valid**: `doc_f[t_f] == doc_b[t_b]` (see `positions.ts`), i.e. no EOS strictly between
 *    t_f and t_b; t_f itself or t_b itself may be an EOS.
 * 3. **Subsampling** (`bst_pair_subsample_rate` < 1): target = `int(avg_valid · rate)` where
 *    avg_valid is the running average of valid pairs per row over earlier rows, or, before the
 *    first row, `int(block_size·(block_size−1)//2 · rate)`. Pairs with an EOS at t_f or t_b are
 *    always kept; the others are kept when a uniform draw (one per valid pair, drawn for every
 *    valid pair in order, EOS pairs included) is below
 *    `p = (target − n_eos) / (n_valid − n_eos)` (float32; p ≤ 0 keeps none, p ≥ 1 all).
 *    The running averages are updated after every row, with or without subsampling:
 *    `n += 1; α = clamp(1/n, 0.001, 0.1)`; the first row sets the average directly.
 * 4. **Targets**: next = row[t_f + 1], prev = row[t_b − 1] (both inside the row because
 *    gap ≥ 1); with `bst_single_gap_prediction_mode: eos`, gap-1 pairs predict EOS for both.
 * 5. **Loss**: per row, the (subsampled) pairs in that order are cut into consecutive chunks of
 *    `pair_batch_size` (chunks never span rows; the last one may be short); a chunk's loss is
 *    `(mean CE_next + mean CE_prev) / 2 / (loss_div · B · n_chunks_of_row)` and the micro-batch
 *    loss is the sum over rows and chunks. So each pair's weight is
 *    `1 / (2 · chunk_size · n_chunks_of_row · B · loss_div)`; a row without pairs adds 0 but
 *    still counts in B.
 *
 * Differences from the reference, on purpose:
 * - The random draws come from our own seeded xoshiro128** ({@linkcode Xoshiro128}), not
 *   torch's generator, so which non-EOS pairs are kept differs from a PyTorch run (the
 *   expected count and the rules are the same).
 * - The reference keeps the running averages on the model object and does not save them, so a
 *   resumed PyTorch run restarts the averages; {@linkcode PairSampler} can save and restore them
 *   with the RNG state, so a resumed run here continues exactly.
 * - The reference calls `compute_loss` for the validation loss too, which also updates the
 *   averages and draws subsampling numbers; a trainer that wants to match it should pass the
 *   same sampler for validation batches.
 * - `bst_pair_minimum_gap` < 1 or a negative `context_length` are errors here; the reference
 *   would index outside the row (negative indices wrap in PyTorch) or fail on the device.
 *
 * @module
 */

import type { BstConfig } from "./bst_config.ts";
import { Xoshiro128, type Xoshiro128State } from "../core/rng.ts";

/** The config fields that pairing reads. */
export type PairConfig = Pick<
  BstConfig,
  | "eosTokenId"
  | "blockSize"
  | "contextLength"
  | "pairMinimumGap"
  | "pairMaximumGap"
  | "pairSubsampleRate"
  | "singleGapPredictionMode"
>;

/** Pairs of one row, in the reference's order (t_f ascending, then gap ascending). */
export interface RowPairs {
  /** (P_row) forward positions t_f. */
  tF: Int32Array;
  /** (P_row) backward positions t_b (> t_f). */
  tB: Int32Array;
}

/** The saved state of a {@linkcode PairSampler}: plain JSON, for checkpoints. */
export interface PairSamplerState {
  /** Running average of valid pairs per row; null before the first row. */
  avgValidPairs: number | null;
  /** Running average of sampled pairs per row; null before the first row. */
  avgSampledPairs: number | null;
  /** Rows averaged so far (the reference's `_n_iters_averaged`). */
  nItersAveraged: number;
  /** The subsampling generator's state. */
  rng: Xoshiro128State;
}

/** Options of {@linkcode buildPairBatch}. */
export interface PairBatchOptions {
  /** Pairs per text-head chunk (`data.pair_batch_size`), ≥ 1. */
  pairBatchSize: number;
  /** The reference's `loss_div`: gradient accumulation steps (default 1). */
  gradientAccumSteps?: number;
}

/**
 * All pairs of a micro-batch, flat, rows in order. The loss is
 * `Σ_p weight[p] · (CE(logits_next[p], nextTarget[p]) + CE(logits_prev[p], prevTarget[p]))`,
 * where the text head sees `concat(f[fIndex[p]], b[bIndex[p]])` and `f`, `b` are the encoder
 * outputs viewed as (B·T, C).
 */
export interface PairBatch {
  /** P, the number of pairs. */
  count: number;
  /** (P) index of the forward state: b·T + t_f. */
  fIndex: Int32Array;
  /** (P) index of the backward state: b·T + t_b. */
  bIndex: Int32Array;
  /** (P) next-token target ids. */
  nextTarget: Int32Array;
  /** (P) previous-token target ids. */
  prevTarget: Int32Array;
  /** (P) loss weight of each pair, applied to both its CE terms. */
  weight: Float32Array;
  /** (B + 1) row b owns pairs `rowOffsets[b] .. rowOffsets[b+1]`. */
  rowOffsets: Int32Array;
}

function checkInt(value: number, min: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`${what} must be an integer ≥ ${min}, got ${value}`);
  }
}

/** Checks the pairing fields of a config; throws one line naming the first bad field. */
export function validatePairConfig(cfg: PairConfig): void {
  checkInt(cfg.eosTokenId, 0, "EOS token id");
  checkInt(cfg.blockSize, 1, "block_size");
  checkInt(cfg.contextLength, 0, "context_length");
  checkInt(cfg.pairMinimumGap, 1, "bst_pair_minimum_gap");
  if (!Number.isSafeInteger(cfg.pairMaximumGap)) {
    throw new Error(`bst_pair_maximum_gap must be an integer, got ${cfg.pairMaximumGap}`);
  }
  const rate = cfg.pairSubsampleRate;
  if (typeof rate !== "number" || !(rate >= 0 && rate <= 1)) {
    throw new Error(`bst_pair_subsample_rate must be in [0, 1], got ${rate}`);
  }
  if (cfg.singleGapPredictionMode !== "eos" && cfg.singleGapPredictionMode !== "next_token") {
    throw new Error(
      `bst_single_gap_prediction_mode must be "eos" or "next_token", got ` +
        `${JSON.stringify(cfg.singleGapPredictionMode)}`,
    );
  }
}

/** The exclusive maximum gap for rows of length T (`max_gap ≤ 0 → T`), checked ≥ min gap. */
function maxGapFor(cfg: PairConfig, seqLen: number): number {
  const maxGap = cfg.pairMaximumGap <= 0 ? seqLen : cfg.pairMaximumGap;
  if (maxGap < cfg.pairMinimumGap) {
    throw new Error(
      `bst_pair_maximum_gap ${maxGap} (resolved for rows of ${seqLen} tokens) is smaller than ` +
        `bst_pair_minimum_gap ${cfg.pairMinimumGap}`,
    );
  }
  return maxGap;
}

/**
 * All valid pairs of one row, before subsampling, in the reference's order.
 *
 * @param row (T) token ids of one row.
 * @param cfg pairing config.
 * @returns (t_f, t_b) lists: t_f from `contextLength` up, gap from `pairMinimumGap` up to
 * (excluding) the maximum gap, t_b < T, no EOS strictly between t_f and t_b.
 *
 * @example
 * ```ts
 * import { validRowPairs } from "./bst_pairs.ts";
 * const cfg = {
 *   eosTokenId: 9, blockSize: 4, contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1,
 *   pairSubsampleRate: 1, singleGapPredictionMode: "eos" as const,
 * };
 * // row a 9 b c: the EOS at 1 blocks (0, 2), (0, 3)
 * const { tF, tB } = validRowPairs(new Int32Array([5, 9, 6, 7]), cfg);
 * console.log([...tF], [...tB]); // [0, 1, 1, 2] [1, 2, 3, 3]
 * ```
 */
export function validRowPairs(row: ArrayLike<number>, cfg: PairConfig): RowPairs {
  validatePairConfig(cfg);
  const T = row.length;
  const maxGap = maxGapFor(cfg, T);
  // docF[f] == docB[b] for b > f exactly when no EOS lies in (f, b): b may go up to the first
  // EOS after f (inclusive), so each t_f's partners are one contiguous run of t_b
  const lastB = new Int32Array(T); // (T) largest valid t_b for each t_f
  let nextEos = T - 1;
  for (let f = T - 1; f >= 0; f--) {
    lastB[f] = nextEos;
    if (row[f] === cfg.eosTokenId) nextEos = f;
  }
  const lo = (f: number) => f + cfg.pairMinimumGap;
  const hi = (f: number) => Math.min(f + maxGap - 1, lastB[f]);
  let n = 0;
  for (let f = cfg.contextLength; f < T; f++) n += Math.max(0, hi(f) - lo(f) + 1);
  const tF = new Int32Array(n);
  const tB = new Int32Array(n);
  let p = 0;
  for (let f = cfg.contextLength; f < T; f++) {
    for (let b = lo(f), end = hi(f); b <= end; b++, p++) {
      tF[p] = f;
      tB[p] = b;
    }
  }
  return { tF, tB };
}

/**
 * Next/prev targets of a row's pairs: next = row[t_f+1], prev = row[t_b−1]; in
 * `singleGapPredictionMode: "eos"`, gap-1 pairs get EOS for both.
 *
 * @param row (T) token ids.
 * @param pairs (P_row) pairs of that row.
 * @param cfg pairing config.
 * @returns `next` and `prev`, (P_row) each.
 */
export function pairTargets(
  row: ArrayLike<number>,
  pairs: RowPairs,
  cfg: PairConfig,
): { next: Int32Array; prev: Int32Array } {
  const n = pairs.tF.length;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const eosMode = cfg.singleGapPredictionMode === "eos";
  for (let p = 0; p < n; p++) {
    const f = pairs.tF[p];
    const b = pairs.tB[p];
    if (eosMode && b - f === 1) {
      next[p] = cfg.eosTokenId;
      prev[p] = cfg.eosTokenId;
    } else {
      next[p] = row[f + 1];
      prev[p] = row[b - 1];
    }
  }
  return { next, prev };
}

/**
 * Builds each row's training pairs with the reference's subsampling and keeps its running
 * averages (and a seeded RNG), whose state can be saved and restored for resume.
 *
 * @example
 * ```ts
 * import { PairSampler } from "./bst_pairs.ts";
 * const cfg = {
 *   eosTokenId: 9, blockSize: 4, contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1,
 *   pairSubsampleRate: 1, singleGapPredictionMode: "eos" as const,
 * };
 * const sampler = new PairSampler(cfg, 1337);
 * console.log(sampler.sampleRow(new Int32Array([1, 2, 3, 4])).tF.length); // 6
 * console.log(sampler.getState().avgValidPairs); // 6
 * ```
 */
export class PairSampler {
  /** The pairing config. */
  readonly cfg: PairConfig;
  #rng: Xoshiro128;
  #avgValid: number | null = null;
  #avgSampled: number | null = null;
  #nIters = 0;

  /**
   * @param cfg pairing config (validated here).
   * @param seed run seed; the sampler uses stream 1 of it ({@linkcode Xoshiro128.fromSeed}).
   */
  constructor(cfg: PairConfig, seed: number) {
    validatePairConfig(cfg);
    this.cfg = cfg;
    this.#rng = Xoshiro128.fromSeed(seed, 1);
  }

  /** An independent sampler in the same state (same draws to come, same averages). */
  clone(): PairSampler {
    const copy = new PairSampler(this.cfg, 0);
    copy.setState(this.getState());
    return copy;
  }

  /** Running average of valid pairs per row (`avg_valid_pairs` metric); null before any row. */
  get avgValidPairs(): number | null {
    return this.#avgValid;
  }

  /** Running average of sampled pairs per row (`avg_sampled_pairs` metric). */
  get avgSampledPairs(): number | null {
    return this.#avgSampled;
  }

  /**
   * The reference's `_get_pair_subsample_target`: null when the rate is 1 (keep all), else
   * `trunc(avgValid · rate)`, or `trunc(T(T−1)/2 · rate)` with T = block size before any row.
   */
  subsampleTarget(): number | null {
    const rate = this.cfg.pairSubsampleRate;
    if (rate >= 1) return null;
    if (this.#avgValid !== null) return Math.trunc(this.#avgValid * rate);
    const T = this.cfg.blockSize;
    return Math.trunc(Math.floor(T * (T - 1) / 2) * rate);
  }

  /**
   * The reference's `_create_valid_pairs` for one row: valid pairs, subsampled, then the
   * running averages updated with this row's counts.
   *
   * @param row (T) token ids.
   * @returns the kept pairs, in the reference's order.
   */
  sampleRow(row: ArrayLike<number>): RowPairs {
    const valid = validRowPairs(row, this.cfg);
    const nValid = valid.tF.length;
    const target = this.subsampleTarget();
    let sampled = valid;
    if (target !== null) {
      const eos = this.cfg.eosTokenId;
      const isEos = new Uint8Array(nValid);
      let nEos = 0;
      for (let p = 0; p < nValid; p++) {
        if (row[valid.tF[p]] === eos || row[valid.tB[p]] === eos) {
          isEos[p] = 1;
          nEos++;
        }
      }
      // torch: (int − int64 tensor) / (int − int64 tensor) → float32; ±Inf or NaN when no
      // non-EOS pair exists, which then selects nothing extra (no such pair to select)
      const probability = Math.fround((target - nEos) / (nValid - nEos));
      const tF = new Int32Array(nValid);
      const tB = new Int32Array(nValid);
      let n = 0;
      for (let p = 0; p < nValid; p++) {
        const u = this.#rng.nextFloat32(); // one draw per valid pair, like torch.rand(n_valid)
        if (isEos[p] || u < probability) {
          tF[n] = valid.tF[p];
          tB[n] = valid.tB[p];
          n++;
        }
      }
      sampled = { tF: tF.slice(0, n), tB: tB.slice(0, n) };
    }
    this.#updateStats(nValid, sampled.tF.length);
    return sampled;
  }

  /** The reference's `_update_pair_stats`. */
  #updateStats(nValid: number, nSampled: number): void {
    this.#nIters += 1;
    const alpha = Math.min(Math.max(1 / this.#nIters, 0.001), 0.1);
    this.#avgValid = this.#avgValid === null
      ? nValid
      : (1 - alpha) * this.#avgValid + alpha * nValid;
    this.#avgSampled = this.#avgSampled === null
      ? nSampled
      : (1 - alpha) * this.#avgSampled + alpha * nSampled;
  }

  /** A copy of the running averages and RNG state (JSON-serialisable). */
  getState(): PairSamplerState {
    return {
      avgValidPairs: this.#avgValid,
      avgSampledPairs: this.#avgSampled,
      nItersAveraged: this.#nIters,
      rng: this.#rng.getState(),
    };
  }

  /** Restores a state from {@linkcode PairSampler.getState}; throws on a malformed one. */
  setState(state: PairSamplerState): void {
    const avgOk = (x: unknown) => x === null || (typeof x === "number" && Number.isFinite(x));
    if (
      typeof state !== "object" || state === null || !avgOk(state.avgValidPairs) ||
      !avgOk(state.avgSampledPairs) || !Number.isSafeInteger(state.nItersAveraged) ||
      state.nItersAveraged < 0 || (state.avgValidPairs === null) !== (state.nItersAveraged === 0)
    ) {
      throw new Error(`Pair sampler state is malformed: ${JSON.stringify(state)}`);
    }
    this.#rng.setState(state.rng);
    this.#avgValid = state.avgValidPairs;
    this.#avgSampled = state.avgSampledPairs;
    this.#nIters = state.nItersAveraged;
  }
}

/**
 * The pairs, targets and loss weights of one micro-batch: the reference's `compute_loss`
 * turned into flat lists (rows in order, each row's pairs in the reference's order).
 *
 * Pair weight = `1 / (2 · chunk_size · n_chunks_of_row · B · gradientAccumSteps)` where the
 * row's pairs are cut into consecutive chunks of `pairBatchSize` (the last may be shorter, so
 * its pairs weigh more). Then `Σ_p weight[p]·(CE_next[p] + CE_prev[p])` equals the reference's
 * returned loss (which is already divided by `loss_div`), and its gradient is the reference's.
 *
 * Calls `sampler.sampleRow` once per row in order, so the sampler's averages advance by B.
 *
 * @param tokens (B, T) token ids, row-major.
 * @param batch B (the micro-batch size).
 * @param seqLen T.
 * @param sampler the run's pair sampler.
 * @param options `pairBatchSize` and `gradientAccumSteps`.
 * @returns the flat pair batch.
 *
 * @example
 * ```ts
 * import { buildPairBatch, PairSampler } from "./bst_pairs.ts";
 * const cfg = {
 *   eosTokenId: 9, blockSize: 3, contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1,
 *   pairSubsampleRate: 1, singleGapPredictionMode: "next_token" as const,
 * };
 * const batch = buildPairBatch(new Int32Array([1, 2, 3]), 1, 3, new PairSampler(cfg, 0), {
 *   pairBatchSize: 2,
 * });
 * // pairs (0,1) (0,2) | (1,2): chunks of 2 and 1 → weights 1/(2·2·2), 1/(2·2·2), 1/(2·1·2)
 * console.log([...batch.fIndex], [...batch.bIndex], [...batch.weight]);
 * // [0, 0, 1] [1, 2, 2] [0.125, 0.125, 0.25]
 * ```
 */
export function buildPairBatch(
  tokens: Int32Array,
  batch: number,
  seqLen: number,
  sampler: PairSampler,
  options: PairBatchOptions,
): PairBatch {
  const { pairBatchSize } = options;
  const accum = options.gradientAccumSteps ?? 1;
  checkInt(pairBatchSize, 1, "pair_batch_size");
  checkInt(accum, 1, "gradient_accum_steps");
  checkInt(batch, 0, "Batch size");
  checkInt(seqLen, 0, "Row length");
  if (tokens.length !== batch * seqLen) {
    throw new Error(
      `Token batch has ${tokens.length} ids, expected ${batch} × ${seqLen} = ${batch * seqLen}`,
    );
  }
  const rows: RowPairs[] = [];
  const rowOffsets = new Int32Array(batch + 1);
  for (let b = 0; b < batch; b++) {
    const pairs = sampler.sampleRow(tokens.subarray(b * seqLen, (b + 1) * seqLen));
    rows.push(pairs);
    rowOffsets[b + 1] = rowOffsets[b] + pairs.tF.length;
  }
  const count = rowOffsets[batch];
  const out: PairBatch = {
    count,
    fIndex: new Int32Array(count),
    bIndex: new Int32Array(count),
    nextTarget: new Int32Array(count),
    prevTarget: new Int32Array(count),
    weight: new Float32Array(count),
    rowOffsets,
  };
  const eos = sampler.cfg.eosTokenId;
  const eosMode = sampler.cfg.singleGapPredictionMode === "eos";
  for (let b = 0; b < batch; b++) {
    const { tF, tB } = rows[b];
    const n = tF.length;
    const base = b * seqLen;
    const nChunks = Math.ceil(n / pairBatchSize);
    for (let c = 0; c < nChunks; c++) {
      const first = c * pairBatchSize;
      const end = Math.min(first + pairBatchSize, n);
      const w = 1 / (2 * (end - first) * nChunks * batch * accum);
      out.weight.fill(w, rowOffsets[b] + first, rowOffsets[b] + end);
    }
    // the same targets as pairTargets(), written in place
    for (let p = 0, q = rowOffsets[b]; p < n; p++, q++) {
      const f = base + tF[p];
      const k = base + tB[p];
      out.fIndex[q] = f;
      out.bIndex[q] = k;
      const gapOne = eosMode && k - f === 1;
      out.nextTarget[q] = gapOne ? eos : tokens[f + 1];
      out.prevTarget[q] = gapOne ? eos : tokens[k - 1];
    }
  }
  return out;
}
