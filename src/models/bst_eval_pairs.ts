/**
 * Index lists for the BST evaluation losses `val_loss_next_token` and `val_loss_prev_token`:
 * the reference's `BST.evaluation_loss` with no prefix and no suffix
 * (`prefix_end_index = suffix_start_index = −1`, as `core_train._bst_next_prev_token_loss`
 * calls it), turned into gathers plus a weighted cross-entropy.
 *
 * What the reference computes (model_bst.py), for a batch (B, T):
 *
 * 1. `fwd, bwd = encoder(batch)`: both encoders on the rows themselves, (B, T, C) each, with
 *    the usual document-relative positions and masks. Nothing is prepended to the rows.
 * 2. `fwd_eos, bwd_eos = encoder(eos)`: both encoders on a sequence holding a single EOS
 *    (position 0, attending only to itself), (B, 1, C) — the same vector for every row.
 * 3. `F = cat(fwd_eos, fwd, fwd_eos)`, `Bk = cat(bwd_eos, bwd, bwd_eos)`: (B, T+2, C)
 *    concatenations of encoder **outputs** (not an encoder run on an EOS-padded row, which would
 *    differ: the row's first document would then see the leading EOS).
 * 4. Next-token loss of row i = mean over j in 0..T−1 of
 *    `CE(head_next(F[i, j], Bk[i, T+1]), row[j])`: the forward state of token j−1 (the lone
 *    EOS state for j = 0) with the lone-EOS backward state, predicting token j.
 * 5. Prev-token loss of row i = mean over j in 0..T−1 of
 *    `CE(head_prev(F[i, 0], Bk[i, j+2]), row[j])`: the lone-EOS forward state with the backward
 *    state of token j+1 (the lone EOS state for j = T−1), predicting token j.
 * 6. The trainer reports the mean over rows (and over micro-batches / batches).
 *
 * Here the GPU model builds a forward state table of (B·T + 1, C) rows — the row outputs
 * viewed as (B·T, C) followed by the lone-EOS forward output — and likewise a backward table;
 * index `B·T` ({@linkcode EvalPairs.eosState}) is the lone-EOS state. The text head runs on
 * `concat(Ftab[fIndex[p]], Btab[bIndex[p]])`; the next list uses the next-token logits, the
 * prev list the prev-token logits.
 *
 * @module
 */

/** One of the two evaluation losses as gathers and a weighted CE; every array is (B·T). */
export interface EvalPairList {
  /** (B·T) row into the forward state table (b·T + t, or B·T for the lone-EOS state). */
  fIndex: Int32Array;
  /** (B·T) row into the backward state table (b·T + t, or B·T for the lone-EOS state). */
  bIndex: Int32Array;
  /** (B·T) target token ids: entry b·T + j targets row b's token j. */
  target: Int32Array;
  /**
   * (B·T) weights 1/(T·B·gradientAccumSteps): `Σ weight·CE` is the mean over rows of each
   * row's mean CE, divided by the accumulation steps. Row b's own loss is the sum over its
   * entries b·T .. b·T+T−1 of `CE / T`.
   */
  weight: Float32Array;
}

/** The next- and prev-token evaluation lists of one micro-batch. */
export interface EvalPairs {
  /** Index of the lone-EOS state in both state tables: B·T. */
  eosState: number;
  /** Next-token loss: forward state of the previous token (or EOS) + lone-EOS backward state. */
  next: EvalPairList;
  /** Prev-token loss: lone-EOS forward state + backward state of the following token (or EOS). */
  prev: EvalPairList;
}

/**
 * Builds the evaluation-loss gathers and weights for a batch with no prefix/suffix.
 *
 * For row b and j in 0..T−1, with E = B·T the lone-EOS state:
 * - next: fIndex = (j = 0 ? E : b·T + j − 1), bIndex = E, target = row[j];
 * - prev: fIndex = E, bIndex = (j = T−1 ? E : b·T + j + 1), target = row[j].
 *
 * The encoders must also be run once on a one-token sequence `[EOS]` (forward and backward);
 * those outputs are state E.
 *
 * @param tokens (B, T) token ids, row-major.
 * @param batch B.
 * @param seqLen T (≥ 1).
 * @param gradientAccumSteps the trainer's `gradient_accum_steps` divisor (default 1).
 * @returns the next and prev lists, B·T entries each.
 *
 * @example
 * ```ts
 * import { buildEvalPairs } from "./bst_eval_pairs.ts";
 * const { eosState, next, prev } = buildEvalPairs(new Int32Array([4, 5, 6]), 1, 3);
 * console.log(eosState); // 3
 * console.log([...next.fIndex], [...next.bIndex]); // [3, 0, 1] [3, 3, 3]
 * console.log([...prev.fIndex], [...prev.bIndex]); // [3, 3, 3] [1, 2, 3]
 * console.log([...next.target], next.weight[0]); // [4, 5, 6] 0.3333333432674408
 * ```
 */
export function buildEvalPairs(
  tokens: ArrayLike<number>,
  batch: number,
  seqLen: number,
  gradientAccumSteps = 1,
): EvalPairs {
  if (!Number.isSafeInteger(batch) || batch < 0) {
    throw new Error(`Batch size must be a non-negative integer, got ${batch}`);
  }
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) {
    throw new Error(`Row length must be a positive integer, got ${seqLen}`);
  }
  if (!Number.isSafeInteger(gradientAccumSteps) || gradientAccumSteps < 1) {
    throw new Error(`gradient_accum_steps must be a positive integer, got ${gradientAccumSteps}`);
  }
  if (tokens.length !== batch * seqLen) {
    throw new Error(
      `Token batch has ${tokens.length} ids, expected ${batch} × ${seqLen} = ${batch * seqLen}`,
    );
  }
  const n = batch * seqLen;
  const eos = n;
  const list = (): EvalPairList => ({
    fIndex: new Int32Array(n),
    bIndex: new Int32Array(n),
    target: new Int32Array(n),
    weight: new Float32Array(n).fill(1 / (seqLen * batch * gradientAccumSteps)),
  });
  const next = list();
  const prev = list();
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < seqLen; j++) {
      const p = b * seqLen + j;
      next.fIndex[p] = j === 0 ? eos : p - 1;
      next.bIndex[p] = eos;
      next.target[p] = tokens[p];
      prev.fIndex[p] = eos;
      prev.bIndex[p] = j === seqLen - 1 ? eos : p + 1;
      prev.target[p] = tokens[p];
    }
  }
  return { eosState: eos, next, prev };
}
