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
  valBatchCount,
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
    return { ops, loss: async () => (await readTensor(this.gpu, plan.lossOut))[0] };
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
          (p, n, len, steps) => greedyDecode(this.model, p, n, len, steps),
        )
        : null,
    };
  }
}
