/**
 * Training and validation of the GPT baseline with the same loop, data order, checkpoints and
 * metrics as the BST ({@linkcode TrainRun}); `val_loss_prev_token` is null.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { Gpu } from "../gpu/device.ts";
import { submit } from "../gpu/kernel.ts";
import { Readback } from "../gpu/readback.ts";
import { greedyDecode } from "../inference/greedy.ts";
import { gptConfigFor, modelPrecision } from "../models/from_config.ts";
import { GPT } from "../models/gpt.ts";
import {
  createAdamW,
  FlatRun,
  type TrainData,
  VAL_READBACK_VALUES,
  validationBatchesFor,
  type ValMetrics,
} from "./run.ts";

/** The GPT, its optimizer and the run's data. */
export class GptRun extends FlatRun<GPT> {
  protected readonly kind = "gpt";
  #readback?: Readback;

  /** Creates the GPT (seeded) and AdamW for a config and its data. */
  static async create(gpu: Gpu, config: Config, data: TrainData): Promise<GptRun> {
    const model = await GPT.create(gpu, gptConfigFor(config, data), {
      seed: config.seed,
      precision: modelPrecision(config),
    });
    return new GptRun(gpu, config, data, model, await createAdamW(model, config));
  }

  protected async microStep(tokens: Int32Array, accum: number) {
    const own = this.ownRows(tokens);
    const n = this.data.seqLen - 1;
    // targets and weights over all the micro-batch's rows, then this rank's rows
    const t = this.model.lossTargets(tokens, own.total, this.data.seqLen, accum);
    const mine = <A extends Int32Array | Float32Array>(a: A) =>
      a.subarray(own.first * n, (own.first + own.rows) * n) as A;
    const plan = await this.model.plan(own.rows, n);
    plan.setTokens(mine(t.inputs));
    plan.setTargets(mine(t.targets), mine(t.weights));
    const ops = [...plan.forward, ...plan.loss, ...plan.backward];
    return { ops, loss: { slots: plan.lossOut, count: 1 } };
  }

  /**
   * Validation as the reference's: `count` batches of `effective_batch_size` rows, each run in
   * `gradient_accum_steps` micro-batches whose losses are divided by the accumulation steps
   * and summed; `val_loss` is the mean over batches. Then (star graphs) greedy path accuracy
   * over the same rows (its per-token readbacks are inherent to greedy decoding).
   *
   * Each micro-batch is one submission, not waited for; its loss is copied into a readback
   * buffer read once at the end (or when full: {@linkcode VAL_READBACK_VALUES} batches).
   */
  async validate(): Promise<ValMetrics> {
    const T = this.data.seqLen;
    const B = this.microBatch;
    const BG = B * this.ranks; // rows of a micro-batch over all ranks
    const accum = this.config.data.gradient_accum_steps;
    const E = BG * accum;
    this.#readback ??= new Readback(this.gpu, `${this.model.label}.val`, VAL_READBACK_VALUES);
    const readback = this.#readback;
    let count = 0;
    let loss = 0;
    for await (const batch of validationBatchesFor(this.config, this.data.val, E)) {
      count++;
      for (let k = 0; k < accum; k++) {
        const micro = batch.subarray(k * BG * T, (k + 1) * BG * T);
        const own = this.ownRows(micro);
        const plan = await this.model.plan(B, T - 1);
        const t = this.model.lossTargets(micro, BG, T, accum);
        const mine = <A extends Int32Array | Float32Array>(a: A) =>
          a.subarray(own.first * (T - 1), (own.first + B) * (T - 1)) as A;
        plan.setTokens(mine(t.inputs));
        plan.setTargets(mine(t.targets), mine(t.weights));
        await readback.reserve(1);
        const copy = readback.copy(plan.lossOut, 0, 1, (v) => loss += v[0])!;
        submit(this.gpu, [...plan.forward, ...plan.loss, copy]);
      }
    }
    await readback.read();
    [loss] = await this.reduce([loss]);
    return {
      val_loss: loss / count,
      val_loss_next_token: loss / count,
      val_loss_prev_token: null,
      path_accuracy: this.data.pathTask
        ? await this.shardedPathAccuracy(
          count * E,
          (p, n, len, steps) => greedyDecode(this.model, p, n, len, steps),
        )
        : null,
    };
  }
}
