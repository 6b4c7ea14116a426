import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run, submit } from "../../src/gpu/kernel.ts";
import { Readback } from "../../src/gpu/readback.ts";
import { createTensor, writeTensor } from "../../src/gpu/tensor.ts";
import { LossWindow } from "../../src/train/loss_window.ts";

/** Per step, the loss slots each micro-batch writes (values exact in f32). */
const STEPS = [[[0.5, 0.25], [1]], [[2]], [[0.125, 4], [8, 0.75]], [[3]], [[1.5], [0.5, 0.5]]];

/** Records STEPS[from..to) into `window` as a training step would: write slots, then copy. */
async function feed(window: LossWindow, from: number, to: number): Promise<void> {
  const gpu = await getGpu();
  const slots = createTensor(gpu, [4], "test.loss_slots");
  for (const step of STEPS.slice(from, to)) {
    for (const micro of step) {
      writeTensor(gpu, slots, new Float32Array([...micro, 0, 0, 0, 0].slice(0, 4)));
      await run(gpu, [await window.record(slots, micro.length)]);
    }
    window.endStep();
  }
}

const stepLoss = (step: number[][]) => step.flat().reduce((a, b) => a + b, 0);

Deno.test("LossWindow.take() is the mean step loss since the last take, then starts afresh", async () => {
  const window = new LossWindow(await getGpu(), "test");
  await feed(window, 0, 3);
  assert.equal(window.steps, 3);
  assert.equal(
    await window.take(),
    (stepLoss(STEPS[0]) + stepLoss(STEPS[1]) + stepLoss(STEPS[2])) / 3,
  );
  assert.equal(window.steps, 0);
  await feed(window, 3, 5);
  assert.equal(await window.take(), (stepLoss(STEPS[3]) + stepLoss(STEPS[4])) / 2);
  assert.ok(Number.isNaN(await window.take()));
});

Deno.test("LossWindow reads a full log early and gives the same figure as a roomy one", async () => {
  const gpu = await getGpu();
  const small = new LossWindow(gpu, "test.small", 3);
  const roomy = new LossWindow(gpu, "test.roomy");
  await feed(small, 0, 5);
  await feed(roomy, 0, 5);
  assert.equal(await small.take(), await roomy.take());
  await assert.rejects(
    async () => await small.record(createTensor(gpu, [4], "test.four"), 4),
    /Cannot record 4 loss slots in a window of 3 slots/,
  );
  await assert.rejects(
    async () => await small.record(createTensor(gpu, [2], "test.two"), 3),
    /Cannot record 3 loss slots of "test.two"/,
  );
  assert.throws(() => new LossWindow(gpu, "test.none", 0), /positive integer/);
});

Deno.test("LossWindow.state() and restore() continue a window across a checkpoint", async () => {
  const gpu = await getGpu();
  const whole = new LossWindow(gpu, "test.whole");
  await feed(whole, 0, 5);
  const first = new LossWindow(gpu, "test.first");
  await feed(first, 0, 2);
  const state = await first.state();
  assert.equal(state.steps, 2);
  const resumed = new LossWindow(gpu, "test.resumed");
  resumed.restore(state);
  await feed(resumed, 2, 5);
  assert.equal(await resumed.take(), await whole.take());
  assert.throws(() => resumed.restore({ sum: 1, steps: -1 }), /must be \{sum, steps\}/);
});

Deno.test("LossWindow.takeInto() gives take()'s figure once its readback is read, early reads included", async () => {
  const gpu = await getGpu();
  const small = new LossWindow(gpu, "test.small", 3); // reads early: part of the sum is on the host
  const roomy = new LossWindow(gpu, "test.roomy");
  const reference = new LossWindow(gpu, "test.reference");
  for (const w of [small, roomy, reference]) await feed(w, 0, 5);
  const rb = new Readback(gpu, "test.window", 16);
  const a = small.takeInto(rb);
  const b = roomy.takeInto(rb);
  assert.equal(small.steps, 0);
  assert.throws(() => a.mean(), /has not been read yet/);
  submit(gpu, [a.op, b.op].filter((op) => op !== null));
  await rb.read();
  const want = await reference.take();
  assert.equal(a.mean(), want);
  assert.equal(b.mean(), want);
  rb.destroy();
});
