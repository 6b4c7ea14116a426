/**
 * Masked multi-head attention for both BST encoders (kernels generated per head width and
 * variant by `src/gpu/attention_wgsl.ts`, so each invocation's part of the head row and of its
 * accumulators stays in registers).
 *
 * One kernel family serves the forward encoder (causal: query i sees keys j ≤ i of its own
 * document) and the backward encoder (anti-causal: j ≥ i). The caller passes `doc_f` with
 * `"forward"` and `doc_b` with `"backward"` (the document ids that make packed rows attend only
 * within their own document, in each encoder's direction); the mask is evaluated in the kernel
 * from those ids, never stored as a T × T matrix. Scale is 1/√D.
 *
 * Forward saves the row log-sum-exp `lse` (B, H, T); backward recomputes the probabilities
 * from it in two deterministic passes (dq, then dk and dv) without atomics.
 *
 * Variants: `rows` rows per workgroup and `lanes` invocations per row, the head dimension split
 * across the lanes (why, and the fixed order of the lanes' partial sums: `attention_wgsl.ts`),
 * the partial sums exchanged in workgroup memory or, where the device has `subgroups` made of
 * consecutive invocations (probed once per device), by subgroup shuffles.
 * Each pass's variant comes from {@linkcode attentionTuner} (a checked-in table per adapter,
 * else timed at first use and cached; `attention_tune.ts`) unless the caller names one. A
 * variant fixes every summation order, so results are bit-identical from run to run; variants
 * with different lane counts may differ in the last bits.
 *
 * @module
 */

import { attentionWgsl, attentionWorkgroupBytes } from "./attention_wgsl.ts";
import {
  type AttentionPass,
  attentionTuneKey,
  AttentionTuner,
  type AttentionVariant,
  attentionVariantName,
} from "./attention_tune.ts";
import type { Gpu } from "./device.ts";
import {
  type Dispatch,
  f32,
  flatTexture,
  type FlatTextureFormat,
  planDispatch,
  type TextureUpload,
} from "./kernel.ts";
import { subgroupSize } from "./reduce.ts";
import { createTensor, type Tensor } from "./tensor.ts";
import { timeOps } from "./timing.ts";
import { defaultCacheDir } from "./tune.ts";

export type { AttentionVariant } from "./attention_tune.ts";

/** Which encoder's mask: `"forward"` is causal (j ≤ i), `"backward"` anti-causal (j ≥ i). */
export type AttentionDirection = "forward" | "backward";

/** Largest head dimension the kernels support. */
export const ATTENTION_MAX_HEAD_DIM = 128;

/** Largest tile of streamed rows kept in workgroup memory. */
const BK_MAX = 32;

/** Options of the attention planners. */
export interface AttentionOptions {
  /** Kernel variant of every pass; default: chosen per adapter, pass and shape (the tuner). */
  variant?: AttentionVariant;
}

interface AttentionDims {
  B: number;
  T: number;
  H: number;
  D: number;
  C: number;
}

function expect(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

function checkInputs(qkv: Tensor, doc: Tensor, nHead: number): AttentionDims {
  expect(
    qkv.shape.length === 3 && qkv.dtype === "f32",
    `Cannot plan attention on "${qkv.label}": qkv must be an f32 (B, T, 3C) tensor, ` +
      `got ${qkv.dtype} ${qkv.shapeString()}`,
  );
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  expect(
    Number.isInteger(nHead) && nHead > 0 && Number.isInteger(C) && C % nHead === 0,
    `Cannot plan attention on "${qkv.label}": width ${C3} is not 3 × (heads ${nHead} × D)`,
  );
  const D = C / nHead;
  expect(
    D >= 1 && D <= ATTENTION_MAX_HEAD_DIM,
    `Cannot plan attention on "${qkv.label}": head dim ${D} is outside 1..` +
      `${ATTENTION_MAX_HEAD_DIM}`,
  );
  expect(
    doc.dtype === "i32" && doc.shape.length === 2 && doc.shape[0] === B && doc.shape[1] === T,
    `Cannot plan attention on "${qkv.label}": doc ids "${doc.label}" must be i32 [${B}, ${T}], ` +
      `got ${doc.dtype} ${doc.shapeString()}`,
  );
  return { B, T, H: nHead, D, C };
}

function checkShape(t: Tensor, shape: readonly number[], what: string, op: string): void {
  const ok = t.dtype === "f32" && t.shape.length === shape.length &&
    t.shape.every((d, i) => d === shape[i]);
  expect(
    ok,
    `Cannot plan ${op}: ${what} "${t.label}" must be f32 [${shape.join(", ")}], ` +
      `got ${t.dtype} ${t.shapeString()}`,
  );
}

/**
 * Tile size of a variant: as many streamed rows as fit the device's workgroup memory, at most
 * 32. Throws when the variant's tiles do not fit the adapter at all.
 */
function tileRows(gpu: Gpu, d4: number, v: AttentionVariant): number {
  const name = `${attentionVariantName(v)} (rows balanced for T)`;
  const limit = gpu.limits.maxComputeWorkgroupStorageSize;
  const bytes = (bk: number) =>
    attentionWorkgroupBytes({ d4, wg: v.rows, bk, lanes: v.lanes, subgroups: v.subgroups });
  let bk = BK_MAX;
  while (bk >= 1 && bytes(bk) > limit) bk--;
  expect(
    bk >= 1,
    `Cannot plan attention variant ${name}: head dim ${d4 * 4} needs more workgroup memory ` +
      `than the adapter's ${limit} bytes`,
  );
  return bk;
}

/** Throws when the adapter cannot run variant `v` at any T. */
function checkVariant(gpu: Gpu, v: AttentionVariant): void {
  const name = attentionVariantName(v);
  expect(
    Number.isInteger(v.rows) && v.rows > 0 && [1, 2, 4, 8].includes(v.lanes) &&
      !(v.subgroups && v.lanes === 1),
    `Cannot plan attention variant ${name}: rows must be a positive integer, lanes 1, 2, 4 ` +
      `or 8 (at least 2 with subgroups)`,
  );
  expect(
    v.rows * v.lanes <= gpu.limits.maxComputeInvocationsPerWorkgroup,
    `Cannot plan attention variant ${name}: ${v.rows * v.lanes} invocations exceed the ` +
      `adapter's ${gpu.limits.maxComputeInvocationsPerWorkgroup} per workgroup`,
  );
}

const sources = new Map<string, string>();

/** The generated kernels of a variant for head rows of `d4` vec4s (once each). */
function sourceOf(gpu: Gpu, d4: number, v: AttentionVariant): string {
  // The texture variant keeps no tiles in workgroup memory.
  const bk = v.tex ? BK_MAX : tileRows(gpu, d4, v);
  const key = `${d4}|${bk}|${attentionVariantName(v)}`;
  let code = sources.get(key);
  if (code === undefined) {
    code = attentionWgsl({
      d4,
      wg: v.rows,
      bk,
      lanes: v.lanes,
      subgroups: v.subgroups,
      tex: v.tex,
    });
    sources.set(key, code);
  }
  return code;
}

const tuners = new WeakMap<Gpu, AttentionTuner>();

/**
 * The process-wide attention variant chooser of `gpu`: the checked-in table for known adapters,
 * else tuning at first use of each pass and shape, cached in `BST_CACHE_DIR` when that is
 * readable and writable under the granted permissions (see `attention_tune.ts`).
 *
 * @param gpu the shared GPU.
 * @returns the tuner; replace it with {@linkcode setAttentionTuner}.
 */
export function attentionTuner(gpu: Gpu): AttentionTuner {
  let t = tuners.get(gpu);
  if (!t) {
    t = new AttentionTuner({ adapter: gpu.info.description, cacheDir: defaultCacheDir() });
    tuners.set(gpu, t);
  }
  return t;
}

/** Replaces the attention variant chooser of `gpu` (e.g. a tuner without the table). */
export function setAttentionTuner(gpu: Gpu, tuner: AttentionTuner): void {
  tuners.set(gpu, tuner);
}

/** What one pass needs besides its variant. */
interface PassSpec {
  pass: AttentionPass;
  label: string;
  dims: AttentionDims;
  direction: AttentionDirection;
  /** The pass's bindings 1.. in order (see `attentionWgsl`). */
  bindings: Tensor[];
}

/**
 * Rows per workgroup used for sequences of T rows: the variant's `rows` is an upper bound, and
 * the ceil(T / rows) workgroups share the T rows evenly, rounded up to whole 32-invocation
 * warps (multiples of 32 / lanes rows). At T = 69 and 64 rows that is 40 (two workgroups of
 * 40 and 29 live rows) instead of 64 and 5: every workgroup streams the same keys whether or
 * not its rows are live, so idle rows cost as much as live ones.
 *
 * @param T sequence length.
 * @param v the variant.
 * @returns rows per workgroup, at most `v.rows`.
 *
 * @example
 * ```ts
 * import { balancedRows } from "./attention.ts";
 * console.log(balancedRows(69, { rows: 64, lanes: 4 })); // 40
 * ```
 */
export function balancedRows(T: number, v: AttentionVariant): number {
  if (!(Number.isInteger(v.rows) && v.rows > 0 && T > 0)) return v.rows;
  const groups = Math.ceil(T / v.rows);
  const unit = Math.max(1, Math.floor(32 / v.lanes));
  return Math.min(v.rows, Math.ceil(Math.ceil(T / groups) / unit) * unit);
}

async function planPass(gpu: Gpu, s: PassSpec, variant: AttentionVariant): Promise<Dispatch> {
  const { B, T, H, D } = s.dims;
  checkVariant(gpu, variant);
  const v = { ...variant, rows: balancedRows(T, variant) };
  if (v.subgroups) {
    const size = await subgroupSize(gpu);
    expect(
      size > 0 && size % v.lanes === 0,
      `Cannot plan attention variant ${attentionVariantName(variant)}: the device has no ` +
        `subgroups of consecutive invocations in multiples of ${v.lanes}`,
    );
  }
  let bindings: (Tensor | GPUTextureView | null)[] = s.bindings;
  const uploads: TextureUpload[] = [];
  if (v.tex) {
    expect(
      D % 4 === 0 && v.lanes === 1 && !v.subgroups,
      `Cannot plan attention variant ${attentionVariantName(variant)}: texture variants need ` +
        `one lane per row and a head dim that is a multiple of 4, got ${D}`,
    );
    // Bindings 8-10: flat textures of qkv, dout (dk/dv pass) and doc (see attentionWgsl).
    const [qkv, doc] = s.bindings;
    const texture = (t: Tensor, format: FlatTextureFormat) => {
      const { view, upload } = flatTexture(gpu, t, t.numel, format, `${s.label}.${t.label}`);
      uploads.push(upload);
      return view;
    };
    const dout = s.pass === "backward_dkv" ? texture(s.bindings[3], "rgba32float") : null;
    bindings = [...s.bindings, null, null, null, null].slice(0, 7);
    // The dk/dv pass reads dout only as streamed rows: from the texture.
    if (s.pass === "backward_dkv") bindings[3] = null;
    bindings.push(texture(qkv, "rgba32float"), dout, texture(doc, "r32sint"));
  }
  const d = await planDispatch(gpu, {
    label: s.label,
    code: sourceOf(gpu, Math.ceil(D / 4), v),
    variant: attentionVariantName(v),
    entryPoint: s.pass,
    params: [B, T, H, D, s.direction === "backward" ? 1 : 0, f32(1 / Math.sqrt(D))],
    bindings,
    workgroups: [Math.ceil(T / v.rows), H, B],
  });
  return uploads.length > 0 ? { ...d, uploads } : d;
}

/** Scratch tensors shaped like a pass's bindings (zeros: one document, every pair visible). */
function scratchLike(gpu: Gpu, s: PassSpec): Tensor[] {
  return s.bindings.map((t, k) => createTensor(gpu, [...t.shape], `attention.tune.${k}`, t.dtype));
}

/**
 * A texture variant runs only for head dims that are multiples of 4; for others its staged
 * twin (same rows, one lane) runs instead.
 */
function withoutTex(v: AttentionVariant, D: number): AttentionVariant {
  return v.tex && D % 4 !== 0 ? { rows: v.rows, lanes: v.lanes } : v;
}

/** The pass's dispatch with the given variant, or the tuner's choice (timing candidates). */
async function planTuned(
  gpu: Gpu,
  s: PassSpec,
  variant: AttentionVariant | undefined,
): Promise<Dispatch> {
  if (variant) return planPass(gpu, s, withoutTex(variant, s.dims.D));
  let scratch: Tensor[] | undefined;
  const key = attentionTuneKey(s.pass, s.dims.D, s.dims.T);
  const chosen = await attentionTuner(gpu).choose(key, async (v) => {
    try {
      scratch ??= scratchLike(gpu, s);
      const d = await planPass(gpu, { ...s, bindings: scratch }, v);
      return (await timeOps(gpu, [d], { samples: 3 })).ms;
    } catch {
      return Infinity; // a variant this adapter cannot run
    }
  });
  for (const t of scratch ?? []) t.buffer.destroy();
  return planPass(gpu, s, withoutTex(chosen.variant, s.dims.D));
}

function checkDirection(direction: AttentionDirection): void {
  expect(
    direction === "forward" || direction === "backward",
    `Cannot plan attention: direction must be "forward" or "backward", got "${direction}"`,
  );
}

/**
 * Plans masked attention forward: `out = softmax(mask(q kᵀ / √D)) v` per head, and the row
 * log-sum-exp that backward needs.
 *
 * @param gpu the shared GPU.
 * @param out (B, T, C) attention output, heads merged back as (H, D); overwritten.
 * @param lse (B, H, T) log-sum-exp of each query row's scaled scores; overwritten.
 * @param qkv (B, T, 3C) q, k, v sections, heads split as (H, D), RoPE applied.
 * @param doc (B, T) i32 document ids: `doc_f` for `"forward"`, `doc_b` for `"backward"`.
 * @param nHead H; the head dim D = C / H must be at most 128.
 * @param direction `"forward"` (causal, j ≤ i) or `"backward"` (anti-causal, j ≥ i).
 * @param options `variant`: the kernel variant; default chosen by {@linkcode attentionTuner}.
 * @returns one dispatch of (ceil(T / rows), H, B) workgroups (rows: {@linkcode balancedRows});
 *   empty when B or T is 0.
 *
 * @example Plan and run (needs a WebGPU adapter)
 * ```ts ignore
 * const fwd = await planAttentionForward(gpu, out, lse, qkv, docF, 8, "forward");
 * await run(gpu, fwd);
 * ```
 */
export async function planAttentionForward(
  gpu: Gpu,
  out: Tensor,
  lse: Tensor,
  qkv: Tensor,
  doc: Tensor,
  nHead: number,
  direction: AttentionDirection,
  options: AttentionOptions = {},
): Promise<Dispatch[]> {
  const dims = checkInputs(qkv, doc, nHead);
  const { B, T, H, C } = dims;
  const op = `attention forward "${qkv.label}"`;
  checkShape(out, [B, T, C], "out", op);
  checkShape(lse, [B, H, T], "lse", op);
  if (B === 0 || T === 0) return [];
  checkDirection(direction);
  const d = await planTuned(gpu, {
    pass: "forward",
    label: `${out.label}.attention_forward`,
    dims,
    direction,
    bindings: [qkv, doc, out, lse],
  }, options.variant);
  return [{ ...d, flops: attentionFlops(B, H, T, dims.D).forward }];
}

/**
 * Plans masked attention backward: from `dout` and what forward saved, writes the gradient
 * of the q, k and v sections into `dqkv` (overwritten, not accumulated).
 *
 * Two passes: the first computes dq and per-row Δ_i = dout_i · out_i (into a scratch tensor
 * `<dqkv.label>.attn_delta` (B, H, T) that this call allocates and the plan keeps), the
 * second computes dk and dv looping over query rows in increasing order. No atomics; the
 * result is bit-identical from run to run.
 *
 * @param gpu the shared GPU.
 * @param dqkv (B, T, 3C) gradient of qkv; overwritten.
 * @param dout (B, T, C) gradient of the attention output.
 * @param qkv (B, T, 3C) the forward input.
 * @param out (B, T, C) the forward output.
 * @param lse (B, H, T) the forward log-sum-exp.
 * @param doc (B, T) i32 document ids, the same tensor forward used.
 * @param nHead H.
 * @param direction the same direction forward used.
 * @param options `variant`: the kernel variant of both passes; default chosen per pass by
 *   {@linkcode attentionTuner}.
 * @returns two dispatches (dq pass, then dk/dv pass); empty when B or T is 0.
 */
export async function planAttentionBackward(
  gpu: Gpu,
  dqkv: Tensor,
  dout: Tensor,
  qkv: Tensor,
  out: Tensor,
  lse: Tensor,
  doc: Tensor,
  nHead: number,
  direction: AttentionDirection,
  options: AttentionOptions = {},
): Promise<Dispatch[]> {
  const dims = checkInputs(qkv, doc, nHead);
  const { B, T, H, C } = dims;
  const op = `attention backward "${qkv.label}"`;
  checkShape(dqkv, [B, T, 3 * C], "dqkv", op);
  checkShape(dout, [B, T, C], "dout", op);
  checkShape(out, [B, T, C], "out", op);
  checkShape(lse, [B, H, T], "lse", op);
  if (B === 0 || T === 0) return [];
  checkDirection(direction);
  const delta = createTensor(gpu, [B, H, T], `${dqkv.label}.attn_delta`);
  const dq = await planTuned(gpu, {
    pass: "backward_dq",
    label: `${dqkv.label}.attention_backward_dq`,
    dims,
    direction,
    bindings: [qkv, doc, out, lse, dout, dqkv, delta],
  }, options.variant);
  const dkv = await planTuned(gpu, {
    pass: "backward_dkv",
    label: `${dqkv.label}.attention_backward_dkv`,
    dims,
    direction,
    bindings: [qkv, doc, lse, dout, delta, dqkv],
  }, options.variant);
  // Useful products (see attentionFlops): q kᵀ, dp and dq in the first pass, dv and dk in
  // the second; recomputed products are not counted.
  const flops = attentionFlops(B, H, T, dims.D).backward;
  return [{ ...dq, flops: flops * 3 / 5 }, { ...dkv, flops: flops * 2 / 5 }];
}

/** Floating-point operation counts of {@linkcode attentionFlops}. */
export interface AttentionFlops {
  /** Forward: q kᵀ and p v over the visible (causal) half. */
  forward: number;
  /** Backward: recomputed q kᵀ, dv, dp, dq and dk over the visible half. */
  backward: number;
}

/**
 * Approximate floating-point operations of attention, counting only the matrix products
 * (2 flops per multiply-add) over the T(T+1)/2 query-key pairs a causal or anti-causal mask
 * keeps when each row is one document; softmax, exp and masking are not counted. Forward is
 * 2 products (q kᵀ, p v): 4·B·H·D·T(T+1)/2. Backward is 5 (q kᵀ again, dv, dp, dq, dk):
 * 10·B·H·D·T(T+1)/2.
 *
 * @param B batch rows.
 * @param H heads.
 * @param T sequence length.
 * @param D head dimension.
 * @returns forward and backward flop counts.
 *
 * @example
 * ```ts
 * import { attentionFlops } from "./attention.ts";
 * console.log(attentionFlops(1, 1, 2, 4)); // { forward: 48, backward: 120 }
 * ```
 */
export function attentionFlops(B: number, H: number, T: number, D: number): AttentionFlops {
  const pairs = B * H * T * (T + 1) / 2;
  return { forward: 4 * pairs * D, backward: 10 * pairs * D };
}
