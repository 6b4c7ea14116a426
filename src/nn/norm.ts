/**
 * Norm layer: RMSNorm (`bias: false`) or LayerNorm (`bias: true`), eps 1e-5, over the last
 * dimension; the per-row statistics are kept for backward.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { type NormKind, planNormBackward, planNormForward } from "../gpu/norm.ts";
import { createTensor, type Tensor } from "../gpu/tensor.ts";
import type { LayerPlan } from "./layer.ts";

export type { NormKind };

/** Tensors of a norm layer (x, y, dy, dx are (N, C); w, b, dw, db are (C)). */
export interface NormTensors {
  x: Tensor;
  y: Tensor;
  w: Tensor;
  b?: Tensor;
  dw: Tensor;
  db?: Tensor;
  dy: Tensor;
  dx: Tensor;
  /** Backward adds into `dx` (a residual stream) instead of overwriting it. */
  accumulateDx: boolean;
}

/**
 * Plans a norm layer: forward `y = norm(x)`, backward dx and dw (db); without `withBackward`
 * the forward only.
 */
export async function planNorm(
  gpu: Gpu,
  label: string,
  kind: NormKind,
  t: NormTensors,
  withBackward = true,
): Promise<LayerPlan> {
  const C = t.w.numel;
  const stats = createTensor(gpu, [t.x.numel / C, 2], `${label}.stats`); // (N, 2) [mean, rstd]
  const forward = [await planNormForward(gpu, kind, { y: t.y, stats, x: t.x, w: t.w, b: t.b })];
  if (!withBackward) return { forward, backward: [] };
  return {
    forward,
    backward: await planNormBackward(gpu, kind, {
      dx: t.dx,
      dw: t.dw,
      db: t.db,
      dy: t.dy,
      x: t.x,
      w: t.w,
      stats,
      accumulate: t.accumulateDx,
    }),
  };
}
