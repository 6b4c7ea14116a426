/**
 * Matrix products for Linear layers (`kernels/matmul.wgsl`, `kernels/matmul_reduce.wgsl`).
 *
 * Weights use PyTorch's layout W (N, K) = (out features, in features); activations are
 * (M, K) with M the product of all leading dimensions. Four patterns cover a Linear layer:
 *
 * | plan                          | computes              |
 * | ----------------------------- | --------------------- |
 * | {@linkcode planLinearForward}       | out (=/+=) x·Wᵀ + b   |
 * | {@linkcode planLinearBackwardInput} | dx (=/+=) dy·W        |
 * | {@linkcode planLinearBackwardWeight}| dw += dyᵀ·x           |
 * | {@linkcode planBiasBackward}        | db += Σ_m dy[m, :]    |
 *
 * All are tiled through workgroup memory with register blocking (each invocation owns a
 * TM × 4 block of outputs) and reduce in a fixed order without atomics, so results are
 * bit-identical from run to run on one adapter.
 *
 * The weight gradient reduces over M, which is large (batch × time) while N·K may be small
 * (e.g. an lm_head with 56 outputs): then it is split along M ("split-K") into a scratch
 * tensor of partial products and summed in a second, fixed-order pass, so
 * {@linkcode planLinearBackwardWeight} may return two dispatches and allocate a scratch
 * tensor at plan time (see {@linkcode weightGradSplit}).
 *
 * @module
 */

import src from "../../kernels/matmul.wgsl" with { type: "text" };
import reduceSrc from "../../kernels/matmul_reduce.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, grid, planDispatch } from "./kernel.ts";
import { createTensor, Tensor } from "./tensor.ts";

/** Tile configuration of the matmul kernel (WGSL `override`s). */
export interface MatmulTiles {
  /** Invocations along the output columns; each owns 4 columns. */
  wgX: number;
  /** Invocations along the output rows; each owns `tm` rows. */
  wgY: number;
  /** Output rows per invocation: 1, 2, 4 or 8 (`wgY * tm` must be a multiple of 4). */
  tm: number;
  /** Reduction length per workgroup-memory tile. */
  bk: number;
}

/**
 * Default tiles: 16 × 8 invocations, each an 8 × 4 block, i.e. 64 × 64 output tiles with a
 * reduction tile of 16 (8 KiB of workgroup memory). Fastest of the configurations tried on
 * llvmpipe (2048 × 768 × 2304 forward); 64-wide tiles also waste little on small N such as
 * the star-graph vocabulary (56). `deno task bench` can try others via `tiles`.
 */
export const DEFAULT_MATMUL_TILES: Readonly<MatmulTiles> = Object.freeze({
  wgX: 16,
  wgY: 8,
  tm: 8,
  bk: 16,
});

/**
 * Floating-point operations of an (M, K) × (K, N) product, counting a multiply-add as two.
 *
 * @param M rows of the left operand.
 * @param K reduction length.
 * @param N columns of the result.
 * @returns `2 * M * K * N`.
 *
 * @example
 * ```ts
 * import { matmulFlops } from "./matmul.ts";
 * console.log(matmulFlops(2048, 768, 2304)); // 7247757312
 * ```
 */
export function matmulFlops(M: number, K: number, N: number): number {
  return 2 * M * K * N;
}

/** Arguments of {@linkcode planLinearForward}. */
export interface LinearForwardArgs {
  /** Output (…, N); leading dimensions multiply to M. */
  out: Tensor;
  /** Input (…, K); leading dimensions multiply to M. */
  x: Tensor;
  /** Weight (N, K), PyTorch layout. */
  w: Tensor;
  /** Optional bias (N). */
  bias?: Tensor;
  /** Add into `out` instead of overwriting it. Default false. */
  accumulate?: boolean;
  /** Tile configuration; default {@linkcode DEFAULT_MATMUL_TILES}. */
  tiles?: MatmulTiles;
}

/** Arguments of {@linkcode planLinearBackwardInput}. */
export interface LinearBackwardInputArgs {
  /** Input gradient (…, K); leading dimensions multiply to M. */
  dx: Tensor;
  /** Output gradient (…, N); leading dimensions multiply to M. */
  dy: Tensor;
  /** Weight (N, K). */
  w: Tensor;
  /** Add into `dx` instead of overwriting it. Default false. */
  accumulate?: boolean;
  /** Tile configuration; default {@linkcode DEFAULT_MATMUL_TILES}. */
  tiles?: MatmulTiles;
}

/** Arguments of {@linkcode planLinearBackwardWeight}. */
export interface LinearBackwardWeightArgs {
  /** Weight gradient (N, K), accumulated into. */
  dw: Tensor;
  /** Output gradient (…, N); leading dimensions multiply to M. */
  dy: Tensor;
  /** Input (…, K); leading dimensions multiply to M. */
  x: Tensor;
  /**
   * Scratch for split-K partial products, at least `weightGradSplit(M, K, N).scratchElements`
   * f32 elements. Layers may share one scratch tensor because dispatches run in order. When
   * omitted and a split is needed, a scratch tensor is created at plan time.
   */
  scratch?: Tensor;
  /** Tile configuration; default {@linkcode DEFAULT_MATMUL_TILES}. */
  tiles?: MatmulTiles;
}

/** Arguments of {@linkcode planBiasBackward}. */
export interface BiasBackwardArgs {
  /** Bias gradient (N), accumulated into. */
  db: Tensor;
  /** Output gradient (…, N). */
  dy: Tensor;
}

/** How the weight gradient's reduction over M is split. */
export interface WeightGradSplit {
  /** Number of splits S (1: no split, one dispatch straight into dw). */
  splits: number;
  /** Rows of M per split (a multiple of the reduction tile). */
  chunk: number;
  /** f32 elements of scratch needed: S·N·K when S > 1, else 0. */
  scratchElements: number;
}

/** Workgroups the split-K heuristic aims for (enough to fill a large GPU). */
const SPLIT_TARGET_GROUPS = 256;
/** Smallest reduction length per split. */
const SPLIT_MIN_CHUNK = 256;
/** Largest scratch the heuristic asks for, in f32 elements (64 MiB). */
const SPLIT_MAX_SCRATCH = 16 * 1024 * 1024;

function checkTiles(t: MatmulTiles): void {
  const ok = [t.wgX, t.wgY, t.tm, t.bk].every((v) => Number.isInteger(v) && v > 0) &&
    [1, 2, 4, 8].includes(t.tm) && (t.wgY * t.tm) % 4 === 0;
  if (!ok) {
    throw new Error(
      `Invalid matmul tiles ${JSON.stringify(t)}: need positive integers, tm in 1, 2, 4, 8 ` +
        `and wgY * tm a multiple of 4`,
    );
  }
}

/**
 * The split of the weight gradient's reduction over M: a function of the shapes and tiles
 * only, so the summation order (and the result) does not depend on the adapter.
 *
 * @param M rows of dy and x (reduction length).
 * @param K input features (columns of dw).
 * @param N output features (rows of dw).
 * @param tiles the tile configuration used.
 * @returns the number of splits, rows per split and scratch size.
 */
export function weightGradSplit(
  M: number,
  K: number,
  N: number,
  tiles: MatmulTiles = DEFAULT_MATMUL_TILES,
): WeightGradSplit {
  const outTiles = Math.ceil(N / (tiles.wgY * tiles.tm)) * Math.ceil(K / (tiles.wgX * 4));
  let splits = 1;
  if (outTiles * 2 <= SPLIT_TARGET_GROUPS && M >= 2 * SPLIT_MIN_CHUNK) {
    splits = Math.min(
      Math.ceil(SPLIT_TARGET_GROUPS / outTiles),
      Math.floor(M / SPLIT_MIN_CHUNK),
      Math.floor(SPLIT_MAX_SCRATCH / (N * K)),
    );
  }
  if (splits <= 1) return { splits: 1, chunk: roundTo(M, tiles.bk), scratchElements: 0 };
  const chunk = roundTo(Math.ceil(M / splits), tiles.bk);
  splits = Math.ceil(M / chunk);
  return { splits, chunk, scratchElements: splits * N * K };
}

function roundTo(n: number, m: number): number {
  return Math.max(m, Math.ceil(n / m) * m);
}

function lastDim(t: Tensor): number {
  return t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1];
}

function rows(t: Tensor): number {
  return t.shape.length === 0 ? 1 : t.numel / lastDim(t);
}

function expect(ok: boolean, what: string, message: string): void {
  if (!ok) throw new Error(`Cannot plan ${what}: ${message}`);
}

function expectF32(what: string, tensors: (Tensor | undefined)[]): void {
  for (const t of tensors) {
    if (t) expect(t.dtype === "f32", what, `"${t.label}" must be f32, got ${t.dtype}`);
  }
}

/** Checks w is (N, K) and returns [N, K]. */
function weightDims(what: string, w: Tensor): [number, number] {
  expect(
    w.shape.length === 2 && w.numel > 0,
    what,
    `weight "${w.label}" must be a non-empty (N, K) matrix, got ${w.shapeString()}`,
  );
  return [w.shape[0], w.shape[1]];
}

/** Checks `t` is (…, cols) with `m` rows and m·cols > 0. */
function expectRows(what: string, t: Tensor, m: number, cols: number, role: string): void {
  expect(
    t.shape.length >= 1 && lastDim(t) === cols && rows(t) === m && t.numel > 0,
    what,
    `${role} "${t.label}" has shape ${t.shapeString()}, expected (…, ${cols}) with ${m} rows`,
  );
}

interface MatmulSpec {
  label: string;
  out: Tensor;
  a: Tensor;
  b: Tensor;
  bias?: Tensor;
  I: number;
  J: number;
  R: number;
  aTrans: boolean;
  bTrans: boolean;
  accumulate: boolean;
  splits: number;
  chunk: number;
  tiles: MatmulTiles;
}

async function planMatmul(gpu: Gpu, s: MatmulSpec): Promise<Dispatch> {
  const t = s.tiles;
  checkTiles(t);
  const flags = (s.accumulate ? 1 : 0) | (s.bias ? 2 : 0);
  const d = await planDispatch(gpu, {
    label: s.label,
    code: src,
    constants: {
      WG_X: t.wgX,
      WG_Y: t.wgY,
      TM: t.tm,
      BK: t.bk,
      A_TRANS: s.aTrans ? 1 : 0,
      B_TRANS: s.bTrans ? 1 : 0,
    },
    params: [s.I, s.J, s.R, s.chunk, flags],
    // Without a bias, binding 4 is never read; `a` stands in (both read-only).
    bindings: [s.out, s.a, s.b, s.bias ?? s.a],
    workgroups: [Math.ceil(s.J / (t.wgX * 4)), Math.ceil(s.I / (t.wgY * t.tm)), s.splits],
  });
  return { ...d, flops: matmulFlops(s.I, s.R, s.J) };
}

/** Plans out (C) (+)= Σ_r src (rows, C) with the column-sum kernel. */
function planColumnSum(
  gpu: Gpu,
  label: string,
  out: Tensor,
  srcT: Tensor,
  nRows: number,
  cols: number,
  accumulate: boolean,
): Promise<Dispatch> {
  // Many rows per column (bias gradient): 16 row lanes; few rows (split-K combine): 1 lane.
  const [CX, RY] = nRows >= 64 ? [16, 16] : [256, 1];
  return planDispatch(gpu, {
    label,
    code: reduceSrc,
    constants: { CX, RY },
    params: [nRows, cols, accumulate ? 1 : 0],
    bindings: [out, srcT],
    workgroups: grid(gpu, Math.ceil(cols / CX)),
  });
}

/**
 * Plans the Linear forward product `out = x·Wᵀ + bias` (or `out += x·Wᵀ + bias` with
 * `accumulate`).
 *
 * @param gpu the shared GPU.
 * @param args `out` (…, N), `x` (…, K) with M rows, `w` (N, K), optional `bias` (N).
 * @returns one dispatch, to be encoded as often as needed.
 * @throws Error naming the tensor labels when shapes or dtypes do not fit.
 *
 * @example Forward of a 768 → 2304 Linear (needs a WebGPU adapter)
 * ```ts ignore
 * const d = await planLinearForward(gpu, { out: qkv, x: ln1, w: cAttnW, bias: cAttnB });
 * await run(gpu, [d]);
 * ```
 */
export function planLinearForward(gpu: Gpu, args: LinearForwardArgs): Promise<Dispatch> {
  const { out, x, w, bias } = args;
  const what = `linear forward "${out.label}"`;
  expectF32(what, [out, x, w, bias]);
  const [N, K] = weightDims(what, w);
  const M = rows(x);
  expectRows(what, x, M, K, "input");
  expectRows(what, out, M, N, "output");
  if (bias) {
    expect(
      bias.numel === N,
      what,
      `bias "${bias.label}" has shape ${bias.shapeString()}, expected (${N})`,
    );
  }
  return planMatmul(gpu, {
    label: `${out.label}.linear_forward`,
    out,
    a: x,
    b: w,
    bias,
    I: M,
    J: N,
    R: K,
    aTrans: false,
    bTrans: true,
    accumulate: args.accumulate ?? false,
    splits: 1,
    chunk: roundTo(K, (args.tiles ?? DEFAULT_MATMUL_TILES).bk),
    tiles: args.tiles ?? DEFAULT_MATMUL_TILES,
  });
}

/**
 * Plans the Linear input gradient `dx = dy·W` (or `dx += dy·W` with `accumulate`).
 *
 * @param gpu the shared GPU.
 * @param args `dx` (…, K) and `dy` (…, N) with M rows, `w` (N, K).
 * @returns one dispatch.
 * @throws Error naming the tensor labels when shapes or dtypes do not fit.
 *
 * @example (needs a WebGPU adapter)
 * ```ts ignore
 * const d = await planLinearBackwardInput(gpu, { dx: dLn1, dy: dQkv, w: cAttnW });
 * ```
 */
export function planLinearBackwardInput(
  gpu: Gpu,
  args: LinearBackwardInputArgs,
): Promise<Dispatch> {
  const { dx, dy, w } = args;
  const what = `linear backward input "${dx.label}"`;
  expectF32(what, [dx, dy, w]);
  const [N, K] = weightDims(what, w);
  const M = rows(dy);
  expectRows(what, dy, M, N, "output gradient");
  expectRows(what, dx, M, K, "input gradient");
  const tiles = args.tiles ?? DEFAULT_MATMUL_TILES;
  return planMatmul(gpu, {
    label: `${dx.label}.linear_backward_input`,
    out: dx,
    a: dy,
    b: w,
    I: M,
    J: K,
    R: N,
    aTrans: false,
    bTrans: false,
    accumulate: args.accumulate ?? false,
    splits: 1,
    chunk: roundTo(N, tiles.bk),
    tiles,
  });
}

/**
 * Plans the Linear weight gradient `dw += dyᵀ·x` (always accumulates).
 *
 * When the reduction over M is split (see {@linkcode weightGradSplit}: large M, small N·K),
 * this returns two dispatches — partial products into a scratch tensor of S·N·K floats, then
 * a fixed-order sum into `dw` — and, unless `args.scratch` is given, allocates that scratch
 * (labelled `<dw>.split_k_scratch`) at plan time; it lives as long as the dispatches.
 *
 * @param gpu the shared GPU.
 * @param args `dw` (N, K), `dy` (…, N) and `x` (…, K) with M rows, optional `scratch`.
 * @returns one dispatch, or two (split-K) to be encoded in order.
 * @throws Error naming the tensor labels when shapes or dtypes do not fit.
 *
 * @example (needs a WebGPU adapter)
 * ```ts ignore
 * const d = await planLinearBackwardWeight(gpu, { dw: dCAttnW, dy: dQkv, x: ln1 });
 * await run(gpu, Array.isArray(d) ? d : [d]);
 * ```
 */
export async function planLinearBackwardWeight(
  gpu: Gpu,
  args: LinearBackwardWeightArgs,
): Promise<Dispatch | Dispatch[]> {
  const { dw, dy, x } = args;
  const what = `linear backward weight "${dw.label}"`;
  expectF32(what, [dw, dy, x, args.scratch]);
  const [N, K] = weightDims(what, dw);
  const M = rows(dy);
  expectRows(what, dy, M, N, "output gradient");
  expectRows(what, x, M, K, "input");
  const tiles = args.tiles ?? DEFAULT_MATMUL_TILES;
  const split = weightGradSplit(M, K, N, tiles);
  const common = {
    a: dy,
    b: x,
    I: N,
    J: K,
    R: M,
    aTrans: true,
    bTrans: false,
    splits: split.splits,
    chunk: split.chunk,
    tiles,
  };
  if (split.splits === 1) {
    return await planMatmul(gpu, {
      ...common,
      label: `${dw.label}.linear_backward_weight`,
      out: dw,
      accumulate: true,
    });
  }
  let scratch = args.scratch;
  if (scratch) {
    expect(
      scratch.numel >= split.scratchElements,
      what,
      `scratch "${scratch.label}" has ${scratch.numel} elements, need ${split.scratchElements}`,
    );
    scratch = scratch.reshape([scratch.numel]);
  } else {
    scratch = createTensor(gpu, [split.scratchElements], `${dw.label}.split_k_scratch`);
  }
  const partial = new Tensor(
    scratch.buffer,
    [split.splits, N * K],
    "f32",
    scratch.label,
    scratch.offset,
  );
  return [
    await planMatmul(gpu, {
      ...common,
      label: `${dw.label}.linear_backward_weight.split_k`,
      out: partial,
      accumulate: false,
    }),
    await planColumnSum(
      gpu,
      `${dw.label}.linear_backward_weight.reduce`,
      dw,
      partial,
      split.splits,
      N * K,
      true,
    ),
  ];
}

/**
 * Plans the bias gradient `db += Σ_m dy[m, :]` (fixed summation order, no atomics).
 *
 * @param gpu the shared GPU.
 * @param args `db` (N) and `dy` (…, N).
 * @returns one dispatch.
 * @throws Error naming the tensor labels when shapes or dtypes do not fit.
 *
 * @example (needs a WebGPU adapter)
 * ```ts ignore
 * const d = await planBiasBackward(gpu, { db: dCAttnB, dy: dQkv });
 * ```
 */
export function planBiasBackward(gpu: Gpu, args: BiasBackwardArgs): Promise<Dispatch> {
  const { db, dy } = args;
  const what = `bias backward "${db.label}"`;
  expectF32(what, [db, dy]);
  const N = db.numel;
  expect(N > 0, what, `bias gradient "${db.label}" is empty`);
  const M = rows(dy);
  expectRows(what, dy, M, N, "output gradient");
  return planColumnSum(gpu, `${db.label}.bias_backward`, db, dy, M, N, true);
}
