/** Shared helpers for tests: closeness checks that print the max error, seeded data. */

import type { Generation } from "../src/inference/bst_sampling.ts";

/** Max absolute and relative error between `actual` and `expected`. */
export function maxErrors(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { abs: number; rel: number } {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: ${actual.length} vs ${expected.length}`);
  }
  let abs = 0;
  let rel = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= abs)) abs = Number.isNaN(d) ? Infinity : Math.max(abs, d);
    const r = d / Math.max(Math.abs(expected[i]), 1e-30);
    if (!(r <= rel)) rel = Number.isNaN(r) ? Infinity : Math.max(rel, r);
  }
  return { abs, rel };
}

/**
 * Asserts every element satisfies |a - e| <= atol + rtol * |e| and prints the max errors
 * with `name`.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  name: string,
  atol = 1e-5,
  rtol = 1e-4,
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${name}: length ${actual.length}, expected ${expected.length}`);
  }
  const { abs, rel } = maxErrors(actual, expected);
  console.log(`${name}: max abs err ${abs.toExponential(2)}, max rel err ${rel.toExponential(2)}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`${name}: element ${i} is ${a}, expected ${e} (atol ${atol}, rtol ${rtol})`);
    }
  }
}

/** A small seeded PRNG (mulberry32) for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` uniform values in [lo, hi) from a seeded PRNG. */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** The fields of a `deno task infer` record, in the reference's order. */
export const GENERATION_KEYS = [
  "prompt",
  "goal",
  "sampling_method",
  "generated",
  "score",
  "greedy",
  "greedy_score",
  "top_n",
  "original",
];

/**
 * An infer output file: its records, and how many reference separator lines (written before
 * each run appended to an existing file) it holds.
 */
export async function readInferOutput(
  path: string,
): Promise<{ sessions: number; records: Generation[] }> {
  const separator = "--------------------- NEW SESSION --------------------";
  const lines = (await Deno.readTextFile(path)).trim().split("\n");
  return {
    sessions: lines.filter((l) => l === separator).length,
    records: lines.filter((l) => l !== separator).map((l) => JSON.parse(l)),
  };
}
