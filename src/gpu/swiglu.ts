/**
 * SwiGLU activation (`kernels/swiglu.wgsl`): y = silu(gate) · up on x = [gate | up].
 *
 * @module
 */

import src from "../../kernels/swiglu.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, grid, planDispatch } from "./kernel.ts";
import type { Tensor } from "./tensor.ts";

const WG = 256;

function sizes(x: Tensor, y: Tensor): { N: number; H: number } {
  const H = y.shape[y.shape.length - 1];
  const N = y.numel / H;
  if (x.numel !== 2 * N * H) {
    throw new Error(
      `Cannot plan SwiGLU: "${x.label}" ${x.shapeString()} is not (N, 2H) for ` +
        `"${y.label}" ${y.shapeString()}`,
    );
  }
  return { N, H };
}

/** Plans `y (N, H) = silu(x[:, :H]) · x[:, H:]` for x (N, 2H). */
export function planSwigluForward(gpu: Gpu, y: Tensor, x: Tensor): Promise<Dispatch> {
  const { N, H } = sizes(x, y);
  return planDispatch(gpu, {
    label: `${y.label}.swiglu`,
    code: src,
    entryPoint: "forward",
    constants: { WG },
    params: [N, H],
    bindings: [y, x],
    workgroups: grid(gpu, Math.ceil((N * H) / WG)),
  });
}

/** Plans `dx (N, 2H)` (overwritten) from `dy (N, H)` and the forward input `x`. */
export function planSwigluBackward(gpu: Gpu, dx: Tensor, x: Tensor, dy: Tensor): Promise<Dispatch> {
  const { N, H } = sizes(x, dy);
  if (dx.numel !== x.numel) {
    throw new Error(`SwiGLU gradient "${dx.label}" must match "${x.label}"`);
  }
  return planDispatch(gpu, {
    label: `${dx.label}.swiglu_backward`,
    code: src,
    entryPoint: "backward",
    constants: { WG },
    params: [N, H],
    bindings: [dx, x, dy],
    workgroups: grid(gpu, Math.ceil((N * H) / WG)),
  });
}
