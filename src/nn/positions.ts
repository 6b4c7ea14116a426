/**
 * Document-relative positions and document ids of packed rows, computed on
 * the CPU from the token ids the CPU already holds, for RoPE and the encoders' masks.
 *
 * Reference (microsoft/BST):
 * - `DocumentRelativePositions.create_position_indices` (model_base.py):
 *   `pos = arange(T) − cummax(where(tok == eos, arange(T), −1))`, so an EOS has position 0 and
 *   a row's first document (when the row does not start with EOS) starts at 1.
 *   `TransformerEncoder.create_position_indices` (model_bst.py) runs it on the flipped row and
 *   flips back for the backward positions.
 * - `TransformerEncoder.create_attention_masks` (model_bst.py) and `BST._create_valid_pairs`:
 *   `doc_f = cumsum(tok == eos)` (an EOS starts a new document), `doc_b = roll(doc_f, 1)` with
 *   `doc_b[0] = 0` (an EOS ends its document).
 *
 * Closed forms used here (same numbers): with `prev(i)` the last EOS at index ≤ i (−1 if none)
 * and `next(i)` the first EOS at index ≥ i (T if none), `posF[i] = i − prev(i)` and
 * `posB[i] = next(i) − i`. Positions lie in [0, T].
 *
 * @module
 */

/** Positions and document ids of a batch of rows; every array is (B, T), row-major. */
export interface DocumentLayout {
  /** (B, T) forward positions: distance to the last EOS at or before the token. */
  posF: Int32Array;
  /** (B, T) backward positions: distance to the first EOS at or after the token. */
  posB: Int32Array;
  /** (B, T) forward document ids: count of EOS up to and including the token. */
  docF: Int32Array;
  /** (B, T) backward document ids: `docF[t − 1]`, and 0 at t = 0. */
  docB: Int32Array;
}

function checkShape(tokens: ArrayLike<number>, batch: number, seqLen: number): void {
  if (!Number.isSafeInteger(batch) || batch < 0 || !Number.isSafeInteger(seqLen) || seqLen < 0) {
    throw new Error(`Batch shape must be non-negative integers, got (${batch}, ${seqLen})`);
  }
  if (tokens.length !== batch * seqLen) {
    throw new Error(
      `Token batch has ${tokens.length} ids, expected ${batch} × ${seqLen} = ${batch * seqLen}`,
    );
  }
}

/**
 * Forward document-relative positions (the reference's `create_position_indices`).
 *
 * @param tokens (B, T) token ids, row-major.
 * @param batch B.
 * @param seqLen T.
 * @param eosId the EOS token id.
 * @returns (B, T) positions: 0 at each EOS, counting up after it; 1 at a row's first token
 * unless it is EOS.
 *
 * @example
 * ```ts
 * import { forwardPositions } from "./positions.ts";
 * // A B C E D F G E I J with E = 9
 * const row = new Int32Array([0, 1, 2, 9, 3, 4, 5, 9, 6, 7]);
 * console.log([...forwardPositions(row, 1, 10, 9)]); // [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]
 * ```
 */
export function forwardPositions(
  tokens: ArrayLike<number>,
  batch: number,
  seqLen: number,
  eosId: number,
): Int32Array {
  checkShape(tokens, batch, seqLen);
  const out = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const base = b * seqLen;
    let lastEos = -1;
    for (let t = 0; t < seqLen; t++) {
      if (tokens[base + t] === eosId) lastEos = t;
      out[base + t] = t - lastEos;
    }
  }
  return out;
}

/**
 * Backward document-relative positions: the forward positions of the flipped row, flipped
 * back (the reference's `TransformerEncoder.create_position_indices`).
 *
 * @param tokens (B, T) token ids, row-major.
 * @param batch B.
 * @param seqLen T.
 * @param eosId the EOS token id.
 * @returns (B, T) positions: 0 at each EOS, counting up towards the row start; 1 at a row's
 * last token unless it is EOS.
 *
 * @example
 * ```ts
 * import { backwardPositions } from "./positions.ts";
 * const row = new Int32Array([0, 1, 2, 9, 3, 4, 5, 9, 6, 7]);
 * console.log([...backwardPositions(row, 1, 10, 9)]); // [3, 2, 1, 0, 3, 2, 1, 0, 2, 1]
 * ```
 */
export function backwardPositions(
  tokens: ArrayLike<number>,
  batch: number,
  seqLen: number,
  eosId: number,
): Int32Array {
  checkShape(tokens, batch, seqLen);
  const out = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const base = b * seqLen;
    let nextEos = seqLen;
    for (let t = seqLen - 1; t >= 0; t--) {
      if (tokens[base + t] === eosId) nextEos = t;
      out[base + t] = nextEos - t;
    }
  }
  return out;
}

/**
 * Document ids for the encoders' masks and the pair validity rule.
 *
 * The forward encoder lets token i attend j ≤ i with `docF[j] == docF[i]`; the backward encoder
 * lets i attend j ≥ i with `docB[j] == docB[i]`; a pair (t_f, t_b) is valid when
 * `docF[t_f] == docB[t_b]`.
 *
 * @param tokens (B, T) token ids, row-major.
 * @param batch B.
 * @param seqLen T.
 * @param eosId the EOS token id.
 * @returns `docF` (B, T) = cumulative EOS count including the token; `docB` (B, T) =
 * `docF` shifted right by one with 0 first.
 *
 * @example
 * ```ts
 * import { documentIds } from "./positions.ts";
 * const { docF, docB } = documentIds(new Int32Array([0, 9, 1, 9]), 1, 4, 9);
 * console.log([...docF], [...docB]); // [0, 1, 1, 2] [0, 0, 1, 1]
 * ```
 */
export function documentIds(
  tokens: ArrayLike<number>,
  batch: number,
  seqLen: number,
  eosId: number,
): { docF: Int32Array; docB: Int32Array } {
  checkShape(tokens, batch, seqLen);
  const docF = new Int32Array(batch * seqLen);
  const docB = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const base = b * seqLen;
    let count = 0;
    for (let t = 0; t < seqLen; t++) {
      docB[base + t] = count; // docF[t − 1], 0 at t = 0
      if (tokens[base + t] === eosId) count++;
      docF[base + t] = count;
    }
  }
  return { docF, docB };
}

/**
 * Everything the encoders need from the token ids: forward/backward positions (RoPE) and
 * forward/backward document ids (masks).
 *
 * @param tokens (B, T) token ids, row-major.
 * @param batch B.
 * @param seqLen T.
 * @param eosId the EOS token id.
 * @returns the four (B, T) arrays.
 *
 * @example
 * ```ts
 * import { documentLayout } from "./positions.ts";
 * const { posF, posB } = documentLayout(new Int32Array([9, 4, 5]), 1, 3, 9);
 * console.log([...posF], [...posB]); // [0, 1, 2] [0, 2, 1]
 * ```
 */
export function documentLayout(
  tokens: ArrayLike<number>,
  batch: number,
  seqLen: number,
  eosId: number,
): DocumentLayout {
  const { docF, docB } = documentIds(tokens, batch, seqLen, eosId);
  return {
    posF: forwardPositions(tokens, batch, seqLen, eosId),
    posB: backwardPositions(tokens, batch, seqLen, eosId),
    docF,
    docB,
  };
}
