import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import {
  checkTokens,
  planEmbeddingBackward,
  planEmbeddingForward,
} from "../../src/gpu/embedding.ts";
import { uploadCsr } from "../../src/gpu/gather.ts";
import { buildCsr } from "../../src/gpu/index_lists.ts";
import { run } from "../../src/gpu/kernel.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

const V = 11; // small vocabulary: tokens repeat

function randomTokens(N: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: N }, () => Math.floor(r() * V));
}

/** float64 reference of the backward: dtable0 + Σ_{n: tokens[n] = v} dout[n]. */
function embeddingBackwardRef(
  dtable0: ArrayLike<number>,
  dout: ArrayLike<number>,
  tokens: Int32Array,
  C: number,
): Float64Array {
  const d = Float64Array.from(dtable0);
  tokens.forEach((v, n) => {
    for (let c = 0; c < C; c++) d[v * C + c] += dout[n * C + c];
  });
  return d;
}

async function gpuEmbedding(tokens: Int32Array, table: Float32Array, dout: Float32Array) {
  const gpu = await getGpu();
  const N = tokens.length;
  const C = table.length / V;
  const label = `test.emb.${N}x${C}`;
  const dtable0 = randomArray(V * C, N + C + 1);
  const tTokens = uploadTensor(gpu, tokens, [N], `${label}.tokens`, "i32");
  const tTable = uploadTensor(gpu, table, [V, C], `${label}.table`);
  const out = createTensor(gpu, [N, C], `${label}.out`);
  const dtable = uploadTensor(gpu, dtable0, [V, C], `${label}.dtable`);
  const tDout = uploadTensor(gpu, dout, [N, C], `${label}.dout`);
  const csr = uploadCsr(gpu, buildCsr(tokens, V), `${label}.csr`);
  await run(gpu, [
    await planEmbeddingForward(gpu, out, tTokens, tTable),
    await planEmbeddingBackward(gpu, dtable, tDout, csr),
  ]);
  return { dtable0, out: await readTensor(gpu, out), dtable: await readTensor(gpu, dtable) };
}

for (const N of [1, 7, 37, 129]) {
  for (const C of [1, 7, 37, 130]) {
    Deno.test(`planEmbeddingForward()/planEmbeddingBackward() match the CPU at N=${N}, C=${C}`, async () => {
      const tokens = randomTokens(N, N * 1000 + C);
      const table = randomArray(V * C, N + C);
      const dout = randomArray(N * C, N + C + 2);
      const got = await gpuEmbedding(tokens, table, dout);
      const want = new Float32Array(N * C);
      tokens.forEach((v, n) => want.set(table.subarray(v * C, (v + 1) * C), n * C));
      assertClose(got.out, want, `embedding N=${N} C=${C} out`, 0, 0);
      const dtable = embeddingBackwardRef(got.dtable0, dout, tokens, C);
      assertClose(got.dtable, dtable, `embedding N=${N} C=${C} dtable`, 1e-6, 1e-5);
    });
  }
}

Deno.test("planEmbeddingBackward() matches finite differences at N=37, C=7", async () => {
  const [N, C] = [37, 7];
  const tokens = randomTokens(N, 3);
  const table = randomArray(V * C, 4);
  const dout = randomArray(N * C, 5); // loss L = Σ dout·out
  const got = await gpuEmbedding(tokens, table, dout);
  const p = Float64Array.from(table);
  const loss = () => {
    let s = 0;
    tokens.forEach((v, n) => {
      for (let c = 0; c < C; c++) s += p[v * C + c] * dout[n * C + c];
    });
    return s;
  };
  const h = 1e-3; // the loss is linear in the table: FD is exact up to rounding
  const fd = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const old = p[i];
    p[i] = old + h;
    const lp = loss();
    p[i] = old - h;
    const lm = loss();
    p[i] = old;
    fd[i] = (lp - lm) / (2 * h) + got.dtable0[i];
  }
  assertClose(got.dtable, fd, "embedding FD dtable", 1e-5, 1e-5);
});

Deno.test("planEmbeddingBackward() is bit-identical across runs with a hot token", async () => {
  const N = 129;
  const tokens = randomTokens(N, 8).map((t, i) => (i % 3 === 0 ? 4 : t));
  const a = await gpuEmbedding(tokens, randomArray(V * 37, 1), randomArray(N * 37, 2));
  const b = await gpuEmbedding(tokens, randomArray(V * 37, 1), randomArray(N * 37, 2));
  assert.deepEqual(a.dtable, b.dtable);
});

Deno.test("planEmbeddingForward() writes zero rows for out-of-range tokens; checkTokens() rejects them", async () => {
  const gpu = await getGpu();
  const C = 7;
  const tokens = new Int32Array([-1, 3, V, 1 << 30]);
  const table = randomArray(V * C, 6);
  const out = uploadTensor(gpu, randomArray(4 * C, 7), [4, C], "test.emb.oob.out");
  await run(gpu, [
    await planEmbeddingForward(
      gpu,
      out,
      uploadTensor(gpu, tokens, [4], "test.emb.oob.tokens", "i32"),
      uploadTensor(gpu, table, [V, C], "test.emb.oob.table"),
    ),
  ]);
  const want = new Float32Array(4 * C);
  want.set(table.subarray(3 * C, 4 * C), C);
  assertClose(await readTensor(gpu, out), want, "embedding out of range", 0, 0);
  assert.throws(() => checkTokens(tokens, V), /Token -1 at position 0 is outside the vocabulary/);
  assert.throws(() => checkTokens([0, 10, 11], V), /Token 11 at position 2/);
  checkTokens([0, 10], V);
});

Deno.test("planEmbeddingBackward() rejects CSR lists built for another vocabulary", async () => {
  const gpu = await getGpu();
  const dtable = createTensor(gpu, [V, 3], "test.emb.bad.dtable");
  const dout = createTensor(gpu, [2, 3], "test.emb.bad.dout");
  const csr = uploadCsr(gpu, buildCsr([0, 1], V + 1), "test.emb.bad.csr");
  assert.throws(() => planEmbeddingBackward(gpu, dtable, dout, csr), /CSR lists do not match/);
});
