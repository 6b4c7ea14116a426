import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import {
  buildCsr,
  planGatherPairs,
  planGatherPairsBackward,
  planGatherRows,
  planGatherRowsBackward,
  uploadCsr,
} from "../../src/gpu/gather.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

/** Random indices in [0, n) with repeats; every seventh is −1 (padding). */
function indices(P: number, n: number, seed: number): Int32Array {
  const r = rng(seed);
  const out = new Int32Array(P);
  for (let p = 0; p < P; p++) out[p] = p % 7 === 6 ? -1 : Math.floor(r() * n);
  return out;
}

function gatherCpu(src: Float32Array, C: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * C);
  idx.forEach((r, p) => {
    if (r >= 0) out.set(src.subarray(r * C, (r + 1) * C), p * C);
  });
  return out;
}

/** base[n] + Σ_{p: idx[p]=n} dout[p, col0 : col0 + C], summed in float64. */
function scatterCpu(
  base: Float32Array,
  C: number,
  dout: Float32Array,
  stride: number,
  col0: number,
  idx: Int32Array,
): Float64Array {
  const out = Float64Array.from(base);
  idx.forEach((r, p) => {
    if (r < 0) return;
    for (let c = 0; c < C; c++) out[r * C + c] += dout[p * stride + col0 + c];
  });
  return out;
}

const SIZES: [number, number, number, number, number][] = [
  // P, Na, Ca, Nb, Cb
  [1, 1, 1, 1, 3],
  [37, 5, 7, 9, 6],
  [129, 69, 33, 69, 33],
  [1000, 13, 5, 300, 17],
];

for (const [P, Na, Ca, Nb, Cb] of SIZES) {
  Deno.test(`planGatherPairs() and planGatherPairsBackward() match the CPU at P=${P} Ca=${Ca} Cb=${Cb}`, async () => {
    const gpu = await getGpu();
    const W = Ca + Cb;
    const a = randomArray(Na * Ca, 1);
    const b = randomArray(Nb * Cb, 2);
    const ia = indices(P, Na, 3);
    const ib = indices(P, Nb, 4);
    ia[0] = Na - 1; // a repeated index and the last row
    if (P > 1) ia[P - 1] = Na - 1;
    const ta = uploadTensor(gpu, a, [Na, Ca], "test.g.a");
    const tb = uploadTensor(gpu, b, [Nb, Cb], "test.g.b");
    const tia = uploadTensor(gpu, ia, [P], "test.g.ia");
    const tib = uploadTensor(gpu, ib, [P], "test.g.ib");
    const out = createTensor(gpu, [P, W], "test.g.out");
    const dout = randomArray(P * W, 5);
    const tdout = uploadTensor(gpu, dout, [P, W], "test.g.dout");
    const da0 = randomArray(Na * Ca, 6);
    const db0 = randomArray(Nb * Cb, 7);
    const da = uploadTensor(gpu, da0, [Na, Ca], "test.g.da");
    const db = uploadTensor(gpu, db0, [Nb, Cb], "test.g.db");
    const csrA = uploadCsr(gpu, buildCsr(ia, Na), "test.g.csr_a");
    const csrB = uploadCsr(gpu, buildCsr(ib, Nb), "test.g.csr_b");
    await run(gpu, [
      ...await planGatherPairs(gpu, out, ta, tb, tia, tib),
      ...await planGatherPairsBackward(gpu, da, db, tdout, csrA, csrB),
    ]);
    const ga = gatherCpu(a, Ca, ia);
    const gb = gatherCpu(b, Cb, ib);
    const want = new Float32Array(P * W);
    for (let p = 0; p < P; p++) {
      want.set(ga.subarray(p * Ca, (p + 1) * Ca), p * W);
      want.set(gb.subarray(p * Cb, (p + 1) * Cb), p * W + Ca);
    }
    assertClose(await readTensor(gpu, out), want, `pairs P=${P}`, 0, 0);
    assertClose(await readTensor(gpu, da), scatterCpu(da0, Ca, dout, W, 0, ia), "da", 1e-5, 1e-5);
    assertClose(await readTensor(gpu, db), scatterCpu(db0, Cb, dout, W, Ca, ib), "db", 1e-5, 1e-5);
  });
}

Deno.test("planGatherRows() and planGatherRowsBackward() match the CPU with repeats, overwrite", async () => {
  const gpu = await getGpu();
  const [P, N, C] = [37, 4, 129];
  const a = randomArray(N * C, 8);
  const idx = indices(P, N, 9);
  const ta = uploadTensor(gpu, a, [N, C], "test.gr.a");
  const tidx = uploadTensor(gpu, idx, [P], "test.gr.idx");
  const out = createTensor(gpu, [P, C], "test.gr.out");
  const dout = randomArray(P * C, 10);
  const tdout = uploadTensor(gpu, dout, [P, C], "test.gr.dout");
  const da = uploadTensor(gpu, randomArray(N * C, 11), [N, C], "test.gr.da");
  const csr = uploadCsr(gpu, buildCsr(idx, N), "test.gr.csr");
  const bwd = await planGatherRowsBackward(gpu, da, tdout, csr, false);
  await run(gpu, [...await planGatherRows(gpu, out, ta, tidx), ...bwd]);
  assertClose(await readTensor(gpu, out), gatherCpu(a, C, idx), "rows", 0, 0);
  const want = scatterCpu(new Float32Array(N * C), C, dout, C, 0, idx);
  const first = await readTensor(gpu, da);
  assertClose(first, want, "da overwrite", 1e-5, 1e-5);
  await run(gpu, bwd);
  const second = await readTensor(gpu, da);
  if (!first.every((v, i) => Object.is(v, second[i]))) throw new Error("rerun differs");
});

Deno.test("planGatherPairs() plans nothing for P=0; backward is a no-op or zeroes when overwriting", async () => {
  const gpu = await getGpu();
  const a = uploadTensor(gpu, randomArray(6, 1), [3, 2], "test.g0.a");
  const b = uploadTensor(gpu, randomArray(12, 2), [4, 3], "test.g0.b");
  const idx = createTensor(gpu, [0], "test.g0.idx", "i32");
  const out = createTensor(gpu, [0, 5], "test.g0.out");
  const fwd = await planGatherPairs(gpu, out, a, b, idx, idx);
  if (fwd.length !== 0) throw new Error("expected no dispatch");
  const csrA = uploadCsr(gpu, buildCsr([], 3), "test.g0.csr_a");
  const csrB = uploadCsr(gpu, buildCsr([], 4), "test.g0.csr_b");
  const bwd = await planGatherPairsBackward(gpu, a, b, out, csrA, csrB);
  if (bwd.length !== 0) throw new Error("expected no dispatch when accumulating");
  const zero = await planGatherPairsBackward(gpu, a, b, out, csrA, csrB, false);
  await run(gpu, zero);
  assertClose(await readTensor(gpu, a), new Float32Array(6), "da zeroed", 0, 0);
  assertClose(await readTensor(gpu, b), new Float32Array(12), "db zeroed", 0, 0);
});

Deno.test("planGatherRows() writes NaN for an index past the rows", async () => {
  const gpu = await getGpu();
  const a = uploadTensor(gpu, randomArray(6, 1), [3, 2], "test.gn.a");
  const idx = uploadTensor(gpu, new Int32Array([3, 0]), [2], "test.gn.idx");
  const out = createTensor(gpu, [2, 2], "test.gn.out");
  await run(gpu, await planGatherRows(gpu, out, a, idx));
  const got = await readTensor(gpu, out);
  if (!Number.isNaN(got[0]) || !Number.isNaN(got[1]) || Number.isNaN(got[2])) {
    throw new Error(`unexpected ${got}`);
  }
});

Deno.test("planGatherPairsBackward() rejects CSR offsets of the wrong length", async () => {
  const gpu = await getGpu();
  const da = createTensor(gpu, [3, 2], "test.gb.da");
  const db = createTensor(gpu, [4, 3], "test.gb.db");
  const dout = createTensor(gpu, [2, 5], "test.gb.dout");
  const csr = uploadCsr(gpu, buildCsr([0, 1], 2), "test.gb.csr");
  let message = "";
  try {
    await planGatherPairsBackward(gpu, da, db, dout, csr, csr);
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("must be i32 with 4 elements")) throw new Error(`unexpected: "${message}"`);
});
