/**
 * SwiGLU activation (`kernels/swiglu.wgsl`): y = silu(gate) · up on the output x = [gate | up]
 * of a `gate_up` Linear — the reference's `gate, up = gate_up.chunk(2, dim=-1)`, so the gate is
 * the first half of each row.
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

/**
 * Plans the forward `y (N, H) = silu(x[:, :H]) · x[:, H:]`.
 *
 * @param gpu the shared GPU.
 * @param y (N, H) output, overwritten.
 * @param x (N, 2H) input [gate | up].
 * @returns one dispatch.
 *
 * @example Forward and backward (needs a WebGPU adapter)
 * ```ts ignore
 * const fwd = await planSwigluForward(gpu, y, x); // (N, H) from (N, 2H)
 * const bwd = await planSwigluBackward(gpu, dx, x, dy); // (N, 2H) from (N, 2H), (N, H)
 * ```
 */
export function planSwigluForward(gpu: Gpu, y: Tensor, x: Tensor): Promise<Dispatch> {
  const { N, H } = sizes(x, y);
  return planDispatch(gpu, {
    label: `${y.label}.swiglu`,
    code: src,
    entryPoint: "forward",
    constants: { WG },
    params: [N, H],
    bindings: [y, x],
    textureInputs: [2],
    workgroups: grid(gpu, Math.ceil((N * H) / WG)),
  });
}

/**
 * Plans the backward: `dx (N, 2H) = [dy · up · σ(g)(1 + g(1 − σ(g))) | dy · silu(g)]`.
 *
 * @param gpu the shared GPU.
 * @param dx (N, 2H) input gradient, overwritten.
 * @param x (N, 2H) the forward input [gate | up].
 * @param dy (N, H) output gradient.
 * @returns one dispatch.
 */
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
    textureInputs: [2, 3],
    workgroups: grid(gpu, Math.ceil((N * H) / WG)),
  });
}
