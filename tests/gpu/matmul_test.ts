import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { type Dispatch, run } from "../../src/gpu/kernel.ts";
import {
  matmulFlops,
  type MatmulVariant,
  planBiasBackward,
  planLinearBackwardInput,
  planLinearBackwardWeight,
  planLinearForward,
  weightGradSplit,
} from "../../src/gpu/matmul.ts";
import {
  MATMUL_CANDIDATES,
  SMALL_ROWS_TEX_VARIANT,
  SMALL_ROWS_VARIANT,
} from "../../src/gpu/matmul_tune.ts";
import { checkVariant, variantName } from "../../src/gpu/matmul_wgsl.ts";
import { texMatmulWgsl } from "../../src/gpu/matmul_tex_wgsl.ts";
import { createTensor, readTensor, Tensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray } from "../_util.ts";

// Reference loops in float64 on the f32 inputs. Tolerance grows with the reduction length:
// f32 sums of n products of values in [-1, 1] are off by about n · 2^-24 · |terms|.
function tol(n: number): [number, number] {
  return [1e-5 * Math.max(1, Math.sqrt(n)), 1e-4];
}

/** out[m, n] = base[m, n] + Σ_k x[m, k] w[n, k] + bias[n]. */
function cpuForward(
  x: Float32Array,
  w: Float32Array,
  M: number,
  K: number,
  N: number,
  bias?: Float32Array,
  base?: Float32Array,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      out[m * N + n] = s + (bias ? bias[n] : 0) + (base ? base[m * N + n] : 0);
    }
  }
  return out;
}

/** dx[m, k] = base[m, k] + Σ_n dy[m, n] w[n, k]. */
function cpuBackwardInput(
  dy: Float32Array,
  w: Float32Array,
  M: number,
  K: number,
  N: number,
  base?: Float32Array,
): Float64Array {
  const dx = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dy[m * N + n] * w[n * K + k];
      dx[m * K + k] = s + (base ? base[m * K + k] : 0);
    }
  }
  return dx;
}

/** dw[n, k] = base[n, k] + Σ_m dy[m, n] x[m, k]. */
function cpuBackwardWeight(
  dy: Float32Array,
  x: Float32Array,
  M: number,
  K: number,
  N: number,
  base: Float32Array,
): Float64Array {
  const dw = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += dy[m * N + n] * x[m * K + k];
      dw[n * K + k] = s + base[n * K + k];
    }
  }
  return dw;
}

function asList(d: Dispatch | Dispatch[]): Dispatch[] {
  return Array.isArray(d) ? d : [d];
}

// Awkward sizes (1, 37, 129, 1000: not multiples of any tile) take the scalar-load kernels;
// multiples of 4 take the vec4 ones, with edge tiles in every direction.
const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [7, 37, 5],
  [37, 129, 7],
  [129, 64, 300],
  [1000, 37, 129],
  [36, 1000, 4],
  [132, 68, 200],
];

for (const [M, K, N] of SIZES) {
  const tag = `(M,K,N)=(${M},${K},${N})`;

  Deno.test(`planLinearForward() matches the CPU with and without bias at ${tag}`, async () => {
    const gpu = await getGpu();
    const x = randomArray(M * K, 1);
    const w = randomArray(N * K, 2);
    const b = randomArray(N, 3);
    const base = randomArray(M * N, 4);
    // x as (1, M, K): leading dimensions multiply to M.
    const tx = uploadTensor(gpu, x, [1, M, K], "test.x");
    const tw = uploadTensor(gpu, w, [N, K], "test.w");
    const tb = uploadTensor(gpu, b, [N], "test.b");
    const plain = createTensor(gpu, [M, N], "test.out_plain");
    const biased = uploadTensor(gpu, new Float32Array(M * N).fill(7), [M, N], "test.out_bias");
    const acc = uploadTensor(gpu, base, [M, N], "test.out_acc");
    await run(gpu, [
      await planLinearForward(gpu, { out: plain, x: tx, w: tw }),
      await planLinearForward(gpu, { out: biased, x: tx, w: tw, bias: tb }),
      await planLinearForward(gpu, { out: acc, x: tx, w: tw, bias: tb, accumulate: true }),
    ]);
    const [atol, rtol] = tol(K);
    assertClose(await readTensor(gpu, plain), cpuForward(x, w, M, K, N), `fwd ${tag}`, atol, rtol);
    assertClose(
      await readTensor(gpu, biased),
      cpuForward(x, w, M, K, N, b),
      `fwd+bias ${tag}`,
      atol,
      rtol,
    );
    assertClose(
      await readTensor(gpu, acc),
      cpuForward(x, w, M, K, N, b, base),
      `fwd+bias+=  ${tag}`,
      atol,
      rtol,
    );
  });

  Deno.test(`planLinearBackwardInput() matches the CPU at ${tag}`, async () => {
    const gpu = await getGpu();
    const dy = randomArray(M * N, 5);
    const w = randomArray(N * K, 6);
    const base = randomArray(M * K, 7);
    const tdy = uploadTensor(gpu, dy, [M, N], "test.dy");
    const tw = uploadTensor(gpu, w, [N, K], "test.w");
    const dx = uploadTensor(gpu, new Float32Array(M * K).fill(3), [M, K], "test.dx");
    const dxAcc = uploadTensor(gpu, base, [M, K], "test.dx_acc");
    await run(gpu, [
      await planLinearBackwardInput(gpu, { dx, dy: tdy, w: tw }),
      await planLinearBackwardInput(gpu, { dx: dxAcc, dy: tdy, w: tw, accumulate: true }),
    ]);
    const [atol, rtol] = tol(N);
    assertClose(
      await readTensor(gpu, dx),
      cpuBackwardInput(dy, w, M, K, N),
      `dx ${tag}`,
      atol,
      rtol,
    );
    assertClose(
      await readTensor(gpu, dxAcc),
      cpuBackwardInput(dy, w, M, K, N, base),
      `dx+= ${tag}`,
      atol,
      rtol,
    );
  });

  Deno.test(`planLinearBackwardWeight() and planBiasBackward() accumulate at ${tag}`, async () => {
    const gpu = await getGpu();
    const dy = randomArray(M * N, 8);
    const x = randomArray(M * K, 9);
    const dwBase = randomArray(N * K, 10);
    const dbBase = randomArray(N, 11);
    const tdy = uploadTensor(gpu, dy, [M, N], "test.dy");
    const tx = uploadTensor(gpu, x, [M, K], "test.x");
    const dw = uploadTensor(gpu, dwBase, [N, K], "test.dw");
    const db = uploadTensor(gpu, dbBase, [N], "test.db");
    await run(gpu, [
      ...asList(await planLinearBackwardWeight(gpu, { dw, dy: tdy, x: tx })),
      await planBiasBackward(gpu, { db, dy: tdy }),
    ]);
    const [atol, rtol] = tol(M);
    assertClose(
      await readTensor(gpu, dw),
      cpuBackwardWeight(dy, x, M, K, N, dwBase),
      `dw+= ${tag}`,
      atol,
      rtol,
    );
    const dbWant = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      dbWant[n] = dbBase[n];
      for (let m = 0; m < M; m++) dbWant[n] += dy[m * N + n];
    }
    assertClose(await readTensor(gpu, db), dbWant, `db+= ${tag}`, atol, rtol);
  });
}

// Every tuner candidate plus odd invocation counts; at (37, 29, 19) (scalar loads) and
// (36, 28, 20) (vec4 loads).
const VARIANTS: MatmulVariant[] = [
  ...Object.values(MATMUL_CANDIDATES),
  SMALL_ROWS_VARIANT,
  SMALL_ROWS_TEX_VARIANT,
  { wgX: 3, wgY: 5, tm: 4, tn: 8, bk: 4 },
  { wgX: 1, wgY: 1, tm: 8, tn: 4, bk: 32 },
];

for (const variant of VARIANTS) {
  for (const [M, K, N] of [[37, 29, 19], [36, 28, 20]]) {
    const name = `${variantName(variant)} wg ${variant.wgX}x${variant.wgY} at (${M},${K},${N})`;
    Deno.test(`Linear plans match the CPU with variant ${name}`, async () => {
      const gpu = await getGpu();
      const x = randomArray(M * K, 21);
      const w = randomArray(N * K, 22);
      const b = randomArray(N, 23);
      const dy = randomArray(M * N, 24);
      const tx = uploadTensor(gpu, x, [M, K], "test.x");
      const tw = uploadTensor(gpu, w, [N, K], "test.w");
      const tdy = uploadTensor(gpu, dy, [M, N], "test.dy");
      const out = createTensor(gpu, [M, N], "test.out");
      const dx = createTensor(gpu, [M, K], "test.dx");
      const dw = createTensor(gpu, [N, K], "test.dw");
      await run(gpu, [
        await planLinearForward(gpu, {
          out,
          x: tx,
          w: tw,
          bias: uploadTensor(gpu, b, [N], "test.b"),
          variant,
        }),
        await planLinearBackwardInput(gpu, { dx, dy: tdy, w: tw, variant }),
        ...asList(await planLinearBackwardWeight(gpu, { dw, dy: tdy, x: tx, variant })),
      ]);
      assertClose(await readTensor(gpu, out), cpuForward(x, w, M, K, N, b), `fwd ${name}`);
      assertClose(await readTensor(gpu, dx), cpuBackwardInput(dy, w, M, K, N), `dx ${name}`);
      assertClose(
        await readTensor(gpu, dw),
        cpuBackwardWeight(dy, x, M, K, N, new Float32Array(N * K)),
        `dw ${name}`,
      );
    });
  }
}

Deno.test("Linear plans are bit-identical whichever variant runs", async () => {
  const gpu = await getGpu();
  // M = 1100 with N·K small: the weight gradient is split (the split depends on shapes only).
  for (const [M, K, N] of [[1100, 36, 20], [130, 37, 19]]) {
    const tx = uploadTensor(gpu, randomArray(M * K, 31), [M, K], "test.x");
    const tw = uploadTensor(gpu, randomArray(N * K, 32), [N, K], "test.w");
    const tdy = uploadTensor(gpu, randomArray(M * N, 33), [M, N], "test.dy");
    const tb = uploadTensor(gpu, randomArray(N, 34), [N], "test.b");
    let first: Uint32Array[] | undefined;
    const variants = [
      ...Object.values(MATMUL_CANDIDATES),
      SMALL_ROWS_VARIANT,
      SMALL_ROWS_TEX_VARIANT,
    ];
    for (const variant of variants) {
      const out = createTensor(gpu, [M, N], "test.out");
      const dx = createTensor(gpu, [M, K], "test.dx");
      const dw = createTensor(gpu, [N, K], "test.dw");
      await run(gpu, [
        await planLinearForward(gpu, { out, x: tx, w: tw, bias: tb, variant }),
        await planLinearBackwardInput(gpu, { dx, dy: tdy, w: tw, variant }),
        ...asList(await planLinearBackwardWeight(gpu, { dw, dy: tdy, x: tx, variant })),
      ]);
      const got = await Promise.all(
        [out, dx, dw].map(async (t) => new Uint32Array((await readTensor(gpu, t)).buffer)),
      );
      first ??= got;
      got.forEach((g, i) =>
        assert.equal(
          g.every((v, j) => v === first![i][j]),
          true,
          `result ${i} of ${variantName(variant)} differs at (${M},${K},${N})`,
        )
      );
    }
  }
});

Deno.test("planLinearBackwardWeight() splits a long reduction (M=3000, N=5, K=33)", async () => {
  const [M, K, N] = [3000, 33, 5];
  const split = weightGradSplit(M, K, N);
  assert(split.splits > 1, `expected a split, got ${JSON.stringify(split)}`);
  const gpu = await getGpu();
  const dy = randomArray(M * N, 12);
  const x = randomArray(M * K, 13);
  const base = randomArray(N * K, 14);
  const dw = uploadTensor(gpu, base, [N, K], "test.dw_split");
  const db = uploadTensor(gpu, new Float32Array(N), [N], "test.db_split");
  const plan = await planLinearBackwardWeight(gpu, {
    dw,
    dy: uploadTensor(gpu, dy, [3, 1000, N], "test.dy_split"),
    x: uploadTensor(gpu, x, [3, 1000, K], "test.x_split"),
  });
  assert.equal(asList(plan).length, 2);
  await run(gpu, [
    ...asList(plan),
    await planBiasBackward(gpu, { db, dy: uploadTensor(gpu, dy, [M, N], "test.dy2") }),
  ]);
  const [atol, rtol] = tol(M);
  assertClose(
    await readTensor(gpu, dw),
    cpuBackwardWeight(dy, x, M, K, N, base),
    `dw+= split ${split.splits}x${split.chunk}`,
    atol,
    rtol,
  );
  const dbWant = new Float64Array(N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) dbWant[n] += dy[m * N + n];
  assertClose(await readTensor(gpu, db), dbWant, `db+= M=${M}`, atol, rtol);
});

Deno.test("planLinearForward() reads and writes tensor views at an offset", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [5, 9, 6];
  const align = gpu.limits.minStorageBufferOffsetAlignment / 4;
  const big = randomArray(align * 3 + M * K, 15);
  const buf = uploadTensor(gpu, big, [big.length], "test.big").buffer;
  const x = new Tensor(buf, [M, K], "f32", "test.x_view", align * 4 * 3);
  const w = randomArray(N * K, 16);
  const outBuf = createTensor(gpu, [align + M * N], "test.out_big");
  const out = new Tensor(outBuf.buffer, [M, N], "f32", "test.out_view", align * 4);
  await run(gpu, [
    await planLinearForward(gpu, { out, x, w: uploadTensor(gpu, w, [N, K], "test.w") }),
  ]);
  const got = (await readTensor(gpu, outBuf)).subarray(align);
  assertClose(got, cpuForward(big.subarray(align * 3), w, M, K, N), "fwd view", 1e-5, 1e-4);
  assert.equal((await readTensor(gpu, outBuf)).subarray(0, align).every((v) => v === 0), true);
});

Deno.test("Linear matmul plans are bit-identical across runs", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [300, 200, 70];
  const tx = uploadTensor(gpu, randomArray(M * K, 17), [M, K], "test.x");
  const tw = uploadTensor(gpu, randomArray(N * K, 18), [N, K], "test.w");
  const tdy = uploadTensor(gpu, randomArray(M * N, 19), [M, N], "test.dy");
  const results: Float32Array[][] = [];
  for (let rep = 0; rep < 2; rep++) {
    const out = createTensor(gpu, [M, N], "test.out");
    const dx = createTensor(gpu, [M, K], "test.dx");
    const dw = createTensor(gpu, [N, K], "test.dw");
    const dwSplit = createTensor(gpu, [5, K], "test.dw_split");
    const db = createTensor(gpu, [N], "test.db");
    const dy5 = tdy.reshape([M * 14, 5], "test.dy5");
    const x5 = uploadTensor(gpu, randomArray(M * 14 * K, 20), [M * 14, K], "test.x5");
    await run(gpu, [
      await planLinearForward(gpu, { out, x: tx, w: tw }),
      await planLinearBackwardInput(gpu, { dx, dy: tdy, w: tw }),
      ...asList(await planLinearBackwardWeight(gpu, { dw, dy: tdy, x: tx })),
      ...asList(await planLinearBackwardWeight(gpu, { dw: dwSplit, dy: dy5, x: x5 })),
      await planBiasBackward(gpu, { db, dy: tdy }),
    ]);
    results.push(await Promise.all([out, dx, dw, dwSplit, db].map((t) => readTensor(gpu, t))));
  }
  for (let i = 0; i < results[0].length; i++) {
    const a = new Uint32Array(results[0][i].buffer);
    const b = new Uint32Array(results[1][i].buffer);
    assert.equal(a.every((v, j) => v === b[j]), true, `result ${i} differs between runs`);
  }
});

async function errorOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

Deno.test("Linear plans reject mismatched shapes naming the tensors", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [4, 8], "layer.x");
  const w = createTensor(gpu, [3, 7], "layer.w");
  const out = createTensor(gpu, [4, 3], "layer.out");
  const bias = createTensor(gpu, [4], "layer.b");
  const w2 = createTensor(gpu, [3, 8], "layer.w2");
  const cases: [() => Promise<unknown>, RegExp][] = [
    [() => planLinearForward(gpu, { out, x, w }), /"layer\.x".*\(…, 7\)/],
    [() => planLinearForward(gpu, { out, x, w: w2, bias }), /"layer\.b"/],
    [() => planLinearBackwardInput(gpu, { dx: x, dy: out, w }), /"layer\.x"/],
    [() => planLinearBackwardWeight(gpu, { dw: w, dy: out, x }), /"layer\.x"/],
    [() => planBiasBackward(gpu, { db: bias, dy: out }), /"layer\.out"/],
  ];
  for (const [fn, re] of cases) {
    const message = await errorOf(fn);
    console.log(message);
    assert(re.test(message), message);
  }
});

Deno.test("matmulFlops() counts a multiply-add as two", () => {
  assert.equal(matmulFlops(2048, 768, 2304), 2 * 2048 * 768 * 2304);
});

Deno.test("planLinearForward() of 1 and 3 rows (the small-row tile) equals those rows of a 37-row product bit for bit", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [37, 29, 19];
  const x = randomArray(M * K, 41);
  const tw = uploadTensor(gpu, randomArray(N * K, 42), [N, K], "test.w");
  const full = createTensor(gpu, [M, N], "test.full");
  await run(gpu, [
    await planLinearForward(gpu, { out: full, x: uploadTensor(gpu, x, [M, K], "test.x"), w: tw }),
  ]);
  const all = await readTensor(gpu, full);
  for (const rows of [1, 3]) {
    const out = createTensor(gpu, [rows, N], "test.small");
    const tx = uploadTensor(gpu, x.slice(5 * K, (5 + rows) * K), [rows, K], "test.xs");
    await run(gpu, [await planLinearForward(gpu, { out, x: tx, w: tw })]);
    assert.deepEqual(await readTensor(gpu, out), all.slice(5 * N, (5 + rows) * N));
  }
});

Deno.test("the texture variant uploads both operands before its dispatch, is f32 only, and f16 products fall back to a workgroup-memory tile", async () => {
  const gpu = await getGpu();
  const tex = MATMUL_CANDIDATES["128x64_t16x8_tex"];
  assert.throws(() => checkVariant(tex, 256, 16384, true), /texture variants are f32 only/);
  const [M, K, N] = [40, 12, 8];
  const x = uploadTensor(gpu, randomArray(M * K, 41), [M, K], "test.x");
  const w = uploadTensor(gpu, randomArray(N * K, 42), [N, K], "test.w");
  const out = createTensor(gpu, [M, N], "test.out");
  const d = await planLinearForward(gpu, { out, x, w, variant: tex });
  assert.equal(d.uploads?.length, 2);
  if (gpu.info.features.includes("shader-f16")) {
    const h = await planLinearForward(gpu, { out, x, w, variant: tex, precision: "f16" });
    assert.equal(h.uploads, undefined);
    await run(gpu, [h]);
  }
});

Deno.test("texMatmulWgsl() shares A's loads over subgroups only where the tile allows it", () => {
  const layout = { aTrans: false, bTrans: true, vecA: true, vecB: true, vecC: true, bias: false };
  const tile = { wgX: 8, wgY: 8, tm: 16, tn: 8 };
  const shared = texMatmulWgsl(tile, { ...layout, share: 8 });
  assert.match(shared, /subgroupBroadcast\(al1, 7u\)/);
  assert.match(shared, /@workgroup_size\(64\)/);
  assert.doesNotMatch(texMatmulWgsl(tile, layout), /subgroup/);
  assert.throws(() => texMatmulWgsl(tile, { ...layout, share: 16 }), /Cannot share/);
  assert.throws(() => texMatmulWgsl(tile, { ...layout, vecA: false, share: 8 }), /Cannot share/);
});
