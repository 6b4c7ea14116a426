/**
 * What every training run shares, whatever the model: the data type, the validation figures,
 * the {@linkcode TrainRun} interface the loop drives, the seeded data order, checkpoint
 * contents and star-graph path accuracy.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { FlatParams } from "../models/flat_params.ts";
import { type CheckpointLoadOptions, validateCheckpointTensors } from "./checkpoint_validate.ts";
import { loadCheckpoint } from "./checkpoints.ts";
import { learningRate } from "./lr_schedule.ts";
import { AdamW } from "./optimizer.ts";
import { type Op, submit } from "../gpu/kernel.ts";
import { Readback } from "../gpu/readback.ts";
import type { Gpu } from "../gpu/device.ts";
import { readTensor, Tensor } from "../gpu/tensor.ts";
import {
  decodeLossScaleState,
  initialLossScaleState,
  isLossScale,
  type LossScaleState,
} from "../gpu/loss_scale.ts";
import { allreduceTensor, checkReplicas, type Collective, rankMicroBatch } from "./distributed.ts";
import { LossWindow, type LossWindowState } from "./loss_window.ts";
import {
  DATA_STATE_KEY,
  tableTrainRows,
  tableValRows,
  type TrainRows,
  type ValRows,
} from "./rows.ts";
import {
  fromFloat32,
  type SafeTensor,
  type SafetensorsFile,
  toFloat32,
} from "../io/safetensors.ts";

/** Token rows for training and validation, and what the model derives from them. */
export interface TrainData {
  /** Row length T (block size). */
  seqLen: number;
  vocabSize: number;
  eosTokenId: number;
  /** First forward position that forms pairs (star graph: the prefix length). */
  contextLength: number;
  /** The `<|fim|>` token id when the data has one (the GPT's FIM mode needs it). */
  fimTokenId?: number;
  /** Training rows, one optimizer step at a time. */
  train: TrainRows;
  /** Validation rows, in order. */
  val: ValRows;
  /**
   * Star-graph path task: tokens before the path (through `=`), the path's length, and the
   * (n, T) validation rows whose paths are decoded.
   */
  pathTask?: { prefixLen: number; pathLen: number; rows: Int32Array };
  /** Token ids to text (special tokens dropped), for sampling output. */
  decode?: (ids: ArrayLike<number>) => string;
  /**
   * What `deno task infer` samples from, in order: each sample's token ids (the prompt is
   * cut from its start, the goal from its end) and its original text.
   */
  samples(): AsyncIterable<{ tokens: Int32Array; original: string }>;
}

/** In-memory token tables: what {@linkcode tableData} turns into {@linkcode TrainData}. */
export interface TableDataInput {
  seqLen: number;
  vocabSize: number;
  eosTokenId: number;
  contextLength: number;
  /** (nTrain, T) training rows. */
  train: Int32Array;
  /** (nVal, T) validation rows. */
  val: Int32Array;
  /** Star-graph path task over the validation rows. */
  pathTask?: { prefixLen: number; pathLen: number };
  decode?: (ids: ArrayLike<number>) => string;
}

/**
 * Training data from token tables in memory: each epoch's training rows in a permutation
 * seeded by (`seed`, epoch) — pass the run's `config.seed` — validation rows in order, and the
 * validation rows as the samples `deno task infer` draws from.
 *
 * @example
 * ```ts
 * import { tableData } from "./run.ts";
 * const rows = new Int32Array(20 * 4).map((_, i) => i % 7); // 20 rows of T = 4
 * const data = tableData({
 *   seqLen: 4, vocabSize: 8, eosTokenId: 7, contextLength: 0,
 *   train: rows.subarray(8), val: rows.subarray(0, 8),
 * }, 1337);
 * console.log((await data.train.batch(0, 4)).tokens.length); // 16
 * ```
 */
export function tableData(input: TableDataInput, seed: number): TrainData {
  const T = input.seqLen;
  const { train, val, pathTask, decode, ...sizes } = input;
  return {
    ...sizes,
    train: tableTrainRows(train, T, seed),
    val: tableValRows(val, T),
    pathTask: pathTask && { ...pathTask, rows: val },
    decode,
    async *samples() {
      for (let r = 0; r < val.length / T; r++) {
        const tokens = val.subarray(r * T, (r + 1) * T);
        yield { tokens, original: decode ? decode(tokens) : tokens.join(" ") };
      }
    },
  };
}

/** Final figures of a run (the last stdout line of `deno task train`). */
export interface FinalMetrics {
  val_loss: number;
  val_loss_next_token: number;
  val_loss_prev_token: number | null;
  path_accuracy: number | null;
  steps: number;
  seconds: number;
}

/** Validation figures (the GPT has no previous-token loss: null). */
export interface ValMetrics {
  val_loss: number;
  val_loss_next_token: number;
  val_loss_prev_token: number | null;
  path_accuracy: number | null;
}

/** What one optimizer step reports (the figures only at log steps). */
export interface StepResult {
  /** The epoch the step's rows come from. */
  epoch: number;
  /** The learning rate of the step. */
  lr: number;
  /**
   * At a log step: reads the step's figures back ({@linkcode StepFigures}); otherwise null.
   * The step does not wait for them: they are copied into a host-readable buffer within the
   * step's own submission, and reading them waits for the GPU. Call it after queueing the next
   * step, so the wait overlaps that step's GPU work; it reads once (later calls return the
   * same promise). In a data-parallel run every rank must call it, in the same order.
   */
  figures: (() => Promise<StepFigures>) | null;
}

/** The figures of a log step. */
export interface StepFigures {
  /**
   * The mean training loss of the steps since the previous log step (the reference's
   * `train_loss`).
   */
  loss: number;
  /**
   * Further figures of the reference's log line — `grad_norm` (the step's unclipped norm,
   * when `optimizer.grad_clip` is set) and, for the BST, `avg_valid_pairs` and
   * `avg_sampled_pairs` (the pair sampler's running averages per row, as they were after the
   * step).
   */
  logs: Record<string, number>;
}

/** What the training loop needs of a model: BST ({@linkcode BstRun}) or GPT (`GptRun`). */
export interface TrainRun {
  /**
   * Queues one optimizer step (0-based) without waiting for the GPU (except to stay at most
   * {@linkcode STEPS_AHEAD} steps ahead of it). When `log` is true the result can read the
   * averaged training loss and the other logged figures back.
   */
  step(step: number, log: boolean): Promise<StepResult>;
  /** Validation losses and, for star graphs, path accuracy. */
  validate(): Promise<ValMetrics>;
  /** Checkpoint tensors (model + AdamW moments) and metadata after `step` steps. */
  checkpoint(
    step: number,
  ): Promise<{ tensors: Map<string, SafeTensor>; metadata: Record<string, string> }>;
  /** Restores a checkpoint; returns its step. */
  restore(path: string, options?: CheckpointLoadOptions): Promise<number>;
  /** Loads only the model weights of a checkpoint (for evaluation). */
  loadWeights(path: string, options?: CheckpointLoadOptions): Promise<number | null>;
  /** Trains as one rank of a data-parallel job (see `distributed.ts`); call before `step`. */
  distribute?(c: Collective): void;
  /** Data-parallel runs: throws when the ranks' parameters differ. */
  checkReplicas?(step: number): Promise<void>;
}

/**
 * The config as stored in checkpoints: everything but `trainer.init_from`, which says how a
 * process started rather than what was trained — so a resumed run writes the same bytes as
 * an uninterrupted one.
 */
export function storedConfig(config: Config): Record<string, unknown> {
  const { init_from: _, ...trainer } = config.trainer;
  return { ...config, trainer };
}

/** Greedy decoding: `steps` tokens after each of `rows` prefixes of length `prefixLen`. */
export type Decode = (
  prefixes: Int32Array,
  rows: number,
  prefixLen: number,
  steps: number,
) => Promise<Int32Array>;

/**
 * Star-graph path accuracy: the share of the first `rows` validation rows whose
 * path the model decodes greedily from the prefix through `=` exactly (decoding stops at EOS
 * or the path length).
 */
export async function pathAccuracy(data: TrainData, rows: number, decode: Decode): Promise<number> {
  const n = Math.min(rows, pathRows(data));
  return await pathCorrect(data, 0, n, decode) / n;
}

/** The number of rows path accuracy can use. */
export function pathRows(data: TrainData): number {
  const task = data.pathTask;
  if (!task) throw new Error("Path accuracy needs star-graph data (a path task)");
  return task.rows.length / data.seqLen;
}

/** How many of the path task's rows `first … first+n−1` decode their path exactly. */
export async function pathCorrect(
  data: TrainData,
  first: number,
  n: number,
  decode: Decode,
): Promise<number> {
  const task = data.pathTask;
  if (!task) throw new Error("Path accuracy needs star-graph data (a path task)");
  const T = data.seqLen;
  if (n === 0) return 0;
  const prefixes = new Int32Array(n * task.prefixLen);
  for (let r = 0; r < n; r++) {
    const row = (first + r) * T;
    prefixes.set(task.rows.subarray(row, row + task.prefixLen), r * task.prefixLen);
  }
  const gen = await decode(prefixes, n, task.prefixLen, task.pathLen);
  let correct = 0;
  for (let r = 0; r < n; r++) {
    let ok = true;
    for (let s = 0; s < task.pathLen; s++) {
      const want = task.rows[(first + r) * T + task.prefixLen + s];
      if (gen[r * task.pathLen + s] !== want) {
        ok = false;
        break;
      }
      if (want === data.eosTokenId) break;
    }
    if (ok) correct++;
  }
  return correct;
}

/** Restores weights and AdamW moments from a checkpoint (awaits the uploads). */
export async function restoreModelAndOptimizer(
  path: string,
  model: FlatParams,
  opt: AdamW,
  options: CheckpointLoadOptions & { kind?: "bst" | "gpt" } = {},
): Promise<SafetensorsFile> {
  const file = await loadCheckpoint(path);
  validateCheckpointTensors(file, path, {
    kind: options.kind,
    optimizerSize: model.table.size,
    allowNonFinite: options.allowNonFinite,
  });
  model.loadSafetensors(file.tensors, path, (n) => n.startsWith("optimizer."));
  const m = file.tensors.get("optimizer.exp_avg");
  const v = file.tensors.get("optimizer.exp_avg_sq");
  if (!m || !v) throw new Error(`Cannot resume from "${path}": it has no optimizer state`);
  opt.setState({ m: toFloat32(m, "optimizer.exp_avg"), v: toFloat32(v, "optimizer.exp_avg_sq") });
  await model.gpu.queue.onSubmittedWorkDone();
  return file;
}

/** The step recorded in a checkpoint's metadata. */
export function checkpointStep(path: string, metadata: Record<string, string>): number {
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`Cannot use checkpoint "${path}": metadata step is "${metadata.step}"`);
  }
  return step;
}

/** Checkpoint tensors: the model under PyTorch names, AdamW moments under `optimizer.`. */
export async function checkpointTensors(
  model: FlatParams,
  opt: AdamW,
): Promise<Map<string, SafeTensor>> {
  const tensors = await model.toSafetensors();
  const { m, v } = await opt.getState();
  tensors.set("optimizer.exp_avg", fromFloat32(m, [m.length]));
  tensors.set("optimizer.exp_avg_sq", fromFloat32(v, [v.length]));
  return tensors;
}

/** The learning rate of optimizer step `step` (0-based) under the config's schedule. */
export function scheduledLr(config: Config, step: number): number {
  return learningRate(step, {
    learningRate: config.optimizer.learning_rate,
    decayLr: config.lr_scheduler.decay_lr,
    warmupIters: config.lr_scheduler.warmup_iters,
    lrDecayIters: config.lr_scheduler.lr_decay_iters,
    minLr: config.lr_scheduler.min_lr,
  });
}

/** Rows per micro-batch: `effective_batch_size / gradient_accum_steps` (must divide). */
export function microBatchSize(config: Config): number {
  const d = config.data;
  if (d.effective_batch_size % d.gradient_accum_steps !== 0) {
    throw new Error(
      `data.effective_batch_size ${d.effective_batch_size} is not divisible by ` +
        `data.gradient_accum_steps ${d.gradient_accum_steps}`,
    );
  }
  return d.effective_batch_size / d.gradient_accum_steps;
}

/**
 * The validation batches of a run: the first `trainer.val_batches` (−1: every full batch)
 * batches of `batchSize` rows of `val`. The trainer passes `data.effective_batch_size` rows,
 * the reference's validation batch (its validation loader has the training loader's batch
 * size and drops the last partial batch); each batch is then evaluated in
 * `gradient_accum_steps` micro-batches.
 *
 * @throws When the validation rows do not fill one batch.
 */
export async function* validationBatchesFor(
  config: Config,
  val: ValRows,
  batchSize: number,
): AsyncGenerator<Int32Array> {
  const limit = config.trainer.val_batches;
  let n = 0;
  for await (const batch of val.batches(batchSize)) {
    if (limit >= 0 && n >= limit) break;
    n++;
    yield batch;
  }
  if (n === 0) {
    throw new Error(`The validation rows do not fill one batch of ${batchSize} rows`);
  }
}

/** AdamW with the config's `optimizer.*` settings over a model's flat buffers. */
export function createAdamW(model: FlatParams, config: Config): Promise<AdamW> {
  const o = config.optimizer;
  return AdamW.create(model, {
    beta1: o.beta1,
    beta2: o.beta2,
    weightDecay: o.weight_decay,
    gradClip: o.grad_clip,
  });
}

/**
 * How many optimizer steps the host may queue ahead of the GPU: after queueing step N it waits
 * for step N − 2 to finish (a wait that overlaps step N − 1's work, so the GPU never idles on
 * it), which bounds the memory of queued inputs and how stale a log line can be.
 */
export const STEPS_AHEAD = 2;

/**
 * Values (f32) a validation readback holds (16 MiB) before it is read early: room for the losses
 * of every batch of most validations, so validation waits once whatever its batch count.
 */
export const VAL_READBACK_VALUES = 4 * 1024 * 1024;

/** Readback buffers of log-step figures in use at once (a log step's are read one step later). */
const LOG_SLOTS = 3;

/** Checkpoint metadata key of the training-loss window ({@linkcode LossWindowState}). */
export const LOSS_WINDOW_KEY = "train_loss_window";

/**
 * What the BST and GPT runs share: the optimizer step over micro-batches, the logged
 * figures, and checkpoint contents (model weights, AdamW moments, config, step, model kind,
 * the training-loss window).
 */
export abstract class FlatRun<M extends FlatParams> implements TrainRun {
  /** Rows per micro-batch (of this rank, in a data-parallel run). */
  microBatch: number;
  #zero?: Op[];
  #window?: LossWindow;
  #comm: Collective | null = null;
  /** Readback slots of log steps, used in turn; `figures` while a slot is not yet read. */
  #slots?: { readback: Readback; figures: (() => Promise<StepFigures>) | null }[];
  #nextSlot = 0;
  /** Completion of the last queued steps, oldest first. */
  #inflight: Promise<unknown>[] = [];

  constructor(
    readonly gpu: Gpu,
    readonly config: Config,
    readonly data: TrainData,
    readonly model: M,
    readonly opt: AdamW,
  ) {
    this.microBatch = microBatchSize(config);
  }

  /** The model kind written to checkpoint metadata. */
  protected abstract readonly kind: "bst" | "gpt";

  /**
   * Makes this run rank `c.rank` of `c.size`: micro-batches of
   * `effective_batch_size / size / gradient_accum_steps` rows, gradients summed over the
   * ranks before each AdamW step, validation sharded and reduced.
   */
  distribute(c: Collective): void {
    const d = this.config.data;
    this.microBatch = rankMicroBatch(d.effective_batch_size, c.size, d.gradient_accum_steps);
    this.#comm = c;
  }

  /** The number of ranks (1 in a single process). */
  protected get ranks(): number {
    return this.#comm?.size ?? 1;
  }

  /** This rank's rows of a global batch of `tokens` (all of them in a single process). */
  protected ownRows(tokens: Int32Array): {
    tokens: Int32Array;
    first: number;
    rows: number;
    total: number;
  } {
    const T = this.data.seqLen;
    const total = tokens.length / T;
    const rows = total / this.ranks;
    const first = (this.#comm?.rank ?? 0) * rows;
    return { tokens: tokens.subarray(first * T, (first + rows) * T), first, rows, total };
  }

  /** Sums per-rank partial figures over the ranks (the figures themselves alone). */
  protected async reduce(values: number[]): Promise<number[]> {
    if (!this.#comm) return values;
    const v = new Float64Array(values);
    await this.#comm.allreduceSum(v);
    return [...v];
  }

  /** Path accuracy over the first `rows` path-task rows, split over the ranks. */
  protected async shardedPathAccuracy(rows: number, decode: Decode): Promise<number> {
    const n = Math.min(rows, pathRows(this.data));
    const rank = this.#comm?.rank ?? 0;
    const first = Math.floor((n * rank) / this.ranks);
    const end = Math.floor((n * (rank + 1)) / this.ranks);
    const [correct] = await this.reduce([
      await pathCorrect(this.data, first, end - first, decode),
    ]);
    return correct / n;
  }

  /** Data-parallel runs: compares the ranks' parameter hashes (throws when they differ). */
  async checkReplicas(step: number): Promise<void> {
    if (!this.#comm) return;
    await checkReplicas(this.#comm, await readTensor(this.gpu, this.model.params), step);
  }

  /**
   * Ops of one training micro-batch of `tokens` (the global micro-batch, microBatch × ranks
   * rows of T; this rank trains its {@linkcode FlatRun.ownRows}), with gradients scaled for
   * `accum` micro-batches and weights computed over all its rows, and where this rank's share
   * of its loss lands: the first `count` values of `slots`, whose sum (over the ranks) is the
   * micro-batch's loss divided by `accum`.
   */
  protected abstract microStep(
    tokens: Int32Array,
    accum: number,
  ): Promise<{ ops: Op[]; loss: { slots: Tensor; count: number } }>;

  abstract validate(): Promise<ValMetrics>;

  /** Model-specific figures of a log step (the BST's pair statistics). */
  protected extraLogs(): Record<string, number> {
    return {};
  }

  /** The running training loss (created on first use). */
  protected get lossWindow(): LossWindow {
    this.#window ??= new LossWindow(this.gpu, this.model.label);
    return this.#window;
  }

  /** Extra checkpoint metadata (e.g. the BST's pair-sampler state). */
  protected extraMetadata(): Record<string, string> {
    return {};
  }

  /** Restores what {@linkcode FlatRun.extraMetadata} saved. */
  protected restoreMetadata(_metadata: Record<string, string>): void {}

  /**
   * Queues one optimizer step (0-based `step`): zero gradients, each micro-batch's forward and
   * backward (its loss copied into the loss window), AdamW at the scheduled learning rate —
   * one submission per micro-batch, none waited for. Each micro-batch's inputs are written
   * with `queue.writeBuffer`, which the queue orders after the submissions before it, so they
   * never overwrite data a queued micro-batch still reads. After queueing, the host waits for
   * the step {@linkcode STEPS_AHEAD} back to finish (work is queued behind it: no idle GPU).
   *
   * At a log step the figures — the loss window's values and the gradient norms (when
   * clipping) — are copied into a readback buffer within the step's last submission, and the
   * host-side ones ({@linkcode FlatRun.extraLogs}, data logs) taken now; the result's
   * `figures()` reads them.
   */
  async step(step: number, log: boolean): Promise<StepResult> {
    const d = this.config.data;
    const T = this.data.seqLen;
    const { tokens, epoch } = await this.data.train.batch(step, d.effective_batch_size);
    this.#zero ??= await this.model.planZeroGrads();
    const lr = scheduledLr(this.config, step);
    const accum = d.gradient_accum_steps;
    const window = this.lossWindow;
    const comm = this.#comm;
    const BG = this.microBatch * this.ranks; // rows of a micro-batch over all ranks
    let figures: StepResult["figures"] = null;
    for (let k = 0; k < accum; k++) {
      // writes this micro-batch's inputs: after the previous micro-batch's submission
      const micro = await this.microStep(tokens.subarray(k * BG * T, (k + 1) * BG * T), accum);
      let ops: Op[] = [
        ...(k === 0 ? this.#zero : []),
        ...micro.ops,
        await window.record(micro.loss.slots, micro.loss.count),
      ];
      if (k === accum - 1) {
        if (comm) {
          submit(this.gpu, ops);
          // each rank's gradient is its share of the global one: the sum is that gradient
          // (MPI works on host memory: this reads the gradients back, a wait by necessity)
          await allreduceTensor(this.gpu, this.model.grads, comm);
          ops = [];
        }
        this.opt.setStep(lr, step + 1);
        ops.push(...this.opt.ops);
        window.endStep();
        if (log) figures = await this.#logFigures(ops);
      }
      submit(this.gpu, ops);
    }
    await this.#pace();
    return { epoch, lr, figures };
  }

  /**
   * Appends to `ops` (the step's last submission) the copies of the step's GPU figures into a
   * readback slot, and returns the reader of the step's figures.
   */
  async #logFigures(ops: Op[]): Promise<() => Promise<StepFigures>> {
    const window = this.lossWindow;
    const norms = this.config.optimizer.grad_clip !== null ? this.opt.norms : null;
    this.#slots ??= Array.from({ length: LOG_SLOTS }, (_, i) => ({
      readback: new Readback(
        this.gpu,
        `${this.model.label}.log${i}`,
        window.capacity + this.opt.norms.numel + (this.model.lossScale?.numel ?? 0),
      ),
      figures: null,
    }));
    const slot = this.#slots[this.#nextSlot];
    this.#nextSlot = (this.#nextSlot + 1) % LOG_SLOTS;
    if (slot.figures) await slot.figures(); // read long ago unless nobody asked
    const rb = slot.readback;
    const loss = window.takeInto(rb);
    if (loss.op) ops.push(loss.op);
    const logs: Record<string, number> = {};
    let unscale = 1;
    const scaler = this.model.lossScale;
    if (scaler) {
      // 16-mixed: the scale after this step and the steps skipped so far (non-finite
      // gradients); the i32 state is copied bit for bit through an f32 view. Its callback runs
      // before the norms' (planning order), which it unscales.
      const view = new Tensor(scaler.buffer, [scaler.numel], "f32", scaler.label, scaler.offset);
      const op = rb.copy(view, 0, view.numel, (v) => {
        const state = decodeLossScaleState(new Int32Array(v.buffer, v.byteOffset, v.length));
        unscale = 1 / state.lastScale;
        logs.loss_scale = state.scale;
        logs.skipped_steps = state.skippedSteps;
      });
      if (op) ops.push(op);
    }
    if (norms) {
      // a skipped step's grad_norm is Infinity or NaN
      const op = rb.copy(norms, 0, norms.numel, (n) => {
        logs.grad_norm = this.opt.normsOf(n, unscale).total;
      });
      if (op) ops.push(op);
    }
    // host figures as they are after this step (the next step advances the pair sampler)
    const host = { ...this.extraLogs(), ...this.data.train.logs?.() };
    let read: Promise<StepFigures> | undefined;
    const figures = () =>
      read ??= (async () => {
        await rb.read();
        if (slot.figures === figures) slot.figures = null;
        // each rank's window holds its share of the loss
        const [mean] = await this.reduce([loss.mean()]);
        return { loss: mean, logs: { ...logs, ...host } };
      })();
    slot.figures = figures;
    return figures;
  }

  /** Waits for the step {@linkcode STEPS_AHEAD} back (the GPU has later steps queued). */
  async #pace(): Promise<void> {
    this.#inflight.push(this.gpu.queue.onSubmittedWorkDone());
    while (this.#inflight.length > STEPS_AHEAD) await this.#inflight.shift();
  }

  /**
   * Checkpoint tensors and metadata for `step` steps taken. In a data-parallel run every rank
   * calls it (the loss window's shares are summed) and rank 0 saves it.
   */
  async checkpoint(
    step: number,
  ): Promise<{ tensors: Map<string, SafeTensor>; metadata: Record<string, string> }> {
    const window = await this.lossWindow.state();
    [window.sum] = await this.reduce([window.sum]);
    return {
      tensors: await checkpointTensors(this.model, this.opt),
      metadata: {
        model: this.kind,
        config: JSON.stringify(storedConfig(this.config)),
        step: String(step),
        [LOSS_WINDOW_KEY]: encodeLossWindow(window),
        ...await this.lossScaleMetadata(),
        ...(this.data.train.state ? { [DATA_STATE_KEY]: this.data.train.state() } : {}),
        ...this.extraMetadata(),
      },
    };
  }

  /** Restores weights, AdamW moments and extra state from a checkpoint; returns its step. */
  async restore(path: string, options: CheckpointLoadOptions = {}): Promise<number> {
    const file = await restoreModelAndOptimizer(path, this.model, this.opt, {
      ...options,
      kind: this.kind,
    });
    this.restoreMetadata(file.metadata);
    const dataState = file.metadata[DATA_STATE_KEY];
    if (this.data.train.restore) {
      if (dataState === undefined) {
        throw new Error(`Cannot resume from "${path}": it has no ${DATA_STATE_KEY}`);
      }
      this.data.train.restore(dataState, path);
    }
    const step = checkpointStep(path, file.metadata);
    if (this.model.lossScale) {
      const stored = file.metadata[LOSS_SCALE_KEY];
      // A checkpoint without scaler state (written in 32-true) starts a fresh scale; AdamW's
      // bias corrections continue from its step.
      this.opt.setLossScaleState(
        stored === undefined ? initialLossScaleState(step) : decodeLossScale(path, stored),
      );
    }
    const window = file.metadata[LOSS_WINDOW_KEY];
    if (window !== undefined) {
      const state = decodeLossWindow(path, window);
      // data-parallel: rank 0 holds the whole sum, the others start from 0 (shares add up)
      this.lossWindow.restore((this.#comm?.rank ?? 0) === 0 ? state : { ...state, sum: 0 });
    }
    return step;
  }

  /** 16-mixed: the loss scaler's state as checkpoint metadata (nothing in 32-true). */
  private async lossScaleMetadata(): Promise<Record<string, string>> {
    const state = await this.opt.lossScaleState();
    return state ? { [LOSS_SCALE_KEY]: JSON.stringify(state) } : {};
  }

  /** Loads the model weights of a checkpoint; returns its step (null if not recorded). */
  async loadWeights(path: string, options: CheckpointLoadOptions = {}): Promise<number | null> {
    const file = await loadCheckpoint(path);
    validateCheckpointTensors(file, path, { kind: this.kind, ...options });
    this.model.loadSafetensors(file.tensors, path);
    return file.metadata.step === undefined ? null : checkpointStep(path, file.metadata);
  }
}

/** Checkpoint metadata key of the 16-mixed loss scaler's state ({@linkcode LossScaleState}). */
export const LOSS_SCALE_KEY = "loss_scale";

/**
 * Parses the `loss_scale` checkpoint metadata (JSON of {@linkcode LossScaleState}); one line
 * naming the checkpoint when malformed.
 *
 * @example
 * ```ts
 * import { decodeLossScale } from "./run.ts";
 * const text = '{"scale":32768,"goodSteps":5,"skippedSteps":1,"lastSkipped":false,' +
 *   '"optimizerSteps":9,"lastScale":32768}';
 * console.log(decodeLossScale("x", text).skippedSteps); // 1
 * ```
 */
export function decodeLossScale(path: string, text: string): LossScaleState {
  let o: Record<string, unknown> | null = null;
  try {
    o = JSON.parse(text);
  } catch {
    o = null;
  }
  const count = (k: string) => {
    const v = o?.[k];
    return Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 31;
  };
  if (
    !o || typeof o !== "object" || !isLossScale(o.scale) || !isLossScale(o.lastScale) ||
    !count("goodSteps") || !count("skippedSteps") || !count("optimizerSteps") ||
    typeof o.lastSkipped !== "boolean"
  ) {
    throw new Error(
      `Cannot resume from "${path}": metadata ${LOSS_SCALE_KEY} is "${text.slice(0, 200)}"`,
    );
  }
  return {
    scale: o.scale as number,
    goodSteps: o.goodSteps as number,
    skippedSteps: o.skippedSteps as number,
    lastSkipped: o.lastSkipped as boolean,
    optimizerSteps: o.optimizerSteps as number,
    lastScale: o.lastScale as number,
  };
}

/**
 * A loss window's state as checkpoint metadata: the sum as JavaScript prints it (exact
 * round trip, and `NaN`/`Infinity` survive), e.g. `{"sum":"5.25","steps":2}`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeLossWindow, encodeLossWindow } from "./run.ts";
 * const text = encodeLossWindow({ sum: 0.1 + 0.2, steps: 2 });
 * assert.deepEqual(decodeLossWindow("x", text), { sum: 0.1 + 0.2, steps: 2 });
 * ```
 */
export function encodeLossWindow(state: LossWindowState): string {
  return JSON.stringify({ sum: String(state.sum), steps: state.steps });
}

/** Parses {@linkcode encodeLossWindow}'s text; one line naming the checkpoint when malformed. */
export function decodeLossWindow(path: string, text: string): LossWindowState {
  let o: { sum?: unknown; steps?: unknown } | null = null;
  try {
    o = JSON.parse(text);
  } catch {
    o = null;
  }
  const sum = typeof o?.sum === "string" ? Number(o.sum) : NaN;
  const steps = o?.steps;
  if (
    typeof o?.sum !== "string" || (Number.isNaN(sum) && o.sum !== "NaN") ||
    !Number.isSafeInteger(steps) || (steps as number) < 0
  ) {
    throw new Error(`Cannot resume from "${path}": metadata ${LOSS_WINDOW_KEY} is "${text}"`);
  }
  return { sum, steps: steps as number };
}
