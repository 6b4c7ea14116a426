// trainer.precision=16-mixed: dynamic loss scaling on the GPU (skip on overflow, backoff,
// growth, no read-back inside a step) and training of the tiny task (learns like 32-true,
// resumes to the byte).
import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run, submit } from "../../src/gpu/kernel.ts";
import { readLossScaleState, writeLossScaleState } from "../../src/gpu/loss_scale.ts";
import { checkMatmulPrecision } from "../../src/gpu/matmul.ts";
import { readTensor } from "../../src/gpu/tensor.ts";
import { readSafetensors, serializeSafetensors } from "../../src/io/safetensors.ts";
import { modelPrecision } from "../../src/models/from_config.ts";
import { GPT } from "../../src/models/gpt.ts";
import { AdamW } from "../../src/train/optimizer.ts";
import { decodeLossScale, train } from "../../src/train/trainer.ts";
import { tinyConfig, tinyData, tinyRows } from "./_tiny_data.ts";

const CFG = {
  vocabSize: 12,
  eosTokenId: 11,
  nLayer: 1,
  nHead: 2,
  nEmbd: 32,
  blockSize: 8,
  bias: false,
  mode: "next_token" as const,
  fimTokenId: -1,
};

/** Counts buffer mappings (read-backs) while `fn` runs. */
async function countMaps(fn: () => Promise<void>): Promise<number> {
  const proto = GPUBuffer.prototype as unknown as { mapAsync: (...a: unknown[]) => unknown };
  const original = proto.mapAsync;
  let n = 0;
  proto.mapAsync = function (this: unknown, ...a: unknown[]) {
    n++;
    return original.apply(this, a);
  };
  try {
    await fn();
  } finally {
    proto.mapAsync = original;
  }
  return n;
}

Deno.test("16-mixed AdamW skips an overflow step, halves the scale, and grows it after N good steps", async () => {
  const gpu = await getGpu();
  const gpt = await GPT.create(gpu, CFG, { seed: 3, precision: "16-mixed" });
  assert.equal(gpt.matmulPrecision, "f16");
  const opt = await AdamW.create(gpt, {
    beta1: 0.9,
    beta2: 0.95,
    weightDecay: 0.1,
    gradClip: 1,
    lossScaleGrowthInterval: 2, // the internal option: grow after 2 good steps
  });
  const { ops } = await gpt.planMicroStep(tinyRows(4), 4, 8);
  const zero = await gpt.planZeroGrads();
  const step = async (s: number) => {
    opt.setStep(1e-2, s);
    // One submission per step and not a single read-back until it is done.
    const maps = await countMaps(async () => {
      submit(gpu, [...zero, ...ops, ...opt.ops]);
      await gpu.queue.onSubmittedWorkDone();
    });
    assert.equal(maps, 0, `step ${s} read back from the GPU`);
  };
  const state0 = await readLossScaleState(gpu, gpt.lossScale!);
  assert.deepEqual(state0, {
    scale: 65536,
    goodSteps: 0,
    skippedSteps: 0,
    lastSkipped: false,
    optimizerSteps: 0,
    lastScale: 65536,
  });

  await step(1);
  let s = await readLossScaleState(gpu, gpt.lossScale!);
  assert.equal(s.lastSkipped, false);
  assert.equal(s.goodSteps, 1);
  assert.equal(s.optimizerSteps, 1);
  const norm = (await opt.gradNorm()).total;
  assert.ok(Number.isFinite(norm) && norm > 0 && norm < 100, `unscaled grad norm ${norm}`);
  await step(2);
  s = await readLossScaleState(gpu, gpt.lossScale!);
  assert.equal(s.scale, 131072, "doubled after 2 good steps");
  assert.equal(s.goodSteps, 0);
  assert.equal(s.optimizerSteps, 2);

  // A scale of 2^24 puts the loss gradient (about weight · 2^24, weights 1/28) beyond f16's
  // 65504 where it enters the lm_head matmuls, though every f32 figure stays finite: the
  // step must be skipped.
  writeLossScaleState(gpu, gpt.lossScale!, { ...s, scale: 2 ** 24, goodSteps: 1 });
  const before = await readTensor(gpu, gpt.params);
  const { m: m0, v: v0 } = await opt.getState();
  await step(3);
  s = await readLossScaleState(gpu, gpt.lossScale!);
  assert.equal(s.lastSkipped, true);
  assert.equal(s.scale, 2 ** 23, "halved");
  assert.equal(s.goodSteps, 0);
  assert.equal(s.skippedSteps, 1);
  assert.equal(s.optimizerSteps, 2, "a skipped step is no AdamW update");
  assert.equal(s.lastScale, 2 ** 24);
  assert.equal(Number.isFinite((await opt.gradNorm()).total), false);
  assert.deepEqual(await readTensor(gpu, gpt.params), before, "parameters untouched");
  const { m: m1, v: v1 } = await opt.getState();
  assert.deepEqual(m1, m0, "first moments untouched");
  assert.deepEqual(v1, v0, "second moments untouched");

  // Back to a normal scale, the next step updates again.
  writeLossScaleState(gpu, gpt.lossScale!, { ...s, scale: 2 ** 16 });
  await step(4);
  s = await readLossScaleState(gpu, gpt.lossScale!);
  assert.equal(s.lastSkipped, false);
  assert.equal(s.optimizerSteps, 3);
  assert.notDeepEqual(await readTensor(gpu, gpt.params), before);
});

Deno.test("16-mixed AdamW on unscaled gradients matches 32-true's first update closely", async () => {
  // Same weights, same rows: the first AdamW update is lr·sign(g)-like, so f16 matmuls in the
  // gradient change the parameters only where a gradient element is tiny. Compare the updates.
  const gpu = await getGpu();
  const hyper = { beta1: 0.9, beta2: 0.95, weightDecay: 0.1, gradClip: 1 };
  const updates: Float32Array[] = [];
  for (const precision of ["32-true", "16-mixed"] as const) {
    const gpt = await GPT.create(gpu, CFG, { seed: 5, precision });
    const opt = await AdamW.create(gpt, hyper);
    const before = await readTensor(gpu, gpt.params);
    const { ops } = await gpt.planMicroStep(tinyRows(4), 4, 8);
    opt.setStep(1e-3, 1);
    await run(gpu, [...await gpt.planZeroGrads(), ...ops, ...opt.ops]);
    const after = await readTensor(gpu, gpt.params);
    updates.push(after.map((x, i) => x - before[i]));
  }
  const [u32, u16] = updates;
  let close = 0;
  for (let i = 0; i < u32.length; i++) if (Math.abs(u32[i] - u16[i]) <= 2e-4) close++;
  // Adam's first step is ±lr wherever |g| ≫ eps, so most elements agree to well under lr.
  console.log(`${close} of ${u32.length} first updates agree to 2e-4`);
  assert.ok(close >= 0.95 * u32.length, `${close} of ${u32.length} updates agree`);
});

Deno.test("train() in 16-mixed learns like 32-true, logs the loss scale and resumes to the byte", async () => {
  const dir = await Deno.makeTempDir();
  const data = tinyData(60);
  const opts = { progress: false, handleInterrupt: false };
  const mixed = ["trainer.precision=16-mixed"];
  const full = await train(await tinyConfig(dir), data, { ...opts, runName: "f32" });
  const a = await train(await tinyConfig(dir, mixed), data, { ...opts, runName: "a" });
  assert.equal(a.steps, 6);
  // f16 inputs change the figures a little, not the learning.
  console.log(`val_loss 16-mixed ${a.val_loss}, 32-true ${full.val_loss}`);
  assert.ok(
    Math.abs(a.val_loss - full.val_loss) < 0.05 * full.val_loss,
    `val_loss 16-mixed ${a.val_loss} vs 32-true ${full.val_loss}`,
  );
  const rows = (await Deno.readTextFile(`${dir}/a/metrics.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.ok(rows[rows.length - 1].train_loss < rows[0].train_loss, "training loss decreases");
  assert.equal(rows[0].loss_scale, 65536);
  assert.equal(rows[0].skipped_steps, 0);
  const ckpt = await Deno.readFile(`${dir}/a/ckpt_iter_6.safetensors`);
  const headerLen = Number(new DataView(ckpt.buffer).getBigUint64(0, true));
  const meta = JSON.parse(new TextDecoder().decode(ckpt.subarray(8, 8 + headerLen))).__metadata__;
  assert.deepEqual(decodeLossScale("ckpt", meta.loss_scale).optimizerSteps, 6);

  // 3 steps, then resume for 3 more: the same bytes and metrics as 6 in one go.
  const config = await tinyConfig(dir, mixed);
  await train({ ...config, trainer: { ...config.trainer, train_batches: 3 } }, data, {
    ...opts,
    runName: "c",
  });
  const c = await train(await tinyConfig(dir, [...mixed, "trainer.init_from=resume"]), data, opts);
  assert.deepEqual({ ...c, seconds: 0 }, { ...a, seconds: 0 });
  assert.deepEqual(await Deno.readFile(`${dir}/c/ckpt_iter_6.safetensors`), ckpt);
  assert.equal(
    await Deno.readTextFile(`${dir}/c/metrics.jsonl`),
    await Deno.readTextFile(`${dir}/a/metrics.jsonl`),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train() in 16-mixed skips an overflow step without stopping (resumed with a huge scale)", async () => {
  const dir = await Deno.makeTempDir();
  const data = tinyData(60);
  const opts = { progress: false, handleInterrupt: false };
  const mixed = ["trainer.precision=16-mixed"];
  const config = await tinyConfig(dir, mixed);
  await train({ ...config, trainer: { ...config.trainer, train_batches: 3 } }, data, {
    ...opts,
    runName: "s",
  });
  // The checkpoint now says the scale is 2^24: step 4's loss gradient overflows f16.
  const path = `${dir}/s/ckpt_iter_3.safetensors`;
  const file = await readSafetensors(path);
  const state = decodeLossScale(path, file.metadata.loss_scale);
  assert.equal(state.optimizerSteps, 3);
  const huge = { ...state, scale: 2 ** 24 };
  await Deno.writeFile(
    path,
    serializeSafetensors(file.tensors, { ...file.metadata, loss_scale: JSON.stringify(huge) }),
  );
  const r = await train(
    await tinyConfig(dir, [...mixed, "trainer.init_from=resume", "trainer.train_batches=12"]),
    data,
    opts,
  );
  assert.equal(r.steps, 12);
  assert.ok(Number.isFinite(r.val_loss));
  const rows = (await Deno.readTextFile(`${dir}/s/metrics.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  const step4 = rows.find((row) => row.step === 4);
  assert.equal(step4.skipped_steps, 1, "step 4 was skipped");
  assert.equal(step4.loss_scale, 2 ** 23, "and the scale halved");
  assert.ok(Number.isFinite(step4.train_loss), "its loss is finite: the guard lets it pass");
  // The scale halves until the gradients fit f16, then the steps update again.
  const last = rows.find((row) => row.step === 12);
  const skipped = last.skipped_steps;
  assert.ok(skipped >= 1 && skipped < 9, `${skipped} of 9 steps skipped`);
  assert.equal(last.loss_scale, 2 ** (24 - skipped));
  const final = await readSafetensors(`${dir}/s/ckpt_iter_12.safetensors`);
  assert.equal(
    decodeLossScale("final", final.metadata.loss_scale).optimizerSteps,
    12 - skipped,
    "AdamW counts only the updates applied",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("16-mixed needs shader-f16: one line naming the adapter; bf16-mixed runs as 16-mixed", () => {
  const gpu = { info: { description: "Example GPU", features: ["timestamp-query"] } } as Gpu;
  checkMatmulPrecision(gpu, "f32", "x"); // fine
  assert.throws(
    () => checkMatmulPrecision(gpu, "f16", "trainer.precision=16-mixed"),
    {
      message: "trainer.precision=16-mixed needs f16 matmuls, but the WebGPU adapter " +
        '"Example GPU" does not have the shader-f16 feature',
    },
  );
  const of = (precision: string) =>
    modelPrecision({ trainer: { precision } } as unknown as Parameters<typeof modelPrecision>[0]);
  assert.equal(of("bf16-mixed"), "16-mixed");
  assert.equal(of("16-mixed"), "16-mixed");
  assert.equal(of("32-true"), "32-true");
});

Deno.test("decodeLossScale() refuses malformed checkpoint metadata in one line", () => {
  for (
    const bad of [
      "{",
      "{}",
      '{"scale":3,"goodSteps":0,"skippedSteps":0,"lastSkipped":false,"optimizerSteps":0,"lastScale":1}',
    ]
  ) {
    assert.throws(
      () => decodeLossScale("ck.safetensors", bad),
      /^Error: Cannot resume from "ck\.safetensors": metadata loss_scale is/,
    );
  }
});
