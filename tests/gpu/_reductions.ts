// The two workgroup-reduction variants the reducing kernels are tested with (see
// src/gpu/reduce.ts).

import { getGpu } from "../../src/gpu/device.ts";
import { type Reduction, subgroupReductions } from "../../src/gpu/reduce.ts";

export const REDUCTIONS = ["tree", "subgroup"] as const satisfies readonly Reduction[];

/**
 * The workgroup reductions, and one invocation per row (the CPU adapters' default form of the
 * cross-entropy and norm kernels).
 */
export const MODES = [...REDUCTIONS, "rows"] as const;
export type Mode = (typeof MODES)[number];

/**
 * Whether variant `r` runs on this adapter (the tree always). Mesa's lavapipe must have the
 * subgroup variant, so a run there tests both.
 */
export async function reductionRuns(r: Reduction): Promise<boolean> {
  if (r === "tree") return true;
  const gpu = await getGpu();
  const ok = await subgroupReductions(gpu);
  if (!ok && gpu.info.description.includes("llvmpipe")) {
    throw new Error("Mesa's lavapipe grants subgroups: the subgroup reductions should run here");
  }
  return ok;
}
