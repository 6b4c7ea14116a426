/**
 * BST training-step figures for `deno task bench`: one full step (both encoders forward, every
 * text-head chunk, both encoders backward, AdamW) on star-graph-shaped rows.
 *
 * FLOPs counted: 2·M·K·N per Linear in forward and twice that in backward (so 6·params·rows for
 * the Linear layers: encoder rows are tokens, text-head rows are pairs, the shared lm_head
 * counted for both halves), plus the attention products (`attentionFlops`) in both encoders.
 *
 * @module
 */

import { attentionFlops } from "../src/gpu/attention.ts";
import type { Gpu } from "../src/gpu/device.ts";
import type { Op } from "../src/gpu/kernel.ts";
import { profileOps, timeOps } from "../src/gpu/timing.ts";
import { BST, trainingPairList } from "../src/models/bst.ts";
import type { BstConfig } from "../src/models/bst_config.ts";
import type { ModelPrecision } from "../src/models/flat_params.ts";
import { swigluHidden } from "../src/models/param_specs.ts";
import { buildPairBatch, PairSampler } from "../src/models/bst_pairs.ts";
import { AdamW } from "../src/train/optimizer.ts";

/** A bench shape: the model and the micro-batch. */
export interface BstBenchShape {
  name: string;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  seqLen: number;
  batch: number;
  vocab: number;
  contextLength: number;
  minGap: number;
  /** Share of the non-EOS pairs kept (`bst_pair_subsample_rate`); default 1 (all). */
  subsample?: number;
  /** Profile-only shape: left out of the default bench figures. */
  profileOnly?: boolean;
}

/**
 * The bench shapes: a G(2,5) star graph, the paper's G(5,5), and (for `--profile` only) the CPU
 * TinyStories config.
 */
export const BST_BENCH_SHAPES: BstBenchShape[] = [
  {
    name: "small",
    nLayer: 2,
    nEmbd: 128,
    nHead: 4,
    seqLen: 33,
    batch: 64,
    vocab: 56,
    contextLength: 26,
    minGap: 2,
  },
  {
    name: "paper",
    nLayer: 6,
    nEmbd: 768,
    nHead: 8,
    seqLen: 69,
    batch: 16,
    vocab: 56,
    contextLength: 62,
    minGap: 2,
  },
  {
    // config/tinystories_cpu.yaml: vocabulary 1000, 5% of the non-EOS pairs (about 100 a row).
    name: "tinystories_cpu",
    nLayer: 2,
    nEmbd: 64,
    nHead: 4,
    seqLen: 64,
    batch: 16,
    vocab: 1000,
    contextLength: 0,
    minGap: 1,
    subsample: 0.05,
    profileOnly: true,
  },
];

/** Training FLOPs of one step: Linear layers ×3 (fwd + 2 bwd) and attention fwd + bwd. */
export function bstStepFlops(s: BstBenchShape, pairs: number): number {
  const C = s.nEmbd;
  const h = swigluHidden(C);
  const hh = swigluHidden(2 * C);
  const tokens = s.batch * s.seqLen;
  const perToken = 2 * (C * 3 * C + C * C + C * 2 * h + h * C); // one block, forward
  const encoders = 2 * s.nLayer * perToken * tokens;
  const perPair = 2 * (2 * C * 2 * hh + hh * 2 * C + 2 * C * s.vocab);
  const head = perPair * pairs;
  const att = attentionFlops(s.batch, s.nHead, s.seqLen, C / s.nHead);
  return 3 * (encoders + head) + 2 * s.nLayer * (att.forward + att.backward);
}

/** Rows shaped like star-graph lines: random node ids, then EOS at the last position. */
function starRows(s: BstBenchShape, eos: number): Int32Array {
  const out = new Int32Array(s.batch * s.seqLen);
  let x = 12345;
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (i % s.seqLen === s.seqLen - 1) ? eos : (x >>> 8) % (s.vocab - 6);
  }
  return out;
}

/** The kernel family of a dispatch: the last segment of its label ("linear_forward", …). */
function family(op: Op): string {
  if ("copy" in op) return "copy";
  return op.label.split(".").at(-1)!;
}

/** One planned training step of a bench shape. */
interface PlannedStep {
  ops: Op[];
  flops: number;
  pairs: number;
  params: number;
  setStep(step: number): void;
  readLoss(): Promise<number>;
}

/** Builds the model, optimizer and the ops of one training step of `s`. */
async function planStep(
  gpu: Gpu,
  s: BstBenchShape,
  precision: ModelPrecision,
): Promise<PlannedStep> {
  const config: BstConfig = {
    vocabSize: s.vocab,
    eosTokenId: s.vocab - 2,
    nLayer: s.nLayer,
    nHead: s.nHead,
    nEmbd: s.nEmbd,
    blockSize: s.seqLen,
    bias: false,
    contextLength: s.contextLength,
    pairMinimumGap: s.minGap,
    pairMaximumGap: -1,
    pairSubsampleRate: s.subsample ?? 1,
    singleGapPredictionMode: "eos",
  };
  const model = await BST.create(gpu, config, { label: `bench.${s.name}`, precision });
  const tokens = starRows(s, config.eosTokenId);
  const enc = await model.encoders(s.batch, s.seqLen);
  const batch = buildPairBatch(tokens, s.batch, s.seqLen, new PairSampler(config, 0), {
    pairBatchSize: 32768,
  });
  const head = model.pairHead(enc, batch.count, true);
  const opt = await AdamW.create(model, { beta1: 0.9, beta2: 0.95, weightDecay: 0, gradClip: 1 });
  const ops = [
    ...await model.planZeroGrads(),
    ...await model.planMicroStep(enc, head, tokens, trainingPairList(batch)),
    ...opt.ops,
  ];
  opt.setStep(1e-4, 1);
  return {
    ops,
    flops: bstStepFlops(s, batch.count),
    pairs: batch.count,
    params: model.table.paramCount,
    setStep: (step) => opt.setStep(1e-4, step),
    readLoss: () => head.readLoss(),
  };
}

function describe(s: BstBenchShape): string {
  return `${s.name} (L=${s.nLayer} C=${s.nEmbd} T=${s.seqLen} B=${s.batch})`;
}

/**
 * Times `repeats` training steps of each shape (after one warm-up step) with
 * {@linkcode timeOps}: GPU timestamps where the adapter has them, so no host wait is inside the
 * figure. The same ops run every time (the step counter of AdamW is not advanced), which is
 * the same work as a real step.
 */
export async function benchBstSteps(
  gpu: Gpu,
  repeats: number,
  shapes: BstBenchShape[] = BST_BENCH_SHAPES,
  precision: ModelPrecision = "32-true",
): Promise<Record<string, unknown>[]> {
  const results = [];
  for (const s of shapes) {
    console.error(`bench: BST step ${describe(s)} ${precision}`);
    const step = await planStep(gpu, s, precision);
    const { ms, method } = await timeOps(gpu, step.ops, { samples: repeats });
    results.push({
      shape: s.name,
      n_layer: s.nLayer,
      n_embd: s.nEmbd,
      seq_len: s.seqLen,
      batch: s.batch,
      precision,
      pairs: step.pairs,
      params: step.params,
      dispatches: step.ops.length,
      timing: method,
      ms_per_step: Number(ms.toFixed(1)),
      steps_per_s: Number((1000 / ms).toFixed(3)),
      tokens_per_s: Math.round((s.batch * s.seqLen) / (ms / 1000)),
      gflops: Number((flops(step.flops, ms)).toFixed(2)),
      loss: Number((await step.readLoss()).toFixed(4)),
    });
  }
  return results;
}

function flops(n: number, ms: number): number {
  return n / ms / 1e6;
}

/** One row of the per-kernel table. */
export interface KernelRow {
  kernel: string;
  dispatches: number;
  ms: number;
  gflops: number | null;
  share: number;
}

/**
 * Times one training step of `s` kernel by kernel with GPU timestamps ({@linkcode profileOps}),
 * sums by kernel family (the last segment of each dispatch label), prints the table on stderr
 * and returns it, largest first. GFLOP/s is shown for the families whose planners count flops
 * (matmul, attention). Buffer copies are not timed.
 */
export async function profileBstStep(
  gpu: Gpu,
  s: BstBenchShape,
  precision: ModelPrecision = "32-true",
): Promise<Record<string, unknown>> {
  console.error(`bench: profiling one BST step ${describe(s)} ${precision}`);
  const step = await planStep(gpu, s, precision);
  const ms = await profileOps(gpu, step.ops);
  const by = new Map<string, { n: number; ms: number; flops: number; counted: boolean }>();
  step.ops.forEach((op, i) => {
    if ("copy" in op) return;
    const f = family(op);
    const e = by.get(f) ?? { n: 0, ms: 0, flops: 0, counted: true };
    e.n++;
    e.ms += ms[i];
    e.flops += op.flops ?? 0;
    e.counted &&= op.flops !== undefined;
    by.set(f, e);
  });
  const total = [...by.values()].reduce((a, e) => a + e.ms, 0);
  const rows: KernelRow[] = [...by].sort((a, b) => b[1].ms - a[1].ms).map(([k, e]) => ({
    kernel: k,
    dispatches: e.n,
    ms: Number(e.ms.toFixed(3)),
    gflops: e.counted && e.ms > 0 ? Number(flops(e.flops, e.ms).toFixed(1)) : null,
    share: Number((e.ms / total).toFixed(4)),
  }));
  const line = (c: string[]) =>
    console.error(c.map((x, i) => i === 0 ? x.padEnd(30) : x.padStart(11)).join(""));
  line(["kernel", "dispatches", "ms", "GFLOP/s", "share"]);
  for (const r of rows) {
    line([
      r.kernel,
      String(r.dispatches),
      r.ms.toFixed(2),
      r.gflops === null ? "-" : r.gflops.toFixed(1),
      `${(100 * r.share).toFixed(1)}%`,
    ]);
  }
  line([
    "total",
    String(step.ops.length),
    total.toFixed(2),
    flops(step.flops, total).toFixed(1),
    "",
  ]);
  // The whole step as one submission, wall clock: what the kernels cost together with the
  // copies and uploads between them (which the per-kernel timestamps leave out).
  const whole = await timeOps(gpu, step.ops, { samples: 3, method: "wall" });
  line(["step as one submission (wall)", "", whole.ms.toFixed(2), "", ""]);
  return {
    shape: s.name,
    n_layer: s.nLayer,
    n_embd: s.nEmbd,
    seq_len: s.seqLen,
    batch: s.batch,
    precision,
    pairs: step.pairs,
    dispatches: step.ops.length,
    total_ms: Number(total.toFixed(3)),
    step_wall_ms: Number(whole.ms.toFixed(3)),
    total_gflops: Number(flops(step.flops, total).toFixed(2)),
    kernels: rows,
  };
}
