/**
 * Optimizer kernels (`kernels/adamw.wgsl`): deterministic sums of squares into norm slots,
 * and PyTorch's AdamW update with the per-module clip coefficient computed on the GPU from
 * those slots — no read-back inside a step.
 *
 * @module
 */

import src from "../../kernels/adamw.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, f32, grid, planDispatch, writeParams } from "./kernel.ts";
import { createTensor, type Tensor } from "./tensor.ts";

const WG = 256;
const PER = 16;

/**
 * Plans `norms[slot] (=|+=) Σ x²` over all of `x` (two passes, fixed order).
 *
 * @param accumulate add to the slot (for a module split over several ranges).
 */
export async function planSumSquares(
  gpu: Gpu,
  norms: Tensor,
  slot: number,
  x: Tensor,
  accumulate = false,
): Promise<Dispatch[]> {
  if (slot < 0 || slot >= norms.numel) {
    throw new Error(`Norm slot ${slot} is outside "${norms.label}" of ${norms.numel} slots`);
  }
  const groups = Math.max(1, Math.ceil(x.numel / (WG * PER)));
  const partial = createTensor(gpu, [groups], `${x.label}.sumsq_partial`);
  return [
    await planDispatch(gpu, {
      label: `${x.label}.sumsq_partial`,
      code: src,
      entryPoint: "sumsq_partial",
      constants: { WG, PER },
      params: [x.numel, 0, 0, 0],
      bindings: [partial, x],
      workgroups: grid(gpu, groups),
    }),
    await planDispatch(gpu, {
      label: `${x.label}.sumsq_final`,
      code: src,
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
  beta1: number;
  beta2: number;
  eps: number;
  /** Weight decay of this range (0 for norms and biases). */
  weightDecay: number;
  /** Clip threshold on the module's gradient norm; ≤ 0 or null disables clipping. */
  maxNorm: number | null;
}

/** A planned AdamW update of one range, whose step-dependent uniforms can be rewritten. */
export interface AdamWPlan {
  dispatch: Dispatch;
  /** Rewrites lr and bias corrections (queue write; ordered before the next submit). */
  setStep(s: AdamWStep): void;
}

function adamFields(n: number, slot: number, s: AdamWStep) {
  const bc1 = 1 - Math.pow(s.beta1, s.step);
  const bc2 = 1 - Math.pow(s.beta2, s.step);
  return [
    n,
    slot,
    f32(s.lr),
    f32(s.beta1),
    f32(s.beta2),
    f32(s.eps),
    f32(s.weightDecay),
    f32(bc1),
    f32(Math.sqrt(bc2)),
    f32(s.maxNorm ?? 0),
  ];
}

/**
 * Plans AdamW over equal-length ranges `param`, `m`, `v`, `grad`, with the gradient scaled by
 * min(1, maxNorm / (sqrt(norms[slot]) + 1e-6)).
 */
export async function planAdamW(
  gpu: Gpu,
  t: { param: Tensor; m: Tensor; v: Tensor; grad: Tensor; norms: Tensor; slot: number },
  s: AdamWStep,
): Promise<AdamWPlan> {
  const n = t.param.numel;
  for (const x of [t.m, t.v, t.grad]) {
    if (x.numel !== n) throw new Error(`AdamW range "${x.label}" must have ${n} elements`);
  }
  const dispatch = await planDispatch(gpu, {
    label: `${t.param.label}.adamw`,
    code: src,
    entryPoint: "adamw",
    constants: { WG },
    params: adamFields(n, t.slot, s),
    bindings: [t.param, t.m, t.v, t.grad, t.norms],
    workgroups: grid(gpu, Math.ceil(n / WG)),
  });
  return {
    dispatch,
    setStep: (step) => writeParams(gpu, dispatch.params, adamFields(n, t.slot, step)),
  };
}
