/**
 * Concatenation along the last axis and split, its inverse (`kernels/concat.wgsl`).
 *
 * @module
 */

import src from "../../kernels/concat.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, grid, planDispatch } from "./kernel.ts";
import type { Tensor } from "./tensor.ts";

const WG = 256;

function widths(y: Tensor, a: Tensor, b: Tensor): { N: number; Ca: number; Cb: number } {
  const Ca = a.shape[a.shape.length - 1];
  const Cb = b.shape[b.shape.length - 1];
  const N = a.numel / Ca;
  if (b.numel !== N * Cb || y.numel !== N * (Ca + Cb)) {
    throw new Error(
      `Cannot concat "${a.label}" ${a.shapeString()} and "${b.label}" ${b.shapeString()} ` +
        `as "${y.label}" ${y.shapeString()}`,
    );
  }
  return { N, Ca, Cb };
}

/**
 * Plans `y (N, Ca+Cb) = [a (N, Ca) | b (N, Cb)]` (y overwritten). Its backward is
 * {@linkcode planSplit} on the gradients.
 *
 * @param gpu the shared GPU.
 * @param y (N, Ca+Cb) output.
 * @param a (N, Ca) left part.
 * @param b (N, Cb) right part.
 * @returns one dispatch.
 *
 * @example Concat and its backward (needs a WebGPU adapter)
 * ```ts ignore
 * const fwd = await planConcat(gpu, y, a, b);
 * const bwd = await planSplit(gpu, da, db, dy, true); // da += dy[:, :Ca], db += dy[:, Ca:]
 * ```
 */
export function planConcat(gpu: Gpu, y: Tensor, a: Tensor, b: Tensor): Promise<Dispatch> {
  const { N, Ca, Cb } = widths(y, a, b);
  return planDispatch(gpu, {
    label: `${y.label}.concat`,
    code: src,
    entryPoint: "concat",
    constants: { WG },
    params: [N, Ca, Cb, 0],
    bindings: [y, a, b],
    workgroups: grid(gpu, Math.ceil((N * (Ca + Cb)) / WG)),
  });
}

/**
 * Plans the split `a = y[:, :Ca]`, `b = y[:, Ca:]` (or `+=` with `accumulate`): the backward of
 * {@linkcode planConcat}, and the forward of a split whose backward is a concat.
 *
 * @param gpu the shared GPU.
 * @param a (N, Ca) left part, overwritten or accumulated.
 * @param b (N, Cb) right part, overwritten or accumulated.
 * @param y (N, Ca+Cb) input.
 * @param accumulate add into a and b instead of overwriting them.
 * @returns one dispatch.
 */
export function planSplit(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  y: Tensor,
  accumulate = false,
): Promise<Dispatch> {
  const { N, Ca, Cb } = widths(y, a, b);
  return planDispatch(gpu, {
    label: `${y.label}.split`,
    code: src,
    entryPoint: "split",
    constants: { WG },
    params: [N, Ca, Cb, accumulate ? 1 : 0],
    bindings: [a, b, y],
    workgroups: grid(gpu, Math.ceil((N * (Ca + Cb)) / WG)),
  });
}
