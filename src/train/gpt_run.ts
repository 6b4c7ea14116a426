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
import {
  createAdamW,
  FlatRun,
  pathAccuracy,
  type TrainData,
  valBatchCount,
  type ValMetrics,
} from "./run.ts";

/** The GPT, its optimizer and the run's data. */
export class GptRun extends FlatRun<GPT> {
  protected readonly kind = "gpt";

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
    return new GptRun(gpu, config, data, model, await createAdamW(model, config));
  }

  protected async microStep(tokens: Int32Array, accum: number) {
    const { plan, ops } = await this.model.planMicroStep(
      tokens,
      this.microBatch,
      this.data.seqLen,
      accum,
    );
    return { ops, loss: { slots: plan.lossOut, count: 1 } };
  }

  /**
   * Validation as the reference's: `count` batches of `effective_batch_size` rows, each run in
   * `gradient_accum_steps` micro-batches whose losses are divided by the accumulation steps
   * and summed; `val_loss` is the mean over batches. Then (star graphs) greedy path accuracy
   * over the same rows.
   */
  async validate(): Promise<ValMetrics> {
    const T = this.data.seqLen;
    const B = this.microBatch;
    const accum = this.config.data.gradient_accum_steps;
    const E = B * accum;
    const nVal = this.data.val.length / T;
    const count = valBatchCount(this.config, nVal, E);
    let loss = 0;
    for (let b = 0; b < count * accum; b++) {
      const tokens = this.data.val.subarray(b * B * T, (b + 1) * B * T);
      const plan = await this.model.plan(B, T - 1);
      const { inputs, targets, weights } = this.model.lossTargets(tokens, B, T, accum);
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
          count * E,
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
}
