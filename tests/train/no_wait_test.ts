// Counts the host's waits for the GPU in training and validation, through wrappers around the
// queue's submit() and onSubmittedWorkDone() and GPUBuffer.prototype.mapAsync. A wait on
// onSubmittedWorkDone is "idle" when nothing was submitted after the promise was made (the GPU
// then has no work queued behind it while the host waits), "paced" otherwise.

import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { trainingPairList } from "../../src/models/bst.ts";
import { buildPairBatch } from "../../src/models/bst_pairs.ts";
import { BstRun, createRun, STEPS_AHEAD, type TrainData } from "../../src/train/trainer.ts";
import { tinyConfig, tinyData } from "./_tiny_data.ts";

interface Counts {
  submits: number;
  idle: number;
  paced: number;
  maps: number;
}

async function counting<T>(gpu: Gpu, body: (c: Counts) => Promise<T>): Promise<T> {
  const c: Counts = { submits: 0, idle: 0, paced: 0, maps: 0 };
  const queue = gpu.queue;
  const submit = queue.submit.bind(queue);
  const done = queue.onSubmittedWorkDone.bind(queue);
  queue.submit = (buffers: GPUCommandBuffer[]) => {
    c.submits++;
    submit(buffers);
  };
  queue.onSubmittedWorkDone = () => {
    const at = c.submits;
    const p = done();
    // `await` calls then() of a thenable when it starts waiting
    const thenable = {
      then(ok: (v: undefined) => unknown, fail: (e: unknown) => unknown) {
        if (c.submits === at) c.idle++;
        else c.paced++;
        return p.then(ok, fail);
      },
    };
    return thenable as unknown as Promise<undefined>;
  };
  const proto = GPUBuffer.prototype;
  const mapAsync = proto.mapAsync;
  proto.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer["mapAsync"]>) {
    c.maps++;
    return mapAsync.apply(this, args);
  };
  try {
    return await body(c);
  } finally {
    // the wrappers are own properties over the prototype's methods
    Reflect.deleteProperty(queue, "submit");
    Reflect.deleteProperty(queue, "onSubmittedWorkDone");
    proto.mapAsync = mapAsync;
  }
}

const delta = (after: Counts, before: Counts) => ({
  submits: after.submits - before.submits,
  idle: after.idle - before.idle,
  paced: after.paced - before.paced,
  maps: after.maps - before.maps,
});

for (const model of ["bst", "gpt"]) {
  Deno.test(`TrainRun.step() (${model}) waits for the GPU only to stay ${STEPS_AHEAD} steps ahead; a log step's figures are read after the next step is queued`, async () => {
    const gpu = await getGpu();
    const config = await tinyConfig("out", [
      `use_bst=${model === "bst"}`,
      "optimizer.grad_clip=1.0",
    ]);
    const r = await createRun(gpu, config, tinyData(48));
    await r.step(0, false); // plans pipelines and buffers
    await gpu.queue.onSubmittedWorkDone();
    await counting(gpu, async (c) => {
      const steps = 7;
      for (let s = 1; s <= steps; s++) {
        const log = s === 3 || s === 6;
        let before = { ...c };
        const result = await r.step(s, log);
        const d = delta(c, before);
        assert.equal(d.maps, 0, `step ${s} maps nothing`);
        assert.equal(d.idle, 0, `step ${s} never waits on an empty queue`);
        assert.equal(d.submits, 2, `step ${s}: one submission per micro-batch`);
        assert.equal(result.figures !== null, log);
        if (!log) continue;
        await r.step(++s, false); // the trainer queues the next step first
        before = { ...c };
        const figures = await result.figures!();
        assert.deepEqual(delta(c, before), { submits: 0, idle: 0, paced: 0, maps: 1 });
        assert.ok(Number.isFinite(figures.loss) && figures.loss > 0);
        assert.ok(figures.logs.grad_norm > 0);
        assert.equal(model === "bst", "avg_valid_pairs" in figures.logs);
        assert.equal(await result.figures!(), figures, "read once");
      }
      // steps STEPS_AHEAD… waited once each, for the step STEPS_AHEAD back (the wait of step
      // STEPS_AHEAD is on step 0's promise, made before counting began)
      assert.equal(c.paced, steps - STEPS_AHEAD);
      assert.equal(c.idle, 0);
    });
  });
}

async function validationWaits(
  model: "bst" | "gpt",
  valBatches: number,
): Promise<{ waits: number; val: Record<string, number | null> }> {
  const gpu = await getGpu();
  const config = await tinyConfig("out", [
    `use_bst=${model === "bst"}`,
    `trainer.val_batches=${valBatches}`,
  ]);
  // 16 validation rows: 4 batches of 4 rows; no path task (greedy decoding reads each token)
  const data: TrainData = { ...tinyData(64, 16), pathTask: undefined };
  const r = await createRun(gpu, config, data);
  await r.validate(); // plans pipelines and buffers
  await gpu.queue.onSubmittedWorkDone();
  return await counting(gpu, async (c) => {
    const val = { ...await r.validate() };
    assert.equal(c.idle + c.paced, 0);
    return { waits: c.maps, val };
  });
}

for (const model of ["bst", "gpt"] as const) {
  Deno.test(`TrainRun.validate() (${model}) waits once whatever its number of batches`, async () => {
    const one = await validationWaits(model, 1);
    const four = await validationWaits(model, 4);
    assert.equal(one.waits, 1);
    assert.equal(four.waits, 1);
    assert.notEqual(one.val.val_loss, four.val.val_loss);
  });
}

Deno.test("BstRun.validate() gives the figures of reading each micro-batch back in turn", async () => {
  const gpu = await getGpu();
  const config = await tinyConfig("out", ["trainer.val_batches=-1"]);
  const data: TrainData = { ...tinyData(64, 16), pathTask: undefined };
  const r = await BstRun.create(gpu, config, data);
  for (let s = 0; s < 3; s++) await r.step(s, false); // weights away from initialisation
  const got = await r.validate();
  // The figures the way validation computed them before it batched its readbacks: each
  // micro-batch run and waited for, its pair loss and evaluation losses read back at once.
  const T = data.seqLen;
  const B = r.microBatch;
  const accum = config.data.gradient_accum_steps;
  const enc = await r.model.encoders(B, T);
  const head = r.model.pairHead(enc, 64, false);
  let count = 0;
  let loss = 0;
  let next = 0;
  let prev = 0;
  for await (const batch of data.val.batches(B * accum)) {
    count++;
    const sampler = r.sampler.clone();
    for (let k = 0; k < accum; k++) {
      const tokens = batch.subarray(k * B * T, (k + 1) * B * T);
      const pairs = buildPairBatch(tokens, B, T, sampler, {
        pairBatchSize: config.data.pair_batch_size,
        gradientAccumSteps: accum,
      });
      enc.setTokens(tokens);
      await run(gpu, [...enc.forward, ...await head.setPairs(trainingPairList(pairs))]);
      loss += await head.readLoss();
      const e = await r.model.evaluationLoss(tokens, B, T);
      next += e.next.reduce((a, x) => a + x, 0) / B / accum;
      prev += e.prev.reduce((a, x) => a + x, 0) / B / accum;
    }
  }
  assert.equal(count, 4);
  assert.equal(got.val_loss, loss / count);
  assert.equal(got.val_loss_next_token, next / count);
  assert.equal(got.val_loss_prev_token, prev / count);
});
