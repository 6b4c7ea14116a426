/**
 * SwiGLU activation layer over a gate_up output: y = silu(gate) · up.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { planSwigluBackward, planSwigluForward } from "../gpu/swiglu.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { LayerPlan } from "./layer.ts";

/** Plans SwiGLU: x, dx (N, 2H); y, dy (N, H). */
export async function planSwigluLayer(
  gpu: Gpu,
  t: { x: Tensor; y: Tensor; dy: Tensor; dx: Tensor },
  withBackward = true,
): Promise<LayerPlan> {
  return {
    forward: [await planSwigluForward(gpu, t.y, t.x)],
    backward: withBackward ? [await planSwigluBackward(gpu, t.dx, t.x, t.dy)] : [],
  };
}
