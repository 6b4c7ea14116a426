/**
 * The BST text head over a chunk of P (forward state, backward state) pairs
 * (microsoft/BST `TextHead`):
 *
 * ```
 * x = concat(F[ia], B[ib])            (P, 2C)
 * x = x + down(swiglu(gate_up(x)))    SwiGLU MLP, hidden = 128·round((16C/3)/128)
 * x = norm(x)                         (P, 2C)
 * logits = lm_head(x[:, :C]), lm_head(x[:, C:])   one shared Linear C→V, stacked (2P, V)
 * ```
 *
 * With a loss, the weighted cross-entropy (targets −100 ignored) turns the logits into their
 * gradient in place, its weighted sum goes to a loss slot, and backward accumulates parameter
 * gradients and scatters dL/dF, dL/dB into the encoder-output gradients through CSR lists.
 *
 * Activations are shared by every chunk (chunks run one after another); each chunk has its own
 * index, target and weight tensors.
 *
 * @module
 */

import { planCrossEntropy, planWeightedSum } from "../gpu/cross_entropy.ts";
import type { Gpu } from "../gpu/device.ts";
import { planCopy } from "../gpu/elementwise.ts";
import { type CsrTensors, planGatherPairs, planGatherPairsBackward } from "../gpu/gather.ts";
import { createTensor, type Tensor } from "../gpu/tensor.ts";
import { planConcatLayer, planSplitLayer } from "./concat.ts";
import { type LayerPlan, type ParamGroup, sequence } from "./layer.ts";
import { createSplitKScratch, planLinear } from "./linear.ts";
import type { MatmulPrecision } from "../gpu/matmul.ts";
import { type NormKind, planNorm } from "./norm.ts";
import { planSwigluLayer } from "./swiglu.ts";

/** The text head's parameters by role. */
export interface TextHeadParams {
  gateUp: ParamGroup;
  down: ParamGroup;
  norm: ParamGroup;
  lmHead: { w: Tensor; dw: Tensor };
}

/** Sizes of a text head plan. */
export interface TextHeadShape {
  /** Pair capacity P of a chunk. */
  pairs: number;
  nEmbd: number;
  hidden: number;
  vocab: number;
  norm: NormKind;
  /** Precision of the Linear matmuls (default "f32"; "f16" under 16-mixed). */
  precision?: MatmulPrecision;
}

/** Activations and gradient scratch shared by all chunks of one shape. */
export interface TextHeadActivations {
  h0: Tensor; // (P, 2C) gathered [F | B]
  gu: Tensor; // (P, 2·hidden)
  sw: Tensor; // (P, hidden)
  h1: Tensor; // (P, 2C) after the residual MLP
  hn: Tensor; // (P, 2C) normed
  x2: Tensor; // (2P, C) [x_next; x_prev]
  logits: Tensor; // (2P, V), dlogits in place after the loss
  losses: Tensor; // (2P) unweighted CE per entry
  dhn: Tensor; // (P, 2C)
  dh1: Tensor; // (P, 2C)
  dsw: Tensor; // (P, hidden)
  dgu: Tensor; // (P, 2·hidden)
  dh0: Tensor; // (P, 2C)
  dx2: Tensor; // (2P, C)
  /** Split-K scratch of the three Linears' weight gradients (absent when none splits). */
  splitK?: Tensor;
}

/** Allocates the shared activations of a text head of `shape`. */
export function createTextHeadActivations(
  gpu: Gpu,
  shape: TextHeadShape,
  label: string,
): TextHeadActivations {
  const P = shape.pairs;
  const C = shape.nEmbd;
  const H = shape.hidden;
  const t = (name: string, dims: number[], dtype: "f32" | "i32" = "f32") =>
    createTensor(gpu, dims, `${label}.${name}`, dtype);
  return {
    h0: t("h0", [P, 2 * C]),
    gu: t("gate_up", [P, 2 * H]),
    sw: t("swiglu", [P, H]),
    h1: t("h1", [P, 2 * C]),
    hn: t("norm", [P, 2 * C]),
    x2: t("x_next_prev", [2 * P, C]),
    logits: t("logits", [2 * P, shape.vocab]),
    losses: t("losses", [2 * P]),
    dhn: t("dnorm", [P, 2 * C]),
    dh1: t("dh1", [P, 2 * C]),
    dsw: t("dswiglu", [P, H]),
    dgu: t("dgate_up", [P, 2 * H]),
    dh0: t("dh0", [P, 2 * C]),
    dx2: t("dx_next_prev", [2 * P, C]),
    splitK: createSplitKScratch(gpu, [
      [P, 2 * C, 2 * H], // gate_up
      [P, H, 2 * C], // down
      [2 * P, C, shape.vocab], // lm_head
    ], `${label}.split_k`),
  };
}

/** The per-chunk inputs: which pairs, their targets and loss weights. */
export interface TextHeadChunk {
  /** (P) i32 rows of F (forward states); −1 pads. */
  ia: Tensor;
  /** (P) i32 rows of B (backward states); −1 pads. */
  ib: Tensor;
  /** (2P) i32 [next targets; prev targets], −100 ignored. */
  targets: Tensor;
  /** (2P) f32 loss weights, same layout. */
  weights: Tensor;
  /** Scatter lists of ia over F's rows and ib over B's rows (backward only). */
  csrA?: CsrTensors;
  csrB?: CsrTensors;
}

/** Encoder outputs the head reads and the gradients it scatters into. */
export interface TextHeadIo {
  /** (Nf, C) forward-encoder states. */
  F: Tensor;
  /** (Nb, C) backward-encoder states. */
  B: Tensor;
  /** (Nf, C) dL/dF, accumulated. */
  dF?: Tensor;
  /** (Nb, C) dL/dB, accumulated. */
  dB?: Tensor;
  /** Loss output (slots) and the slot of this chunk. */
  lossOut?: Tensor;
  lossSlot?: number;
  /** 16-mixed: the loss scaler's state; the loss gradient is seeded with its scale. */
  lossScale?: Tensor;
}

/**
 * Plans the head over one chunk. Without `io.lossOut` it only computes logits (forward). With
 * it, forward also runs the weighted cross-entropy and the loss sum; backward needs `io.dF`,
 * `io.dB` and the chunk's CSR lists.
 */
export async function planTextHead(
  gpu: Gpu,
  label: string,
  shape: TextHeadShape,
  p: TextHeadParams,
  a: TextHeadActivations,
  chunk: TextHeadChunk,
  io: TextHeadIo,
): Promise<LayerPlan> {
  const P = shape.pairs;
  const C = shape.nEmbd;
  const gather: LayerPlan = {
    forward: await planGatherPairs(gpu, a.h0, io.F, io.B, chunk.ia, chunk.ib),
    backward: io.dF && io.dB && chunk.csrA && chunk.csrB
      ? await planGatherPairsBackward(gpu, io.dF, io.dB, a.dh0, chunk.csrA, chunk.csrB, true)
      : [],
  };
  const gateUp = await planLinear(gpu, {
    x: a.h0,
    y: a.gu,
    ...p.gateUp,
    dy: a.dgu,
    dx: a.dh0,
    scratch: a.splitK,
  }, { accumulateDx: true, precision: shape.precision });
  const swiglu = await planSwigluLayer(gpu, { x: a.gu, y: a.sw, dy: a.dsw, dx: a.dgu });
  // Residual: h1 = h0 + down(...); backward of the copy is dh0 = dh1, which must come before
  // gate_up's dx accumulates into dh0 (reverse order of the forward list below).
  const residual: LayerPlan = {
    forward: [await planCopy(gpu, a.h1, a.h0)],
    backward: [await planCopy(gpu, a.dh0, a.dh1)],
  };
  const down = await planLinear(gpu, {
    x: a.sw,
    y: a.h1,
    ...p.down,
    dy: a.dh1,
    dx: a.dsw,
    scratch: a.splitK,
  }, { residual: true, precision: shape.precision });
  const norm = await planNorm(gpu, `${label}.norm`, shape.norm, {
    x: a.h1,
    y: a.hn,
    ...p.norm,
    dy: a.dhn,
    dx: a.dh1,
    accumulateDx: false,
  });
  const xNext = view(a.x2, 0, P, C, `${label}.x_next`);
  const xPrev = view(a.x2, P, P, C, `${label}.x_prev`);
  const dxNext = view(a.dx2, 0, P, C, `${label}.dx_next`);
  const dxPrev = view(a.dx2, P, P, C, `${label}.dx_prev`);
  // Forward splits hn into the two stacked halves; backward concatenates their gradients.
  const split: LayerPlan = {
    forward: (await planSplitLayer(gpu, { x: a.hn, a: xNext, b: xPrev })).forward,
    backward: (await planConcatLayer(gpu, { a: dxNext, b: dxPrev, y: a.dhn })).forward,
  };
  const lmHead = await planLinear(gpu, {
    x: a.x2,
    y: a.logits,
    w: p.lmHead.w,
    dw: p.lmHead.dw,
    dy: a.logits,
    dx: a.dx2,
    scratch: a.splitK,
  }, { precision: shape.precision });
  const layers = [gather, gateUp, swiglu, residual, down, norm, split, lmHead];
  if (!io.lossOut) {
    return { forward: sequence(layers).forward, backward: [] };
  }
  const loss: LayerPlan = {
    forward: [
      ...await planCrossEntropy(
        gpu,
        a.logits,
        a.losses,
        chunk.targets,
        chunk.weights,
        io.lossScale,
      ),
      ...await planWeightedSum(gpu, io.lossOut, io.lossSlot ?? 0, a.losses, chunk.weights),
    ],
    backward: [],
  };
  return sequence([...layers, loss]);
}

/** A (rows, width) view starting at row `start` of a 2-D tensor. */
function view(t: Tensor, start: number, rows: number, width: number, label: string): Tensor {
  return t.reshape([t.numel / width, width]).rows(start, rows, label);
}
