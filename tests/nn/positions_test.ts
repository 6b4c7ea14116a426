import assert from "node:assert/strict";
import {
  backwardPositions,
  documentIds,
  documentLayout,
  forwardPositions,
} from "../../src/nn/positions.ts";
import { rng } from "../_util.ts";

const E = 9; // EOS in these tests

/** The reference's cumsum/cummax/roll/flip formulation, literally. */
function referenceLayout(row: number[], eos: number) {
  const T = row.length;
  const cummaxPos = (r: number[]) => {
    let m = -1;
    return r.map((tok, i) => {
      m = Math.max(m, tok === eos ? i : -1);
      return i - m;
    });
  };
  const posF = cummaxPos(row);
  const posB = cummaxPos([...row].reverse()).reverse();
  let c = 0;
  const docF = row.map((tok) => (c += tok === eos ? 1 : 0));
  const docB = docF.map((_, i) => (i === 0 ? 0 : docF[i - 1])); // roll(1), [0] = 0
  assert.equal(posF.length, T);
  return { posF, posB, docF, docB };
}

function layoutOf(row: number[]) {
  const l = documentLayout(new Int32Array(row), 1, row.length, E);
  return { posF: [...l.posF], posB: [...l.posB], docF: [...l.docF], docB: [...l.docB] };
}

Deno.test("documentLayout() reproduces the document-relative example A B C E D F G E I J", () => {
  const row = [0, 1, 2, E, 3, 4, 5, E, 6, 7];
  const l = layoutOf(row);
  assert.deepEqual(l.posF, [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]);
  assert.deepEqual(l.posB, [3, 2, 1, 0, 3, 2, 1, 0, 2, 1]);
  assert.deepEqual(l.docF, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]);
  assert.deepEqual(l.docB, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]);
});

Deno.test("documentLayout() reproduces the model_bst.py docstring example", () => {
  // [A, B, C, EOS, D, E, F, G, H, EOS, I, J]
  const row = [0, 1, 2, E, 3, 4, 5, 6, 7, E, 8, 1];
  const l = layoutOf(row);
  assert.deepEqual(l.posF, [1, 2, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2]);
  assert.deepEqual(l.posB, [3, 2, 1, 0, 5, 4, 3, 2, 1, 0, 2, 1]);
});

Deno.test("documentLayout() on a row starting with EOS", () => {
  const l = layoutOf([E, 1, 2, 3]);
  assert.deepEqual(l.posF, [0, 1, 2, 3]);
  assert.deepEqual(l.posB, [0, 3, 2, 1]);
  assert.deepEqual(l.docF, [1, 1, 1, 1]);
  assert.deepEqual(l.docB, [0, 1, 1, 1]);
});

Deno.test("documentLayout() on a row without EOS: forward from 1, backward down to 1", () => {
  const l = layoutOf([1, 2, 3, 4]);
  assert.deepEqual(l.posF, [1, 2, 3, 4]);
  assert.deepEqual(l.posB, [4, 3, 2, 1]);
  assert.deepEqual(l.docF, [0, 0, 0, 0]);
  assert.deepEqual(l.docB, [0, 0, 0, 0]);
});

Deno.test("documentLayout() on a row ending with EOS, and all-EOS rows", () => {
  const l = layoutOf([1, 2, 3, E]);
  assert.deepEqual(l.posF, [1, 2, 3, 0]);
  assert.deepEqual(l.posB, [3, 2, 1, 0]);
  assert.deepEqual(l.docF, [0, 0, 0, 1]);
  assert.deepEqual(l.docB, [0, 0, 0, 0]);
  const all = layoutOf([E, E, E]);
  assert.deepEqual(all.posF, [0, 0, 0]);
  assert.deepEqual(all.posB, [0, 0, 0]);
  assert.deepEqual(all.docF, [1, 2, 3]);
  assert.deepEqual(all.docB, [0, 1, 2]);
});

Deno.test("documentLayout() matches the reference formulation on random batches, rows independent", () => {
  const r = rng(11);
  for (let trial = 0; trial < 50; trial++) {
    const B = 1 + Math.floor(r() * 4);
    const T = 1 + Math.floor(r() * 37);
    const tokens = Int32Array.from({ length: B * T }, () => (r() < 0.2 ? E : Math.floor(r() * 9)));
    const l = documentLayout(tokens, B, T, E);
    for (let b = 0; b < B; b++) {
      const row = [...tokens.subarray(b * T, (b + 1) * T)];
      const ref = referenceLayout(row, E);
      const sl = (a: Int32Array) => [...a.subarray(b * T, (b + 1) * T)];
      assert.deepEqual(sl(l.posF), ref.posF);
      assert.deepEqual(sl(l.posB), ref.posB);
      assert.deepEqual(sl(l.docF), ref.docF);
      assert.deepEqual(sl(l.docB), ref.docB);
    }
    assert.deepEqual(forwardPositions(tokens, B, T, E), l.posF);
    assert.deepEqual(backwardPositions(tokens, B, T, E), l.posB);
    assert.deepEqual(documentIds(tokens, B, T, E).docB, l.docB);
  }
});

Deno.test("documentLayout() positions stay within [0, T] (the RoPE table has T + 1 rows)", () => {
  const T = 16;
  const l = documentLayout(new Int32Array(T).fill(3), 1, T, E);
  assert.equal(Math.max(...l.posF, ...l.posB), T);
  assert.equal(Math.min(...l.posF, ...l.posB), 1);
});

Deno.test("documentLayout() rejects a token array of the wrong length", () => {
  assert.throws(
    () => documentLayout(new Int32Array(5), 2, 3, E),
    /Token batch has 5 ids, expected 2 × 3 = 6/,
  );
});
