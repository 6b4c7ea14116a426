/**
 * Linear layer `y = x·Wᵀ + b` (PyTorch layout: W is (out, in)) with its backward.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import {
  type MatmulPrecision,
  planBiasBackward,
  planLinearBackwardInput,
  planLinearBackwardWeight,
  planLinearForward,
  weightGradSplit,
} from "../gpu/matmul.ts";
import { createTensor, type Tensor } from "../gpu/tensor.ts";
import { flat, type LayerPlan } from "./layer.ts";

/** Tensors of one Linear layer; the owner allocates them. */
export interface LinearTensors {
  /** Input (M, K). */
  x: Tensor;
  /** Output (M, N). */
  y: Tensor;
  /** Weight (N, K) and its gradient. */
  w: Tensor;
  dw: Tensor;
  /** Optional bias (N) and its gradient. */
  b?: Tensor;
  db?: Tensor;
  /** Gradient of the output (M, N) (read by backward). */
  dy: Tensor;
  /** Gradient of the input (M, K); omit when no gradient flows to x. */
  dx?: Tensor;
  /** Shared split-K scratch for the weight gradient. */
  scratch?: Tensor;
}

/**
 * One split-K scratch tensor big enough for the weight gradients of every Linear listed, as
 * `[M, K, N]` (rows, input features, output features); `undefined` when none of them splits.
 * Layers whose backward passes run one after another may share it.
 */
export function createSplitKScratch(
  gpu: Gpu,
  linears: readonly (readonly [M: number, K: number, N: number])[],
  label: string,
): Tensor | undefined {
  const elements = Math.max(
    0,
    ...linears.map(([M, K, N]) => weightGradSplit(M, K, N).scratchElements),
  );
  return elements > 0 ? createTensor(gpu, [elements], label) : undefined;
}

/** Options of {@linkcode planLinear}. */
export interface LinearOptions {
  /** Residual form: forward adds into `y` (`y += x·Wᵀ + b`). */
  residual?: boolean;
  /** Backward adds into `dx` instead of overwriting it. */
  accumulateDx?: boolean;
  /**
   * Precision of all three matmuls (default "f32"); "f16" for `trainer.precision=16-mixed`:
   * f16 inputs, f32 storage and totals (see `src/gpu/matmul.ts`).
   */
  precision?: MatmulPrecision;
  /** Plan the backward (default true; false: forward only, `backward` empty). */
  backward?: boolean;
}

/**
 * Plans a Linear layer. Forward: `y (=|+=) x·Wᵀ + b`. Backward: `dW += dyᵀ·x`, `db += Σ dy`,
 * `dx (=|+=) dy·W`.
 */
export async function planLinear(
  gpu: Gpu,
  t: LinearTensors,
  options: LinearOptions = {},
): Promise<LayerPlan> {
  const forward = [
    await planLinearForward(gpu, {
      out: t.y,
      x: t.x,
      w: t.w,
      bias: t.b,
      accumulate: options.residual ?? false,
      precision: options.precision,
    }),
  ];
  if (options.backward === false) return { forward, backward: [] };
  const backward = flat(
    await planLinearBackwardWeight(gpu, {
      dw: t.dw,
      dy: t.dy,
      x: t.x,
      scratch: t.scratch,
      precision: options.precision,
    }),
    t.db ? await planBiasBackward(gpu, { db: t.db, dy: t.dy }) : undefined,
    t.dx
      ? await planLinearBackwardInput(gpu, {
        dx: t.dx,
        dy: t.dy,
        w: t.w,
        accumulate: options.accumulateDx ?? false,
        precision: options.precision,
      })
      : undefined,
  );
  return { forward, backward };
}
