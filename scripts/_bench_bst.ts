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
import { type Op, run } from "../src/gpu/kernel.ts";
import { BST, trainingPairList } from "../src/models/bst.ts";
import type { BstConfig } from "../src/models/bst_config.ts";
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
}

/** The two shapes of the issue: a G(2,5) star graph and the paper's G(5,5). */
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

/**
 * Times each op alone (submit + wait) and sums by kernel family, in ms, largest first. The
 * per-op waits add overhead, so the shares matter more than the absolute numbers.
 */
async function profile(gpu: Gpu, ops: Op[]): Promise<Record<string, number>> {
  const by = new Map<string, number>();
  for (const op of ops) {
    const t0 = performance.now();
    await run(gpu, [op]);
    by.set(family(op), (by.get(family(op)) ?? 0) + performance.now() - t0);
  }
  return Object.fromEntries(
    [...by].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Number(v.toFixed(1))]),
  );
}

/**
 * Times `repeats` training steps (after one warm-up step) of each shape; for the shapes named
 * in `perKernel` (default: the small one — a paper-shape step takes minutes on a CPU adapter),
 * also one step op by op, summed by kernel family.
 */
export async function benchBstSteps(
  gpu: Gpu,
  repeats: number,
  shapes: BstBenchShape[] = BST_BENCH_SHAPES,
  perKernel: readonly string[] = ["small"],
): Promise<Record<string, unknown>[]> {
  const results = [];
  for (const s of shapes) {
    console.error(
      `bench: BST step ${s.name} (L=${s.nLayer} C=${s.nEmbd} T=${s.seqLen} B=${s.batch})`,
    );
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
      pairSubsampleRate: 1,
      singleGapPredictionMode: "eos",
    };
    const model = await BST.create(gpu, config, { label: `bench.${s.name}` });
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
    await run(gpu, ops); // warm-up (first use of each pipeline)
    const times: number[] = [];
    for (let i = 0; i < repeats; i++) {
      opt.setStep(1e-4, i + 2);
      const t0 = performance.now();
      await run(gpu, ops);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const ms = times[Math.floor(times.length / 2)];
    const flops = bstStepFlops(s, batch.count);
    results.push({
      shape: s.name,
      n_layer: s.nLayer,
      n_embd: s.nEmbd,
      seq_len: s.seqLen,
      batch: s.batch,
      pairs: batch.count,
      params: model.table.paramCount,
      dispatches: ops.length,
      ms_per_step: Number(ms.toFixed(1)),
      steps_per_s: Number((1000 / ms).toFixed(3)),
      tokens_per_s: Math.round((s.batch * s.seqLen) / (ms / 1000)),
      gflops: Number((flops / ms / 1e6).toFixed(2)),
      loss: Number((await head.readLoss()).toFixed(4)),
      ...(perKernel.includes(s.name) ? { per_kernel_ms: await profile(gpu, ops) } : {}),
    });
  }
  return results;
}
