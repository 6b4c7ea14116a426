/**
 * Token embedding gather and its deterministic backward (`kernels/embedding.wgsl`). The
 * backward sums each token's rows through CSR lists (`buildCsr(tokens, V)` from
 * `index_lists.ts`), built on the CPU from the token ids.
 *
 * @module
 */

import src from "../../kernels/embedding.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import type { CsrTensors } from "./gather.ts";
import { type Dispatch, grid, planDispatch } from "./kernel.ts";
import type { Tensor } from "./tensor.ts";

const WG = 256;

/**
 * Throws naming the position of the first token outside [0, vocab). Call it on the CPU token
 * ids before uploading them.
 *
 * @param tokens token ids (N).
 * @param vocab vocabulary size V.
 *
 * @example
 * ```ts
 * import { checkTokens } from "./embedding.ts";
 * checkTokens([0, 5, 2], 6); // fine
 * try {
 *   checkTokens([0, 6], 6);
 * } catch (e) {
 *   console.log((e as Error).message); // Token 6 at position 1 is outside the vocabulary of 6
 * }
 * ```
 */
export function checkTokens(tokens: ArrayLike<number>, vocab: number): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(Number.isInteger(t) && t >= 0 && t < vocab)) {
      throw new Error(`Token ${t} at position ${i} is outside the vocabulary of ${vocab}`);
    }
  }
}

/**
 * Plans the forward `out (N, C) = table[tokens]`; a token outside [0, V) gives a zero row.
 *
 * @param gpu the shared GPU.
 * @param out (N, C) output, overwritten.
 * @param tokens (N) i32 token ids.
 * @param table (V, C) embedding weights.
 * @returns one dispatch.
 *
 * @example Forward and backward (needs a WebGPU adapter)
 * ```ts ignore
 * const csr = uploadCsr(gpu, buildCsr(tokensHost, V), "emb.csr");
 * const fwd = await planEmbeddingForward(gpu, out, tokens, table);
 * const bwd = await planEmbeddingBackward(gpu, dtable, dout, csr);
 * ```
 */
export function planEmbeddingForward(
  gpu: Gpu,
  out: Tensor,
  tokens: Tensor,
  table: Tensor,
): Promise<Dispatch> {
  const [V, C] = table.shape;
  const N = tokens.numel;
  if (out.numel !== N * C || tokens.dtype !== "i32") {
    throw new Error(
      `Cannot plan embedding "${out.label}" ${out.shapeString()} from ${N} tokens of width ${C}`,
    );
  }
  return planDispatch(gpu, {
    label: `${out.label}.embedding`,
    code: src,
    entryPoint: "forward",
    constants: { WG },
    params: [N, C, V],
    bindings: [out, tokens, table],
    workgroups: grid(gpu, Math.ceil((N * C) / WG)),
  });
}

/**
 * Plans the backward `dtable[v] += Σ_{n: tokens[n]=v} dout[n]`, summing each v's rows in
 * increasing n (deterministic, no atomics): one thread per element of dtable.
 *
 * @param gpu the shared GPU.
 * @param dtable (V, C) table gradient, accumulated into.
 * @param dout (N, C) output gradient.
 * @param csr `uploadCsr(gpu, buildCsr(tokens, V), label)`: offsets (V + 1), items (N).
 * @returns one dispatch.
 */
export function planEmbeddingBackward(
  gpu: Gpu,
  dtable: Tensor,
  dout: Tensor,
  csr: CsrTensors,
): Promise<Dispatch> {
  const [V, C] = dtable.shape;
  if (csr.offsets.numel !== V + 1 || dout.numel !== csr.items.numel * C) {
    throw new Error(
      `Cannot plan embedding backward "${dtable.label}": CSR lists do not match ` +
        `${V} tokens and ${dout.numel / C} rows`,
    );
  }
  return planDispatch(gpu, {
    label: `${dtable.label}.embedding_backward`,
    code: src,
    entryPoint: "backward",
    constants: { WG },
    params: [dout.numel / C, C, V],
    bindings: [dtable, csr.offsets, csr.items, dout],
    textureInputs: [2, 3, 4],
    workgroups: grid(gpu, Math.ceil((V * C) / WG)),
  });
}
