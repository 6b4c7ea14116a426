/**
 * Attention over a K/V cache, for incremental decoding (kernels generated per head width by
 * `src/gpu/attention_decode_wgsl.ts`).
 *
 * A cache holds the RoPE'd keys and values of every token decoded so far, one (S, C) tensor
 * each per layer (S = cache rows, e.g. rows × capacity). Each step runs two dispatches per
 * layer: {@linkcode planKvAppend} writes the new tokens' k and v (from their qkv rows) to
 * their cache rows, then {@linkcode planDecodeAttention} attends each new query over the
 * cache rows [lo, hi) that the caller lists for it (the keys the full encoder's mask would
 * keep: a contiguous run in both directions). Index tensors are written by the caller
 * before each step; the plans never change. Scale is 1/√D.
 *
 * @module
 */

import { decodeAttentionWgsl } from "./attention_decode_wgsl.ts";
import { ATTENTION_MAX_HEAD_DIM } from "./attention.ts";
import type { Gpu } from "./device.ts";
import { type Dispatch, f32, grid, planDispatch } from "./kernel.ts";
import type { Tensor } from "./tensor.ts";

/** Invocations per workgroup. */
const WG = 32;

const sources = new Map<number, string>();

function sourceOf(d4: number): string {
  let code = sources.get(d4);
  if (code === undefined) {
    code = decodeAttentionWgsl({ d4, wg: WG });
    sources.set(d4, code);
  }
  return code;
}

function expect(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

/** Checks qkv (M, 3C) and the cache pair (S, C); returns M, C, D. */
function dims(qkv: Tensor, kc: Tensor, vc: Tensor, nHead: number, op: string) {
  const C3 = qkv.shape[qkv.shape.length - 1];
  const C = C3 / 3;
  const M = qkv.numel / Math.max(1, C3);
  expect(
    qkv.dtype === "f32" && Number.isInteger(C) && Number.isInteger(nHead) && nHead > 0 &&
      C % nHead === 0,
    `Cannot plan ${op}: qkv "${qkv.label}" ${qkv.shapeString()} is not (M, 3 × ${nHead} heads × D)`,
  );
  const D = C / nHead;
  expect(
    D >= 1 && D <= ATTENTION_MAX_HEAD_DIM,
    `Cannot plan ${op}: head dim ${D} is outside 1..${ATTENTION_MAX_HEAD_DIM}`,
  );
  for (const t of [kc, vc]) {
    expect(
      t.dtype === "f32" && t.shape.length === 2 && t.shape[1] === C,
      `Cannot plan ${op}: cache "${t.label}" must be f32 (rows, ${C}), got ${t.dtype} ` +
        t.shapeString(),
    );
  }
  expect(
    kc.shape[0] === vc.shape[0],
    `Cannot plan ${op}: key and value caches have ${kc.shape[0]} and ${vc.shape[0]} rows`,
  );
  return { M, C, D };
}

/**
 * Plans the append of the new tokens' keys and values: `kc[dst[m]] = k_m`, `vc[dst[m]] = v_m`.
 *
 * @param gpu the shared GPU.
 * @param kc (S, C) key cache, written at the rows `dst` names.
 * @param vc (S, C) value cache.
 * @param qkv (M, 3C) new tokens' q, k, v (RoPE applied).
 * @param dst (M) i32 cache row of each new token, in [0, S) (the caller checks).
 * @param nHead heads H.
 * @returns one dispatch; empty when M is 0.
 *
 * @example Plan and run (needs a WebGPU adapter)
 * ```ts ignore
 * const append = await planKvAppend(gpu, kc, vc, qkv, dst, 4);
 * ```
 */
export async function planKvAppend(
  gpu: Gpu,
  kc: Tensor,
  vc: Tensor,
  qkv: Tensor,
  dst: Tensor,
  nHead: number,
): Promise<Dispatch[]> {
  const op = `K/V append "${kc.label}"`;
  const { M, C, D } = dims(qkv, kc, vc, nHead, op);
  expect(
    dst.dtype === "i32" && dst.numel === M,
    `Cannot plan ${op}: dst "${dst.label}" must be ${M} i32 values`,
  );
  if (M === 0) return [];
  return [
    await planDispatch(gpu, {
      label: `${kc.label}.kv_append`,
      code: sourceOf(Math.ceil(D / 4)),
      entryPoint: "append",
      params: [M, nHead, D, f32(1 / Math.sqrt(D))],
      bindings: [qkv, null, null, null, null, dst, kc, vc],
      workgroups: grid(gpu, Math.ceil((M * C) / WG)),
    }),
  ];
}

/**
 * Plans attention of M new queries over cached keys and values: for query m and each head,
 * `out_m = softmax(q_m · k_j / √D) v_j` over cache rows j in [span[m, 0], span[m, 1]).
 *
 * @param gpu the shared GPU.
 * @param out (M, C) output, heads merged; overwritten.
 * @param qkv (M, 3C) new tokens' q, k, v (RoPE applied; only q is read).
 * @param kc (S, C) key cache (the new tokens' keys already appended).
 * @param vc (S, C) value cache.
 * @param span (M, 2) i32 [lo, hi) cache rows of each query, non-empty, within [0, S).
 * @param nHead heads H; D = C / H at most 128.
 * @returns one dispatch of (M, H) workgroups; empty when M is 0.
 *
 * @example Plan and run (needs a WebGPU adapter)
 * ```ts ignore
 * const attend = await planDecodeAttention(gpu, out, qkv, kc, vc, span, 4);
 * await run(gpu, [...append, ...attend]);
 * ```
 */
export async function planDecodeAttention(
  gpu: Gpu,
  out: Tensor,
  qkv: Tensor,
  kc: Tensor,
  vc: Tensor,
  span: Tensor,
  nHead: number,
): Promise<Dispatch[]> {
  const op = `decode attention "${out.label}"`;
  const { M, C, D } = dims(qkv, kc, vc, nHead, op);
  expect(
    out.dtype === "f32" && out.numel === M * C,
    `Cannot plan ${op}: out must be f32 (${M}, ${C}), got ${out.dtype} ${out.shapeString()}`,
  );
  expect(
    span.dtype === "i32" && span.numel === 2 * M,
    `Cannot plan ${op}: span "${span.label}" must be (${M}, 2) i32`,
  );
  if (M === 0) return [];
  return [
    await planDispatch(gpu, {
      label: `${out.label}.decode_attention`,
      code: sourceOf(Math.ceil(D / 4)),
      entryPoint: "decode",
      params: [M, nHead, D, f32(1 / Math.sqrt(D))],
      bindings: [qkv, kc, vc, span, out],
      workgroups: [M, nHead, 1],
    }),
  ];
}
