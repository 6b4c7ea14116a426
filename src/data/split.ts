/**
 * The reference's train/validation split: scikit-learn's
 * `train_test_split(data, test_size=0.1, random_state=42)` draws
 * `numpy.random.RandomState(42).permutation(n)`; the first ceil(test_size·n) indices are the
 * validation (test) rows and the rest the training rows, both in permutation order.
 *
 * @module
 */

import { numpyPermutation } from "./mt19937.ts";

/**
 * Indices of the reference's train/test split of `n` rows.
 *
 * @param n number of rows.
 * @param options `testSize` (fraction, default 0.1) and `seed` (default 42).
 * @returns `test`: the first ceil(testSize·n) entries of the permutation; `train`: the rest.
 *
 * @example
 * ```ts
 * import { trainTestSplitIndices } from "./split.ts";
 * const { train, test } = trainTestSplitIndices(20);
 * console.log([...test], train.length); // [0, 17] 18
 * ```
 */
export function trainTestSplitIndices(
  n: number,
  options: { testSize?: number; seed?: number } = {},
): { train: Int32Array; test: Int32Array } {
  const testSize = options.testSize ?? 0.1;
  const seed = options.seed ?? 42;
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`Row count must be a non-negative integer, got ${n}`);
  }
  if (!(testSize > 0 && testSize < 1)) {
    throw new Error(`testSize must be in (0, 1), got ${testSize}`);
  }
  const perm = numpyPermutation(n, seed);
  const nTest = Math.ceil(testSize * n);
  return { test: perm.slice(0, nTest), train: perm.slice(nTest) };
}
