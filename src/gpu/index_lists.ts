/**
 * CSR index lists for deterministic scatter-adds without float atomics.
 *
 * A scatter `dst[idx[p]] += src[p]` is rewritten as a gather: for each destination `d`, the
 * kernel sums `src[p]` over `items[offsets[d] .. offsets[d+1])` in increasing `p` — a fixed
 * order, so results are bit-reproducible. The lists are built on the CPU from index arrays
 * that the CPU made anyway (token ids, BST pair positions), so no activation is read back.
 *
 * @module
 */

/** Destination-major index lists: `items[offsets[d] .. offsets[d + 1])` are the sources of d. */
export interface CsrIndex {
  /** (n + 1) start offsets into `items`. */
  offsets: Int32Array;
  /** Source positions grouped by destination, increasing within each group. */
  items: Int32Array;
}

/**
 * Groups source positions by destination.
 *
 * @param indices destination of each source position; negative entries are skipped.
 * @param n number of destinations; every index must be < n.
 * @returns offsets (n + 1) and items (count of non-negative indices).
 *
 * @example
 * ```ts
 * import { buildCsr } from "./index_lists.ts";
 * const { offsets, items } = buildCsr(new Int32Array([2, 0, 2, -1]), 3);
 * // destination 0 <- [1], destination 1 <- [], destination 2 <- [0, 2]
 * console.log([...offsets], [...items]); // [0, 1, 1, 3] [1, 0, 2]
 * ```
 */
export function buildCsr(indices: ArrayLike<number>, n: number): CsrIndex {
  const offsets = new Int32Array(n + 1);
  for (let p = 0; p < indices.length; p++) {
    const d = indices[p];
    if (d < 0) continue;
    if (d >= n || !Number.isInteger(d)) {
      throw new Error(`Index ${d} at position ${p} is out of range for ${n} destinations`);
    }
    offsets[d + 1]++;
  }
  for (let d = 0; d < n; d++) offsets[d + 1] += offsets[d];
  const items = new Int32Array(offsets[n]);
  const fill = offsets.slice(0, n);
  for (let p = 0; p < indices.length; p++) {
    const d = indices[p];
    if (d >= 0) items[fill[d]++] = p;
  }
  return { offsets, items };
}
