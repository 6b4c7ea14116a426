import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { readTensor } from "../../src/gpu/tensor.ts";
import { BST } from "../../src/models/bst.ts";
import {
  adamStepSlack,
  ATOL,
  bstConformance,
  bstFixtureStep,
  compare,
  fixtureParams,
  RTOL,
} from "../../src/conformance/conformance.ts";
import {
  readSafetensors,
  toFloat32,
  toInt32,
  writeSafetensorsAtomic,
} from "../../src/io/safetensors.ts";
import { bstTiny, tinyConfig } from "../_bst_fixture.ts";
import { assertClose } from "../_util.ts";

const fixture = await bstTiny();
const tokens = toInt32(fixture.tensors.get("input.tokens")!);
const [B, T] = fixture.tensors.get("input.tokens")!.shape;
const expected = (name: string) => toFloat32(fixture.tensors.get(name)!);

async function fixtureModel(): Promise<BST> {
  const model = await BST.create(await getGpu(), tinyConfig(fixture));
  model.setParameters(fixtureParams(model, fixture));
  return model;
}

Deno.test("BST encoders match the PyTorch fixture (fwd_emb, bwd_emb)", async () => {
  const model = await fixtureModel();
  const enc = await model.encoders(B, T);
  enc.setTokens(tokens);
  await run(model.gpu, enc.forward);
  const NC = B * T * model.config.nEmbd;
  const f = (await readTensor(model.gpu, enc.outF)).subarray(0, NC);
  const b = (await readTensor(model.gpu, enc.outB)).subarray(0, NC);
  assertClose(f, expected("expected.fwd_emb"), "fwd_emb", 1e-4, 1e-3);
  assertClose(b, expected("expected.bwd_emb"), "bwd_emb", 1e-4, 1e-3);
});

Deno.test("BST encoders planned without backward: the same states bit for bit, no backward ops", async () => {
  const model = await fixtureModel();
  const states = async (withBackward: boolean) => {
    const enc = await model.encoders(B, T, withBackward);
    enc.setTokens(tokens);
    await run(model.gpu, enc.forward);
    return {
      enc,
      f: await readTensor(model.gpu, enc.outF),
      b: await readTensor(model.gpu, enc.outB),
    };
  };
  const full = await states(true);
  const fwd = await states(false);
  assert.notEqual(fwd.enc, full.enc); // cached apart
  assert.equal(await model.encoders(B, T, false), fwd.enc);
  assert.deepEqual(fwd.f, full.f);
  assert.deepEqual(fwd.b, full.b);
  assert.equal(fwd.enc.forward.length, full.enc.forward.length);
  assert.ok(full.enc.backward.length > 0 && full.enc.zeroDout.length === 2);
  assert.equal(fwd.enc.backward.length, 0);
  assert.equal(fwd.enc.zeroDout.length, 0);
  const head = model.pairHead(fwd.enc, 64, false);
  const pairs = {
    count: 0,
    fIndex: new Int32Array(),
    bIndex: new Int32Array(),
    nextTarget: new Int32Array(),
    prevTarget: new Int32Array(),
    nextWeight: new Float32Array(),
    prevWeight: new Float32Array(),
  };
  await assert.rejects(
    () => model.planMicroStep(fwd.enc, head, tokens, pairs),
    /planned without backward/,
  );
});

Deno.test("BST evaluationLoss() matches the PyTorch fixture per row", async () => {
  const model = await fixtureModel();
  model.setParameters(fixtureParams(model, fixture, true));
  const { next, prev } = await model.evaluationLoss(tokens, B, T);
  assertClose(next, expected("expected.eval_next_loss"), "eval_next_loss", 1e-5, 1e-5);
  assertClose(prev, expected("expected.eval_prev_loss"), "eval_prev_loss", 1e-5, 1e-5);
});

Deno.test("BST training step: loss and every gradient match the fixture tightly", async () => {
  const model = await fixtureModel();
  const step = await bstFixtureStep(model, fixture, 1 << 30);
  assertClose([step.loss], [Number(fixture.metadata.loss)], "loss", 1e-6, 1e-6);
  assertClose([step.gradNorm], [Number(fixture.metadata.grad_norm)], "grad_norm", 1e-6, 1e-5);
  for (const e of model.table.entries) {
    assertClose(
      model.table.view(step.grads, e.name),
      expected(`expected.grad.${e.name}`),
      `grad ${e.name}`,
      2e-6,
      1e-3,
    );
  }
  const step7 = await bstFixtureStep(model, fixture, 7);
  assertClose(
    [step7.loss],
    [Number(fixture.metadata.loss_pair_batch_size_7)],
    "loss pbs 7",
    1e-6,
    1e-6,
  );
});

Deno.test("bstConformance() passes every check of the fixture, the six sampling modes included", async () => {
  const checks = await bstConformance(await getGpu(), fixture, "bst_tiny");
  const failed = checks.filter((c) => !c.ok);
  assert.deepEqual(failed, []);
  assert.equal(checks.filter((c) => c.name.startsWith("inference.")).length, 6);
  const updated = checks.filter((c) => c.name.startsWith("updated."));
  assert.equal(updated.length, model0ParamCount());
});

Deno.test("adamStepSlack() widens the updated-weight check only where a gradient is near zero", async () => {
  const model = await fixtureModel();
  const step = await bstFixtureStep(model, fixture, 1 << 30);
  const slack = adamStepSlack(model, fixture, step.grads, step.moduleNorms);
  const want = new Float32Array(step.grads.length);
  for (const e of model.table.entries) {
    model.table.view(want, e.name).set(expected(`expected.grad.${e.name}`));
  }
  // AdamW's first step is lr·g/(|g| + 1e-8): flat away from zero, steep within a few eps.
  let steep = 0;
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(want[i]) > 1e-5) assert.ok(slack[i] < 1e-6, `slack ${slack[i]} at ${i}`);
    if (slack[i] > ATOL) steep++;
  }
  assert.ok(steep < want.length / 1000, `${steep} elements with a wide slack`);
  // An optimizer error on a well-conditioned weight still fails the check.
  const name = model.table.entries[0].name;
  const got = model.table.view(step.params, name).slice();
  const ref = expected(`expected.updated.${name}`);
  const grad = model.table.view(want, name);
  const i = grad.findIndex((g) => Math.abs(g) > 1e-4);
  const s = model.table.view(slack, name);
  assert.ok(compare("t", name, got, ref, s).ok);
  got[i] += 2 * (ATOL + RTOL * Math.abs(ref[i]));
  assert.equal(compare("t", name, got, ref, s).ok, false);
});

Deno.test("bstConformance() in 16-mixed passes every check within the f16 tolerance", async () => {
  const checks = await bstConformance(await getGpu(), fixture, "bst_tiny", {
    precision: "16-mixed",
  });
  assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.name), []);
  assert.equal(checks.filter((c) => c.name.startsWith("inference.")).length, 6);
  const emb = checks.find((c) => c.name === "fwd_emb")!;
  assert.ok(emb.max_abs_err! > 1e-4, `fwd_emb max abs err ${emb.max_abs_err}: f16 not in play?`);
});

function model0ParamCount(): number {
  return [...fixture.tensors.keys()].filter((n) => n.startsWith("expected.updated.")).length;
}

Deno.test("BST.create() initialises deterministically from the seed", async () => {
  const gpu = await getGpu();
  const a = await (await BST.create(gpu, tinyConfig(fixture), { seed: 7 })).getParameters();
  const b = await (await BST.create(gpu, tinyConfig(fixture), { seed: 7 })).getParameters();
  const c = await (await BST.create(gpu, tinyConfig(fixture), { seed: 8 })).getParameters();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("BST fixture weights round-trip bit-identically through a checkpoint file", async () => {
  const model = await fixtureModel();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ckpt.safetensors`;
  await writeSafetensorsAtomic(path, await model.toSafetensors(), { model: "bst" });
  // A plain safetensors reading: the header lists the reference's names, shapes and dtype.
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  for (const [name, t] of fixture.tensors) {
    if (!name.startsWith("encoder.") && !name.startsWith("text_head.")) continue;
    assert.deepEqual(header[name].shape, t.shape, name);
    assert.equal(header[name].dtype, "F32");
  }
  const loaded = await BST.create(model.gpu, tinyConfig(fixture));
  loaded.loadSafetensors((await readSafetensors(path)).tensors, path);
  const again = await loaded.toSafetensors();
  for (const [name, t] of again) assert.deepEqual(t.data, fixture.tensors.get(name)!.data, name);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a BST training step is bit-identical when run twice", async () => {
  const a = await bstFixtureStep(await fixtureModel(), fixture, 7);
  const b = await bstFixtureStep(await fixtureModel(), fixture, 7);
  assert.equal(a.loss, b.loss);
  assert.deepEqual(a.grads, b.grads);
  assert.deepEqual(a.params, b.params);
});
