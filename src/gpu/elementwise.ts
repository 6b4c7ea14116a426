/**
 * Elementwise kernels (`kernels/elementwise.wgsl`): in-place scale, axpy, scaled copy and fill.
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

/** Plans `out = value` over all of `out` (e.g. zeroing gradients inside a step). */
export function planFill(gpu: Gpu, out: Tensor, value: number): Promise<Dispatch> {
  return planDispatch(gpu, {
    label: `${out.label}.fill`,
    code: src,
    entryPoint: "fill",
    constants: { WG },
    params: [out.numel, f32(value)],
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
  return planBinary(gpu, "add_inplace", out, b, alpha);
}

/** Plans `out = alpha * b` (same element count). */
export function planCopy(gpu: Gpu, out: Tensor, b: Tensor, alpha = 1): Promise<Dispatch> {
  return planBinary(gpu, "copy", out, b, alpha);
}

function planBinary(
  gpu: Gpu,
  entryPoint: "add_inplace" | "copy",
  out: Tensor,
  b: Tensor,
  alpha: number,
): Promise<Dispatch> {
  if (b.numel !== out.numel) {
    throw new Error(
      `Cannot ${entryPoint} "${b.label}" ${b.shapeString()} into "${out.label}" ${out.shapeString()}`,
    );
  }
  return planDispatch(gpu, {
    label: `${out.label}.${entryPoint}`,
    code: src,
    entryPoint,
    constants: { WG },
    params: [out.numel, f32(alpha)],
    bindings: [out, b],
    workgroups: grid(gpu, Math.ceil(out.numel / WG)),
  });
}
