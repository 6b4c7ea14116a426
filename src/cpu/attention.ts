/**
 * Float64 CPU reference of the masked attention in `src/gpu/attention.ts`, for tests: plain
 * loops, a dense softmax per query row, and the analytic backward.
 *
 * @module
 */

/** Mask direction: `"forward"` causal (j ≤ i), `"backward"` anti-causal (j ≥ i). */
export type CpuAttentionDirection = "forward" | "backward";

/** Sizes of {@linkcode attentionForwardCpu} and {@linkcode attentionBackwardCpu}. */
export interface CpuAttentionDims {
  B: number;
  T: number;
  H: number;
  D: number;
}

function visible(
  doc: ArrayLike<number>,
  b: number,
  T: number,
  i: number,
  j: number,
  direction: CpuAttentionDirection,
): boolean {
  const order = direction === "forward" ? j <= i : j >= i;
  return order && doc[b * T + j] === doc[b * T + i];
}

/**
 * Attention forward in float64.
 *
 * @param qkv (B, T, 3C) q, k, v sections, heads split as (H, D).
 * @param doc (B, T) document ids.
 * @param dims B, T, H, D.
 * @param direction mask direction.
 * @returns out (B, T, C), lse (B, H, T) and the probabilities (B, H, T, T).
 *
 * @example
 * ```ts
 * import { attentionForwardCpu } from "./attention.ts";
 * const qkv = new Float64Array([0, 0, 5]); // B = T = H = D = 1: q, k, v
 * const { out } = attentionForwardCpu(qkv, [0], { B: 1, T: 1, H: 1, D: 1 }, "forward");
 * console.log(out[0]); // 5
 * ```
 */
export function attentionForwardCpu(
  qkv: ArrayLike<number>,
  doc: ArrayLike<number>,
  dims: CpuAttentionDims,
  direction: CpuAttentionDirection,
): { out: Float64Array; lse: Float64Array; prob: Float64Array } {
  const { B, T, H, D } = dims;
  const C = H * D;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * H * T);
  const prob = new Float64Array(B * H * T * T);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * 3 * C + h * D;
        let m = -Infinity;
        for (let j = 0; j < T; j++) {
          s[j] = -Infinity;
          if (!visible(doc, b, T, i, j, direction)) continue;
          const kj = (b * T + j) * 3 * C + C + h * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qkv[qi + d] * qkv[kj + d];
          s[j] = dot * scale;
          m = Math.max(m, s[j]);
        }
        let l = 0;
        for (let j = 0; j < T; j++) l += s[j] === -Infinity ? 0 : Math.exp(s[j] - m);
        lse[(b * H + h) * T + i] = m + Math.log(l);
        const pRow = ((b * H + h) * T + i) * T;
        for (let j = 0; j < T; j++) {
          const pij = s[j] === -Infinity ? 0 : Math.exp(s[j] - m) / l;
          prob[pRow + j] = pij;
          if (pij === 0) continue;
          const vj = (b * T + j) * 3 * C + 2 * C + h * D;
          const oi = (b * T + i) * C + h * D;
          for (let d = 0; d < D; d++) out[oi + d] += pij * qkv[vj + d];
        }
      }
    }
  }
  return { out, lse, prob };
}

/**
 * Attention backward in float64 (analytic): dv = pᵀ dout, dp = dout vᵀ,
 * ds = p ∘ (dp − rowsum(dout ∘ out)), dq = ds k · scale, dk = dsᵀ q · scale.
 *
 * @param dout (B, T, C) gradient of the output.
 * @param qkv (B, T, 3C) forward input.
 * @param doc (B, T) document ids.
 * @param dims B, T, H, D.
 * @param direction mask direction.
 * @returns dqkv (B, T, 3C).
 */
export function attentionBackwardCpu(
  dout: ArrayLike<number>,
  qkv: ArrayLike<number>,
  doc: ArrayLike<number>,
  dims: CpuAttentionDims,
  direction: CpuAttentionDirection,
): Float64Array {
  const { B, T, H, D } = dims;
  const C = H * D;
  const scale = 1 / Math.sqrt(D);
  const { prob } = attentionForwardCpu(qkv, doc, dims, direction);
  const dqkv = new Float64Array(B * T * 3 * C);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const pRow = ((b * H + h) * T + i) * T;
        const oi = (b * T + i) * C + h * D;
        const dp = new Float64Array(T);
        let rowDot = 0;
        for (let j = 0; j < T; j++) {
          const pij = prob[pRow + j];
          if (pij === 0) continue;
          const vj = (b * T + j) * 3 * C + 2 * C + h * D;
          for (let d = 0; d < D; d++) dp[j] += dout[oi + d] * qkv[vj + d];
          rowDot += pij * dp[j];
        }
        const qi = (b * T + i) * 3 * C + h * D;
        for (let j = 0; j < T; j++) {
          const pij = prob[pRow + j];
          if (pij === 0) continue;
          const ds = pij * (dp[j] - rowDot) * scale;
          const kj = (b * T + j) * 3 * C + C + h * D;
          for (let d = 0; d < D; d++) {
            dqkv[qi + d] += ds * qkv[kj + d];
            dqkv[kj + d] += ds * qkv[qi + d];
            dqkv[kj + C + d] += pij * dout[oi + d];
          }
        }
      }
    }
  }
  return dqkv;
}
