// The two workgroup-reduction variants the reducing kernels are tested with (see
// src/gpu/reduce.ts).

import { getGpu } from "../../src/gpu/device.ts";
import { type Reduction, subgroupReductions } from "../../src/gpu/reduce.ts";

export const REDUCTIONS: readonly Reduction[] = ["tree", "subgroup"];

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
