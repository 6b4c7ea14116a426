import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { NORM_EPS, type NormKind, planNormBackward, planNormForward } from "../../src/gpu/norm.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray } from "../_util.ts";
import { type Mode, MODES, reductionRuns } from "./_reductions.ts";

/** float64 reference forward: y (N, C) and stats (N, 2) = [mean, rstd]. */
function normRef(
  kind: NormKind,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  N: number,
  C: number,
): { y: Float64Array; stats: Float64Array } {
  const y = new Float64Array(N * C);
  const stats = new Float64Array(2 * N);
  for (let n = 0; n < N; n++) {
    let mean = 0;
    if (kind === "layer") {
      for (let c = 0; c < C; c++) mean += x[n * C + c];
      mean /= C;
    }
    let ms = 0;
    for (let c = 0; c < C; c++) ms += (x[n * C + c] - mean) ** 2;
    const rstd = 1 / Math.sqrt(ms / C + NORM_EPS);
    for (let c = 0; c < C; c++) {
      y[n * C + c] = (x[n * C + c] - mean) * rstd * w[c] + (b ? b[c] : 0);
    }
    stats[2 * n] = mean;
    stats[2 * n + 1] = rstd;
  }
  return { y, stats };
}

/** float64 analytic backward of `normRef` for upstream gradient dy. */
function normBackwardRef(
  kind: NormKind,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  N: number,
  C: number,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const { stats } = normRef(kind, x, w, null, N, C);
  const dx = new Float64Array(N * C);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const mean = stats[2 * n];
    const rstd = stats[2 * n + 1];
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < C; c++) {
      const xh = (x[n * C + c] - mean) * rstd;
      const g = w[c] * dy[n * C + c];
      sg += g;
      sgx += g * xh;
      dw[c] += dy[n * C + c] * xh;
      db[c] += dy[n * C + c];
    }
    const mg = kind === "layer" ? sg / C : 0;
    for (let c = 0; c < C; c++) {
      const xh = (x[n * C + c] - mean) * rstd;
      dx[n * C + c] = rstd * (w[c] * dy[n * C + c] - mg - xh * sgx / C);
    }
  }
  return { dx, dw, db };
}

/** Central finite differences of `f` at `p` (float64), every element. */
function finiteDiff(f: (p: Float64Array) => number, p0: ArrayLike<number>, h = 1e-6): Float64Array {
  const p = Float64Array.from(p0);
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const old = p[i];
    p[i] = old + h;
    const fp = f(p);
    p[i] = old - h;
    const fm = f(p);
    p[i] = old;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Sets up tensors, runs forward then backward (accumulating into non-zero dx, dw, db). */
async function runNorm(
  kind: NormKind,
  N: number,
  C: number,
  seed: number,
  accumulate: boolean,
  mode: Mode = "tree",
) {
  const gpu = await getGpu();
  const reduction = mode === "rows" ? undefined : mode;
  const perRow = mode === "rows";
  const x = randomArray(N * C, seed, -2, 2);
  const w = randomArray(C, seed + 1, 0.5, 1.5);
  const b = randomArray(C, seed + 2);
  const dy = randomArray(N * C, seed + 3);
  const dx0 = accumulate ? randomArray(N * C, seed + 4) : new Float32Array(N * C);
  const dw0 = randomArray(C, seed + 5);
  const db0 = randomArray(C, seed + 6);
  const label = `test.${kind}norm.${N}x${C}`;
  const t = {
    x: uploadTensor(gpu, x, [N, C], `${label}.x`),
    w: uploadTensor(gpu, w, [C], `${label}.w`),
    b: kind === "layer" ? uploadTensor(gpu, b, [C], `${label}.b`) : undefined,
    y: createTensor(gpu, [N, C], `${label}.y`),
    stats: createTensor(gpu, [N, 2], `${label}.stats`),
    dy: uploadTensor(gpu, dy, [N, C], `${label}.dy`),
    // Garbage in dx when overwriting: the kernel must not read it.
    dx: uploadTensor(gpu, accumulate ? dx0 : randomArray(N * C, 99), [N, C], `${label}.dx`),
    dw: uploadTensor(gpu, dw0, [C], `${label}.dw`),
    db: kind === "layer" ? uploadTensor(gpu, db0, [C], `${label}.db`) : undefined,
  };
  const fwd = await planNormForward(gpu, kind, t, reduction, perRow);
  const bwd = await planNormBackward(gpu, kind, { ...t, accumulate }, reduction, perRow);
  await run(gpu, [fwd, ...bwd]);
  return {
    x,
    w,
    b,
    dy,
    dx0,
    dw0,
    db0,
    y: await readTensor(gpu, t.y),
    stats: await readTensor(gpu, t.stats),
    dx: await readTensor(gpu, t.dx),
    dw: await readTensor(gpu, t.dw),
    db: t.db ? await readTensor(gpu, t.db) : null,
  };
}

const SIZES: [number, number][] = [[1, 1], [7, 7], [37, 37], [129, 130], [600, 37], [3, 1536]];

for (const mode of MODES) {
  for (const kind of ["rms", "layer"] as const) {
    for (const [N, C] of SIZES) {
      for (const accumulate of [false, true]) {
        const name = kind === "rms" ? "RMSNorm" : "LayerNorm";
        Deno.test(
          `planNormForward()/planNormBackward() ${name} match float64 at N=${N}, C=${C}` +
            (accumulate ? " (dx +=)" : "") + ` [${mode}]`,
          async () => {
            if (mode !== "rows" && !await reductionRuns(mode)) return;
            const r = await runNorm(kind, N, C, 10 * N + C, accumulate, mode);
            const ref = normRef(kind, r.x, r.w, kind === "layer" ? r.b : null, N, C);
            const tag = `${kind} N=${N} C=${C}`;
            assertClose(r.y, ref.y, `${tag} y`, 2e-5, 1e-4);
            assertClose(r.stats, ref.stats, `${tag} stats`, 1e-5, 1e-4);
            const g = normBackwardRef(kind, r.x, r.w, r.dy, N, C);
            const dx = g.dx.map((v, i) => v + r.dx0[i]);
            assertClose(r.dx, dx, `${tag} dx`, 5e-5, 1e-3);
            assertClose(r.dw, g.dw.map((v, i) => v + r.dw0[i]), `${tag} dw`, 1e-4, 1e-4);
            if (kind === "layer") {
              assertClose(r.db!, g.db.map((v, i) => v + r.db0[i]), `${tag} db`, 1e-4, 1e-4);
            }
          },
        );
      }
    }
  }
}

for (const kind of ["rms", "layer"] as const) {
  for (const [N, C] of [[3, 7], [7, 37]]) {
    Deno.test(`planNormBackward() ${kind} matches finite differences at N=${N}, C=${C}`, async () => {
      const r = await runNorm(kind, N, C, 7 * N + C, false);
      const bias = kind === "layer" ? r.b : null;
      // Scalar loss L = Σ dy·y, so ∂L/∂y = dy.
      const loss = (x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null) =>
        dot(normRef(kind, x, w, b, N, C).y, r.dy);
      const tag = `${kind} FD N=${N} C=${C}`;
      assertClose(r.dx, finiteDiff((x) => loss(x, r.w, bias), r.x), `${tag} dx`, 1e-4, 1e-3);
      const dw = finiteDiff((w) => loss(r.x, w, bias), r.w).map((v, i) => v + r.dw0[i]);
      assertClose(r.dw, dw, `${tag} dw`, 1e-4, 1e-3);
      if (kind === "layer") {
        const db = finiteDiff((b) => loss(r.x, r.w, b), r.b).map((v, i) => v + r.db0[i]);
        assertClose(r.db!, db, `${tag} db`, 1e-4, 1e-3);
      }
    });
  }
}

Deno.test("planNormBackward() is bit-identical across runs at N=600, C=130", async () => {
  const a = await runNorm("layer", 600, 130, 5, true);
  const b = await runNorm("layer", 600, 130, 5, true);
  assert.deepEqual(a.dx, b.dx);
  assert.deepEqual(a.dw, b.dw);
  assert.deepEqual(a.db, b.db);
});

Deno.test("planNormForward() rejects a width mismatch and a LayerNorm without bias", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [4, 8], "test.norm.bad.x");
  const y = createTensor(gpu, [4, 8], "test.norm.bad.y");
  const stats = createTensor(gpu, [4, 2], "test.norm.bad.stats");
  const w7 = createTensor(gpu, [7], "test.norm.bad.w7");
  const w8 = createTensor(gpu, [8], "test.norm.bad.w8");
  assert.throws(() => planNormForward(gpu, "rms", { y, stats, x, w: w7 }), /width 8/);
  assert.throws(() => planNormForward(gpu, "layer", { y, stats, x, w: w8 }), /bias/);
});
