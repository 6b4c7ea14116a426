/**
 * AdamW for a model whose parameters, gradients and optimizer state live in flat GPU buffers:
 * decoupled weight decay on tensors with ≥ 2 dimensions only, eps 1e-8, and
 * per-module gradient clipping — for the BST the encoder's gradients by the encoder's norm and
 * the text head's by its own; for the GPT the whole model's — with the clip coefficients
 * computed on the GPU. The reported gradient norm is √(Σ module norm²) of the unclipped norms.
 *
 * Mixed precision (`trainer.precision=16-mixed`): when the model carries a loss-scale state
 * (`FlatModel.lossScale`, `src/gpu/loss_scale.ts`), its gradients are scaled by the loss scale,
 * and a step is: the sums of squares, the overflow check, AdamW on the unscaled gradients
 * (clipping by the unscaled norms; nothing is updated when a gradient is not finite), then the
 * scale update — still without a read-back. The learning rate follows the schedule on skipped
 * steps too (as Lightning steps its scheduler); AdamW's bias corrections count only the
 * updates applied, as PyTorch's per-parameter step does.
 *
 * @module
 */

import { type AdamWPlan, type AdamWStep, planAdamW, planSumSquares } from "../gpu/adamw.ts";
import {
  type LossScaleState,
  planLossScaleCheck,
  planLossScaleUpdate,
  readLossScaleState,
  writeLossScaleState,
} from "../gpu/loss_scale.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Op } from "../gpu/kernel.ts";
import {
  createFlatTensor,
  createTensor,
  readTensor,
  type Tensor,
  writeTensor,
} from "../gpu/tensor.ts";
import type { ParamSpec } from "../models/param_specs.ts";

/** The flat-buffer view of a model that the optimizer needs. */
export interface FlatModel {
  gpu: Gpu;
  label: string;
  params: Tensor;
  grads: Tensor;
  /** Consecutive-tensor ranges of a flat buffer sharing `key`, within binding limits. */
  ranges(flat: Tensor, key: (s: ParamSpec) => string): { key: string; view: Tensor }[];
  /** The loss scaler's state when the model trains in 16-mixed (gradients arrive scaled). */
  lossScale?: Tensor;
}

/** AdamW hyper-parameters (the reference's `optimizer.*` config). */
export interface AdamWConfig {
  beta1: number;
  beta2: number;
  weightDecay: number;
  /** Per-module clip threshold; null disables clipping. */
  gradClip: number | null;
  /** Default 1e-8 (the reference's). */
  eps?: number;
  /** 16-mixed: good steps between loss-scale doublings (default 2000; tests use fewer). */
  lossScaleGrowthInterval?: number;
}

/**
 * AdamW state (m, v) and the planned ops of one optimizer step, with the reference's
 * per-module gradient clipping.
 *
 * @example One step on a GPT (the loss's gradient, then AdamW)
 * ```ts
 * import { AdamW, getGpu, GPT, run } from "../../mod.ts";
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   mode: "next_token" as const, fimTokenId: -1,
 * };
 * const gpu = await getGpu();
 * const gpt = await GPT.create(gpu, cfg, { seed: 1 });
 * const opt = await AdamW.create(gpt, { beta1: 0.9, beta2: 0.95, weightDecay: 0.1, gradClip: 1 });
 * const { ops } = await gpt.planMicroStep(new Int32Array([7, 1, 2, 3, 7]), 1, 5);
 * opt.setStep(1e-3, 1);
 * await run(gpu, [...await gpt.planZeroGrads(), ...ops, ...opt.ops]);
 * console.log((await opt.gradNorm()).total > 0); // true
 * ```
 */
export class AdamW {
  /** First and second moments, flat, same layout as the parameters. */
  readonly m: Tensor;
  readonly v: Tensor;
  /** Sums of squares of the gradients, one slot per module (in parameter-table order). */
  readonly norms: Tensor;
  /** Module names of the norm slots (BST: encoder, text_head; GPT: model). */
  readonly modules: string[];
  /** Ops of one step: gradient norms, then the updates. */
  ops: Op[] = [];
  #updates: { plan: AdamWPlan; decay: boolean }[] = [];

  private constructor(readonly model: FlatModel, readonly config: AdamWConfig) {
    const gpu = model.gpu;
    this.m = createFlatTensor(gpu, model.params.numel, `${model.label}.adam_m`);
    this.v = createFlatTensor(gpu, model.params.numel, `${model.label}.adam_v`);
    this.modules = [...new Set(model.ranges(model.grads, (s) => s.module).map((r) => r.key))];
    this.norms = createTensor(gpu, [this.modules.length], `${model.label}.grad_norms`);
  }

  /** Plans the optimizer over `model` (moments start at zero). */
  static async create(model: FlatModel, config: AdamWConfig): Promise<AdamW> {
    const opt = new AdamW(model, config);
    const gpu = model.gpu;
    const ops: Op[] = [];
    const byModule = model.ranges(model.grads, (s) => s.module);
    const seen = new Set<string>();
    for (const r of byModule) {
      const slot = opt.modules.indexOf(r.key);
      ops.push(...await planSumSquares(gpu, opt.norms, slot, r.view, seen.has(r.key)));
      seen.add(r.key);
    }
    const lossScale = model.lossScale;
    if (lossScale) ops.push(await planLossScaleCheck(gpu, lossScale, opt.norms));
    const key = (s: ParamSpec) => `${s.module}|${s.decay ? "decay" : "no_decay"}`;
    const p = model.ranges(model.params, key);
    const m = model.ranges(opt.m, key);
    const v = model.ranges(opt.v, key);
    const g = model.ranges(model.grads, key);
    for (let i = 0; i < p.length; i++) {
      const [module, decay] = p[i].key.split("|");
      const plan = await planAdamW(gpu, {
        param: p[i].view,
        m: m[i].view,
        v: v[i].view,
        grad: g[i].view,
        norms: opt.norms,
        slot: opt.modules.indexOf(module),
        lossScale,
      }, opt.stepParams(0, 1, decay === "decay"));
      opt.#updates.push({ plan, decay: decay === "decay" });
      ops.push(plan.dispatch);
    }
    if (lossScale) {
      ops.push(await planLossScaleUpdate(gpu, lossScale, config.lossScaleGrowthInterval));
    }
    opt.ops = ops;
    return opt;
  }

  private stepParams(lr: number, step: number, decay: boolean): AdamWStep {
    const c = this.config;
    return {
      lr,
      step,
      beta1: c.beta1,
      beta2: c.beta2,
      eps: c.eps ?? 1e-8,
      weightDecay: decay ? c.weightDecay : 0,
      maxNorm: c.gradClip,
    };
  }

  /**
   * Sets the learning rate and the 1-based step number of the next {@linkcode AdamW.ops}
   * (queue writes, ordered before the next submission).
   */
  setStep(lr: number, step: number): void {
    for (const u of this.#updates) u.plan.setStep(this.stepParams(lr, step, u.decay));
  }

  /**
   * Reads the unclipped gradient norms of the last step: per module, and the reported total
   * √(Σ module norm²) (BST: √(n_encoder² + n_text_head²)).
   */
  async gradNorm(): Promise<{ total: number; modules: Record<string, number> }> {
    const n = await readTensor(this.model.gpu, this.norms);
    // 16-mixed: the norms are of the scaled gradients (Infinity or NaN on a skipped step).
    const scaler = await this.lossScaleState();
    return this.normsOf(n, scaler ? 1 / scaler.lastScale : 1);
  }

  /**
   * {@linkcode AdamW.gradNorm} from values of {@linkcode AdamW.norms} read back another way
   * (e.g. copied into a training step's readback); `unscale` is 1 / the loss scale the
   * gradients carried (16-mixed), else 1.
   */
  normsOf(n: Float32Array, unscale = 1): { total: number; modules: Record<string, number> } {
    const modules: Record<string, number> = {};
    let sum = 0;
    this.modules.forEach((name, i) => {
      modules[name] = Math.sqrt(n[i]) * unscale;
      sum += n[i];
    });
    return { total: Math.sqrt(sum) * unscale, modules };
  }

  /** 16-mixed: reads the loss scaler's state back (log steps, checkpoints); else null. */
  async lossScaleState(): Promise<LossScaleState | null> {
    const t = this.model.lossScale;
    return t ? await readLossScaleState(this.model.gpu, t) : null;
  }

  /** 16-mixed: restores the loss scaler's state (from a checkpoint). */
  setLossScaleState(state: LossScaleState): void {
    const t = this.model.lossScale;
    if (!t) throw new Error("This optimizer has no loss scaler (trainer.precision is 32-true)");
    writeLossScaleState(this.model.gpu, t, state);
  }

  /** Reads the moments back (for checkpoints). */
  async getState(): Promise<{ m: Float32Array; v: Float32Array }> {
    return {
      m: await readTensor(this.model.gpu, this.m),
      v: await readTensor(this.model.gpu, this.v),
    };
  }

  /** Restores the moments (from a checkpoint). */
  setState(state: { m: Float32Array; v: Float32Array }): void {
    writeTensor(this.model.gpu, this.m, state.m);
    writeTensor(this.model.gpu, this.v, state.v);
  }
}
