/**
 * The BST trainer (microsoft/BST `core_train.py` semantics, DESIGN §6): optimizer steps of
 * `effective_batch_size` rows in `gradient_accum_steps` micro-batches, validation every
 * `val_interval` steps and at the end, checkpoints after validation and every
 * `save_recovery_checkpoint` steps, resume, metrics, a run manifest and a progress line.
 *
 * Every random choice comes from `seed`: initialisation (stream 0), pair subsampling
 * (stream 1), the per-epoch shuffle of training rows (stream 3 + epoch). A step's rows are a
 * function of (seed, step) alone, so a resumed run sees exactly the rows an uninterrupted one
 * would, and with the same adapter produces the same bytes.
 *
 * @module
 */

import { getGpu, type Gpu } from "../gpu/device.ts";
import { type Op, run } from "../gpu/kernel.ts";
import { greedyDecode } from "../inference/greedy.ts";
import { BST, type EncoderPlan, type PairHead, trainingPairList } from "../models/bst.ts";
import type { BstConfig } from "../models/bst_config.ts";
import { buildPairBatch, PairSampler, type PairSamplerState } from "../models/bst_pairs.ts";

import type { Config } from "../config/schema.ts";
import { CheckpointManager, checkpointPolicy, newRunName, resolveResume } from "./checkpoints.ts";
import { installInterrupt, INTERRUPT_EXIT_CODE } from "./interrupt.ts";
import { learningRate } from "./lr_schedule.ts";
import { MetricsLogger } from "./metrics.ts";
import { AdamW } from "./optimizer.ts";
import { ProgressLine } from "./progress.ts";
import type { SafeTensor } from "./safetensors.ts";
import { GptRun } from "./gpt_run.ts";
import {
  checkpointStep,
  checkpointTensors,
  type FinalMetrics,
  pathAccuracy,
  restoreModelAndOptimizer,
  stepRows,
  storedConfig,
  type TrainData,
  type TrainRun,
  type ValMetrics,
} from "./run.ts";

export * from "./run.ts";
import { loadCheckpoint } from "./checkpoints.ts";
import { RunManifest } from "./manifest.ts";
import { checkFinite } from "./nan_guard.ts";

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** Print progress on stderr (default true). */
  progress?: boolean;
  /** Install the Ctrl-C handler (default true). */
  handleInterrupt?: boolean;
  /** Override the run directory name (default: from the clock, or the resumed run's). */
  runName?: string;
  /** The GPU (default: the process-wide one, logged). */
  gpu?: Gpu;
}

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
    const d = config.data;
    if (d.effective_batch_size % d.gradient_accum_steps !== 0) {
      throw new Error(
        `data.effective_batch_size ${d.effective_batch_size} is not divisible by ` +
          `data.gradient_accum_steps ${d.gradient_accum_steps}`,
      );
    }
    this.microBatch = d.effective_batch_size / d.gradient_accum_steps;
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
    const lr = learningRate(step, {
      learningRate: this.config.optimizer.learning_rate,
      decayLr: this.config.lr_scheduler.decay_lr,
      warmupIters: this.config.lr_scheduler.warmup_iters,
      lrDecayIters: this.config.lr_scheduler.lr_decay_iters,
      minLr: this.config.lr_scheduler.min_lr,
    });
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
    const vb = this.config.trainer.val_batches;
    const batches = Math.floor(nVal / B);
    const count = vb < 0 ? batches : Math.min(vb, batches);
    if (count === 0) {
      throw new Error(`The validation split has ${nVal} rows, fewer than one batch of ${B}`);
    }
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

/** The run for a config: the BST (`use_bst: true`) or the GPT baseline. */
export async function createRun(gpu: Gpu, config: Config, data: TrainData): Promise<TrainRun> {
  return config.use_bst
    ? await BstRun.create(gpu, config, data)
    : await GptRun.create(gpu, config, data);
}

/**
 * Runs training as the config says and returns the final validation figures. Writes metrics,
 * checkpoints and `run.json` under `out_dir/<run name>/`.
 */
export async function train(
  config: Config,
  data: TrainData,
  options: TrainOptions = {},
): Promise<FinalMetrics> {
  const gpu = options.gpu ?? await getGpu({ log: true });
  const t = config.trainer;
  const started = performance.now();
  const r = await createRun(gpu, config, data);
  const policy = checkpointPolicy(t);
  let step = 0;
  let ckpt: CheckpointManager;
  let resumedFrom: string | null = null;
  if (t.init_from === "resume") {
    const point = await resolveResume(t.out_dir);
    resumedFrom = point.path;
    step = await r.restore(point.path);
    const meta = (await loadCheckpoint(point.path)).metadata;
    ckpt = CheckpointManager.resume(t.out_dir, point.runName, policy, meta, point.path);
    console.error(`Resuming from ${point.path} at step ${step}`);
  } else {
    ckpt = new CheckpointManager(t.out_dir, options.runName ?? newRunName(), policy);
  }
  const metrics = await MetricsLogger.open(
    ckpt.runDir,
    t.init_from === "resume" ? { dropFromStep: step + 1 } : {},
  );
  const manifest = await RunManifest.start(ckpt.runDir, {
    runName: ckpt.runName,
    config,
    seed: config.seed,
    adapter: gpu.info,
    resumedFrom,
  });
  const progress = options.progress === false ? null : new ProgressLine({
    totalSteps: t.train_batches,
    tokensPerStep: config.data.effective_batch_size * data.seqLen,
    logInterval: t.log_interval,
  });
  const interrupt = options.handleInterrupt === false ? null : installInterrupt();
  let last: ValMetrics | null = null;
  try {
    if (t.val_only) {
      last = await r.validate();
    } else {
      while (step < t.train_batches) {
        const logNow = (step + 1) % t.log_interval === 0 || step + 1 === t.train_batches;
        const s = await r.step(step, logNow);
        step++;
        if (s.loss !== null) {
          checkFinite(s.loss, "loss", step, ckpt.lastWritten);
          await metrics.log({ step, epoch: s.epoch, lr: s.lr, train_loss: s.loss });
          progress?.update({ step, epoch: s.epoch, loss: s.loss, lr: s.lr });
        }
        const valNow = step % t.val_interval === 0 || step === t.train_batches;
        if (valNow) {
          last = await r.validate();
          await metrics.log({ step, epoch: s.epoch, ...last });
          progress?.message(`validation at step ${step}: ${JSON.stringify(last)}`);
          const c = await r.checkpoint(step);
          await ckpt.saveValidation(step, last.val_loss, c.tensors, c.metadata);
        }
        if (policy.recoveryEvery > 0 && step % policy.recoveryEvery === 0) {
          const c = await r.checkpoint(step);
          await ckpt.saveRecovery(step, c.tensors, c.metadata);
        }
        if (interrupt?.requested) {
          const c = await r.checkpoint(step);
          const saved = await ckpt.saveRecovery(step, c.tensors, c.metadata);
          progress?.finish();
          console.error(`Interrupted: wrote ${saved.path}; resume with trainer.init_from=resume`);
          await manifest.finish({ status: "interrupted", finalStep: step });
          Deno.exit(INTERRUPT_EXIT_CODE);
        }
      }
    }
  } catch (e) {
    progress?.finish();
    await manifest.finish({
      status: "failed",
      finalStep: step,
      result: { error: (e as Error).message },
    });
    throw e;
  } finally {
    interrupt?.dispose();
  }
  progress?.finish();
  const seconds = (performance.now() - started) / 1000;
  const final = { ...last!, steps: step, seconds: Number(seconds.toFixed(1)) };
  await manifest.finish({ status: "completed", finalStep: step, result: { ...final } });
  return final;
}
