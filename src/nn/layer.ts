/**
 * The layer convention (llm.c style): a layer is planned once over tensors its owner allocated
 * and returns the dispatches of its forward and of its backward. The model's forward
 * concatenates the forwards in order; its backward concatenates the backwards in reverse.
 *
 * @module
 */

import type { Op } from "../gpu/kernel.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** A layer's weight (and optional bias) with their gradients, as views of the model's buffers. */
export interface ParamGroup {
  w: Tensor;
  b?: Tensor;
  dw: Tensor;
  db?: Tensor;
}

/** The planned dispatches of one layer. */
export interface LayerPlan {
  /** Forward dispatches, in order. Saves what backward needs in the owner's tensors. */
  forward: Op[];
  /** Backward dispatches, in order; gradients of parameters are accumulated (`+=`). */
  backward: Op[];
}

/** Joins layer plans: forwards in order, backwards in reverse order. */
export function sequence(plans: readonly LayerPlan[]): LayerPlan {
  return {
    forward: plans.flatMap((p) => p.forward),
    backward: [...plans].reverse().flatMap((p) => p.backward),
  };
}

/** Flattens `Op | Op[]` results of kernel planners, skipping absent ones. */
export function flat(...items: (Op | Op[] | undefined | null)[]): Op[] {
  const out: Op[] = [];
  for (const it of items) {
    if (!it) continue;
    if (Array.isArray(it)) out.push(...it);
    else out.push(it);
  }
  return out;
}
