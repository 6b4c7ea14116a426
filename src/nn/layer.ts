/**
 * The layer convention (llm.c style): a layer is planned once over tensors its owner allocated
 * and returns the dispatches of its forward and of its backward. The model's forward
 * concatenates the forwards in order; its backward concatenates the backwards in reverse.
 *
 * @module
 */

import type { Dispatch } from "../gpu/kernel.ts";

/** The planned dispatches of one layer. */
export interface LayerPlan {
  /** Forward dispatches, in order. Saves what backward needs in the owner's tensors. */
  forward: Dispatch[];
  /** Backward dispatches, in order; gradients of parameters are accumulated (`+=`). */
  backward: Dispatch[];
}

/** Joins layer plans: forwards in order, backwards in reverse order. */
export function sequence(plans: readonly LayerPlan[]): LayerPlan {
  return {
    forward: plans.flatMap((p) => p.forward),
    backward: [...plans].reverse().flatMap((p) => p.backward),
  };
}

/** Flattens `Dispatch | Dispatch[]` results of kernel planners. */
export function flat(...items: (Dispatch | Dispatch[] | undefined | null)[]): Dispatch[] {
  const out: Dispatch[] = [];
  for (const it of items) {
    if (!it) continue;
    if (Array.isArray(it)) out.push(...it);
    else out.push(it);
  }
  return out;
}
