import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import {
  IGNORE_INDEX,
  planCrossEntropy,
  planLogSoftmax,
  planWeightedSum,
} from "../../src/gpu/cross_entropy.ts";
import { type Mode, MODES, reductionRuns, REDUCTIONS } from "./_reductions.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

/** Float64 log-softmax of row n. */
function logSoftmaxRow(x: ArrayLike<number>, n: number, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[n * V + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[n * V + v] - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = x[n * V + v] - lse;
  return out;
}

/** Float64 reference: losses, dlogits, and Σ w·loss. */
function crossEntropyCpu(
  x: ArrayLike<number>,
  targets: Int32Array,
  weights: Float32Array,
  V: number,
): { losses: Float64Array; grad: Float64Array; total: number } {
  const N = targets.length;
  const losses = new Float64Array(N);
  const grad = new Float64Array(N * V);
  let total = 0;
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t === IGNORE_INDEX) continue;
    const ls = logSoftmaxRow(x, n, V);
    losses[n] = -ls[t];
    total += weights[n] * losses[n];
    for (let v = 0; v < V; v++) {
      grad[n * V + v] = weights[n] * (Math.exp(ls[v]) - (v === t ? 1 : 0));
    }
  }
  return { losses, grad, total };
}

function makeCase(N: number, V: number, seed: number) {
  const r = rng(seed);
  const logits = randomArray(N * V, seed, -4, 4);
  const targets = new Int32Array(N);
  for (let n = 0; n < N; n++) targets[n] = r() < 0.25 ? IGNORE_INDEX : Math.floor(r() * V);
  if (N > 1) targets[N - 1] = IGNORE_INDEX;
  const weights = randomArray(N, seed + 1, 0.1, 1);
  return { logits, targets, weights };
}

async function runCe(
  N: number,
  V: number,
  logits: Float32Array,
  targets: Int32Array,
  weights: Float32Array,
  mode: Mode = "tree",
) {
  const gpu = await getGpu();
  const reduction = mode === "rows" ? undefined : mode;
  const tl = uploadTensor(gpu, logits, [N, V], "test.ce.logits");
  const tt = uploadTensor(gpu, targets, [N], "test.ce.targets");
  const tw = uploadTensor(gpu, weights, [N], "test.ce.weights");
  const losses = createTensor(gpu, [N], "test.ce.losses");
  const out = createTensor(gpu, [3], "test.ce.loss_out");
  await run(gpu, [
    ...await planCrossEntropy(gpu, tl, losses, tt, tw, undefined, reduction, mode === "rows"),
    ...await planWeightedSum(gpu, out, 1, losses, tw, reduction),
  ]);
  return {
    grad: await readTensor(gpu, tl),
    losses: await readTensor(gpu, losses),
    out: await readTensor(gpu, out),
  };
}

for (const mode of MODES) {
  for (const V of [1, 7, 23, 1000]) {
    for (const N of [1, 5, 37, 130]) {
      Deno.test(`planCrossEntropy() and planWeightedSum() match float64 at N=${N} V=${V} [${mode}]`, async () => {
        if (mode !== "rows" && !await reductionRuns(mode)) return;
        const { logits, targets, weights } = makeCase(N, V, 100 * V + N);
        const got = await runCe(N, V, logits, targets, weights, mode);
        const ref = crossEntropyCpu(logits, targets, weights, V);
        assertClose(got.losses, ref.losses, `losses N=${N} V=${V}`, 1e-5, 1e-5);
        assertClose(got.grad, ref.grad, `dlogits N=${N} V=${V}`, 1e-6, 1e-4);
        assertClose(
          [got.out[0], got.out[1], got.out[2]],
          [0, ref.total, 0],
          "weighted sum",
          1e-5,
          1e-5,
        );
        for (let n = 0; n < N; n++) {
          if (targets[n] !== IGNORE_INDEX) continue;
          for (let v = 0; v < V; v++) {
            if (got.grad[n * V + v] !== 0) throw new Error(`ignored row ${n} has a gradient`);
          }
        }
      });
    }
  }
}

Deno.test("planCrossEntropy() gradient matches finite differences of the weighted loss", async () => {
  const N = 5;
  const V = 23;
  const { logits, targets, weights } = makeCase(N, V, 77);
  const got = await runCe(N, V, logits, targets, weights);
  const x = Float64Array.from(logits);
  const loss = () => crossEntropyCpu(x, targets, weights, V).total;
  const r = rng(5);
  const fd: number[] = [];
  const an: number[] = [];
  const eps = 1e-5;
  for (let k = 0; k < 30; k++) {
    const e = Math.floor(r() * x.length);
    const keep = x[e];
    x[e] = keep + eps;
    const up = loss();
    x[e] = keep - eps;
    const down = loss();
    x[e] = keep;
    fd.push((up - down) / (2 * eps));
    an.push(got.grad[e]);
  }
  assertClose(an, fd, "dlogits vs finite differences", 1e-6, 1e-4);
});

Deno.test("planCrossEntropy() gives NaN for a target outside [0, V)", async () => {
  for (const mode of ["tree", "rows"] as const) {
    const got = await runCe(
      2,
      7,
      randomArray(14, 3),
      new Int32Array([7, 2]),
      new Float32Array([1, 1]),
      mode,
    );
    if (!Number.isNaN(got.losses[0]) || !Number.isNaN(got.grad[0])) {
      throw new Error(`expected NaN row 0 [${mode}]`);
    }
    if (!Number.isFinite(got.losses[1])) throw new Error(`row 1 must be finite [${mode}]`);
  }
});

Deno.test("planWeightedSum() matches float64 and is bit-reproducible at N=70000", async () => {
  const gpu = await getGpu();
  const N = 70000;
  const losses = randomArray(N, 1, 0, 8);
  const weights = randomArray(N, 2, 0, 1e-3);
  const tl = uploadTensor(gpu, losses, [N], "test.wsum.losses");
  const tw = uploadTensor(gpu, weights, [N], "test.wsum.weights");
  const out = createTensor(gpu, [1], "test.wsum.out");
  const plan = await planWeightedSum(gpu, out, 0, tl, tw);
  await run(gpu, plan);
  const a = (await readTensor(gpu, out))[0];
  await run(gpu, plan);
  const b = (await readTensor(gpu, out))[0];
  let want = 0;
  for (let n = 0; n < N; n++) want += weights[n] * losses[n];
  assertClose([a], [want], "weighted sum N=70000", 0, 1e-5);
  if (!Object.is(a, b)) throw new Error(`rerun differs: ${a} vs ${b}`);
});

Deno.test("planWeightedSum() writes 0 for N=0", async () => {
  const gpu = await getGpu();
  const out = uploadTensor(gpu, new Float32Array([5]), [1], "test.wsum0.out");
  const empty = createTensor(gpu, [0], "test.wsum0.empty");
  await run(gpu, await planWeightedSum(gpu, out, 0, empty, empty));
  assertClose(await readTensor(gpu, out), [0], "empty weighted sum", 0, 0);
});

for (const reduction of REDUCTIONS) {
  for (const [N, V] of [[1, 1], [5, 7], [37, 1000]]) {
    Deno.test(`planLogSoftmax() matches float64 at N=${N} V=${V} [${reduction} reductions]`, async () => {
      if (!await reductionRuns(reduction)) return;
      const gpu = await getGpu();
      const x = randomArray(N * V, N + V, -6, 6);
      const tx = uploadTensor(gpu, x, [N, V], "test.lsm.x");
      const ty = createTensor(gpu, [N, V], "test.lsm.y");
      await run(gpu, await planLogSoftmax(gpu, ty, tx, reduction));
      const want = new Float64Array(N * V);
      for (let n = 0; n < N; n++) want.set(logSoftmaxRow(x, n, V), n * V);
      assertClose(await readTensor(gpu, ty), want, `log_softmax N=${N} V=${V}`, 1e-5, 1e-5);
    });
  }
}
