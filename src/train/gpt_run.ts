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
import { greedyDecode } from "../inference/greedy.ts";
import { gptConfigFor } from "../models/from_config.ts";
import { GPT } from "../models/gpt.ts";
import {
  createAdamW,
  FlatRun,
  pathAccuracy,
  type TrainData,
  validationBatchesFor,
  type ValMetrics,
} from "./run.ts";

/** The GPT, its optimizer and the run's data. */
export class GptRun extends FlatRun<GPT> {
  protected readonly kind = "gpt";

  /** Creates the GPT (seeded) and AdamW for a config and its data. */
  static async create(gpu: Gpu, config: Config, data: TrainData): Promise<GptRun> {
    const model = await GPT.create(gpu, gptConfigFor(config, data), { seed: config.seed });
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
    let count = 0;
    let loss = 0;
    for await (const batch of validationBatchesFor(this.config, this.data.val, E)) {
      count++;
      for (let k = 0; k < accum; k++) {
        const tokens = batch.subarray(k * B * T, (k + 1) * B * T);
        const plan = await this.model.plan(B, T - 1);
        const { inputs, targets, weights } = this.model.lossTargets(tokens, B, T, accum);
        plan.setTokens(inputs);
        plan.setTargets(targets, weights);
        await run(this.gpu, [...plan.forward, ...plan.loss]);
        loss += (await readTensor(this.gpu, plan.lossOut))[0];
      }
    }
    return {
      val_loss: loss / count,
      val_loss_next_token: loss / count,
      val_loss_prev_token: null,
      path_accuracy: this.data.pathTask
        ? await pathAccuracy(
          this.data,
          count * E,
          (p, n, len, steps) => greedyDecode(this.model, p, n, len, steps),
        )
        : null,
    };
  }
}
