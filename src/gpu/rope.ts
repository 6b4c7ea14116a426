/**
 * Rotary position embedding (`kernels/rope.wgsl`), non-interleaved, in place on the q and k
 * sections of a qkv tensor, with per-token positions from an i32 buffer.
 *
 * @module
 */

import src from "../../kernels/rope.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, grid, planDispatch } from "./kernel.ts";
import { type Tensor, uploadTensor } from "./tensor.ts";

const WG = 256;

/**
 * The cos/sin table (positions, D/2, 2) computed as the reference does in float32:
 * θ_i = 1 / 10000^(2i/D), angle = pos·θ_i, then cos and sin, each rounded to f32.
 */
export function ropeTable(positions: number, headDim: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(positions * half * 2);
  for (let i = 0; i < half; i++) {
    const freq = Math.fround(1 / Math.fround(Math.pow(10000, Math.fround((2 * i) / headDim))));
    for (let pos = 0; pos < positions; pos++) {
      const angle = Math.fround(pos * freq);
      out[(pos * half + i) * 2] = Math.cos(angle);
      out[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return out;
}

/**
 * Plans RoPE on `qkv` (N, 3C) in place; `inverse` applies the transpose (for dq, dk in
 * backward). Positions must be < `maxPositions`.
 *
 * @param pos (N) i32 positions.
 * @param nHead heads H (D = C/H, even).
 */
export function planRope(
  gpu: Gpu,
  qkv: Tensor,
  pos: Tensor,
  nHead: number,
  maxPositions: number,
  inverse: boolean,
): Promise<Dispatch> {
  const C3 = qkv.shape[qkv.shape.length - 1];
  const C = C3 / 3;
  const N = qkv.numel / C3;
  const D = C / nHead;
  if (!Number.isInteger(C) || !Number.isInteger(D) || D % 2 !== 0) {
    throw new Error(`Cannot plan RoPE on "${qkv.label}": width ${C3} with ${nHead} heads`);
  }
  if (pos.numel !== N || pos.dtype !== "i32") {
    throw new Error(`RoPE positions "${pos.label}" must be ${N} i32 values`);
  }
  const table = uploadTensor(
    gpu,
    ropeTable(maxPositions, D),
    [maxPositions, D / 2, 2],
    `${qkv.label}.rope_table`,
  );
  return planDispatch(gpu, {
    label: `${qkv.label}.rope${inverse ? "_inverse" : ""}`,
    code: src,
    constants: { WG },
    params: [N, C, D, inverse ? 1 : 0],
    bindings: [qkv, pos, table],
    workgroups: grid(gpu, Math.ceil((N * C) / WG)),
  });
}
