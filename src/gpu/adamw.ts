/**
 * Optimizer kernels (`kernels/adamw.wgsl`): deterministic sums of squares into norm slots,
 * and PyTorch's AdamW update with the per-module clip coefficient computed on the GPU from
 * those slots — no read-back inside a step.
 *
 * @module
 */

import src from "../../kernels/adamw.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, f32, grid, type ParamField, planDispatch, writeParams } from "./kernel.ts";
import { type Reduction, withReductions } from "./reduce.ts";
import { createTensor, type Tensor } from "./tensor.ts";

const WG = 256;
const PER = 16;

/**
 * Plans `norms[slot] (=|+=) Σ x²` over all of `x`: per-chunk partial sums into a scratch
 * tensor allocated here, then one workgroup adds them in a fixed order — deterministic, no
 * atomics.
 *
 * @param gpu the shared GPU.
 * @param norms (S) f32 slots, e.g. one per module.
 * @param slot which slot to write, in [0, S).
 * @param x (n) f32, usually a range view of the flat gradient buffer.
 * @param accumulate add to the slot (for a module split over several ranges).
 * @param reduction the workgroup reductions (default: subgroups where usable, see `reduce.ts`).
 * @returns the partial and final dispatches, in order.
 *
 * @example Gradient norm of two ranges of one module (needs a WebGPU adapter)
 * ```ts ignore
 * const ops = [
 *   ...await planSumSquares(gpu, norms, 0, grads.rows(0, 4096)),
 *   ...await planSumSquares(gpu, norms, 0, grads.rows(4096, 1000), true),
 * ];
 * ```
 */
export async function planSumSquares(
  gpu: Gpu,
  norms: Tensor,
  slot: number,
  x: Tensor,
  accumulate = false,
  reduction?: Reduction,
): Promise<Dispatch[]> {
  const code = await withReductions(gpu, src, reduction);
  if (!(Number.isInteger(slot) && slot >= 0 && slot < norms.numel)) {
    throw new Error(`Norm slot ${slot} is outside "${norms.label}" of ${norms.numel} slots`);
  }
  const groups = Math.max(1, Math.ceil(x.numel / (WG * PER)));
  const partial = createTensor(gpu, [groups], `${x.label}.sumsq_partial`);
  return [
    await planDispatch(gpu, {
      label: `${x.label}.sumsq_partial`,
      code,
      entryPoint: "sumsq_partial",
      constants: { WG, PER },
      params: [x.numel, 0, 0, 0],
      bindings: [partial, x],
      workgroups: grid(gpu, groups),
    }),
    await planDispatch(gpu, {
      label: `${x.label}.sumsq_final`,
      code,
      entryPoint: "sumsq_final",
      constants: { WG },
      params: [groups, slot, accumulate ? 1 : 0, 0],
      bindings: [norms, partial],
      workgroups: [1],
    }),
  ];
}

/** Hyper-parameters of one AdamW step. */
export interface AdamWStep {
  /** Learning rate of this step. */
  lr: number;
  /** 1-based step count (for the bias corrections). */
  step: number;
  /** First-moment decay β1 (e.g. 0.9). */
  beta1: number;
  /** Second-moment decay β2 (e.g. 0.95). */
  beta2: number;
  /** Denominator epsilon (the reference uses 1e-8). */
  eps: number;
  /** Weight decay of this range (0 for norms and biases). */
  weightDecay: number;
  /** Clip threshold on the module's gradient norm; ≤ 0 or null disables clipping. */
  maxNorm: number | null;
}

/** A planned AdamW update of one range, whose step-dependent uniforms can be rewritten. */
export interface AdamWPlan {
  /** The update; encode it after the sums of squares it reads. */
  dispatch: Dispatch;
  /**
   * Rewrites the uniforms for another step — lr, bias corrections and every other field of `s`
   * (a queue write, ordered before the next submission). Throws when `s.step` is not a
   * positive integer.
   */
  setStep(s: AdamWStep): void;
}

/**
 * The adamw entry's uniform fields. Step-dependent scalars are computed in float64 and rounded
 * to f32 once, as PyTorch computes them from Python floats.
 */
function adamFields(n: number, slot: number, s: AdamWStep): ParamField[] {
  if (!(Number.isInteger(s.step) && s.step >= 1)) {
    throw new Error(`AdamW step must be a positive integer, got ${s.step}`);
  }
  const bc1 = 1 - Math.pow(s.beta1, s.step);
  const bc2 = 1 - Math.pow(s.beta2, s.step);
  return [
    n,
    slot,
    f32(1 - s.lr * s.weightDecay),
    f32(1 - s.beta1),
    f32(s.beta2),
    f32(1 - s.beta2),
    f32(-s.lr / bc1),
    f32(Math.sqrt(bc2)),
    f32(s.eps),
    f32(s.maxNorm ?? 0),
    f32(s.lr),
    f32(s.beta1),
  ];
}

/**
 * Plans PyTorch's single-tensor AdamW over equal-length ranges `param`, `m`, `v`, `grad` (views
 * of the flat buffers), with the gradient first scaled by the clip coefficient
 * min(1, maxNorm / (sqrt(norms[slot]) + 1e-6)) computed on the GPU (no read-back). The
 * gradient buffer itself is not modified.
 *
 * With `t.lossScale` (the state of `loss_scale.ts`, for `trainer.precision=16-mixed`) the
 * gradients are taken as scaled: the update unscales them (and their norm) by the step's
 * scale, does nothing on a step whose gradients were not finite, and computes the bias
 * corrections on the GPU from the number of updates applied (`s.step` is then unused).
 *
 * @param gpu the shared GPU.
 * @param t `param`, `m`, `v` (n) updated in place; `grad` (n); `norms` (S) sums of squares from
 *   {@linkcode planSumSquares}; `slot` the module's slot in `norms`; optional `lossScale`.
 * @param s the first step's hyper-parameters; later steps call `setStep` on the result.
 * @returns the dispatch and a `setStep` that rewrites its uniforms without re-planning.
 *
 * @example One step per iteration (needs a WebGPU adapter)
 * ```ts ignore
 * const plan = await planAdamW(gpu, { param, m, v, grad, norms, slot: 0 }, hyper);
 * plan.setStep({ ...hyper, lr: 3e-4, step: 2 });
 * await run(gpu, [...sumsq, plan.dispatch]);
 * ```
 */
export async function planAdamW(
  gpu: Gpu,
  t: {
    param: Tensor;
    m: Tensor;
    v: Tensor;
    grad: Tensor;
    norms: Tensor;
    slot: number;
    lossScale?: Tensor;
  },
  s: AdamWStep,
): Promise<AdamWPlan> {
  const n = t.param.numel;
  if (!(Number.isInteger(t.slot) && t.slot >= 0 && t.slot < t.norms.numel)) {
    throw new Error(`Norm slot ${t.slot} is outside "${t.norms.label}" of ${t.norms.numel} slots`);
  }
  for (const x of [t.m, t.v, t.grad]) {
    if (x.numel !== n) throw new Error(`AdamW range "${x.label}" must have ${n} elements`);
  }
  const dispatch = await planDispatch(gpu, {
    label: `${t.param.label}.adamw`,
    code: await withReductions(gpu, src), // the module's sumsq entries need the library
    entryPoint: t.lossScale ? "adamw_mixed" : "adamw",
    constants: { WG },
    params: adamFields(n, t.slot, s),
    bindings: [t.param, t.m, t.v, t.grad, t.norms, ...(t.lossScale ? [t.lossScale] : [])],
    textureInputs: [4],
    workgroups: grid(gpu, Math.ceil(n / WG)),
  });
  return {
    dispatch,
    setStep: (step) => writeParams(gpu, dispatch.params, adamFields(n, t.slot, step)),
  };
}
