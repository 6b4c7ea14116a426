/**
 * RoPE layer: rotates q and k of qkv in place in forward; rotates dq and dk back in backward.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { planRope } from "../gpu/rope.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { LayerPlan } from "./layer.ts";

/**
 * Plans RoPE over qkv (N, 3C) with positions `pos` (N) i32, all < `maxPositions` (without
 * `withBackward` the forward only).
 */
export async function planRopeLayer(
  gpu: Gpu,
  t: { qkv: Tensor; dqkv: Tensor; pos: Tensor; nHead: number; maxPositions: number },
  withBackward = true,
): Promise<LayerPlan> {
  return {
    forward: [await planRope(gpu, t.qkv, t.pos, t.nHead, t.maxPositions, false)],
    backward: withBackward
      ? [await planRope(gpu, t.dqkv, t.pos, t.nHead, t.maxPositions, true)]
      : [],
  };
}
