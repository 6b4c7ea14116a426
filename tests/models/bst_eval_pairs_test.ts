import assert from "node:assert/strict";
import { buildEvalPairs } from "../../src/models/bst_eval_pairs.ts";
import { rng } from "../_util.ts";

/**
 * The reference's `evaluation_loss` index arithmetic with no prefix/suffix, literally: states
 * are named, `F = cat(eos, fwd, eos)`, `Bk = cat(eos, bwd, eos)` per row, gen = [0, T−1],
 * prefix index 0, suffix index T+1; next uses `F[i, gen]` with `Bk[i, T+1]`, prev uses
 * `Bk[i, gen+2]` with `F[i, 0]`.
 */
function referenceEval(B: number, T: number, tokens: Int32Array) {
  const E = B * T; // the lone-EOS state's index in our tables
  const next: [number, number, number][] = [];
  const prev: [number, number, number][] = [];
  for (let i = 0; i < B; i++) {
    const F = [E, ...Array.from({ length: T }, (_, t) => i * T + t), E];
    const Bk = [E, ...Array.from({ length: T }, (_, t) => i * T + t), E];
    const genStart = 0;
    const genEnd = T - 1;
    const prefixEmb = F[0];
    const suffixEmb = Bk[T + 1];
    for (let j = genStart; j <= genEnd; j++) next.push([F[j], suffixEmb, tokens[i * T + j]]);
    for (let j = genStart; j <= genEnd; j++) prev.push([prefixEmb, Bk[j + 2], tokens[i * T + j]]);
  }
  return { next, prev };
}

Deno.test("buildEvalPairs() matches the reference's concatenate-and-slice indexing", () => {
  const r = rng(3);
  for (const [B, T] of [[1, 1], [1, 2], [3, 16], [2, 37]]) {
    const tokens = Int32Array.from({ length: B * T }, () => Math.floor(r() * 23));
    const got = buildEvalPairs(tokens, B, T);
    const ref = referenceEval(B, T, tokens);
    assert.equal(got.eosState, B * T);
    const triples = (l: typeof got.next) =>
      [...l.fIndex].map((f, p): [number, number, number] => [f, l.bIndex[p], l.target[p]]);
    assert.deepEqual(triples(got.next), ref.next);
    assert.deepEqual(triples(got.prev), ref.prev);
  }
});

Deno.test("buildEvalPairs() weights give the mean over rows of each row's mean CE", () => {
  const B = 3;
  const T = 5;
  const tokens = new Int32Array(B * T);
  const { next, prev } = buildEvalPairs(tokens, B, T, 2);
  const r = rng(8);
  const ce = Array.from({ length: B * T }, () => 4 * r());
  let weighted = 0;
  for (let p = 0; p < B * T; p++) weighted += next.weight[p] * ce[p];
  let rowMeans = 0;
  for (let b = 0; b < B; b++) {
    rowMeans += ce.slice(b * T, (b + 1) * T).reduce((x, y) => x + y, 0) / T;
  }
  assert.ok(Math.abs(weighted - rowMeans / B / 2) < 1e-6);
  assert.deepEqual(next.weight, prev.weight);
});

Deno.test("buildEvalPairs() with T = 1 uses only lone-EOS states", () => {
  const { next, prev } = buildEvalPairs(new Int32Array([7, 8]), 2, 1);
  assert.deepEqual([...next.fIndex], [2, 2]);
  assert.deepEqual([...next.bIndex], [2, 2]);
  assert.deepEqual([...prev.fIndex], [2, 2]);
  assert.deepEqual([...prev.bIndex], [2, 2]);
  assert.deepEqual([...next.target], [7, 8]);
});

Deno.test("buildEvalPairs() rejects bad shapes", () => {
  assert.throws(() => buildEvalPairs(new Int32Array(4), 2, 3), /expected 2 × 3 = 6/);
  assert.throws(() => buildEvalPairs(new Int32Array(0), 1, 0), /Row length/);
  assert.throws(() => buildEvalPairs(new Int32Array(2), 1, 2, 0), /gradient_accum_steps/);
});
