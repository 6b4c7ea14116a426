/**
 * RMSNorm and LayerNorm over the last dimension (`kernels/norm.wgsl`), eps 1e-5.
 *
 * Forward saves per-row [mean, rstd] in a (N, 2) stats tensor; backward computes dx
 * (overwrite or accumulate) and accumulates dw (and db) through per-block partial sums reduced
 * in a fixed order — deterministic, no atomics.
 *
 * @module
 */

import src from "../../kernels/norm.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, f32, grid, planDispatch } from "./kernel.ts";
import { type Reduction, withReductions } from "./reduce.ts";
import { createTensor, type Tensor } from "./tensor.ts";

/** `rms`: RMSNorm with weight (config `bias: false`); `layer`: LayerNorm with weight and bias. */
export type NormKind = "rms" | "layer";

/** The reference's epsilon. */
export const NORM_EPS = 1e-5;

const WG = 64;
const RB = 256;

function dims(x: Tensor, c: number, label: string): number {
  const last = x.shape[x.shape.length - 1];
  if (last !== c) {
    throw new Error(`Cannot plan norm "${label}": "${x.label}" has width ${last}, expected ${c}`);
  }
  return x.numel / c;
}

/**
 * Plans the forward: `y = norm(x) · w (+ b)` over the last dim, and the per-row statistics the
 * backward reads. RMSNorm: `y = x / sqrt(mean(x²) + eps) · w` (mean stored as 0); LayerNorm:
 * `y = (x − mean) / sqrt(var(x) + eps) · w + b` with the biased variance, like torch.
 *
 * @param gpu the shared GPU.
 * @param kind "rms" or "layer".
 * @param t `y` (N, C) output; `stats` (N, 2) output [mean, rstd]; `x` (N, C) input; `w` (C)
 *   weight; `b` (C) bias, required for LayerNorm.
 * @param reduction the workgroup reductions (default: subgroups where usable, see `reduce.ts`).
 * @param perRow one invocation per row (the `_rows` entry points, no workgroup reduction):
 *   default on a fallback (CPU) adapter, where the barriers of a reduction cost more than a
 *   row's arithmetic. It sums each row in increasing index, so its last bits differ from the
 *   workgroup kernel's.
 * @returns one dispatch (one workgroup per row, or per 64 rows with perRow).
 *
 * @example Forward and backward (needs a WebGPU adapter)
 * ```ts ignore
 * const fwd = await planNormForward(gpu, "rms", { y, stats, x, w });
 * const bwd = await planNormBackward(gpu, "rms", { dx, dw, dy, x, w, stats, accumulate: true });
 * await run(gpu, [fwd, ...bwd]);
 * ```
 */
export function planNormForward(
  gpu: Gpu,
  kind: NormKind,
  t: { y: Tensor; stats: Tensor; x: Tensor; w: Tensor; b?: Tensor },
  reduction?: Reduction,
  perRow = gpu.info.isFallbackAdapter,
): Promise<Dispatch> {
  const C = t.w.numel;
  const N = dims(t.x, C, t.y.label);
  dims(t.y, C, t.y.label);
  if (kind === "layer" && !t.b) throw new Error(`LayerNorm "${t.y.label}" needs a bias tensor`);
  if (t.stats.numel !== 2 * N) {
    throw new Error(`Norm stats "${t.stats.label}" must have ${2 * N} elements`);
  }
  // The bias binding is statically referenced even when LAYER is false: bind the weight as a
  // read-only stand-in that the RMSNorm path never reads.
  const bindings = [t.y, t.stats, t.x, t.w, kind === "layer" ? t.b! : t.w];
  // (bad shapes throw above, before any promise)
  return withReductions(gpu, src, reduction).then((code) =>
    planDispatch(gpu, {
      label: `${t.y.label}.norm`,
      code,
      entryPoint: perRow ? "forward_rows" : "forward",
      constants: { WG, LAYER: kind === "layer" ? 1 : 0 },
      params: [N, C, f32(NORM_EPS), 0],
      bindings,
      textureInputs: [3, 4, 5],
      workgroups: grid(gpu, perRow ? Math.ceil(N / WG) : N),
    })
  );
}

/**
 * Plans the backward: `dx (=|+=) ∂L/∂x`, `dw += Σ_rows dy·x̂`, `db += Σ_rows dy` (LayerNorm).
 * The weight gradient is summed per block of 256 rows into a scratch tensor allocated here,
 * then the blocks are added in order — deterministic, no atomics.
 *
 * @param gpu the shared GPU.
 * @param kind "rms" or "layer".
 * @param t `dx` (N, C) overwritten, or accumulated with `accumulate` (the residual stream);
 *   `dw` (C) and `db` (C, LayerNorm only) accumulated; `dy` (N, C); `x` (N, C) and `w` (C) the
 *   forward inputs; `stats` (N, 2) from the forward.
 * @param reduction the workgroup reductions of dx (default: subgroups where usable).
 * @param perRow dx with one invocation per row, as for {@linkcode planNormForward}.
 * @returns the dx dispatch, then the partial and reduce dispatches of the weight gradient.
 */
export async function planNormBackward(
  gpu: Gpu,
  kind: NormKind,
  t: {
    dx: Tensor;
    dw: Tensor;
    db?: Tensor;
    dy: Tensor;
    x: Tensor;
    w: Tensor;
    stats: Tensor;
    accumulate?: boolean;
  },
  reduction?: Reduction,
  perRow = gpu.info.isFallbackAdapter,
): Promise<Dispatch[]> {
  const code = await withReductions(gpu, src, reduction);
  const C = t.w.numel;
  const N = dims(t.x, C, t.dx.label);
  dims(t.dy, C, t.dx.label);
  dims(t.dx, C, t.dx.label);
  if (kind === "layer" && !t.db) throw new Error(`LayerNorm "${t.dx.label}" needs a db tensor`);
  const LAYER = kind === "layer" ? 1 : 0;
  const nblk = Math.max(1, Math.ceil(N / RB));
  const partial = createTensor(gpu, [nblk, 2 * C], `${t.dw.label}.norm_partial`);
  const dx = await planDispatch(gpu, {
    label: `${t.dx.label}.norm_dx`,
    code,
    entryPoint: perRow ? "backward_dx_rows" : "backward_dx",
    constants: { WG, LAYER },
    params: [N, C, f32(NORM_EPS), t.accumulate ? 1 : 0],
    bindings: [t.dx, t.stats, t.x, t.w, t.dy],
    textureInputs: [2, 3, 4, 5],
    workgroups: grid(gpu, perRow ? Math.ceil(N / WG) : N),
  });
  const part = await planDispatch(gpu, {
    label: `${t.dw.label}.norm_dw_partial`,
    code,
    entryPoint: "backward_dw_partial",
    constants: { WG, RB },
    params: [N, C, f32(NORM_EPS), 0],
    bindings: [partial, t.stats, t.x, t.dy],
    textureInputs: [2, 3, 4],
    workgroups: [Math.ceil(C / WG), nblk],
  });
  // RMSNorm has no bias: a scratch stand-in takes the db binding (never written).
  const db = kind === "layer" ? t.db! : createTensor(gpu, [C], `${t.dw.label}.no_bias`);
  const reduceBindings = [t.dw, db, partial];
  const reduce = await planDispatch(gpu, {
    label: `${t.dw.label}.norm_dw_reduce`,
    code,
    entryPoint: "backward_dw_reduce",
    constants: { WG, LAYER, RB },
    params: [N, C, f32(NORM_EPS), 0],
    bindings: reduceBindings,
    workgroups: [Math.ceil(C / WG)],
  });
  return [dx, part, reduce];
}
