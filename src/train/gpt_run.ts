/**
 * Training and validation of the GPT baseline with the same loop, data order, checkpoints and
 * metrics as the BST ({@linkcode TrainRun}); `val_loss_prev_token` is null.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { Gpu } from "../gpu/device.ts";
import { run } from "../gpu/kernel.ts";
import { readTensor } from "../gpu/tensor.ts";
import { GPT } from "../models/gpt.ts";
import { loadCheckpoint } from "./checkpoints.ts";
import { AdamW } from "./optimizer.ts";
import type { SafeTensor } from "./safetensors.ts";
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

/** The GPT, its optimizer and the run's data. */
export class GptRun implements TrainRun {
  readonly microBatch: number;

  private constructor(
    readonly gpu: Gpu,
    readonly config: Config,
    readonly data: TrainData,
    readonly model: GPT,
    readonly opt: AdamW,
  ) {
    this.microBatch = microBatchSize(config);
  }

  /** Creates the GPT (seeded) and AdamW for a config and its data. */
  static async create(gpu: Gpu, config: Config, data: TrainData): Promise<GptRun> {
    const m = config.model;
    if (m.dropout !== 0) {
      throw new Error(`model.dropout must be 0: dropout is not implemented (got ${m.dropout})`);
    }
    if (m.gpt_mode === "fim") {
      throw new Error(
        "model.gpt_mode fim needs a <|fim|> token, which star-graph data does not have",
      );
    }
    const model = await GPT.create(gpu, {
      vocabSize: data.vocabSize,
      eosTokenId: data.eosTokenId,
      nLayer: m.n_layer,
      nHead: m.n_head,
      nEmbd: m.n_embd,
      blockSize: data.seqLen,
      bias: m.bias,
      mode: "next_token",
      fimTokenId: -1,
    }, { seed: config.seed });
    const o = config.optimizer;
    const opt = await AdamW.create(model, {
      beta1: o.beta1,
      beta2: o.beta2,
      weightDecay: o.weight_decay,
      gradClip: o.grad_clip,
    });
    return new GptRun(gpu, config, data, model, opt);
  }

  async step(step: number, readLoss: boolean) {
    const d = this.config.data;
    const T = this.data.seqLen;
    const { rows, epoch } = stepRows(
      this.data.train.length / T,
      d.effective_batch_size,
      this.config.seed,
      step,
    );
    const lr = scheduledLr(this.config, step);
    const zero = await this.model.planZeroGrads();
    const accum = d.gradient_accum_steps;
    let loss = 0;
    for (let k = 0; k < accum; k++) {
      const part = rows.subarray(k * this.microBatch, (k + 1) * this.microBatch);
      const tokens = new Int32Array(part.length * T);
      part.forEach((r, i) => tokens.set(this.data.train.subarray(r * T, (r + 1) * T), i * T));
      const { plan, ops } = await this.model.planMicroStep(tokens, this.microBatch, T, accum);
      const last = k === accum - 1;
      if (last) this.opt.setStep(lr, step + 1);
      await run(this.gpu, [...(k === 0 ? zero : []), ...ops, ...(last ? this.opt.ops : [])]);
      if (readLoss || accum > 1) loss += (await readTensor(this.gpu, plan.lossOut))[0];
    }
    return { loss: readLoss ? loss : null, epoch, lr };
  }

  async validate(): Promise<ValMetrics> {
    const T = this.data.seqLen;
    const B = this.microBatch;
    const nVal = this.data.val.length / T;
    const count = valBatchCount(this.config, nVal, B);
    let loss = 0;
    for (let b = 0; b < count; b++) {
      const tokens = this.data.val.subarray(b * B * T, (b + 1) * B * T);
      const plan = await this.model.plan(B, T - 1);
      const { inputs, targets, weights } = this.model.lossTargets(tokens, B, T);
      plan.setTokens(inputs);
      plan.setTargets(targets, weights);
      await run(this.gpu, [...plan.forward, ...plan.loss]);
      loss += (await readTensor(this.gpu, plan.lossOut))[0];
    }
    return {
      val_loss: loss / count,
      val_loss_next_token: loss / count,
      val_loss_prev_token: null,
      path_accuracy: this.data.pathTask
        ? await pathAccuracy(
          this.data,
          count * B,
          (p, n, len, steps) => this.decode(p, n, len, steps),
        )
        : null,
    };
  }

  /** Greedy next-token decoding of `steps` tokens after each prefix. */
  async decode(
    prefixes: Int32Array,
    rows: number,
    prefixLen: number,
    steps: number,
  ): Promise<Int32Array> {
    const V = this.model.config.vocabSize;
    const out = new Int32Array(rows * steps);
    let seq = prefixes;
    for (let s = 0; s < steps; s++) {
      const len = prefixLen + s;
      const logits = await this.model.logits(seq, rows, len); // (rows, len, V)
      const grown = new Int32Array(rows * (len + 1));
      for (let r = 0; r < rows; r++) {
        const base = (r * len + len - 1) * V;
        let best = 0;
        for (let v = 1; v < V; v++) if (logits[base + v] > logits[base + best]) best = v;
        out[r * steps + s] = best;
        grown.set(seq.subarray(r * len, (r + 1) * len), r * (len + 1));
        grown[r * (len + 1) + len] = best;
      }
      seq = grown;
    }
    return out;
  }

  async checkpoint(
    step: number,
  ): Promise<{ tensors: Map<string, SafeTensor>; metadata: Record<string, string> }> {
    return {
      tensors: await checkpointTensors(this.model, this.opt),
      metadata: {
        model: "gpt",
        config: JSON.stringify(storedConfig(this.config)),
        step: String(step),
      },
    };
  }

  async restore(path: string): Promise<number> {
    const file = await restoreModelAndOptimizer(path, this.model, this.opt);
    return checkpointStep(path, file.metadata);
  }

  async loadWeights(path: string): Promise<number | null> {
    const file = await loadCheckpoint(path);
    this.model.loadSafetensors(file.tensors, path, (n) => !n.startsWith("model."));
    return file.metadata.step === undefined ? null : checkpointStep(path, file.metadata);
  }
}
