/**
 * One encoder stack of the BST (`transformer_f` or `transformer_b`): L pre-norm blocks over the
 * shared token embedding, then a final norm. Planned for a fixed (rows, seqLen).
 *
 * Backward starts from dL/d(output) in `dout`, walks the blocks in reverse with the residual
 * gradient in `dres`, and leaves dL/d(embedding output) in `dres` for the caller's embedding
 * backward.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { createTensor, type Tensor } from "../gpu/tensor.ts";
import { type BlockParams, type BlockScratch, type BlockShape, planBlock } from "./block.ts";
import { type LayerPlan, type ParamGroup, sequence } from "./layer.ts";
import { planNorm } from "./norm.ts";

/** Parameters of one stack: its blocks and final norm. */
export interface StackParams {
  blocks: BlockParams[];
  norm: ParamGroup;
}

/** Inputs and outputs of a stack plan (N = rows·seqLen). */
export interface StackIo {
  /** (N, C) embedding output (read). */
  emb: Tensor;
  /** (N, C) stack output after the final norm. */
  out: Tensor;
  /** (N, C) dL/d(out), read by backward. */
  dout: Tensor;
  /** (N, C) residual gradient scratch; holds dL/d(emb) after backward. */
  dres: Tensor;
  /** (N) i32 RoPE positions of this direction. */
  pos: Tensor;
  /** (rows, seqLen) i32 document ids of this direction. */
  doc: Tensor;
  direction: "forward" | "backward";
}

/** Plans a stack: blocks then the final norm. */
export async function planStack(
  gpu: Gpu,
  label: string,
  shape: BlockShape,
  p: StackParams,
  io: StackIo,
  scratch: BlockScratch,
): Promise<LayerPlan> {
  const N = shape.rows * shape.seqLen;
  const plans: LayerPlan[] = [];
  let x = io.emb;
  for (let l = 0; l < p.blocks.length; l++) {
    const y = createTensor(gpu, [N, shape.nEmbd], `${label}.blocks.${l}.out`); // (N, C)
    plans.push(
      await planBlock(gpu, `${label}.blocks.${l}`, shape, p.blocks[l], {
        x,
        y,
        dres: io.dres,
        pos: io.pos,
        doc: io.doc,
        direction: io.direction,
      }, scratch),
    );
    x = y;
  }
  plans.push(
    await planNorm(gpu, `${label}.norm`, shape.norm, {
      x,
      y: io.out,
      ...p.norm,
      dy: io.dout,
      dx: io.dres,
      accumulateDx: false,
    }, !shape.forwardOnly),
  );
  return sequence(plans);
}
