/**
 * Masked multi-head attention for both BST encoders (kernels generated per head width by
 * `src/gpu/attention_wgsl.ts`, so each invocation's head row and accumulators stay in
 * registers).
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
 * @module
 */

import { attentionWgsl, attentionWorkgroupBytes } from "./attention_wgsl.ts";
import type { Gpu } from "./device.ts";
import { type Dispatch, f32, planDispatch } from "./kernel.ts";
import { createTensor, type Tensor } from "./tensor.ts";

/** Which encoder's mask: `"forward"` is causal (j ≤ i), `"backward"` anti-causal (j ≥ i). */
export type AttentionDirection = "forward" | "backward";

/** Largest head dimension the kernels support. */
export const ATTENTION_MAX_HEAD_DIM = 128;

/** Rows (queries, or keys in the dk/dv pass) per workgroup. */
const WG = 32;
/** Largest tile of streamed rows kept in workgroup memory. */
const BK_MAX = 32;

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

/** Tile size: as many streamed rows as fit the device's workgroup memory, at most 32. */
function tileRows(gpu: Gpu, d4: number): number {
  const bytesPerRow = attentionWorkgroupBytes({ d4, wg: WG, bk: 1 });
  const bk = Math.min(BK_MAX, Math.floor(gpu.limits.maxComputeWorkgroupStorageSize / bytesPerRow));
  if (bk < 1) {
    throw new Error(
      `Cannot plan attention: head dim ${d4 * 4} needs more workgroup memory than the ` +
        `adapter's ${gpu.limits.maxComputeWorkgroupStorageSize} bytes`,
    );
  }
  return bk;
}

const sources = new Map<string, string>();

/** The generated kernels for head rows of `d4` vec4s and tiles of `bk` rows (once each). */
function sourceOf(d4: number, bk: number): string {
  const key = `${d4}|${bk}`;
  let code = sources.get(key);
  if (code === undefined) {
    code = attentionWgsl({ d4, wg: WG, bk });
    sources.set(key, code);
  }
  return code;
}

function common(gpu: Gpu, dims: AttentionDims, direction: AttentionDirection) {
  expect(
    direction === "forward" || direction === "backward",
    `Cannot plan attention: direction must be "forward" or "backward", got "${direction}"`,
  );
  const d4 = Math.ceil(dims.D / 4);
  return {
    code: sourceOf(d4, tileRows(gpu, d4)),
    params: [
      dims.B,
      dims.T,
      dims.H,
      dims.D,
      direction === "backward" ? 1 : 0,
      f32(1 / Math.sqrt(dims.D)),
    ],
    workgroups: [Math.ceil(dims.T / WG), dims.H, dims.B] as [number, number, number],
  };
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
 * @returns one dispatch of (ceil(T/32), H, B) workgroups; empty when B or T is 0.
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
): Promise<Dispatch[]> {
  const dims = checkInputs(qkv, doc, nHead);
  const { B, T, H, C } = dims;
  const op = `attention forward "${qkv.label}"`;
  checkShape(out, [B, T, C], "out", op);
  checkShape(lse, [B, H, T], "lse", op);
  if (B === 0 || T === 0) return [];
  const c = common(gpu, dims, direction);
  return [
    await planDispatch(gpu, {
      label: `${out.label}.attention_forward`,
      code: c.code,
      entryPoint: "forward",
      params: c.params,
      bindings: [qkv, doc, out, lse],
      workgroups: c.workgroups,
    }),
  ].map((d) => ({ ...d, flops: attentionFlops(B, H, T, dims.D).forward }));
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
): Promise<Dispatch[]> {
  const dims = checkInputs(qkv, doc, nHead);
  const { B, T, H, C } = dims;
  const op = `attention backward "${qkv.label}"`;
  checkShape(dqkv, [B, T, 3 * C], "dqkv", op);
  checkShape(dout, [B, T, C], "dout", op);
  checkShape(out, [B, T, C], "out", op);
  checkShape(lse, [B, H, T], "lse", op);
  if (B === 0 || T === 0) return [];
  const c = common(gpu, dims, direction);
  const delta = createTensor(gpu, [B, H, T], `${dqkv.label}.attn_delta`);
  const dq = await planDispatch(gpu, {
    label: `${dqkv.label}.attention_backward_dq`,
    code: c.code,
    entryPoint: "backward_dq",
    params: c.params,
    bindings: [qkv, doc, out, lse, dout, dqkv, delta],
    workgroups: c.workgroups,
  });
  const dkv = await planDispatch(gpu, {
    label: `${dqkv.label}.attention_backward_dkv`,
    code: c.code,
    entryPoint: "backward_dkv",
    params: c.params,
    bindings: [qkv, doc, lse, dout, delta, dqkv],
    workgroups: c.workgroups,
  });
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
