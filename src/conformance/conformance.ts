/**
 * Conformance against the PyTorch reference fixtures (`fixtures/reference/*.safetensors`):
 * build the model a fixture's `__metadata__` describes, load its parameters, and run every
 * check its `expected.*` tensors and metadata scalars describe.
 *
 * Two facts about the BST fixture, found by recomputing it in float64: `texthead_logits` uses
 * the text head's weights after the AdamW step (on the encoder outputs of the starting
 * weights), and `eval_next_loss`/`eval_prev_loss` use the updated weights throughout.
 *
 * Tolerance: |got − want| ≤ ATOL + RTOL·|want| everywhere, and for the weights after the AdamW
 * step (`updated.*`) also plus what the gradient difference (checked on its own by `grad.*`)
 * explains through that step: {@linkcode adamStepSlack}. AdamW's first step moves a weight by
 * lr·ĝ/(|ĝ| + eps); for a gradient within a few eps of zero that turns a difference far inside
 * the gradient tolerance (a few 1e-9 on a 5e-8 gradient, a matter of summation order) into a
 * weight difference of several 1e-5, so without the slack the check would test summation order
 * rather than the optimizer.
 *
 * @module
 */

import { IGNORE_INDEX } from "../gpu/cross_entropy.ts";
import type { Gpu } from "../gpu/device.ts";
import { run } from "../gpu/kernel.ts";
import { readTensor } from "../gpu/tensor.ts";
import { paramsFromSafetensors } from "../core/param_table.ts";
import { AdamW } from "../train/optimizer.ts";
import { type SafetensorsFile, toFloat32, toInt32 } from "../io/safetensors.ts";
import { BST, type StateTables, trainingPairList } from "../models/bst.ts";
import type { FlatParams, ModelPrecision } from "../models/flat_params.ts";
import { readLossScaleState } from "../gpu/loss_scale.ts";
import type { BstConfig } from "../models/bst_config.ts";
import { buildPairBatch, PairSampler } from "../models/bst_pairs.ts";
import { GPT, type GptConfig } from "../models/gpt.ts";
import {
  BstSampler,
  type Generation,
  SAMPLING_MODES,
  type SamplingMode,
} from "../inference/bst_sampling.ts";

/** One conformance check's outcome (one JSON line of `deno task conformance`). */
export interface Check {
  fixture: string;
  name: string;
  max_abs_err: number | null;
  max_rel_err: number | null;
  ok: boolean;
  /** Why a check failed without numbers (e.g. a model kind not supported yet). */
  error?: string;
}

/** Tolerance of every numeric check: |got − want| ≤ ATOL + RTOL·|want|. */
export const ATOL = 1e-4;
export const RTOL = 1e-3;

/** A check's tolerance: |got − want| ≤ atol + rtol·|want| (+ a per-element slack). */
export interface Tolerance {
  atol: number;
  rtol: number;
}

/**
 * Tolerance of the checks under `trainer.precision=16-mixed`, where every Linear layer's
 * operands are rounded to f16 (11 significant bits: a relative error of up to 2^-11 per operand
 * against the fixture's f32 math), through two encoders of two blocks and the text head.
 */
export const F16_TOLERANCE: Tolerance = { atol: 2e-2, rtol: 2e-2 };

/** Options of the conformance runs. */
export interface ConformanceOptions {
  /** Precision of the model under test (default "32-true": {@linkcode ATOL}/{@linkcode RTOL}). */
  precision?: ModelPrecision;
}

/**
 * Compares arrays with {@linkcode ATOL}/{@linkcode RTOL} (plus `slack[i]` per element when
 * given) and returns the check.
 */
export function compare(
  fixture: string,
  name: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  slack?: ArrayLike<number>,
  tol: Tolerance = { atol: ATOL, rtol: RTOL },
): Check {
  if (got.length !== want.length) {
    return {
      fixture,
      name,
      max_abs_err: null,
      max_rel_err: null,
      ok: false,
      error: `length ${got.length}, expected ${want.length}`,
    };
  }
  let abs = 0;
  let rel = 0;
  let ok = true;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= tol.atol + tol.rtol * Math.abs(want[i]) + (slack?.[i] ?? 0))) ok = false;
    if (!(d <= abs)) abs = Number.isNaN(d) ? Infinity : d;
    const r = d / Math.max(Math.abs(want[i]), 1e-12);
    if (!(r <= rel)) rel = Number.isNaN(r) ? Infinity : r;
  }
  return { fixture, name, max_abs_err: abs, max_rel_err: rel, ok };
}

/** AdamW with the fixture's `optimizer` metadata (lr is set per step). */
function adamFromMetadata(model: FlatParams, metadata: Record<string, string>): Promise<AdamW> {
  const opt = JSON.parse(metadata.optimizer);
  return AdamW.create(model, {
    beta1: opt.betas[0],
    beta2: opt.betas[1],
    weightDecay: opt.weight_decay,
    gradClip: opt.grad_clip ?? null,
    eps: opt.eps ?? 1e-8,
  });
}

/** One check per parameter: `flat`'s view of it against the fixture's `expected.<kind>.<name>`. */
function compareParams(
  fixture: string,
  f: SafetensorsFile,
  model: FlatParams,
  flat: Float32Array,
  kind: "grad" | "updated",
  slack?: Float32Array,
  tol?: Tolerance,
): Check[] {
  return model.table.entries.map((e) =>
    compare(
      fixture,
      `${kind}.${e.name}`,
      model.table.view(flat, e.name),
      toFloat32(f.tensors.get(`expected.${kind}.${e.name}`)!, e.name),
      slack && model.table.view(slack, e.name),
      tol,
    )
  );
}

/**
 * Per-element slack of the `updated.*` checks: |u(ĝ_got) − u(ĝ_want)| for AdamW's first step
 * u(ĝ) = lr·ĝ/(|ĝ| + eps) (bias-corrected m̂ = ĝ, v̂ = ĝ²), ĝ = c·g with c the element's module
 * clip coefficient min(1, grad_clip / (module norm + 1e-6)) from our norms: how far the step
 * carries the gradient difference that the `grad.*` checks judge. Weight decay moves both
 * sides alike and adds nothing.
 *
 * @param model the model (its flat layout and modules).
 * @param f the fixture (`expected.grad.*`, `optimizer` metadata).
 * @param grads our gradients (flat).
 * @param moduleNorms our unclipped gradient norm per module (`AdamW.gradNorm().modules`).
 */
export function adamStepSlack(
  model: FlatParams,
  f: SafetensorsFile,
  grads: Float32Array,
  moduleNorms: Record<string, number>,
): Float32Array {
  const opt = JSON.parse(f.metadata.optimizer);
  const lr: number = opt.lr;
  const eps: number = opt.eps ?? 1e-8;
  const clip: number | null = opt.grad_clip ?? null;
  const coef = new Float64Array(grads.length).fill(1);
  if (clip !== null) {
    const base = model.grads.offset / 4;
    for (const r of model.ranges(model.grads, (s) => s.module)) {
      const c = Math.min(1, clip / (moduleNorms[r.key] + 1e-6));
      const start = r.view.offset / 4 - base;
      coef.fill(c, start, start + r.view.numel);
    }
  }
  const want = new Float32Array(grads.length);
  for (const e of model.table.entries) {
    model.table.view(want, e.name).set(
      toFloat32(f.tensors.get(`expected.grad.${e.name}`)!, e.name),
    );
  }
  const step = (g: number) => lr * g / (Math.abs(g) + eps);
  return grads.map((g, i) => Math.abs(step(coef[i] * g) - step(coef[i] * want[i])));
}

/** The BST config a fixture's metadata describes. */
export function bstConfigFromMetadata(metadata: Record<string, string>): BstConfig {
  const c = JSON.parse(metadata.config ?? "{}");
  return {
    vocabSize: c.vocab_size,
    eosTokenId: c.eos_token_id,
    nLayer: c.n_layer,
    nHead: c.n_head,
    nEmbd: c.n_embd,
    blockSize: c.block_size,
    bias: c.bias ?? false,
    contextLength: c.context_length ?? 0,
    pairMinimumGap: c.bst_pair_minimum_gap ?? 1,
    pairMaximumGap: c.bst_pair_maximum_gap ?? -1,
    pairSubsampleRate: c.bst_pair_subsample_rate ?? 1,
    singleGapPredictionMode: c.bst_single_gap_prediction_mode ?? "eos",
  };
}

const isParam = (n: string) => n.startsWith("encoder.") || n.startsWith("text_head.");

/** A fixture's parameters in `model`'s flat layout: starting, or after its AdamW step. */
export function fixtureParams(model: BST, f: SafetensorsFile, updated = false): Float32Array {
  const prefix = updated ? "expected.updated." : "";
  return paramsFromSafetensors(model.table, f.tensors, "fixture", {
    prefix,
    ignore: (n) => !(n.startsWith(prefix) && isParam(n.slice(prefix.length))),
  });
}

/** What one training step on a fixture's batch produced. */
/**
 * The model's gradients as the fixture has them: under 16-mixed they carry the loss scale the
 * step was seeded with (a power of two, so dividing is exact).
 */
async function unscaledGradients(model: FlatParams): Promise<Float32Array> {
  const grads = await model.getGradients();
  if (!model.lossScale) return grads;
  const scale = (await readLossScaleState(model.gpu, model.lossScale)).scale;
  return grads.map((g) => g / scale);
}

export interface FixtureStep {
  loss: number;
  grads: Float32Array;
  gradNorm: number;
  /** Unclipped gradient norm per module (the clip coefficients' inputs). */
  moduleNorms: Record<string, number>;
  params: Float32Array;
}

/**
 * Runs one training step (loss, backward, AdamW with the fixture's `optimizer` metadata at
 * step 1) on the fixture's batch from its starting weights.
 */
export async function bstFixtureStep(
  model: BST,
  f: SafetensorsFile,
  pairBatchSize: number,
): Promise<FixtureStep> {
  const tokensT = f.tensors.get("input.tokens")!;
  const [B, T] = tokensT.shape;
  const tokens = toInt32(tokensT, "input.tokens");
  model.setParameters(fixtureParams(model, f));
  const enc = await model.encoders(B, T);
  const batch = buildPairBatch(tokens, B, T, new PairSampler(model.config, 0), { pairBatchSize });
  const head = model.pairHead(enc, batch.count, true);
  const adam = await adamFromMetadata(model, f.metadata);
  const step = await model.planMicroStep(enc, head, tokens, trainingPairList(batch));
  await run(model.gpu, [...await model.planZeroGrads(), ...step]);
  return await adamFixtureStep(model, f, adam, await head.readLoss());
}

/**
 * The rest of a fixture's training step once forward and backward have run: the gradients
 * (unscaled), AdamW at step 1 with the fixture's learning rate, its norms and the parameters.
 */
async function adamFixtureStep(
  model: FlatParams,
  f: SafetensorsFile,
  adam: AdamW,
  loss: number,
): Promise<FixtureStep> {
  const grads = await unscaledGradients(model);
  adam.setStep(JSON.parse(f.metadata.optimizer).lr, 1);
  await run(model.gpu, adam.ops);
  const norms = await adam.gradNorm();
  return {
    loss,
    grads,
    gradNorm: norms.total,
    moduleNorms: norms.modules,
    params: await model.getParameters(),
  };
}

/** The checks of a fixture's training step: loss, gradients, grad norm, updated parameters. */
function stepChecks(
  name: string,
  f: SafetensorsFile,
  model: FlatParams,
  step: FixtureStep,
  tol?: Tolerance,
): Check[] {
  const slack = adamStepSlack(model, f, step.grads, step.moduleNorms);
  return [
    compare(name, "loss", [step.loss], [Number(f.metadata.loss)], undefined, tol),
    ...compareParams(name, f, model, step.grads, "grad", undefined, tol),
    compare(name, "grad_norm", [step.gradNorm], [Number(f.metadata.grad_norm)], undefined, tol),
    ...compareParams(name, f, model, step.params, "updated", slack, tol),
  ];
}

/** Precision, tolerance and the check and expected-tensor readers of one fixture's run. */
function runSetup(name: string, f: SafetensorsFile, options: ConformanceOptions) {
  const precision = options.precision ?? "32-true";
  const tol = precision === "16-mixed" ? F16_TOLERANCE : undefined;
  return {
    precision,
    tol,
    check: (what: string, got: ArrayLike<number>, want: ArrayLike<number>) =>
      compare(name, what, got, want, undefined, tol),
    want: (key: string) => toFloat32(f.tensors.get(key)!, key),
  };
}

/** Runs every check of a BST fixture. */
export async function bstConformance(
  gpu: Gpu,
  f: SafetensorsFile,
  name: string,
  options: ConformanceOptions = {},
): Promise<Check[]> {
  const { precision, tol, check, want } = runSetup(name, f, options);
  const checks: Check[] = [];
  const model = await BST.create(gpu, bstConfigFromMetadata(f.metadata), {
    label: "conformance",
    precision,
  });
  const tokensT = f.tensors.get("input.tokens")!;
  const [B, T] = tokensT.shape;
  const tokens = toInt32(tokensT, "input.tokens");
  const N = B * T;
  const C = model.config.nEmbd;

  // Encoders (starting weights).
  model.setParameters(fixtureParams(model, f));
  const enc = await model.encoders(B, T);
  enc.setTokens(tokens);
  await run(gpu, enc.forward);
  const outF = (await readTensor(gpu, enc.outF)).subarray(0, N * C);
  const outB = (await readTensor(gpu, enc.outB)).subarray(0, N * C);
  checks.push(check("fwd_emb", outF, want("expected.fwd_emb")));
  checks.push(check("bwd_emb", outB, want("expected.bwd_emb")));

  // Text head on row 0's pairs: updated head weights on the starting encoder outputs.
  const pairs = toInt32(f.tensors.get("input.pairs")!, "input.pairs");
  model.setParameters(fixtureParams(model, f, true));
  const logits = await textHeadLogits(model, enc, pairs);
  checks.push(check("texthead_logits", logits, want("expected.texthead_logits")));

  // Evaluation losses (updated weights).
  const evalLoss = await model.evaluationLoss(tokens, B, T);
  checks.push(check("eval_next_loss", evalLoss.next, want("expected.eval_next_loss")));
  checks.push(check("eval_prev_loss", evalLoss.prev, want("expected.eval_prev_loss")));

  // Training step: loss (one chunk), gradients, grad norm, updated parameters.
  checks.push(...stepChecks(name, f, model, await bstFixtureStep(model, f, 1 << 30), tol));
  if (f.metadata.loss_pair_batch_size_7 !== undefined) {
    const step7 = await bstFixtureStep(model, f, 7);
    checks.push(
      check("loss_pair_batch_size_7", [step7.loss], [
        Number(f.metadata.loss_pair_batch_size_7),
      ]),
    );
  }
  if (f.metadata.inference !== undefined) {
    // Sampling uses the weights after the AdamW step (the fixture's choice).
    model.setParameters(fixtureParams(model, f, true));
    checks.push(...await samplingChecks(model, name, JSON.parse(f.metadata.inference), tol));
  }
  return checks;
}

/**
 * The reference `TextHead`'s output for explicit pairs of encoder states (row 0's, as the
 * fixtures give them): (P, 2, V), index 0 next-token logits, 1 previous-token.
 *
 * @param model the BST.
 * @param enc encoder states, already computed.
 * @param pairs (P, 2) forward and backward positions.
 */
export async function textHeadLogits(
  model: BST,
  enc: StateTables,
  pairs: Int32Array,
): Promise<Float32Array> {
  const P = pairs.length / 2;
  const none = new Int32Array(P).fill(IGNORE_INDEX);
  return await model.pairHead(enc, P, false).logits({
    count: P,
    fIndex: new Int32Array(P).map((_, i) => pairs[2 * i]),
    bIndex: new Int32Array(P).map((_, i) => pairs[2 * i + 1]),
    nextTarget: none,
    prevTarget: none,
    nextWeight: new Float32Array(P),
    prevWeight: new Float32Array(P),
  });
}

/**
 * One check per sampling mode of the fixture's `inference` block: every text field must be
 * equal and every score within the tolerance.
 */
export async function samplingChecks(
  model: BST,
  fixture: string,
  inf: {
    prompt: number[];
    goal: number[];
    rollout_len: number;
    top_k: number;
    rollout_count: number;
    results: Record<string, Generation>;
  },
  tol?: Tolerance,
): Promise<Check[]> {
  const sampler = new BstSampler(model);
  const checks: Check[] = [];
  for (const [mode, want] of Object.entries(inf.results)) {
    const name = `inference.${mode}`;
    if (!SAMPLING_MODES.includes(mode as SamplingMode)) {
      checks.push(unsupported(fixture, name, `unknown sampling mode "${mode}"`));
      continue;
    }
    const got = await sampler.sample(mode as SamplingMode, inf.prompt, inf.goal, {
      rolloutLen: inf.rollout_len,
      topK: inf.top_k,
      rolloutCount: inf.rollout_count,
    });
    const texts = (g: Generation) => [
      g.prompt,
      g.goal,
      g.sampling_method,
      g.generated,
      g.greedy,
      ...g.top_n.map((t) => t[0]),
    ];
    const scores = (g: Generation) =>
      [g.score, g.greedy_score, ...g.top_n.map((t) => t[1])]
        .map((x) => x ?? 0);
    const sameText = JSON.stringify(texts(got)) === JSON.stringify(texts(want));
    const c = scores(got).length === scores(want).length
      ? compare(fixture, name, scores(got), scores(want), undefined, tol)
      : compare(fixture, name, [], [0]);
    if (!sameText) {
      c.ok = false;
      c.error =
        `generated ${JSON.stringify(got.generated)} (top_n ${
          JSON.stringify(got.top_n.map((t) => t[0]))
        }), ` +
        `expected ${JSON.stringify(want.generated)} (top_n ${
          JSON.stringify(want.top_n.map((t) => t[0]))
        })`;
    }
    checks.push(c);
  }
  return checks;
}

function unsupported(fixture: string, name: string, error: string): Check {
  return { fixture, name, max_abs_err: null, max_rel_err: null, ok: false, error };
}

/** The GPT config a fixture's metadata describes. */
export function gptConfigFromMetadata(metadata: Record<string, string>): GptConfig {
  const c = JSON.parse(metadata.config ?? "{}");
  const mode = metadata.gpt_mode === "fim" ? "fim" : "next_token";
  return {
    vocabSize: c.vocab_size,
    eosTokenId: c.eos_token_id,
    nLayer: c.n_layer,
    nHead: c.n_head,
    nEmbd: c.n_embd,
    blockSize: c.block_size,
    bias: c.bias ?? false,
    mode,
    fimTokenId: mode === "fim" ? Number(metadata.fim_token_id) : -1,
  };
}

/** Runs every check of a GPT fixture (next-token or FIM). */
export async function gptConformance(
  gpu: Gpu,
  f: SafetensorsFile,
  name: string,
  options: ConformanceOptions = {},
): Promise<Check[]> {
  const { precision, tol, check, want } = runSetup(name, f, options);
  const checks: Check[] = [];
  const model = await GPT.create(gpu, gptConfigFromMetadata(f.metadata), {
    label: "conformance.gpt",
    precision,
  });
  model.loadSafetensors(f.tensors, name, (n) => !n.startsWith("model."));
  const tokensT = f.tensors.get("input.tokens")!;
  const [B, T] = tokensT.shape;
  const tokens = toInt32(tokensT, "input.tokens");
  checks.push(check("logits", await model.logits(tokens, B, T), want("expected.logits")));
  const { targets } = model.lossTargets(tokens, B, T);
  if (f.tensors.has("expected.fim_loss_mask")) {
    const mask = targets.map((t) => (t === IGNORE_INDEX ? 0 : 1));
    checks.push(
      check("fim_loss_mask", mask, toInt32(f.tensors.get("expected.fim_loss_mask")!)),
    );
  }
  const adam = await adamFromMetadata(model, f.metadata);
  const { plan, ops } = await model.planMicroStep(tokens, B, T);
  await run(gpu, [...await model.planZeroGrads(), ...ops]);
  const loss = (await readTensor(gpu, plan.lossOut))[0];
  checks.push(...stepChecks(name, f, model, await adamFixtureStep(model, f, adam, loss), tol));
  return checks;
}

/**
 * Runs the checks a fixture describes; parts not implemented yet are reported as failing
 * checks that say what is missing, never skipped.
 *
 * @example Check the model against a PyTorch fixture (a path of `tests/fixtures`)
 * ```ts
 * import { conformance, getGpu, readSafetensors } from "../../mod.ts";
 * const path = new URL("../../tests/fixtures/gpt_tiny.safetensors", import.meta.url).pathname;
 * const checks = await conformance(await getGpu(), await readSafetensors(path), "gpt_tiny");
 * console.log(checks.every((c) => c.ok)); // true
 * ```
 */
export function conformance(
  gpu: Gpu,
  f: SafetensorsFile,
  name: string,
  options: ConformanceOptions = {},
): Promise<Check[]> {
  const kind = f.metadata.model;
  if (kind === "bst") return bstConformance(gpu, f, name, options);
  if (kind === "gpt") return gptConformance(gpu, f, name, options);
  return Promise.resolve([
    unsupported(name, `model.${kind ?? "missing"}`, `unknown model kind "${kind}" in __metadata__`),
  ]);
}
