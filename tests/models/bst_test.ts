import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { readTensor } from "../../src/gpu/tensor.ts";
import { BST, trainingPairList } from "../../src/models/bst.ts";
import { buildPairBatch, PairSampler } from "../../src/models/bst_pairs.ts";
import { AdamW } from "../../src/train/optimizer.ts";
import { paramsFromSafetensors } from "../../src/train/param_table.ts";
import { toFloat32, toInt32 } from "../../src/train/safetensors.ts";
import { bstTiny, tinyConfig } from "../_bst_fixture.ts";
import { assertClose } from "../_util.ts";

const fixture = await bstTiny();
const isParam = (n: string) => n.startsWith("encoder.") || n.startsWith("text_head.");

/** The fixture's starting weights, or with `updated` the weights after its AdamW step. */
function fixtureParams(model: BST, updated = false): Float32Array {
  const prefix = updated ? "expected.updated." : "";
  return paramsFromSafetensors(model.table, fixture.tensors, "bst_tiny", {
    prefix,
    ignore: (n) => !(n.startsWith(prefix) && isParam(n.slice(prefix.length))),
  });
}

async function fixtureModel(updated = false): Promise<BST> {
  const gpu = await getGpu();
  const model = await BST.create(gpu, tinyConfig(fixture));
  model.setParameters(fixtureParams(model, updated));
  return model;
}

const tokens = toInt32(fixture.tensors.get("input.tokens")!);
const [B, T] = fixture.tensors.get("input.tokens")!.shape;
const expected = (name: string) => toFloat32(fixture.tensors.get(name)!);

Deno.test("BST encoders match the PyTorch fixture (fwd_emb, bwd_emb)", async () => {
  const model = await fixtureModel();
  const enc = await model.encoders(B, T);
  enc.setTokens(tokens);
  await run(model.gpu, enc.forward);
  const N = B * T;
  const C = model.config.nEmbd;
  const f = (await readTensor(model.gpu, enc.outF)).subarray(0, N * C);
  const b = (await readTensor(model.gpu, enc.outB)).subarray(0, N * C);
  assertClose(f, expected("expected.fwd_emb"), "fwd_emb", 1e-4, 1e-3);
  assertClose(b, expected("expected.bwd_emb"), "bwd_emb", 1e-4, 1e-3);
});

// The fixture computed `texthead_logits` with the text head's weights after the AdamW step,
// on the encoder outputs of the starting weights (checked against a float64 CPU head).
Deno.test("BST text head logits match the PyTorch fixture on row 0", async () => {
  const model = await fixtureModel();
  const enc = await model.encoders(B, T);
  enc.setTokens(tokens);
  await run(model.gpu, enc.forward);
  model.setParameters(fixtureParams(model, true));
  const pairs = toInt32(fixture.tensors.get("input.pairs")!);
  const P = pairs.length / 2;
  const fIndex = new Int32Array(P).map((_, i) => pairs[2 * i]);
  const bIndex = new Int32Array(P).map((_, i) => pairs[2 * i + 1]);
  const head = model.pairHead(enc, P, false);
  const zeros = new Float32Array(P);
  const none = new Int32Array(P).fill(-100);
  const logits = await head.logits({
    count: P,
    fIndex,
    bIndex,
    nextTarget: none,
    prevTarget: none,
    nextWeight: zeros,
    prevWeight: zeros,
  });
  assertClose(logits, expected("expected.texthead_logits"), "texthead_logits", 1e-4, 1e-3);
});

Deno.test("BST evaluationLoss() matches the PyTorch fixture per row", async () => {
  const model = await fixtureModel(true);
  const { next, prev } = await model.evaluationLoss(tokens, B, T);
  assertClose(next, expected("expected.eval_next_loss"), "eval_next_loss", 1e-4, 1e-3);
  assertClose(prev, expected("expected.eval_prev_loss"), "eval_prev_loss", 1e-4, 1e-3);
});

const optimizerMeta = JSON.parse(fixture.metadata.optimizer);

/** One training step on the fixture batch: loss, gradients, AdamW update. */
async function fixtureStep(pairBatchSize: number) {
  const model = await fixtureModel();
  const cfg = tinyConfig(fixture);
  const enc = await model.encoders(B, T);
  const batch = buildPairBatch(tokens, B, T, new PairSampler(cfg, 0), { pairBatchSize });
  const head = model.pairHead(enc, batch.count, true);
  const opt = await AdamW.create(model, {
    beta1: optimizerMeta.betas[0],
    beta2: optimizerMeta.betas[1],
    weightDecay: optimizerMeta.weight_decay,
    gradClip: optimizerMeta.grad_clip,
    eps: optimizerMeta.eps,
  });
  const step = await model.planMicroStep(enc, head, tokens, trainingPairList(batch));
  await run(model.gpu, [...await model.planZeroGrads(), ...step]);
  const loss = await head.readLoss();
  const grads = await model.getGradients();
  opt.setStep(optimizerMeta.lr, 1);
  await run(model.gpu, opt.ops);
  return { model, loss, grads, gradNorm: await opt.gradNorm(), params: await model.getParameters() };
}

Deno.test("BST training loss, gradients, grad norm and AdamW step match the PyTorch fixture", async () => {
  const { model, loss, grads, gradNorm, params } = await fixtureStep(1 << 20);
  assertClose([loss], [Number(fixture.metadata.loss)], "loss", 1e-5, 1e-5);
  for (const e of model.table.entries) {
    assertClose(
      model.table.view(grads, e.name),
      expected(`expected.grad.${e.name}`),
      `grad ${e.name}`,
      2e-5,
      1e-3,
    );
  }
  assertClose([gradNorm.total], [Number(fixture.metadata.grad_norm)], "grad_norm", 1e-5, 1e-4);
  for (const e of model.table.entries) {
    assertClose(
      model.table.view(params, e.name),
      expected(`expected.updated.${e.name}`),
      `updated ${e.name}`,
      // AdamW normalises each gradient element, so elements whose gradient is ~1e-7 (where
      // float32 and the float64 reference differ in relative terms) move by up to ~1e-4.
      1e-4,
      1e-3,
    );
  }
});

Deno.test("BST loss with pair_batch_size 7 matches the fixture's chunk-mean loss", async () => {
  const { loss } = await fixtureStep(7);
  assertClose([loss], [Number(fixture.metadata.loss_pair_batch_size_7)], "loss pbs 7", 1e-5, 1e-5);
});
