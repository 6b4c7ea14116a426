/**
 * Training and validation of the BST ({@linkcode TrainRun}): pairs built on the CPU per
 * micro-batch, one step = zero gradients, each micro-batch's forward and backward, AdamW;
 * validation = pair loss, evaluation losses and greedy path accuracy.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Op, run } from "../gpu/kernel.ts";
import { greedyDecode } from "../inference/greedy.ts";
import { BST, type EncoderPlan, type PairHead, trainingPairList } from "../models/bst.ts";
import type { BstConfig } from "../models/bst_config.ts";
import { buildPairBatch, PairSampler, type PairSamplerState } from "../models/bst_pairs.ts";
import { loadCheckpoint } from "./checkpoints.ts";
import { AdamW } from "./optimizer.ts";
import {
  checkpointStep,
  checkpointTensors,
  microBatchSize,
  pathAccuracy,
  restoreModelAndOptimizer,
  scheduledLr,
  stepRows,
  storedConfig,
  type TrainData,
  type TrainRun,
  valBatchCount,
  type ValMetrics,
} from "./run.ts";
import type { SafeTensor } from "./safetensors.ts";

/** Builds the BST config from the run config and the data's derived sizes. */
export function bstConfigFor(config: Config, data: TrainData): BstConfig {
  const m = config.model;
  if (m.dropout !== 0) {
    throw new Error(`model.dropout must be 0: dropout is not implemented (got ${m.dropout})`);
  }
  return {
    vocabSize: data.vocabSize,
    eosTokenId: data.eosTokenId,
    nLayer: m.n_layer,
    nHead: m.n_head,
    nEmbd: m.n_embd,
    blockSize: data.seqLen,
    bias: m.bias,
    contextLength: data.contextLength,
    pairMinimumGap: m.bst_pair_minimum_gap,
    pairMaximumGap: m.bst_pair_maximum_gap,
    pairSubsampleRate: m.bst_pair_subsample_rate,
    singleGapPredictionMode: m.bst_single_gap_prediction_mode,
  };
}

function gather(rows: Int32Array, src: Int32Array, T: number): Int32Array {
  const out = new Int32Array(rows.length * T);
  rows.forEach((r, i) => out.set(src.subarray(r * T, (r + 1) * T), i * T));
  return out;
}

/** The model, optimizer and planned buffers of a run. */
export class BstRun implements TrainRun {
  readonly microBatch: number;
  #train?: { enc: EncoderPlan; head: PairHead };
  #val?: { enc: EncoderPlan; head: PairHead };
  #zero?: Op[];

  constructor(
    readonly gpu: Gpu,
    readonly config: Config,
    readonly data: TrainData,
    readonly model: BST,
    readonly opt: AdamW,
    readonly sampler: PairSampler,
  ) {
    this.microBatch = microBatchSize(config);
  }

  /** Creates the model (seeded) and optimizer for a config and its data. */
  static async create(gpu: Gpu, config: Config, data: TrainData): Promise<BstRun> {
    const cfg = bstConfigFor(config, data);
    const model = await BST.create(gpu, cfg, { seed: config.seed });
    const o = config.optimizer;
    const opt = await AdamW.create(model, {
      beta1: o.beta1,
      beta2: o.beta2,
      weightDecay: o.weight_decay,
      gradClip: o.grad_clip,
    });
    return new BstRun(gpu, config, data, model, opt, new PairSampler(cfg, config.seed));
  }

  private maxPairs(rows: number): number {
    const T = this.data.seqLen;
    const c = this.model.config;
    const maxGap = c.pairMaximumGap <= 0 ? T : Math.min(c.pairMaximumGap, T);
    let perRow = 0;
    for (let t = c.contextLength; t < T; t++) {
      for (let g = c.pairMinimumGap; g < maxGap && t + g < T; g++) perRow++;
    }
    return Math.max(1, perRow * rows);
  }

  private async trainPlans(): Promise<{ enc: EncoderPlan; head: PairHead }> {
    if (!this.#train) {
      const enc = await this.model.encoders(this.microBatch, this.data.seqLen);
      this.#train = { enc, head: this.model.pairHead(enc, this.maxPairs(this.microBatch), true) };
    }
    return this.#train;
  }

  /**
   * One optimizer step (0-based `step`): zero gradients, each micro-batch's forward and
   * backward, AdamW at the scheduled learning rate. Returns the summed loss (read back only
   * when `readLoss`) and the epoch.
   */
  async step(
    step: number,
    readLoss: boolean,
  ): Promise<{ loss: number | null; epoch: number; lr: number }> {
    const d = this.config.data;
    const T = this.data.seqLen;
    const { rows, epoch } = stepRows(
      this.data.train.length / T,
      d.effective_batch_size,
      this.config.seed,
      step,
    );
    const { enc, head } = await this.trainPlans();
    this.#zero ??= await this.model.planZeroGrads();
    const lr = scheduledLr(this.config, step);
    let loss = 0;
    const accum = d.gradient_accum_steps;
    for (let k = 0; k < accum; k++) {
      const tokens = gather(
        rows.subarray(k * this.microBatch, (k + 1) * this.microBatch),
        this.data.train,
        T,
      );
      const pairs = buildPairBatch(tokens, this.microBatch, T, this.sampler, {
        pairBatchSize: d.pair_batch_size,
        gradientAccumSteps: accum,
      });
      const ops = await this.model.planMicroStep(enc, head, tokens, trainingPairList(pairs));
      const last = k === accum - 1;
      if (last) this.opt.setStep(lr, step + 1);
      await run(this.gpu, [...(k === 0 ? this.#zero : []), ...ops, ...(last ? this.opt.ops : [])]);
      if (readLoss || accum > 1) loss += await head.readLoss();
    }
    return { loss: readLoss ? loss : null, epoch, lr };
  }

  /** Validation: pair loss, evaluation losses and (star graphs) greedy path accuracy. */
  async validate(): Promise<ValMetrics> {
    const T = this.data.seqLen;
    const nVal = this.data.val.length / T;
    const B = this.microBatch;
    const count = valBatchCount(this.config, nVal, B);
    if (!this.#val) {
      const enc = await this.model.encoders(B, T);
      this.#val = { enc, head: this.model.pairHead(enc, this.maxPairs(B), false) };
    }
    const { enc, head } = this.#val;
    let loss = 0;
    let next = 0;
    let prev = 0;
    for (let b = 0; b < count; b++) {
      const tokens = this.data.val.subarray(b * B * T, (b + 1) * B * T);
      // Validation pairs use a throwaway sampler so training's subsampling state is untouched.
      const sampler = new PairSampler(this.model.config, this.config.seed + 1);
      sampler.setState(this.sampler.getState());
      const pairs = buildPairBatch(tokens, B, T, sampler, {
        pairBatchSize: this.config.data.pair_batch_size,
      });
      enc.setTokens(tokens);
      const ops = await head.setPairs(trainingPairList(pairs));
      await run(this.gpu, [...enc.forward, ...ops]);
      loss += await head.readLoss();
      const e = await this.model.evaluationLoss(tokens, B, T);
      next += e.next.reduce((a, x) => a + x, 0) / B;
      prev += e.prev.reduce((a, x) => a + x, 0) / B;
    }
    return {
      val_loss: loss / count,
      val_loss_next_token: next / count,
      val_loss_prev_token: prev / count,
      path_accuracy: this.data.pathTask ? await this.pathAccuracy(count * B) : null,
    };
  }

  /** Greedy path accuracy over the first `rows` validation rows (DESIGN §7). */
  pathAccuracy(rows: number): Promise<number> {
    return pathAccuracy(
      this.data,
      rows,
      (p, n, len, steps) => greedyDecode(this.model, p, n, len, steps),
    );
  }

  /** Checkpoint tensors and metadata for `step` steps taken. */
  async checkpoint(
    step: number,
  ): Promise<{ tensors: Map<string, SafeTensor>; metadata: Record<string, string> }> {
    return {
      tensors: await checkpointTensors(this.model, this.opt),
      metadata: {
        model: "bst",
        config: JSON.stringify(storedConfig(this.config)),
        step: String(step),
        pair_sampler: JSON.stringify(this.sampler.getState()),
      },
    };
  }

  /** Restores model, optimizer moments and sampler state from a checkpoint. */
  async restore(path: string): Promise<number> {
    const file = await restoreModelAndOptimizer(path, this.model, this.opt);
    if (file.metadata.pair_sampler) {
      this.sampler.setState(JSON.parse(file.metadata.pair_sampler) as PairSamplerState);
    }
    return checkpointStep(path, file.metadata);
  }

  /** Loads the model weights of a checkpoint; returns its step (null if not recorded). */
  async loadWeights(path: string): Promise<number | null> {
    const file = await loadCheckpoint(path);
    this.model.loadSafetensors(file.tensors, path, (n) => n.startsWith("optimizer."));
    return file.metadata.step === undefined ? null : checkpointStep(path, file.metadata);
  }
}
