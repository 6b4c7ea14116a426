import assert from "node:assert/strict";
import { type BstConfig, bstParamSpecs } from "../../src/models/bst_config.ts";
import { fillNormal, INIT_STD, initFlatParameters, initParameters } from "../../src/core/init.ts";
import { buildParamTable } from "../../src/core/param_table.ts";
import { Xoshiro128 } from "../../src/core/rng.ts";

const TINY: BstConfig = {
  vocabSize: 23,
  eosTokenId: 22,
  nLayer: 2,
  nHead: 4,
  nEmbd: 32,
  blockSize: 16,
  bias: true,
  contextLength: 0,
  pairMinimumGap: 1,
  pairMaximumGap: -1,
  pairSubsampleRate: 1,
  singleGapPredictionMode: "eos",
};

Deno.test("initParameters() is deterministic per seed and differs across seeds", () => {
  const specs = bstParamSpecs(TINY);
  const a = initParameters(specs, 1337);
  const b = initParameters(specs, 1337);
  const c = initParameters(specs, 1338);
  assert.equal(a.length, specs.length);
  for (let i = 0; i < a.length; i++) assert.deepEqual(a[i], b[i]);
  assert.notDeepEqual(a[0], c[0]);
});

Deno.test("initParameters() gives N(0, 0.02) weights, ones for norm weights, zeros for biases", () => {
  const specs = bstParamSpecs(TINY);
  const values = initParameters(specs, 1337);
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  let within1 = 0;
  for (const [i, spec] of specs.entries()) {
    const v = values[i];
    assert.equal(v.length, spec.shape.reduce((x, y) => x * y, 1), spec.name);
    if (spec.init === "ones") assert.ok(v.every((x) => x === 1), spec.name);
    if (spec.init === "zeros") assert.ok(v.every((x) => x === 0), spec.name);
    if (spec.init !== "normal") continue;
    for (const x of v) {
      n++;
      sum += x;
      sumSq += x * x;
      if (Math.abs(x) < INIT_STD) within1++;
    }
  }
  assert.ok(specs.some((s) => s.init === "ones") && specs.some((s) => s.init === "zeros"));
  const mean = sum / n;
  const std = Math.sqrt(sumSq / n - mean * mean);
  assert.ok(n > 50_000, `${n} normal values`);
  assert.ok(Math.abs(mean) < 3 * INIT_STD / Math.sqrt(n) + 1e-5, `mean ${mean}`);
  assert.ok(Math.abs(std - INIT_STD) < 0.01 * INIT_STD, `std ${std}`);
  assert.ok(Math.abs(within1 / n - 0.6827) < 0.01, `P(|x| < σ) = ${within1 / n}`);
});

Deno.test("initFlatParameters() lays out the same values with zero padding", () => {
  const specs = bstParamSpecs({ ...TINY, bias: false });
  const table = buildParamTable(specs);
  const flat = initFlatParameters(table, 7);
  const per = initParameters(specs, 7);
  let covered = 0;
  for (const e of table.entries) {
    assert.deepEqual(table.view(flat, e.name), per[e.index]);
    covered += e.numel;
  }
  let nonzeroPadding = 0;
  const inTensor = new Uint8Array(table.size);
  for (const e of table.entries) inTensor.fill(1, e.offset, e.offset + e.numel);
  for (let i = 0; i < table.size; i++) if (!inTensor[i] && flat[i] !== 0) nonzeroPadding++;
  assert.equal(nonzeroPadding, 0);
  assert.equal(covered, table.paramCount);
});

Deno.test("fillNormal() handles odd lengths and honours mean and std", () => {
  const out = new Float32Array(10001);
  fillNormal(out, Xoshiro128.fromSeed(1), 2, 5);
  const mean = out.reduce((x, y) => x + y, 0) / out.length;
  assert.ok(Math.abs(mean - 5) < 0.1, `mean ${mean}`);
  assert.ok(Number.isFinite(out[10000]) && out[10000] !== 0);
});

Deno.test("Xoshiro128 reproduces the published xoshiro128** outputs and its state round-trips", () => {
  const g = Xoshiro128.fromState([1, 2, 3, 4]);
  assert.deepEqual([g.nextUint32(), g.nextUint32(), g.nextUint32()], [11520, 0, 5927040]);
  const s = g.getState();
  const x = [g.nextUint32(), g.nextUint32()];
  g.setState(s);
  assert.deepEqual([g.nextUint32(), g.nextUint32()], x);
  const u = Xoshiro128.fromSeed(0);
  for (let i = 0; i < 1000; i++) {
    const f = u.nextFloat32();
    assert.ok(f >= 0 && f < 1 && Math.fround(f) === f);
    const d = u.nextFloat64();
    assert.ok(d >= 0 && d < 1);
  }
  assert.notDeepEqual(Xoshiro128.fromSeed(5, 0).getState(), Xoshiro128.fromSeed(5, 1).getState());
});
