/**
 * Training and validation of the BST ({@linkcode TrainRun}): pairs built on the CPU per
 * micro-batch, one step = zero gradients, each micro-batch's forward and backward, AdamW;
 * validation = pair loss, evaluation losses and greedy path accuracy.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { Gpu } from "../gpu/device.ts";
import { submit } from "../gpu/kernel.ts";
import { Readback } from "../gpu/readback.ts";
import { greedyDecode } from "../inference/greedy.ts";
import { BST, type EncoderPlan, type PairHead, trainingPairList } from "../models/bst.ts";
import { bstConfigFor, modelPrecision } from "../models/from_config.ts";
import { buildPairBatch, PairSampler, type PairSamplerState } from "../models/bst_pairs.ts";
import type { AdamW } from "./optimizer.ts";
import { slicePairRows } from "./distributed.ts";
import {
  createAdamW,
  FlatRun,
  type TrainData,
  VAL_READBACK_VALUES,
  validationBatchesFor,
  type ValMetrics,
} from "./run.ts";

/** The BST, its optimizer, pair sampler and planned buffers of a run. */
export class BstRun extends FlatRun<BST> {
  protected readonly kind = "bst";
  #train?: { enc: EncoderPlan; head: PairHead };
  #val?: { enc: EncoderPlan; head: PairHead; readback: Readback };

  constructor(
    gpu: Gpu,
    config: Config,
    data: TrainData,
    model: BST,
    opt: AdamW,
    readonly sampler: PairSampler,
  ) {
    super(gpu, config, data, model, opt);
  }

  /** Creates the model (seeded) and optimizer for a config and its data. */
  static async create(gpu: Gpu, config: Config, data: TrainData): Promise<BstRun> {
    const cfg = bstConfigFor(config, data);
    const model = await BST.create(gpu, cfg, {
      seed: config.seed,
      precision: modelPrecision(config),
    });
    const opt = await createAdamW(model, config);
    return new BstRun(gpu, config, data, model, opt, new PairSampler(cfg, config.seed));
  }

  /**
   * Pairs per text-head chunk on the GPU: every candidate pair of `rows` rows, but at most
   * `data.pair_batch_size` (rounded up to 64), so that subsampled steps — a few pairs per row
   * of a long block — do not compute a chunk sized for all of them. The chunking is a
   * function of the config and the batch only, so runs and resumed runs stay bit-identical.
   */
  private chunkPairs(rows: number): number {
    return Math.min(this.maxPairs(rows), this.config.data.pair_batch_size);
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

  /** Pairs of the micro-batch (the sampler's state advances), then its planned step. */
  protected async microStep(tokens: Int32Array, accum: number) {
    if (!this.#train) {
      const enc = await this.model.encoders(this.microBatch, this.data.seqLen);
      this.#train = { enc, head: this.model.pairHead(enc, this.chunkPairs(this.microBatch), true) };
    }
    const { enc, head } = this.#train;
    const T = this.data.seqLen;
    const own = this.ownRows(tokens);
    // pairs and weights of all the micro-batch's rows (every rank samples them all), then ours
    const all = buildPairBatch(tokens, own.total, T, this.sampler, {
      pairBatchSize: this.config.data.pair_batch_size,
      gradientAccumSteps: accum,
    });
    const pairs = own.rows === own.total ? all : slicePairRows(all, own.first, own.rows, T);
    const ops = await this.model.planMicroStep(enc, head, own.tokens, trainingPairList(pairs));
    return { ops, loss: { slots: head.lossOut, count: head.chunksUsed } };
  }

  /**
   * The reference's `get_custom_metrics()`: running averages of valid and sampled pairs per
   * row (empty before the first row).
   */
  protected override extraLogs(): Record<string, number> {
    const valid = this.sampler.avgValidPairs;
    const sampled = this.sampler.avgSampledPairs;
    if (valid === null || sampled === null) return {};
    return { avg_valid_pairs: valid, avg_sampled_pairs: sampled };
  }

  protected override extraMetadata(): Record<string, string> {
    return { pair_sampler: JSON.stringify(this.sampler.getState()) };
  }

  protected override restoreMetadata(metadata: Record<string, string>): void {
    if (metadata.pair_sampler) {
      this.sampler.setState(JSON.parse(metadata.pair_sampler) as PairSamplerState);
    }
  }

  /**
   * Validation as the reference's: `count` batches of `effective_batch_size` rows (see
   * {@linkcode validationBatchesFor}), each run in `gradient_accum_steps` micro-batches whose pair
   * loss and mean next/previous-token losses are divided by the accumulation steps and summed
   * (the batch's mean); the figures are the means over batches. Then (star graphs) greedy
   * path accuracy over the same rows.
   *
   * Each micro-batch is one submission, not waited for: its losses are copied into a readback
   * buffer and summed on the host, in order, once it is read — at the end, or earlier only when
   * the buffer is full (see {@linkcode VAL_READBACK_VALUES}). Path accuracy decodes greedily,
   * which needs each step's tokens back: its waits are inherent.
   */
  async validate(): Promise<ValMetrics> {
    const T = this.data.seqLen;
    const B = this.microBatch;
    const BG = B * this.ranks; // rows of a micro-batch over all ranks
    const accum = this.config.data.gradient_accum_steps;
    const E = BG * accum;
    if (!this.#val) {
      const enc = await this.model.encoders(B, T);
      const head = this.model.pairHead(enc, this.chunkPairs(B), false);
      const perMicro = head.lossOut.numel + 2 * B * T; // pair-loss slots + evaluation losses
      const readback = new Readback(
        this.gpu,
        `${this.model.label}.val`,
        Math.max(perMicro, VAL_READBACK_VALUES),
      );
      this.#val = { enc, head, readback };
    }
    const { enc, head, readback } = this.#val;
    let count = 0;
    let loss = 0;
    let next = 0;
    let prev = 0;
    for await (const batch of validationBatchesFor(this.config, this.data.val, E)) {
      count++;
      // Validation pairs use a copy of the sampler so training's subsampling state is untouched.
      const sampler = this.sampler.clone();
      for (let k = 0; k < accum; k++) {
        const micro = batch.subarray(k * BG * T, (k + 1) * BG * T);
        const own = this.ownRows(micro);
        const tokens = own.tokens;
        const all = buildPairBatch(micro, BG, T, sampler, {
          pairBatchSize: this.config.data.pair_batch_size,
          gradientAccumSteps: accum,
        });
        const pairs = B === BG ? all : slicePairRows(all, own.first, own.rows, T);
        enc.setTokens(tokens);
        const ops = [...enc.forward, ...await head.setPairs(trainingPairList(pairs))];
        await readback.reserve(head.chunksUsed + 2 * B * T); // reads earlier batches when full
        const lossCopy = readback.copy(head.lossOut, 0, head.chunksUsed, (slots) => {
          let sum = 0; // as PairHead.readLoss()
          for (const v of slots) sum += v;
          loss += sum;
        });
        if (lossCopy) ops.push(lossCopy);
        ops.push(
          ...await this.model.planEvaluationLoss(tokens, B, T, readback, (e) => {
            next += e.next.reduce((a, x) => a + x, 0) / BG / accum;
            prev += e.prev.reduce((a, x) => a + x, 0) / BG / accum;
          }),
        );
        submit(this.gpu, ops);
      }
    }
    await readback.read();
    [loss, next, prev] = await this.reduce([loss, next, prev]);
    return {
      val_loss: loss / count,
      val_loss_next_token: next / count,
      val_loss_prev_token: prev / count,
      path_accuracy: this.data.pathTask ? await this.pathAccuracy(count * E) : null,
    };
  }

  /** Greedy path accuracy over the first `rows` validation rows. */
  pathAccuracy(rows: number): Promise<number> {
    return this.shardedPathAccuracy(
      rows,
      (p, n, len, steps) => greedyDecode(this.model, p, n, len, steps),
    );
  }
}
