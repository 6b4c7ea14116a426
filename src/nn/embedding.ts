/**
 * Token embedding layer: forward gathers rows of the table; backward accumulates the rows'
 * gradients into the table gradient through CSR lists (deterministic).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { planEmbeddingBackward, planEmbeddingForward } from "../gpu/embedding.ts";
import type { CsrTensors } from "../gpu/gather.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { LayerPlan } from "./layer.ts";

/** Plans the embedding: tokens (N) i32, table/dtable (V, C), out/dout (N, C). */
export async function planEmbeddingLayer(
  gpu: Gpu,
  t: { tokens: Tensor; table: Tensor; dtable: Tensor; out: Tensor; dout: Tensor; csr: CsrTensors },
  withBackward = true,
): Promise<LayerPlan> {
  return {
    forward: [await planEmbeddingForward(gpu, t.out, t.tokens, t.table)],
    backward: withBackward ? [await planEmbeddingBackward(gpu, t.dtable, t.dout, t.csr)] : [],
  };
}
