/**
 * Rotary position embedding (`kernels/rope.wgsl`), non-interleaved ("rotate half"), in
 * place on the q and k sections of a qkv tensor, with per-token positions from an i32
 * buffer. The cos/sin table is computed on the CPU exactly as the reference's float32 one
 * (`RotaryPositionEmbedding._precompute_cos_sin` in model_base.py) and uploaded at plan time.
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
 * `dims = arange(0, D, 2).float(); freqs = 1.0 / (10000 ** (dims / D))`, angle = pos·freq (one
 * f32 product), then cos and sin of that f32 angle, each rounded to f32.
 *
 * @param positions number of positions P (rows of the table).
 * @param headDim head dimension D (even).
 * @returns (P, D/2, 2) interleaved [cos, sin].
 *
 * @example
 * ```ts
 * import { ropeTable } from "./rope.ts";
 * const t = ropeTable(2, 4); // position 0: cos 1, sin 0 for both frequencies
 * console.log(t[0], t[1], t[4]); // 1 0 0.5403022766113281
 * ```
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
 * Throws naming the first position outside [0, maxPositions). The kernel clamps such positions
 * instead of reading out of bounds; call this on the CPU positions before uploading them.
 *
 * @param positions per-token positions (N).
 * @param maxPositions rows of the cos/sin table.
 */
export function checkPositions(positions: ArrayLike<number>, maxPositions: number): void {
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i];
    if (!(Number.isInteger(p) && p >= 0 && p < maxPositions)) {
      throw new Error(
        `RoPE position ${p} at token ${i} is outside the table of ${maxPositions} positions`,
      );
    }
  }
}

/**
 * Plans RoPE on `qkv` (N, 3C) in place: q = columns [0, C) and k = [C, 2C) are rotated per
 * head (H, D), v is untouched. With `inverse`, applies the transpose (rotation by −angle): the
 * backward, run in place on dq and dk of dqkv.
 *
 * @param gpu the shared GPU.
 * @param qkv (N, 3C) f32, rotated in place.
 * @param pos (N) i32 positions; must be in [0, maxPositions) (out-of-range ones are clamped).
 * @param nHead heads H (D = C/H must be even).
 * @param maxPositions rows P of the cos/sin table uploaded at plan time.
 * @param inverse false for the forward, true for the backward.
 * @returns one dispatch.
 *
 * @example Forward and backward (needs a WebGPU adapter)
 * ```ts ignore
 * const fwd = await planRope(gpu, qkv, pos, nHead, 256, false); // (N, 3C)
 * const bwd = await planRope(gpu, dqkv, pos, nHead, 256, true); // (N, 3C)
 * ```
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
  if (!(Number.isInteger(maxPositions) && maxPositions >= 1)) {
    throw new Error(`Cannot plan RoPE on "${qkv.label}": invalid table size ${maxPositions}`);
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
    params: [N, C, D, inverse ? 1 : 0, maxPositions],
    bindings: [qkv, pos, table],
    textureInputs: [2, 3],
    workgroups: grid(gpu, Math.ceil((N * C) / WG)),
  });
}
