/**
 * Weighted softmax cross-entropy (`kernels/cross_entropy.wgsl`): a fused forward + backward
 * that overwrites the logits with their gradient, a deterministic weighted sum of the per-row
 * losses, and log-softmax for inference.
 *
 * The loss is expressed through per-row weights: the mean over targets, BST's chunk means and
 * row means all become `weights[n]`, so the scalar loss is
 * `Σ_n weights[n] · losses[n]` ({@linkcode planWeightedSum}) and its gradient with respect to
 * the logits is what {@linkcode planCrossEntropy} writes.
 *
 * @module
 */

import src from "../../kernels/cross_entropy.wgsl" with { type: "text" };
import rowsSrc from "../../kernels/cross_entropy_rows.wgsl" with { type: "text" };
import targetSrc from "../../kernels/cross_entropy_target.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import {
  type Dispatch,
  flatTexture,
  flatTextureFits,
  grid,
  planDispatch,
  TEXEL_WGSL,
} from "./kernel.ts";
import { type Reduction, withReductions } from "./reduce.ts";
import { createTensor, type Tensor } from "./tensor.ts";

/** Target id meaning "no target here": loss 0, zero gradient row (PyTorch's default). */
export const IGNORE_INDEX = -100;

/** Invocations per workgroup (a power of two, needed by the tree reductions). */
const WG = 256;
/** Rows (one per invocation) per workgroup of the row-per-invocation kernel (CPU adapters). */
const ROWS_WG = 64;
/** Rows per invocation in the first pass of the weighted sum. */
const ITEMS = 4;
/** cross_entropy.wgsl with the target rules it shares with the per-row kernel. */
const CE_SRC = `${src}\n${targetSrc}`;

function expect(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

function checkVector(t: Tensor, n: number, dtype: "f32" | "i32", what: string, op: string): void {
  expect(
    t.dtype === dtype && t.numel === n,
    `Cannot plan ${op}: ${what} "${t.label}" must be ${dtype} with ${n} elements, got ` +
      `${t.dtype} ${t.shapeString()}`,
  );
}

function rowsOf(t: Tensor, op: string): [number, number] {
  expect(
    t.dtype === "f32" && t.shape.length === 2,
    `Cannot plan ${op}: "${t.label}" must be an f32 (N, V) tensor, got ${t.dtype} ` +
      `${t.shapeString()}`,
  );
  return [t.shape[0], t.shape[1]];
}

/**
 * Plans fused cross-entropy forward and backward, in place: one read-write binding holds the
 * logits on entry and `weights[n] · (softmax(logits[n]) − onehot(targets[n]))` on exit, which
 * saves an (N, V) buffer. `losses[n]` gets the unweighted CE of row n.
 *
 * Rows with target {@linkcode IGNORE_INDEX} get loss 0 and a zero gradient row. Any other
 * target outside [0, V) gives a NaN loss and NaN gradient row (the GPU cannot throw; NaN makes
 * the trainer's non-finite-loss check stop the run instead of training on garbage).
 *
 * @param gpu the shared GPU.
 * @param logits (N, V) logits, overwritten by dlogits.
 * @param losses (N) per-row CE, overwritten.
 * @param targets (N) i32 target ids.
 * @param weights (N) f32 per-row weights of the gradient.
 * @param lossScale optional loss-scaler state (`loss_scale.ts`, 16-mixed): the gradient is
 *   multiplied by its scale (a power of two: exact); the losses are not.
 * @param reduction the workgroup reductions (default: subgroups where usable, see `reduce.ts`).
 * @param perRow one invocation per row reading the logits from a texture
 *   (`kernels/cross_entropy_rows.wgsl`), no workgroup reductions: default on a fallback (CPU)
 *   adapter, where it is several times faster; it sums each row in increasing index, so its
 *   last bits differ from the workgroup kernel's.
 * @returns one dispatch of N workgroups (perRow: N / 64); empty when N is 0.
 * @throws Error when V is 0 or shapes or dtypes disagree.
 *
 * @example Mean CE over the non-ignored rows (needs a WebGPU adapter)
 * ```ts ignore
 * // weights[n] = 1 / count of non-ignored rows
 * await run(gpu, [
 *   ...await planCrossEntropy(gpu, logits, losses, targets, weights),
 *   ...await planWeightedSum(gpu, lossOut, 0, losses, weights),
 * ]);
 * ```
 */
export async function planCrossEntropy(
  gpu: Gpu,
  logits: Tensor,
  losses: Tensor,
  targets: Tensor,
  weights: Tensor,
  lossScale?: Tensor,
  reduction?: Reduction,
  perRow = gpu.info.isFallbackAdapter,
): Promise<Dispatch[]> {
  const op = `cross-entropy "${logits.label}"`;
  const [N, V] = rowsOf(logits, op);
  expect(V > 0, `Cannot plan ${op}: vocabulary size V must be positive`);
  checkVector(losses, N, "f32", "losses", op);
  checkVector(targets, N, "i32", "targets", op);
  checkVector(weights, N, "f32", "weights", op);
  if (N === 0) return [];
  if (perRow && flatTextureFits(gpu, logits, N * V, "r32float")) {
    const label = `${logits.label}.cross_entropy`;
    const vec = V % 4 === 0 && logits.offset % 16 === 0;
    const format = vec ? "rgba32float" : "r32float";
    const { view, upload } = flatTexture(gpu, logits, N * V, format, label);
    const d = await planDispatch(gpu, {
      label,
      code: `${rowsSrc}\n${TEXEL_WGSL}\n${targetSrc}`,
      entryPoint: lossScale ? "ce_rows_scaled" : "ce_rows",
      constants: { WG: ROWS_WG, VEC: vec ? 1 : 0 },
      params: [N, V, 0],
      bindings: [logits, targets, weights, losses, lossScale ?? null, view],
      workgroups: grid(gpu, Math.ceil(N / ROWS_WG)),
    });
    return [{ ...d, uploads: [upload] }];
  }
  return [
    await planDispatch(gpu, {
      label: `${logits.label}.cross_entropy`,
      code: await withReductions(gpu, CE_SRC, reduction),
      entryPoint: lossScale ? "ce_fused_scaled" : "ce_fused",
      constants: { WG },
      params: [N, V, 0],
      bindings: [logits, targets, weights, losses, ...(lossScale ? [lossScale] : [])],
      workgroups: grid(gpu, N),
    }),
  ];
}

/**
 * Plans `lossOut[slot] = Σ_n weights[n] · losses[n]` in a fixed order: first pass sums
 * chunks of 1024 rows per workgroup, second pass sums the chunk totals in one workgroup. The
 * chunk-total scratch tensor `<lossOut.label>.wsum_partials` is allocated here and kept by
 * the plan. With N = 0 the slot gets 0.
 *
 * @param gpu the shared GPU.
 * @param lossOut (S) f32 output; only element `slot` is written.
 * @param slot index into `lossOut`.
 * @param losses (N) per-row losses, e.g. from {@linkcode planCrossEntropy}.
 * @param weights (N) per-row weights.
 * @param reduction the workgroup reductions (default: subgroups where usable, see `reduce.ts`).
 * @returns two dispatches (one when N is 0).
 */
export async function planWeightedSum(
  gpu: Gpu,
  lossOut: Tensor,
  slot: number,
  losses: Tensor,
  weights: Tensor,
  reduction?: Reduction,
): Promise<Dispatch[]> {
  const op = `weighted sum into "${lossOut.label}"`;
  const N = losses.numel;
  checkVector(losses, N, "f32", "losses", op);
  checkVector(weights, N, "f32", "weights", op);
  expect(
    lossOut.dtype === "f32" && Number.isInteger(slot) && slot >= 0 && slot < lossOut.numel,
    `Cannot plan ${op}: slot ${slot} is outside its ${lossOut.numel} f32 elements`,
  );
  const groups = Math.ceil(N / (WG * ITEMS));
  const partials = createTensor(gpu, [Math.max(1, groups)], `${lossOut.label}.wsum_partials`);
  const list: Dispatch[] = [];
  if (groups > 0) {
    list.push(
      await planDispatch(gpu, {
        label: `${lossOut.label}.wsum_partial`,
        code: await withReductions(gpu, CE_SRC, reduction),
        entryPoint: "wsum_partial",
        constants: { WG, ITEMS },
        params: [N, 0, 0],
        bindings: [losses, weights, partials],
        workgroups: grid(gpu, groups),
      }),
    );
  }
  list.push(
    await planDispatch(gpu, {
      label: `${lossOut.label}.wsum_final`,
      code: await withReductions(gpu, CE_SRC, reduction),
      entryPoint: "wsum_final",
      constants: { WG },
      params: [groups, 0, slot],
      bindings: [partials, lossOut],
      workgroups: [1],
    }),
  );
  return list;
}

/**
 * Plans row-wise log-softmax `y[n] = x[n] − logsumexp(x[n])` for inference.
 *
 * @param gpu the shared GPU.
 * @param y (N, V) output; may not alias `x`.
 * @param x (N, V) logits.
 * @param reduction the workgroup reductions (default: subgroups where usable, see `reduce.ts`).
 * @returns one dispatch of N workgroups; empty when N is 0.
 */
export async function planLogSoftmax(
  gpu: Gpu,
  y: Tensor,
  x: Tensor,
  reduction?: Reduction,
): Promise<Dispatch[]> {
  const op = `log-softmax "${x.label}"`;
  const [N, V] = rowsOf(x, op);
  const [Ny, Vy] = rowsOf(y, op);
  expect(
    Ny === N && Vy === V,
    `Cannot plan ${op}: output "${y.label}" ${y.shapeString()} must match ${x.shapeString()}`,
  );
  expect(
    y.buffer !== x.buffer,
    `Cannot plan ${op}: output "${y.label}" must not share a buffer with the input`,
  );
  if (N === 0 || V === 0) return [];
  return [
    await planDispatch(gpu, {
      label: `${y.label}.log_softmax`,
      code: await withReductions(gpu, CE_SRC, reduction),
      entryPoint: "log_softmax",
      constants: { WG },
      params: [N, V, 0],
      bindings: [x, y],
      workgroups: grid(gpu, N),
    }),
  ];
}
