/**
 * Attention layer: document-masked multi-head attention over RoPE'd qkv, forward encoder
 * (causal) or backward encoder (anti-causal). Wraps `src/gpu/attention.ts`.
 *
 * @module
 */

import {
  type AttentionDirection,
  planAttentionBackward,
  planAttentionForward,
} from "../gpu/attention.ts";
import type { Gpu } from "../gpu/device.ts";
import { createTensor, type Tensor } from "../gpu/tensor.ts";
import type { LayerPlan } from "./layer.ts";

/** Tensors and sizes of {@linkcode planAttentionLayer}; N = rows·seqLen. */
export interface AttentionLayerArgs {
  /** (N, 3C) q, k, v after RoPE. */
  qkv: Tensor;
  /** (N, C) output, heads merged. */
  out: Tensor;
  /** (rows, seqLen) i32 document ids (doc_f forward, doc_b backward). */
  doc: Tensor;
  /** (N, C) gradient of the output. */
  dout: Tensor;
  /** (N, 3C) gradient of qkv (overwritten by backward). */
  dqkv: Tensor;
  rows: number;
  seqLen: number;
  nHead: number;
  direction: AttentionDirection;
}

/**
 * Plans the attention layer; the row log-sum-exp (rows, H, seqLen) is kept for backward
 * (without `withBackward` the forward only).
 */
export async function planAttentionLayer(
  gpu: Gpu,
  a: AttentionLayerArgs,
  withBackward = true,
): Promise<LayerPlan> {
  const C = a.out.shape[a.out.shape.length - 1];
  const qkv = a.qkv.reshape([a.rows, a.seqLen, 3 * C]);
  const out = a.out.reshape([a.rows, a.seqLen, C]);
  const doc = a.doc.reshape([a.rows, a.seqLen]);
  const lse = createTensor(gpu, [a.rows, a.nHead, a.seqLen], `${a.out.label}.lse`);
  const forward = await planAttentionForward(gpu, out, lse, qkv, doc, a.nHead, a.direction);
  if (!withBackward) return { forward, backward: [] };
  const dqkv = a.dqkv.reshape([a.rows, a.seqLen, 3 * C]);
  const dout = a.dout.reshape([a.rows, a.seqLen, C]);
  return {
    forward,
    backward: await planAttentionBackward(
      gpu,
      dqkv,
      dout,
      qkv,
      out,
      lse,
      doc,
      a.nHead,
      a.direction,
    ),
  };
}
