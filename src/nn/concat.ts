/**
 * Concat and split along the last axis as layers (each is the other's backward).
 *
 * @module
 */

import { planConcat, planSplit } from "../gpu/concat.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { LayerPlan } from "./layer.ts";

/** Forward `y = [a | b]`; no backward dispatches (callers plan the split they need). */
export async function planConcatLayer(
  gpu: Gpu,
  t: { a: Tensor; b: Tensor; y: Tensor },
): Promise<LayerPlan> {
  return { forward: [await planConcat(gpu, t.y, t.a, t.b)], backward: [] };
}

/** Forward `a = x[:, :Ca]`, `b = x[:, Ca:]`; no backward dispatches. */
export async function planSplitLayer(
  gpu: Gpu,
  t: { x: Tensor; a: Tensor; b: Tensor },
): Promise<LayerPlan> {
  return { forward: [await planSplit(gpu, t.a, t.b, t.x)], backward: [] };
}
