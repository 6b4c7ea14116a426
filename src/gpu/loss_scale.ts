/**
 * Dynamic loss scaling on the GPU (`kernels/loss_scale.wgsl`) for `trainer.precision=16-mixed`,
 * as PyTorch's `GradScaler`: the loss gradient is seeded with `scale` (init 2^16) so that small
 * gradients survive the f16 inputs of the Linear matmuls; after backward a check marks the step
 * when any gradient is Infinity or NaN; AdamW then unscales by 1/scale or, on such a step,
 * leaves parameters and moments untouched; the scale halves on a skipped step and doubles
 * after `growthInterval` (2000) good steps in a row.
 *
 * The whole state lives in one small i32 tensor (see {@linkcode LossScaleState}), read back
 * only at log steps and checkpoints; the scale is kept as a power of two 2^e so that scaling
 * and unscaling are exact.
 *
 * @module
 */

import src from "../../kernels/loss_scale.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, planDispatch } from "./kernel.ts";
import { createTensor, readTensorI32, type Tensor, writeTensor } from "./tensor.ts";

/** PyTorch GradScaler's defaults: init_scale 2^16, growth 2, backoff 0.5, interval 2000. */
export const LOSS_SCALE_INIT_EXPONENT = 16;
export const LOSS_SCALE_GROWTH_INTERVAL = 2000;

/** Elements of the state tensor. */
const STATE_SIZE = 8;

/** The scaler's state, as read back and as stored in checkpoints. */
export interface LossScaleState {
  /** The current scale, a power of two. */
  scale: number;
  /** Good steps since the scale last changed (PyTorch's growth tracker). */
  goodSteps: number;
  /** Steps skipped for non-finite gradients, in total. */
  skippedSteps: number;
  /** Whether the last step was skipped. */
  lastSkipped: boolean;
  /** AdamW updates applied (its bias-correction step count). */
  optimizerSteps: number;
  /** The scale the last step's gradients carried. */
  lastScale: number;
}

/**
 * Creates the scaler state tensor: scale 2^16, no step yet, `optimizerSteps` updates done (the
 * step a run resumes at when its checkpoint has no scaler state).
 *
 * @param gpu the shared GPU.
 * @param label label prefix.
 * @param optimizerSteps AdamW updates already applied (default 0).
 * @returns an i32 (8) tensor.
 */
export function createLossScaleState(gpu: Gpu, label: string, optimizerSteps = 0): Tensor {
  const t = createTensor(gpu, [STATE_SIZE], `${label}.loss_scale`, "i32");
  writeLossScaleState(gpu, t, initialLossScaleState(optimizerSteps));
  return t;
}

/**
 * The state a 16-mixed run starts with: scale 2^16, nothing skipped, `optimizerSteps` AdamW
 * updates already applied (non-zero when resuming a checkpoint that has no scaler state).
 */
export function initialLossScaleState(optimizerSteps = 0): LossScaleState {
  const scale = 2 ** LOSS_SCALE_INIT_EXPONENT;
  return {
    scale,
    goodSteps: 0,
    skippedSteps: 0,
    lastSkipped: false,
    optimizerSteps,
    lastScale: scale,
  };
}

/** Whether `x` is a scale the state can hold: 2^e with e in [-126, 127]. */
export function isLossScale(x: unknown): x is number {
  if (typeof x !== "number" || !(x > 0)) return false;
  const e = Math.log2(x);
  return Number.isInteger(e) && e >= -126 && e <= 127;
}

/** log2 of a power-of-two scale within f32's normal range; throws otherwise. */
function exponentOf(scale: number, what: string): number {
  if (!isLossScale(scale)) {
    throw new Error(`Loss scale ${what} must be a power of two in [2^-126, 2^127], got ${scale}`);
  }
  return Math.log2(scale);
}

/**
 * Overwrites the scaler state (a queue write, ordered before the next submission).
 *
 * @throws Error when a scale is not a power of two in f32's range or a count is negative.
 */
export function writeLossScaleState(gpu: Gpu, t: Tensor, s: LossScaleState): void {
  for (const k of ["goodSteps", "skippedSteps", "optimizerSteps"] as const) {
    if (!(Number.isInteger(s[k]) && s[k] >= 0 && s[k] < 2 ** 31)) {
      throw new Error(`Loss scale state ${k} must be a count in int32, got ${s[k]}`);
    }
  }
  writeTensor(
    gpu,
    t,
    new Int32Array([
      exponentOf(s.scale, "scale"),
      s.goodSteps,
      s.skippedSteps,
      s.lastSkipped ? 1 : 0,
      s.optimizerSteps,
      exponentOf(s.lastScale, "lastScale"),
      0,
      0,
    ]),
  );
}

/** Reads the scaler state back (waits for the GPU: only at log steps and checkpoints). */
export async function readLossScaleState(gpu: Gpu, t: Tensor): Promise<LossScaleState> {
  return decodeLossScaleState(await readTensorI32(gpu, t));
}

/** The scaler state from the (8) i32 values of its tensor, however they were read back. */
export function decodeLossScaleState(s: Int32Array): LossScaleState {
  return {
    scale: 2 ** s[0],
    goodSteps: s[1],
    skippedSteps: s[2],
    lastSkipped: s[3] !== 0,
    optimizerSteps: s[4],
    lastScale: 2 ** s[5],
  };
}

/**
 * Plans the overflow check: after the gradients' sums of squares (`norms`, one slot per
 * module, from `planSumSquares`), marks the step skipped when any is not finite (a sum of
 * squares is finite exactly when every gradient is, barring squares beyond f32's range,
 * which count as overflow too), remembers the step's scale and counts the AdamW update.
 *
 * @param gpu the shared GPU.
 * @param state the scaler state from {@linkcode createLossScaleState}.
 * @param norms (S) f32 sums of squares.
 * @returns one dispatch; encode it between the sums of squares and AdamW.
 */
export function planLossScaleCheck(gpu: Gpu, state: Tensor, norms: Tensor): Promise<Dispatch> {
  checkState(state);
  return planDispatch(gpu, {
    label: `${state.label}.check`,
    code: src,
    entryPoint: "scale_check",
    params: [norms.numel, 0, 0, 0],
    bindings: [state, norms],
    workgroups: [1],
  });
}

/**
 * Plans the scale update after AdamW: halve on a skipped step, double after `growthInterval`
 * good steps in a row.
 *
 * @param gpu the shared GPU.
 * @param state the scaler state.
 * @param growthInterval good steps between doublings (default 2000).
 * @returns one dispatch; encode it after the AdamW updates.
 */
export function planLossScaleUpdate(
  gpu: Gpu,
  state: Tensor,
  growthInterval = LOSS_SCALE_GROWTH_INTERVAL,
): Promise<Dispatch> {
  checkState(state);
  if (!(Number.isInteger(growthInterval) && growthInterval >= 1)) {
    throw new Error(`Loss scale growth interval must be a positive integer, got ${growthInterval}`);
  }
  return planDispatch(gpu, {
    label: `${state.label}.update`,
    code: src,
    entryPoint: "scale_update",
    params: [growthInterval, 0, 0, 0],
    bindings: [state],
    workgroups: [1],
  });
}

function checkState(t: Tensor): void {
  if (t.dtype !== "i32" || t.numel !== STATE_SIZE) {
    throw new Error(`Loss scale state "${t.label}" must be i32 with ${STATE_SIZE} elements`);
  }
}
