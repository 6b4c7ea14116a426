/**
 * Workgroup reductions for the kernels that reduce rows or chunks (norms, cross-entropy, the
 * gradient's sums of squares): the tree variant (`kernels/reduce.wgsl`, workgroup memory only)
 * or the subgroup variant (`kernels/reduce_subgroup.wgsl`, `subgroupAdd`/`subgroupMax`), one
 * library appended to the kernel's source at planning time. Both define the same functions
 * (`wg_sum`, `wg_sum2`, `wg_max`) and an entry-point input struct `Lane`.
 *
 * The subgroup variant is the default where the device was granted `subgroups` and its
 * subgroups are made of consecutive invocations (probed once per device); otherwise the tree.
 * Either is deterministic on a given adapter; their results may differ in the last bits.
 *
 * @module
 */

import treeLibrary from "../../kernels/reduce.wgsl" with { type: "text" };
import subgroupLibrary from "../../kernels/reduce_subgroup.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { planDispatch, run } from "./kernel.ts";
import { createTensor, readTensorI32 } from "./tensor.ts";

/** Which workgroup reductions a kernel is built with. */
export type Reduction = "tree" | "subgroup";

const PROBE_WG = 256;

// Each invocation writes its subgroup invocation id and the subgroup size.
const PROBE = `
@group(0) @binding(0) var<uniform> zero: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<i32>;
@compute @workgroup_size(${PROBE_WG})
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) size: u32) {
  out[2u * lid] = i32(sid + zero.x);
  out[2u * lid + 1u] = i32(size);
}
`;

const sizes = new WeakMap<Gpu, Promise<number>>();

/**
 * The subgroup size of `gpu` where the device has `subgroups` and, on a 256-invocation
 * workgroup, every subgroup is `size` consecutive invocations (subgroup_invocation_id =
 * local_invocation_index mod size) with a power-of-two size from 4 to 128; else 0. Probed once
 * per device; a probe that fails to compile or run means 0. Kernels that find their neighbours
 * by subgroup invocation id (the subgroup reductions, attention's subgroup variants) rely on it.
 */
export function subgroupSize(gpu: Gpu): Promise<number> {
  let p = sizes.get(gpu);
  if (!p) {
    p = probe(gpu);
    sizes.set(gpu, p);
  }
  return p;
}

/** Whether the subgroup variant can run on `gpu` ({@linkcode subgroupSize} is not 0). */
export async function subgroupReductions(gpu: Gpu): Promise<boolean> {
  return (await subgroupSize(gpu)) > 0;
}

async function probe(gpu: Gpu): Promise<number> {
  if (!gpu.info.features.includes("subgroups")) return 0;
  try {
    const out = createTensor(gpu, [2 * PROBE_WG], "reduce.subgroup_probe", "i32");
    const d = await planDispatch(gpu, {
      label: "reduce.subgroup_probe",
      code: PROBE,
      params: [0],
      bindings: [out],
      workgroups: [1],
    });
    await run(gpu, [d]);
    const v = await readTensorI32(gpu, out);
    const size = v[1];
    if (!(size >= 4 && size <= 128 && (size & (size - 1)) === 0)) return 0;
    for (let i = 0; i < PROBE_WG; i++) {
      if (v[2 * i] !== i % size || v[2 * i + 1] !== size) return 0;
    }
    return size;
  } catch {
    return 0; // the probe does not compile or run: no subgroup kernels
  }
}

/**
 * `kernel` with the reduction library appended: `reduction` when given (throws when the
 * subgroup variant cannot run on `gpu`), else the subgroup variant where
 * {@linkcode subgroupReductions} says it can run, else the tree.
 */
export async function withReductions(
  gpu: Gpu,
  kernel: string,
  reduction?: Reduction,
): Promise<string> {
  const can = await subgroupReductions(gpu);
  if (reduction === "subgroup" && !can) {
    throw new Error(
      "Cannot build subgroup reductions: the device has no subgroups made of consecutive " +
        "invocations",
    );
  }
  const use = reduction ?? (can ? "subgroup" : "tree");
  return `${kernel}\n${use === "subgroup" ? subgroupLibrary : treeLibrary}`;
}
