/**
 * Matrix products for Linear layers: register-resident f32 kernels generated per tile shape
 * (`src/gpu/matmul_wgsl.ts`), the variant picked per adapter and shape (`matmul_tune.ts`), and
 * the fixed-order column sums of `kernels/matmul_reduce.wgsl`.
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
 * Each invocation keeps a block of outputs in registers (the generator writes every loop over
 * it out, so no private array is indexed at run time) and loads operands as vec4 where the
 * shapes allow (a row length that is a multiple of 4). Every output is one invocation's sum
 * over the reduction in increasing order, one fused multiply-add per term, with no atomics:
 * results are bit-identical from run to run, and also whichever variant runs.
 *
 * Precision ({@linkcode MatmulPrecision}): `"f32"` (default) as above; `"f16"` rounds both
 * operands to f16 as tiles are staged, multiplies in f16, sums groups of 8 products in f16 and
 * the groups in f32 (the f16 flavour of `matmul_wgsl.ts`; used by `trainer.precision=16-mixed`,
 * needs the adapter feature `shader-f16`). Storage stays f32 either way: only the products
 * change. f16 variants are tuned and cached under their own keys.
 *
 * The weight gradient reduces over M, which is large (batch × time) while N·K may be small
 * (e.g. an lm_head with 56 outputs): then it is split along M ("split-K") into a scratch
 * tensor of partial products and summed in a second, fixed-order pass, so
 * {@linkcode planLinearBackwardWeight} may return two dispatches and allocate a scratch
 * tensor at plan time (see {@linkcode weightGradSplit}). The split depends on the shapes only.
 *
 * @module
 */

import reduceSrc from "../../kernels/matmul_reduce.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { type Dispatch, flatTexture, flatTextureFits, grid, planDispatch } from "./kernel.ts";
import { type TexMatmulLayout, texMatmulWgsl } from "./matmul_tex_wgsl.ts";
import { subgroupSize } from "./reduce.ts";
import {
  checkVariant,
  type MatmulLayout,
  type MatmulVariant,
  matmulWgsl,
  variantCols,
  variantName,
  variantRows,
} from "./matmul_wgsl.ts";
import {
  defaultCacheDir,
  MATMUL_CANDIDATES,
  type MatmulPattern,
  type MatmulPrecision,
  matmulTuneKey,
  MatmulTuner,
  SMALL_ROWS,
  SMALL_ROWS_TEX_VARIANT,
  SMALL_ROWS_VARIANT,
} from "./matmul_tune.ts";
import { createTensor, Tensor } from "./tensor.ts";
import { timeOps } from "./timing.ts";

export type { MatmulVariant } from "./matmul_wgsl.ts";
export type { MatmulPrecision } from "./matmul_tune.ts";

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
  /** Tile shape; default: chosen per adapter and shape (see {@linkcode matmulTuner}). */
  variant?: MatmulVariant;
  /** Precision of the products (default "f32"; "f16" needs `shader-f16`). */
  precision?: MatmulPrecision;
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
  /** Tile shape; default: chosen per adapter and shape (see {@linkcode matmulTuner}). */
  variant?: MatmulVariant;
  /** Precision of the products (default "f32"; "f16" needs `shader-f16`). */
  precision?: MatmulPrecision;
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
  /** Tile shape; default: chosen per adapter and shape (see {@linkcode matmulTuner}). */
  variant?: MatmulVariant;
  /** Precision of the products (default "f32"; "f16" needs `shader-f16`). */
  precision?: MatmulPrecision;
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
/** Output tile assumed when counting workgroups for the split (any variant may run). */
const SPLIT_TILE = 64;
/** Split chunks are multiples of this: every variant's reduction tile divides it. */
const SPLIT_ALIGN = 32;

/**
 * The split of the weight gradient's reduction over M: a function of the shapes only (not of
 * the adapter or the variant), so the summation order, and the result, is the same everywhere.
 *
 * @param M rows of dy and x (reduction length).
 * @param K input features (columns of dw).
 * @param N output features (rows of dw).
 * @returns the number of splits, rows per split and scratch size.
 *
 * @example
 * ```ts
 * import { weightGradSplit } from "./matmul.ts";
 * console.log(weightGradSplit(17664, 768, 56).splits); // 22: an lm_head has few output tiles
 * console.log(weightGradSplit(17664, 768, 2304).splits); // 1
 * ```
 */
export function weightGradSplit(M: number, K: number, N: number): WeightGradSplit {
  const outTiles = Math.ceil(N / SPLIT_TILE) * Math.ceil(K / SPLIT_TILE);
  let splits = 1;
  if (outTiles * 2 <= SPLIT_TARGET_GROUPS && M >= 2 * SPLIT_MIN_CHUNK) {
    splits = Math.min(
      Math.ceil(SPLIT_TARGET_GROUPS / outTiles),
      Math.floor(M / SPLIT_MIN_CHUNK),
      Math.floor(SPLIT_MAX_SCRATCH / (N * K)),
    );
  }
  if (splits <= 1) return { splits: 1, chunk: roundTo(M, SPLIT_ALIGN), scratchElements: 0 };
  const chunk = roundTo(Math.ceil(M / splits), SPLIT_ALIGN);
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
  pattern: MatmulPattern;
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
  variant?: MatmulVariant;
  precision?: MatmulPrecision;
}

/** vec4 loads and stores where the row lengths (and so every vec4) line up. */
function layoutOf(s: MatmulSpec): MatmulLayout {
  return {
    aTrans: s.aTrans,
    bTrans: s.bTrans,
    vecA: s.aTrans ? s.I % 4 === 0 : s.R % 4 === 0,
    vecB: s.bTrans ? s.R % 4 === 0 : s.J % 4 === 0,
    vecC: s.J % 4 === 0,
    bias: s.bias !== undefined,
    ...(s.precision === "f16" ? { f16: true } : {}),
  };
}

/**
 * Throws one line when `precision` is "f16" and the device lacks `shader-f16`.
 *
 * @param gpu the shared GPU.
 * @param precision the matmul precision asked for.
 * @param what what needs it, for the message.
 */
export function checkMatmulPrecision(gpu: Gpu, precision: MatmulPrecision, what: string): void {
  if (precision === "f16" && !gpu.info.features.includes("shader-f16")) {
    throw new Error(
      `${what} needs f16 matmuls, but the WebGPU adapter "${gpu.info.description}" does not ` +
        `have the shader-f16 feature`,
    );
  }
}

const sources = new Map<string, string>();

/** The generated WGSL of a variant and layout (generated once per process). */
function sourceOf(v: MatmulVariant, layout: MatmulLayout & TexMatmulLayout): string {
  const key = `${variantName(v)}|${JSON.stringify(layout)}`;
  let code = sources.get(key);
  if (code === undefined) {
    code = v.tex ? texMatmulWgsl(v, layout) : matmulWgsl(v, layout);
    sources.set(key, code);
  }
  return code;
}

async function planVariant(gpu: Gpu, s: MatmulSpec, v: MatmulVariant): Promise<Dispatch> {
  checkVariant(
    v,
    gpu.limits.maxComputeInvocationsPerWorkgroup,
    gpu.limits.maxComputeWorkgroupStorageSize,
    s.precision === "f16",
  );
  const flags = (s.accumulate ? 1 : 0) | (s.bias ? 2 : 0);
  const layout: MatmulLayout & TexMatmulLayout = layoutOf(s);
  if (v.tex) {
    // Share A's loads over subgroups where the device has consecutive ones that fit the tile
    // (see matmul_tex_wgsl.ts): 1.2-1.6x on lavapipe.
    const sg = await subgroupSize(gpu);
    if (sg > 0 && layout.vecA && v.wgX % sg === 0 && v.tm % sg === 0) layout.share = sg;
  }
  const texture = (t: Tensor, elements: number, vec: boolean, label: string) =>
    flatTexture(gpu, t, elements, operandFormat(vec), label);
  const a = v.tex ? texture(s.a, s.I * s.R, layout.vecA, `${s.label}.a`) : undefined;
  const b = v.tex ? texture(s.b, s.R * s.J, layout.vecB, `${s.label}.b`) : undefined;
  const d = await planDispatch(gpu, {
    label: s.label,
    code: sourceOf(v, layout),
    variant: variantName(v),
    params: [s.I, s.J, s.R, s.chunk, flags],
    // Without a bias the kernel declares no binding 4.
    bindings: [s.out, a?.view ?? s.a, b?.view ?? s.b, s.bias ?? null],
    workgroups: [Math.ceil(s.J / variantCols(v)), Math.ceil(s.I / variantRows(v)), s.splits],
  });
  return a && b ? { ...d, uploads: [a.upload, b.upload] } : d;
}

const tuners = new WeakMap<Gpu, MatmulTuner>();

/**
 * The process-wide variant chooser of `gpu`: the checked-in table for known adapters, else
 * tuning at first use of each shape, cached in `BST_CACHE_DIR` when that is readable and
 * writable under the granted permissions (see `matmul_tune.ts`).
 *
 * @param gpu the shared GPU.
 * @returns the tuner; replace it with {@linkcode setMatmulTuner}.
 */
export function matmulTuner(gpu: Gpu): MatmulTuner {
  let t = tuners.get(gpu);
  if (!t) {
    t = new MatmulTuner({ adapter: gpu.info.description, cacheDir: defaultCacheDir() });
    tuners.set(gpu, t);
  }
  return t;
}

/** Replaces the variant chooser of `gpu` (e.g. a tuner without the table, to tune anew). */
export function setMatmulTuner(gpu: Gpu, tuner: MatmulTuner): void {
  tuners.set(gpu, tuner);
}

/**
 * The variant for `s`: as given; for at most `SMALL_ROWS` output rows the small-row tile (its
 * texture form on CPU adapters); else from the tuner (timing candidates on scratch tensors).
 */
async function chooseVariant(gpu: Gpu, s: MatmulSpec): Promise<MatmulVariant> {
  if (s.variant) return s.variant;
  if (s.I <= SMALL_ROWS) {
    return gpu.info.isFallbackAdapter ? SMALL_ROWS_TEX_VARIANT : SMALL_ROWS_VARIANT;
  }
  const key = matmulTuneKey(s.pattern, s.I, s.J, s.R, s.precision ?? "f32");
  let scratch: Tensor[] | undefined;
  const { variant } = await matmulTuner(gpu).choose(key, async (v) => {
    try {
      // Scratch operands of the same shapes (the real ones may be accumulated into).
      scratch ??= [
        createTensor(gpu, [s.splits * s.I * s.J], "matmul.tune.out"),
        createTensor(gpu, [s.I * s.R], "matmul.tune.a"),
        createTensor(gpu, [s.R * s.J], "matmul.tune.b"),
        createTensor(gpu, [s.J], "matmul.tune.bias"),
      ];
      const [out, a, b, bias] = scratch;
      const d = await planVariant(gpu, { ...s, out, a, b, bias: s.bias ? bias : undefined }, v);
      return (await timeOps(gpu, [d], { samples: 3 })).ms;
    } catch {
      return Infinity; // a variant this adapter cannot run
    }
  });
  for (const t of scratch ?? []) t.buffer.destroy();
  return variant;
}

/**
 * Where a texture variant cannot run (the f16 flavour, or operands taller than the adapter's
 * largest texture), the workgroup-memory tile that was the CPU adapter's choice before it (the
 * small-row tile for small products).
 */
const TEX_FALLBACK = MATMUL_CANDIDATES["128x128_t16x16_k8"];

/** The texture format of an operand read as vec4 (`vec`) or one element at a time. */
function operandFormat(vec: boolean): "rgba32float" | "r32float" {
  return vec ? "rgba32float" : "r32float";
}

/** Whether both operands of `s` fit flat textures (see `flatTexture` in `kernel.ts`). */
function texFits(gpu: Gpu, s: MatmulSpec): boolean {
  const { vecA, vecB } = layoutOf(s);
  return flatTextureFits(gpu, s.a, s.I * s.R, operandFormat(vecA)) &&
    flatTextureFits(gpu, s.b, s.R * s.J, operandFormat(vecB));
}

async function planMatmul(gpu: Gpu, s: MatmulSpec): Promise<Dispatch> {
  checkMatmulPrecision(gpu, s.precision ?? "f32", `Matmul "${s.label}"`);
  let v = await chooseVariant(gpu, s);
  if (v.tex && (s.precision === "f16" || !texFits(gpu, s))) {
    v = s.I <= SMALL_ROWS ? SMALL_ROWS_VARIANT : TEX_FALLBACK;
  }
  const d = await planVariant(gpu, s, v);
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
    textureInputs: [2],
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
    pattern: "forward",
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
    chunk: roundTo(K, SPLIT_ALIGN),
    variant: args.variant,
    precision: args.precision,
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
  return planMatmul(gpu, {
    label: `${dx.label}.linear_backward_input`,
    pattern: "backward_input",
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
    chunk: roundTo(N, SPLIT_ALIGN),
    variant: args.variant,
    precision: args.precision,
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
  const split = weightGradSplit(M, K, N);
  const common = {
    pattern: "backward_weight" as const,
    a: dy,
    b: x,
    I: N,
    J: K,
    R: M,
    aTrans: true,
    bTrans: false,
    splits: split.splits,
    chunk: split.chunk,
    variant: args.variant,
    precision: args.precision,
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
