// The f16 flavour of the Linear matmuls (trainer.precision=16-mixed) against a CPU emulation
// of what it computes: operands rounded to f16 (Math.f16round), each group of 8 consecutive
// products (aligned to multiples of 8 in the reduction) summed in f16, the group sums added
// in f32. WGSL's fma may round once (fused, as NVIDIA's HFMA2) or twice (product, then sum:
// what lavapipe does), so the emulation runs both ways and most outputs must match one of
// them to the bit.
//
// Tolerance per output against either emulation: 2^-10 · (Σ_r |a·b| + Σ_g |group sum g|)
// + 1e-6 (the two roundings per term differ by at most half an f16 unit each, plus a
// different f32 order of the group sums under split-K); an error in the staging, the grouping
// or the indexing is off by far more. Against the exact float64 product of the unrounded f32
// inputs the error is what f16 inputs cost: checked below 2^-8 · Σ_r |a·b| + 1e-6.
import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { type Dispatch, run } from "../../src/gpu/kernel.ts";
import {
  planLinearBackwardInput,
  planLinearBackwardWeight,
  planLinearForward,
  weightGradSplit,
} from "../../src/gpu/matmul.ts";
import { MATMUL_CANDIDATES, matmulTuneKey } from "../../src/gpu/matmul_tune.ts";
import { checkVariant, F16_GROUP, matmulWgsl, variantName } from "../../src/gpu/matmul_wgsl.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { randomArray } from "../_util.ts";

const f16 = Math.f16round;

interface F16Reference {
  /** Fused f16 fma per term (one rounding). */
  fused: Float64Array;
  /** Product rounded to f16, then the sum rounded to f16. */
  unfused: Float64Array;
  /** Σ_r |a·b| + Σ_g |group sum| (for the tolerance). */
  scale: Float64Array;
  /** The float64 product of the unrounded inputs, and Σ_r |a·b|. */
  exact: Float64Array;
  termAbs: Float64Array;
}

/** C (I, J) = A (I, R) · B (R, J) as the f16 kernel computes it, with the error bounds. */
function cpuF16(
  a: (i: number, r: number) => number,
  b: (r: number, j: number) => number,
  I: number,
  J: number,
  R: number,
): F16Reference {
  const ref: F16Reference = {
    fused: new Float64Array(I * J),
    unfused: new Float64Array(I * J),
    scale: new Float64Array(I * J),
    exact: new Float64Array(I * J),
    termAbs: new Float64Array(I * J),
  };
  for (let i = 0; i < I; i++) {
    for (let j = 0; j < J; j++) {
      let fused = 0; // f32 totals
      let unfused = 0;
      let scale = 0;
      let exact = 0;
      let termAbs = 0;
      for (let r0 = 0; r0 < R; r0 += F16_GROUP) {
        let pf = 0; // f16 partial sums
        let pu = 0;
        for (let r = r0; r < Math.min(R, r0 + F16_GROUP); r++) {
          // An f16 · f16 product is exact in float64, and so is adding an f16 of similar scale.
          const prod = f16(a(i, r)) * f16(b(r, j));
          pf = f16(prod + pf);
          pu = f16(f16(prod) + pu);
          scale += Math.abs(prod);
          exact += a(i, r) * b(r, j);
          termAbs += Math.abs(a(i, r) * b(r, j));
        }
        fused = Math.fround(fused + pf);
        unfused = Math.fround(unfused + pu);
        scale += Math.abs(pf);
      }
      const k = i * J + j;
      ref.fused[k] = fused;
      ref.unfused[k] = unfused;
      ref.scale[k] = scale;
      ref.exact[k] = exact;
      ref.termAbs[k] = termAbs;
    }
  }
  return ref;
}

function check(got: Float32Array, want: F16Reference, what: string): void {
  assert.equal(got.length, want.fused.length, what);
  let bitExact = 0;
  for (let k = 0; k < got.length; k++) {
    const diff = Math.min(Math.abs(got[k] - want.fused[k]), Math.abs(got[k] - want.unfused[k]));
    const tol = 2 ** -10 * want.scale[k] + 1e-6;
    assert.ok(
      diff <= tol,
      `${what}: element ${k} is ${got[k]}, the f16 emulation ${want.fused[k]} (fused) or ` +
        `${want.unfused[k]} (unfused), tolerance ${tol}`,
    );
    const far = Math.abs(got[k] - want.exact[k]);
    assert.ok(
      far <= 2 ** -8 * want.termAbs[k] + 1e-6,
      `${what}: element ${k} is ${got[k]}, the exact product ${want.exact[k]}`,
    );
    if (diff === 0) bitExact++;
  }
  assert.ok(bitExact >= 0.9 * got.length, `${what}: only ${bitExact} exact of ${got.length}`);
}

function asList(d: Dispatch | Dispatch[]): Dispatch[] {
  return Array.isArray(d) ? d : [d];
}

// Awkward sizes (scalar loads, edge tiles), vec4 sizes, and a split weight gradient.
const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [7, 37, 5],
  [37, 129, 7],
  [36, 68, 20],
  [132, 28, 44],
  [1100, 36, 20],
];

for (const [M, K, N] of SIZES) {
  const tag = `(M,K,N)=(${M},${K},${N})`;
  Deno.test(`f16 Linear plans match the f16 CPU emulation at ${tag}`, async () => {
    const gpu = await getGpu();
    const x = randomArray(M * K, 41);
    const w = randomArray(N * K, 42);
    const dy = randomArray(M * N, 43);
    const b = randomArray(N, 44);
    const tx = uploadTensor(gpu, x, [M, K], "test.x");
    const tw = uploadTensor(gpu, w, [N, K], "test.w");
    const tdy = uploadTensor(gpu, dy, [M, N], "test.dy");
    const out = createTensor(gpu, [M, N], "test.out");
    const biased = createTensor(gpu, [M, N], "test.out_bias");
    const dx = createTensor(gpu, [M, K], "test.dx");
    const dw = createTensor(gpu, [N, K], "test.dw");
    const precision = "f16" as const;
    await run(gpu, [
      await planLinearForward(gpu, { out, x: tx, w: tw, precision }),
      await planLinearForward(gpu, {
        out: biased,
        x: tx,
        w: tw,
        bias: uploadTensor(gpu, b, [N], "test.b"),
        precision,
      }),
      await planLinearBackwardInput(gpu, { dx, dy: tdy, w: tw, precision }),
      ...asList(await planLinearBackwardWeight(gpu, { dw, dy: tdy, x: tx, precision })),
    ]);
    // forward: out (M, N) = x (M, K) · Wᵀ
    const fwd = cpuF16((i, r) => x[i * K + r], (r, j) => w[j * K + r], M, N, K);
    const plain = await readTensor(gpu, out);
    check(plain, fwd, `forward ${tag}`);
    // The bias is added to the f32 total in f32.
    const withBias = await readTensor(gpu, biased);
    for (let k = 0; k < M * N; k++) {
      assert.equal(withBias[k], Math.fround(plain[k] + b[k % N]), `forward + bias ${tag} at ${k}`);
    }
    // input gradient: dx (M, K) = dy (M, N) · W (N, K)
    const din = cpuF16((i, r) => dy[i * N + r], (r, j) => w[r * K + j], M, K, N);
    check(await readTensor(gpu, dx), din, `backward input ${tag}`);
    // weight gradient: dw (N, K) = dyᵀ (N, M) · x (M, K)
    const dwt = cpuF16((i, r) => dy[r * N + i], (r, j) => x[r * K + j], N, K, M);
    check(await readTensor(gpu, dw), dwt, `backward weight ${tag}`);
    if (M === 1100) assert.ok(weightGradSplit(M, K, N).splits > 1, "the split path is tested");
  });
}

Deno.test("f16 Linear plans are bit-identical whichever variant runs", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [130, 37, 19];
  const tx = uploadTensor(gpu, randomArray(M * K, 51), [M, K], "test.x");
  const tw = uploadTensor(gpu, randomArray(N * K, 52), [N, K], "test.w");
  const tdy = uploadTensor(gpu, randomArray(M * N, 53), [M, N], "test.dy");
  let first: Uint32Array[] | undefined;
  for (const variant of Object.values(MATMUL_CANDIDATES)) {
    const out = createTensor(gpu, [M, N], "test.out");
    const dx = createTensor(gpu, [M, K], "test.dx");
    const dw = createTensor(gpu, [N, K], "test.dw");
    const precision = "f16" as const;
    await run(gpu, [
      await planLinearForward(gpu, { out, x: tx, w: tw, variant, precision }),
      await planLinearBackwardInput(gpu, { dx, dy: tdy, w: tw, variant, precision }),
      ...asList(await planLinearBackwardWeight(gpu, { dw, dy: tdy, x: tx, variant, precision })),
    ]);
    const got = await Promise.all(
      [out, dx, dw].map(async (t) => new Uint32Array((await readTensor(gpu, t)).buffer)),
    );
    first ??= got;
    got.forEach((g, i) =>
      assert.ok(
        g.every((v, j) => v === first![i][j]),
        `result ${i} of ${variantName(variant)} differs`,
      )
    );
  }
});

Deno.test("f16 matmul overflow beyond 65504 gives a non-finite result", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [4, 8, 4];
  const x = new Float32Array(M * K).fill(1);
  x[0] = 1e6; // not representable in f16
  const tx = uploadTensor(gpu, x, [M, K], "test.x");
  const tw = uploadTensor(gpu, new Float32Array(N * K).fill(0.5), [N, K], "test.w");
  const out = createTensor(gpu, [M, N], "test.out");
  await run(gpu, [await planLinearForward(gpu, { out, x: tx, w: tw, precision: "f16" })]);
  const got = await readTensor(gpu, out);
  assert.equal(Number.isFinite(got[0]), false, `row 0 holds the overflow: ${got[0]}`);
  assert.equal(got[N], 4, "row 1: 8 · 1 · 0.5");
});

Deno.test("matmulWgsl() f16 flavour: f16 tiles, f16 partial sums named by constants", () => {
  const v = MATMUL_CANDIDATES["128x128_t8x8_k16"];
  const layout = { aTrans: false, bTrans: true, vecA: true, vecB: true, vecC: true, bias: false };
  const code = matmulWgsl(v, { ...layout, f16: true });
  assert.match(code, /^enable f16;/);
  assert.match(code, /var<workgroup> As: array<vec4<f16>, 512>;/);
  assert.equal(new Set(code.match(/\bpart_\d+_\d+\b/g)).size, 16);
  assert.doesNotMatch(code, /\bvar\s+\w+\s*:\s*array/);
  assert.doesNotMatch(matmulWgsl(v, layout), /f16/);
  // f16 tiles take half the workgroup memory: 128 x 128 x 32 fits 16 KiB only in f16.
  const k32 = MATMUL_CANDIDATES["128x128_t8x8_k32"];
  checkVariant(k32, 256, 16384, true);
  assert.throws(() => checkVariant(k32, 256, 16384, false), /workgroup memory/);
  assert.throws(
    () => checkVariant({ wgX: 8, wgY: 8, tm: 4, tn: 4, bk: 4 }, 256, 16384, true),
    /multiple of 8 for f16/,
  );
  assert.equal(matmulTuneKey("forward", 2, 3, 4), "forward:2x3x4");
  assert.equal(matmulTuneKey("forward", 2, 3, 4, "f16"), "forward:2x3x4:f16");
});
