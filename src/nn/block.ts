/**
 * A pre-norm transformer block (microsoft/BST `model_gpt.Block`), planned over (N = R·T) rows:
 *
 * ```
 * x_mid = x + c_proj(attn(rope(c_attn(norm1(x)))))
 * y     = x_mid + down(swiglu(gate_up(norm2(x_mid))))
 * ```
 *
 * Activations are owned by the block (saved for backward); gradient scratch is shared by all
 * blocks of a model because backward runs one block at a time. `dres` carries dL/dy in and
 * dL/dx out (the residual stream's gradient, updated in place).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { planCopy } from "../gpu/elementwise.ts";
import { createTensor, type Tensor } from "../gpu/tensor.ts";
import { planAttentionLayer } from "./attention.ts";
import { type LayerPlan, type ParamGroup, sequence } from "./layer.ts";
import { createSplitKScratch, planLinear } from "./linear.ts";
import type { MatmulPrecision } from "../gpu/matmul.ts";
import { type NormKind, planNorm } from "./norm.ts";
import { planRopeLayer } from "./rope.ts";
import { planSwigluLayer } from "./swiglu.ts";

/** Parameter and gradient views of one block, by role. */
export interface BlockParams {
  ln1: ParamGroup;
  attn: ParamGroup;
  proj: ParamGroup;
  ln2: ParamGroup;
  gateUp: ParamGroup;
  down: ParamGroup;
}

/** Gradient scratch shared by every block of a stack (N = rows·T). */
export interface BlockScratch {
  /** (N, C) gradient of a norm's output. */
  dln: Tensor;
  /** (N, 3C) gradient of qkv. */
  dqkv: Tensor;
  /** (N, C) gradient of the attention output. */
  datt: Tensor;
  /** (N, 2·hidden) gradient of gate_up's output. */
  dgu: Tensor;
  /** (N, hidden) gradient of the SwiGLU output. */
  dsw: Tensor;
  /** Split-K scratch of the blocks' (and any extra Linears') weight gradients; absent when none splits. */
  splitK?: Tensor;
}

/** Geometry of a block plan. */
export interface BlockShape {
  rows: number;
  seqLen: number;
  nEmbd: number;
  nHead: number;
  hidden: number;
  norm: NormKind;
  /** Precision of the Linear matmuls (default "f32"; "f16" under 16-mixed). */
  precision?: MatmulPrecision;
  /**
   * Plan the forward only (inference, evaluation that never trains): every layer's `backward`
   * is empty, and no backward kernel is compiled or bound. Default false.
   */
  forwardOnly?: boolean;
}

/**
 * Allocates the shared gradient scratch for blocks of `shape`; `extraLinears` ([M, K, N] each)
 * are other Linears planned with the same scratch (e.g. the GPT's lm_head).
 */
export function createBlockScratch(
  gpu: Gpu,
  shape: BlockShape,
  label: string,
  extraLinears: readonly (readonly [number, number, number])[] = [],
): BlockScratch {
  const N = shape.rows * shape.seqLen;
  const C = shape.nEmbd;
  const H = shape.hidden;
  return {
    splitK: createSplitKScratch(gpu, [
      [N, C, 3 * C], // c_attn
      [N, C, C], // c_proj
      [N, C, 2 * H], // gate_up
      [N, H, C], // down
      ...extraLinears,
    ], `${label}.split_k`),
    dln: createTensor(gpu, [N, C], `${label}.dln`),
    dqkv: createTensor(gpu, [N, 3 * C], `${label}.dqkv`),
    datt: createTensor(gpu, [N, C], `${label}.datt`),
    dgu: createTensor(gpu, [N, 2 * shape.hidden], `${label}.dgu`),
    dsw: createTensor(gpu, [N, shape.hidden], `${label}.dsw`),
  };
}

/**
 * Plans one block. Forward reads `x` (N, C) and writes `y` (N, C); backward reads dL/dy from
 * `dres` and leaves dL/dx in `dres`, accumulating parameter gradients.
 */
export async function planBlock(
  gpu: Gpu,
  label: string,
  shape: BlockShape,
  p: BlockParams,
  io: {
    x: Tensor;
    y: Tensor;
    dres: Tensor;
    pos: Tensor;
    doc: Tensor;
    direction: "forward" | "backward";
  },
  s: BlockScratch,
): Promise<LayerPlan> {
  const N = shape.rows * shape.seqLen;
  const C = shape.nEmbd;
  const bw = !shape.forwardOnly;
  const act = (name: string, width: number) => createTensor(gpu, [N, width], `${label}.${name}`);
  const ln1 = act("ln1", C); // (N, C)
  const qkv = act("qkv", 3 * C); // (N, 3C) after RoPE
  const att = act("att", C); // (N, C) heads merged
  const xMid = act("x_mid", C); // (N, C)
  const ln2 = act("ln2", C); // (N, C)
  const gu = act("gate_up", 2 * shape.hidden); // (N, 2·hidden)
  const sw = act("swiglu", shape.hidden); // (N, hidden)

  const norm1 = await planNorm(gpu, `${label}.ln_1`, shape.norm, {
    x: io.x,
    y: ln1,
    ...p.ln1,
    dy: s.dln,
    dx: io.dres,
    accumulateDx: true,
  }, bw);
  const cAttn = await planLinear(gpu, {
    x: ln1,
    y: qkv,
    ...p.attn,
    dy: s.dqkv,
    dx: s.dln,
    scratch: s.splitK,
  }, { precision: shape.precision, backward: bw });
  const rope = await planRopeLayer(gpu, {
    qkv,
    dqkv: s.dqkv,
    pos: io.pos,
    nHead: shape.nHead,
    maxPositions: shape.seqLen + 1,
  }, bw);
  const attn = await planAttentionLayer(gpu, {
    qkv,
    out: att,
    doc: io.doc,
    dout: s.datt,
    dqkv: s.dqkv,
    rows: shape.rows,
    seqLen: shape.seqLen,
    nHead: shape.nHead,
    direction: io.direction,
  }, bw);
  const cProj = await planLinear(gpu, {
    x: att,
    y: xMid,
    ...p.proj,
    dy: io.dres,
    dx: s.datt,
    scratch: s.splitK,
  }, { residual: true, precision: shape.precision, backward: bw });
  const norm2 = await planNorm(gpu, `${label}.ln_2`, shape.norm, {
    x: xMid,
    y: ln2,
    ...p.ln2,
    dy: s.dln,
    dx: io.dres,
    accumulateDx: true,
  }, bw);
  const gateUp = await planLinear(gpu, {
    x: ln2,
    y: gu,
    ...p.gateUp,
    dy: s.dgu,
    dx: s.dln,
    scratch: s.splitK,
  }, { precision: shape.precision, backward: bw });
  const swiglu = await planSwigluLayer(gpu, { x: gu, y: sw, dy: s.dsw, dx: s.dgu }, bw);
  const down = await planLinear(gpu, {
    x: sw,
    y: io.y,
    ...p.down,
    dy: io.dres,
    dx: s.dsw,
    scratch: s.splitK,
  }, { residual: true, precision: shape.precision, backward: bw });

  // The residual copies: forward x_mid = x (then += proj), y = x_mid (then += down). Their
  // backward is the identity on dres, so they have no backward dispatches.
  const copyMid: LayerPlan = { forward: [await planCopy(gpu, xMid, io.x)], backward: [] };
  const copyOut: LayerPlan = { forward: [await planCopy(gpu, io.y, xMid)], backward: [] };
  return sequence([
    norm1,
    cAttn,
    rope,
    attn,
    copyMid,
    cProj,
    norm2,
    gateUp,
    swiglu,
    copyOut,
    down,
  ]);
}
