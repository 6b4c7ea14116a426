import assert from "node:assert/strict";
import { planConcat, planSplit } from "../../src/gpu/concat.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray } from "../_util.ts";

/** CPU reference: y (N, Ca+Cb) = [a | b]. */
function concatRef(a: ArrayLike<number>, b: ArrayLike<number>, N: number, Ca: number, Cb: number) {
  const y = new Float64Array(N * (Ca + Cb));
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < Ca; c++) y[n * (Ca + Cb) + c] = a[n * Ca + c];
    for (let c = 0; c < Cb; c++) y[n * (Ca + Cb) + Ca + c] = b[n * Cb + c];
  }
  return y;
}

async function gpuConcatSplit(N: number, Ca: number, Cb: number, accumulate: boolean) {
  const gpu = await getGpu();
  const C = Ca + Cb;
  const label = `test.concat.${N}x${Ca}x${Cb}`;
  const a = randomArray(N * Ca, N + Ca);
  const b = randomArray(N * Cb, N + Cb + 1);
  const dy = randomArray(N * C, N + C + 2);
  const da0 = randomArray(N * Ca, 3);
  const db0 = randomArray(N * Cb, 4);
  const y = createTensor(gpu, [N, C], `${label}.y`);
  const da = uploadTensor(gpu, da0, [N, Ca], `${label}.da`);
  const db = uploadTensor(gpu, db0, [N, Cb], `${label}.db`);
  await run(gpu, [
    await planConcat(
      gpu,
      y,
      uploadTensor(gpu, a, [N, Ca], `${label}.a`),
      uploadTensor(gpu, b, [N, Cb], `${label}.b`),
    ),
    await planSplit(gpu, da, db, uploadTensor(gpu, dy, [N, C], `${label}.dy`), accumulate),
  ]);
  return {
    a,
    b,
    dy,
    da0,
    db0,
    y: await readTensor(gpu, y),
    da: await readTensor(gpu, da),
    db: await readTensor(gpu, db),
  };
}

for (const N of [1, 7, 37, 129]) {
  for (const [Ca, Cb] of [[1, 1], [7, 37], [130, 7], [37, 130]]) {
    for (const accumulate of [false, true]) {
      Deno.test(
        `planConcat()/planSplit() match the CPU at N=${N}, Ca=${Ca}, Cb=${Cb}` +
          (accumulate ? " (+=)" : ""),
        async () => {
          const r = await gpuConcatSplit(N, Ca, Cb, accumulate);
          const tag = `concat N=${N} Ca=${Ca} Cb=${Cb}`;
          assertClose(r.y, concatRef(r.a, r.b, N, Ca, Cb), `${tag} y`, 0, 0);
          const da = new Float32Array(N * Ca);
          const db = new Float32Array(N * Cb);
          for (let n = 0; n < N; n++) {
            for (let c = 0; c < Ca; c++) {
              da[n * Ca + c] = (accumulate ? r.da0[n * Ca + c] : 0) + r.dy[n * (Ca + Cb) + c];
            }
            for (let c = 0; c < Cb; c++) {
              db[n * Cb + c] = (accumulate ? r.db0[n * Cb + c] : 0) + r.dy[n * (Ca + Cb) + Ca + c];
            }
          }
          assertClose(r.da, da, `${tag} da`, 0, 0);
          assertClose(r.db, db, `${tag} db`, 0, 0);
        },
      );
    }
  }
}

Deno.test("planSplit() matches finite differences of concat at N=7, Ca=7, Cb=37", async () => {
  const [N, Ca, Cb] = [7, 7, 37];
  const r = await gpuConcatSplit(N, Ca, Cb, false);
  // Loss L = Σ dy·concat(a, b): ∂L/∂a and ∂L/∂b by central differences (exact: L is linear).
  const fd = (x: Float32Array, which: "a" | "b") => {
    const p = Float64Array.from(x);
    const g = new Float64Array(p.length);
    const h = 1e-3;
    const loss = () => {
      const y = which === "a" ? concatRef(p, r.b, N, Ca, Cb) : concatRef(r.a, p, N, Ca, Cb);
      return y.reduce((s, v, i) => s + v * r.dy[i], 0);
    };
    for (let i = 0; i < p.length; i++) {
      const old = p[i];
      p[i] = old + h;
      const lp = loss();
      p[i] = old - h;
      const lm = loss();
      p[i] = old;
      g[i] = (lp - lm) / (2 * h);
    }
    return g;
  };
  assertClose(r.da, fd(r.a, "a"), "concat FD da", 1e-6, 1e-5);
  assertClose(r.db, fd(r.b, "b"), "concat FD db", 1e-6, 1e-5);
});

Deno.test("planConcat() rejects mismatched widths", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [3, 2], "test.concat.bad.a");
  const b = createTensor(gpu, [3, 4], "test.concat.bad.b");
  const y = createTensor(gpu, [3, 7], "test.concat.bad.y");
  assert.throws(() => planConcat(gpu, y, a, b), /Cannot concat/);
  assert.throws(() => planSplit(gpu, a, b, y), /Cannot concat/);
});
