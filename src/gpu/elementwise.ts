/**
 * Elementwise kernels (`kernels/elementwise.wgsl`): in-place scale and axpy.
 *
 * @module
 */

import src from "../../kernels/elementwise.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, f32, grid, planDispatch } from "./kernel.ts";
import type { Tensor } from "./tensor.ts";

const WG = 256;

/** Plans `out *= alpha` over all of `out`. */
export function planScale(gpu: Gpu, out: Tensor, alpha: number): Promise<Dispatch> {
  return planDispatch(gpu, {
    label: `${out.label}.scale`,
    code: src,
    entryPoint: "scale",
    constants: { WG },
    params: [out.numel, f32(alpha)],
    bindings: [out],
    workgroups: grid(gpu, Math.ceil(out.numel / WG)),
  });
}

/** Plans `out += alpha * b` (same element count). */
export function planAddInPlace(
  gpu: Gpu,
  out: Tensor,
  b: Tensor,
  alpha = 1,
): Promise<Dispatch> {
  if (b.numel !== out.numel) {
    throw new Error(
      `Cannot add "${b.label}" ${b.shapeString()} to "${out.label}" ${out.shapeString()}`,
    );
  }
  return planDispatch(gpu, {
    label: `${out.label}.add`,
    code: src,
    entryPoint: "add_inplace",
    constants: { WG },
    params: [out.numel, f32(alpha)],
    bindings: [out, b],
    workgroups: grid(gpu, Math.ceil(out.numel / WG)),
  });
}
