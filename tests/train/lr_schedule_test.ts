import assert from "node:assert/strict";
import { learningRate, type LrScheduleConfig } from "../../src/train/lr_schedule.ts";

// expected values printed by the reference's `_get_lr` (Python floats)
const DEFAULTS: LrScheduleConfig = {
  learningRate: 3e-4,
  decayLr: true,
  warmupIters: 1,
  lrDecayIters: 600000,
  minLr: 2e-4,
};

Deno.test("learningRate() equals the reference _get_lr with the defaults.yaml schedule", () => {
  const expected: [number, number][] = [
    [0, 0.0],
    [1, 0.0003],
    [2, 0.0002999999999993146],
    [300000, 0.00025000013089991206],
    [599999, 0.0002000000000006854],
    [600000, 0.0002],
    [600001, 0.0002],
  ];
  for (const [step, lr] of expected) assert.equal(learningRate(step, DEFAULTS), lr, `step ${step}`);
});

Deno.test("learningRate() warmup is linear from 0 (step/warmup), then cosine, then min_lr", () => {
  const cfg = {
    learningRate: 1e-3,
    decayLr: true,
    warmupIters: 10,
    lrDecayIters: 100,
    minLr: 1e-5,
  };
  const expected: [number, number][] = [
    [0, 0.0],
    [1, 0.0001],
    [7, 0.0007],
    [10, 0.001],
    [11, 0.0009996984593744526],
    [55, 0.000505],
    [100, 1e-5],
    [101, 1e-5],
  ];
  for (const [step, lr] of expected) assert.equal(learningRate(step, cfg), lr, `step ${step}`);
});

Deno.test("learningRate() is constant when decay_lr is false", () => {
  const cfg = { ...DEFAULTS, decayLr: false };
  for (const step of [0, 1, 5, 10 ** 7]) assert.equal(learningRate(step, cfg), 3e-4);
});

Deno.test("learningRate() with warmup 0 starts at the peak; decay before warmup ends gives min_lr", () => {
  assert.equal(learningRate(0, { ...DEFAULTS, warmupIters: 0 }), 3e-4);
  const odd = { ...DEFAULTS, warmupIters: 10, lrDecayIters: 5 };
  assert.equal(learningRate(3, odd), 3e-4 * 3 / 10);
  assert.equal(learningRate(10, odd), 2e-4);
});

Deno.test("learningRate() rejects bad steps and the undefined cosine", () => {
  assert.throws(() => learningRate(-1, DEFAULTS), /non-negative integer/);
  assert.throws(() => learningRate(1.5, DEFAULTS), /non-negative integer/);
  assert.throws(
    () => learningRate(5, { ...DEFAULTS, warmupIters: 5, lrDecayIters: 5 }),
    /cosine decay is undefined/,
  );
});
