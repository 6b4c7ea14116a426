/**
 * WGSL generator for the register-resident matmul used by the Linear layers.
 *
 * Why generated: a per-invocation tile of accumulators only stays in registers when every
 * index into it is a compile-time constant. WGSL compilers do not unroll loops, and `override`
 * constants do not make loop bounds compile-time, so a `for (t < TM) acc[t] += …` loop moves the
 * accumulators to slow memory (measured on an NVIDIA H200: 2.3 TFLOP/s with runtime indices,
 * 31.8 TFLOP/s with the loops written out). This module writes those loops out: the accumulators
 * are plain `vec4<f32>` variables (`acc_<row>_<vec4 column>`), so nothing is ever indexed at run
 * time except workgroup and storage memory.
 *
 * The kernel computes C (I, J) = A (I, R) · B (R, J) in f32 for the three Linear patterns
 * (PyTorch layout W (N, K); x (M, K); dy (M, N)):
 *
 * | pattern          | C            | A                      | B                     |
 * | ---------------- | ------------ | ---------------------- | --------------------- |
 * | forward          | out = x·Wᵀ   | x (M, K)               | W stored (N, K): bTrans |
 * | backward input   | dx = dy·W    | dy (M, N)              | W (N, K)              |
 * | backward weight  | dw += dyᵀ·x  | dy stored (M, N): aTrans | x (M, K)            |
 *
 * Element (i, r) of A is `a[i * R + r]`, or `a[r * I + i]` with `aTrans`; element (r, j) of B is
 * `b[r * J + j]`, or `b[j * R + r]` with `bTrans`.
 *
 * Every output is one invocation's sum over r in increasing order (per split-K chunk), with no
 * atomics, so results are bit-identical from run to run for a given variant.
 *
 * **f16 flavour** (`layout.f16`, for `trainer.precision=16-mixed`; needs the `shader-f16`
 * feature): operands are still read as f32 from storage, rounded to f16 (round to nearest
 * even) when staged in workgroup memory (`array<vec4<f16>, …>`: half the bytes, so a larger BK
 * fits), and multiplied in f16. Products are summed in groups of {@linkcode F16_GROUP}
 * consecutive r in f16 registers (`part_<row>_<c>`, one f16 fused multiply-add per term, in
 * increasing r), and each group's f16 sum is added to the f32 accumulator: short f16 partial
 * sums, f32 totals. The groups are aligned to multiples of 8 in r whatever the variant (every
 * BK and every split-K chunk is a multiple of 8), so the f16 results are bit-identical across
 * variants too. Values beyond f16's range (±65504) become ±Infinity when rounded (IEEE
 * conversion, as Vulkan drivers do), which dynamic loss scaling detects downstream.
 *
 * @module
 */

/** Products summed in f16 before each f32 accumulation in the f16 flavour. */
export const F16_GROUP = 8;

/** One tile shape of the generated matmul. */
export interface MatmulVariant {
  /** Invocations along the output columns (J). */
  wgX: number;
  /** Invocations along the output rows (I). */
  wgY: number;
  /** Output rows per invocation: 4, 8 or 16. */
  tm: number;
  /** Output columns per invocation: 4, 8 or 16. */
  tn: number;
  /** Reduction length per workgroup-memory tile: a multiple of 4, at most 32. */
  bk: number;
  /**
   * Register prefetch (double buffering through registers): the next tile's global loads are
   * issued before the current tile's products, so their latency overlaps the arithmetic.
   * Default false: load, stage, then compute.
   */
  prefetch?: boolean;
  /**
   * Read A and B from textures instead of staging them in workgroup memory (the kernel of
   * `matmul_tex_wgsl.ts`, for CPU adapters; f32 only; `bk` is unused). Default false.
   */
  tex?: boolean;
}

/** Storage orders and vector widths of one generated kernel. */
export interface MatmulLayout {
  /** A is stored (R, I) instead of (I, R). */
  aTrans: boolean;
  /** B is stored (J, R) instead of (R, J). */
  bTrans: boolean;
  /**
   * Load A with vec4 reads: needs I % 4 == 0 with `aTrans`, else R % 4 == 0 (and a split-K
   * chunk that is a multiple of 4).
   */
  vecA: boolean;
  /** Load B with vec4 reads: needs J % 4 == 0 without `bTrans`, else R % 4 == 0. */
  vecB: boolean;
  /** Read and write C (and the bias) as vec4: needs J % 4 == 0. */
  vecC: boolean;
  /** Declare the bias binding (4) and add `bias[j]` when flags bit 1 is set. */
  bias: boolean;
  /**
   * f16 inputs: stage tiles as f16 and sum groups of {@linkcode F16_GROUP} products in f16
   * before adding them to the f32 accumulators (needs `shader-f16`). Default false: all f32.
   */
  f16?: boolean;
}

/** Output rows of one workgroup tile. */
export function variantRows(v: MatmulVariant): number {
  return v.wgY * v.tm;
}

/** Output columns of one workgroup tile. */
export function variantCols(v: MatmulVariant): number {
  return v.wgX * v.tn;
}

/** A short stable name such as `"128x128_t8x8_k8"` (tile rows x cols, per invocation, BK). */
export function variantName(v: MatmulVariant): string {
  const tile = `${variantRows(v)}x${variantCols(v)}_t${v.tm}x${v.tn}`;
  return v.tex ? `${tile}_tex` : `${tile}_k${v.bk}${v.prefetch ? "_p" : ""}`;
}

/**
 * Checks a variant and throws one line naming the problem.
 *
 * @param v the variant.
 * @param maxInvocations the adapter's `maxComputeInvocationsPerWorkgroup` (default 256).
 * @param maxWorkgroupBytes the adapter's `maxComputeWorkgroupStorageSize` (default 16384).
 * @param f16 the f16 flavour: tiles take 2 bytes per element, and bk must be a multiple of
 *   {@linkcode F16_GROUP}.
 * @throws Error when a field is out of range or the tile does not fit the limits.
 *
 * @example
 * ```ts
 * import { checkVariant } from "./matmul_wgsl.ts";
 * checkVariant({ wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 8 }); // fine: 128 x 128 tiles
 * ```
 */
export function checkVariant(
  v: MatmulVariant,
  maxInvocations = 256,
  maxWorkgroupBytes = 16384,
  f16 = false,
): void {
  const ints = [v.wgX, v.wgY, v.tm, v.tn, v.bk].every((x) => Number.isInteger(x) && x > 0);
  const problem = !ints
    ? "fields must be positive integers"
    : ![4, 8, 16].includes(v.tm) || ![4, 8, 16].includes(v.tn)
    ? "tm and tn must be 4, 8 or 16"
    : v.bk % 4 !== 0 || v.bk > 32
    ? "bk must be a multiple of 4, at most 32"
    : v.tex && (f16 || v.prefetch)
    ? "texture variants are f32 only, without prefetch"
    : f16 && v.bk % F16_GROUP !== 0
    ? `bk must be a multiple of ${F16_GROUP} for f16`
    : v.wgX * v.wgY > maxInvocations
    ? `wgX * wgY exceeds ${maxInvocations} invocations`
    : !v.tex && (variantRows(v) + variantCols(v)) * v.bk * (f16 ? 2 : 4) > maxWorkgroupBytes
    ? `the tiles need more than ${maxWorkgroupBytes} bytes of workgroup memory`
    : "";
  if (problem) throw new Error(`Invalid matmul variant ${JSON.stringify(v)}: ${problem}`);
}

/** `n` numbers 0..n-1. */
function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

const LANES = ["x", "y", "z", "w"];

/**
 * Generates the WGSL of one matmul kernel (entry point `main`).
 *
 * Bindings: 0 uniform `Params { I, J, R, chunk, flags }`; 1 `out` (S, I, J) read-write;
 * 2 `a`; 3 `b`; 4 `bias` (J), declared only with `layout.bias` and read only when flags bit 1
 * is set. Flags bit 0 accumulates
 * (`out += result`). Split s of the reduction sums r in `[s * chunk, min(R, (s + 1) * chunk))`
 * and writes `out[s * I * J + i * J + j]`; dispatch `(ceil(J / BN), ceil(I / BM), S)`.
 *
 * @param v the tile shape (see {@linkcode checkVariant}).
 * @param layout storage orders and vector widths.
 * @returns WGSL source with a header comment describing the variant.
 *
 * @example
 * ```ts
 * import { matmulWgsl } from "./matmul_wgsl.ts";
 * const code = matmulWgsl(
 *   { wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 8 },
 *   { aTrans: false, bTrans: true, vecA: true, vecB: true, vecC: true, bias: true },
 * );
 * console.log(code.includes("acc_7_1")); // true: 8 rows x 2 vec4 columns per invocation
 * ```
 */
export function matmulWgsl(v: MatmulVariant, layout: MatmulLayout): string {
  const f16 = layout.f16 ?? false;
  checkVariant(v, Infinity, Infinity, f16);
  const { wgX, wgY, tm, tn, bk } = v;
  const BM = variantRows(v);
  const BN = variantCols(v);
  const BM4 = BM / 4;
  const BN4 = BN / 4;
  const NT = wgX * wgY;
  const q4 = tm / 4; // vec4 row groups per invocation
  const c4 = tn / 4; // vec4 column groups per invocation
  const { aTrans, bTrans, vecA, vecB, vecC } = layout;
  const L: string[] = [];
  const emit = (s = "") => L.push(s);

  if (f16) emit(`enable f16;`);
  emit(
    `// Generated by src/gpu/matmul_wgsl.ts: register-resident ${
      f16 ? "f16-input (f32 totals)" : "f32"
    } matmul, variant ${variantName(v)}.`,
  );
  emit(
    `// C (I, J) = A (I, R) · B (R, J); A stored ${aTrans ? "(R, I)" : "(I, R)"}, B stored ` +
      `${bTrans ? "(J, R)" : "(R, J)"};`,
  );
  emit(
    `// loads: A ${vecA ? "vec4" : "scalar"}, B ${vecB ? "vec4" : "scalar"}, C ` +
      `${vecC ? "vec4" : "scalar"}.`,
  );
  emit(`// Workgroup (x, y, s) computes the ${BM} x ${BN} tile at rows y*${BM}, columns x*${BN}`);
  emit(`// of split s. Invocation (tx, ty) of ${wgX} x ${wgY} owns rows (q*${wgY} + ty)*4 + m`);
  emit(`// (q < ${q4}, m < 4) and vec4 columns c*${wgX} + tx (c < ${c4}); its accumulators are`);
  emit(`// the variables acc_<row>_<c>, indexed only by constants so they stay in registers.`);
  emit(`// Each output is one invocation's sum over r in increasing order: deterministic.`);
  if (f16) {
    emit(`// f16: tiles are rounded to f16 on staging; products of ${F16_GROUP} consecutive r are`);
    emit(`// summed in f16 (part_<row>_<c>), then added to the f32 accumulators.`);
  }
  emit(`// Edge tiles are zero-padded on load and masked on store. Flags: bit 0 accumulate,`);
  emit(`// bit 1 add bias[j].`);
  emit();
  emit(`struct Params { I: u32, J: u32, R: u32, chunk: u32, flags: u32 }`);
  emit();
  emit(`@group(0) @binding(0) var<uniform> p: Params;`);
  emit(
    `@group(0) @binding(1) var<storage, read_write> out: array<${vecC ? "vec4<f32>" : "f32"}>;`,
  );
  emit(`@group(0) @binding(2) var<storage, read> a: array<${vecA ? "vec4<f32>" : "f32"}>;`);
  emit(`@group(0) @binding(3) var<storage, read> b: array<${vecB ? "vec4<f32>" : "f32"}>;`);
  if (layout.bias) {
    emit(`@group(0) @binding(4) var<storage, read> bias: array<${vecC ? "vec4<f32>" : "f32"}>;`);
  }
  emit();
  emit(
    `// As[k * ${BM4} + i / 4][i % 4] = A(i0 + i, r0 + k); Bs[k * ${BN4} + j / 4][j % 4] = ` +
      `B(r0 + k, j0 + j).`,
  );
  const tile = f16 ? "vec4<f16>" : "vec4<f32>";
  emit(`var<workgroup> As: array<${tile}, ${bk * BM4}>;`);
  emit(`var<workgroup> Bs: array<${tile}, ${bk * BN4}>;`);
  emit();
  emit(`@compute @workgroup_size(${wgX}, ${wgY})`);
  emit(
    `fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) ` +
      `lid: vec3<u32>,`,
  );
  emit(`        @builtin(local_invocation_index) li: u32) {`);
  emit(`  let i0 = wid.y * ${BM}u;`);
  emit(`  let j0 = wid.x * ${BN}u;`);
  emit(`  let r_begin = wid.z * p.chunk;`);
  emit(`  let r_end = min(p.R, r_begin + p.chunk);`);
  emit(`  let tx = lid.x;`);
  emit(`  let ty = lid.y;`);
  for (const t of range(tm)) {
    emit(`  ${range(c4).map((c) => `var acc_${t}_${c} = vec4<f32>(0.0);`).join(" ")}`);
  }
  const loadA = tileLoad("A", BM, bk, NT, aTrans, vecA, f16);
  const loadB = tileLoad("B", BN, bk, NT, !bTrans, vecB, f16);
  for (const d of [...loadA.decls, ...loadB.decls]) emit(`  ${d}`);
  if (v.prefetch) {
    // The first tile's loads; each iteration stages the registers, then loads the next tile
    // while the products of this one run.
    for (const l of [...loadA.fetch("r_begin"), ...loadB.fetch("r_begin")]) emit(`  ${l}`);
  }
  emit(`  for (var r0 = r_begin; r0 < r_end; r0 += ${bk}u) {`);
  if (!v.prefetch) {
    for (const l of [...loadA.fetch("r0"), ...loadB.fetch("r0")]) emit(`    ${l}`);
  }
  for (const l of [...loadA.stash, ...loadB.stash]) emit(`    ${l}`);
  emit(`    workgroupBarrier();`);
  if (v.prefetch) {
    emit(`    let r_next = r0 + ${bk}u;`);
    for (const l of [...loadA.fetch("r_next"), ...loadB.fetch("r_next")]) emit(`    ${l}`);
  }
  if (f16) {
    emitF16Products(emit, v);
  } else {
    emit(`    for (var k = 0u; k < ${bk}u; k++) {`);
    for (const q of range(q4)) emit(`      let a${q} = As[k * ${BM4}u + ${q * wgY}u + ty];`);
    for (const c of range(c4)) emit(`      let b${c} = Bs[k * ${BN4}u + ${c * wgX}u + tx];`);
    for (const q of range(q4)) {
      for (const m of range(4)) {
        const t = q * 4 + m;
        for (const c of range(c4)) {
          emit(`      acc_${t}_${c} = fma(vec4<f32>(a${q}.${LANES[m]}), b${c}, acc_${t}_${c});`);
        }
      }
    }
    emit(`    }`);
  }
  emit(`    workgroupBarrier();`);
  emit(`  }`);
  emit(`  let accumulate = (p.flags & 1u) != 0u;`);
  emit(`  let with_bias = (p.flags & 2u) != 0u;`);
  emit(`  let base = wid.z * p.I * p.J;`);
  for (const q of range(q4)) {
    for (const m of range(4)) {
      const t = q * 4 + m;
      emit(`  {`);
      emit(`    let i = i0 + ${q * wgY * 4 + m}u + ty * 4u;`);
      emit(`    if (i < p.I) {`);
      for (const c of range(c4)) {
        emit(
          `      store(base + i * p.J, j0 + ${c * wgX * 4}u + tx * 4u, acc_${t}_${c}, ` +
            `accumulate, with_bias);`,
        );
      }
      emit(`    }`);
      emit(`  }`);
    }
  }
  emit(`}`);
  emit();
  for (const l of storeWgsl(layout)) emit(l);
  return L.join("\n") + "\n";
}

type Emit = (s?: string) => void;

/**
 * The WGSL lines of the `store` helper both matmul generators end with: writes (or, with
 * `accumulate`, adds to) the outputs at columns j..j+3 of one row that exist, adding `bias[j]`
 * first with `with_bias`.
 */
export function storeWgsl(layout: { vecC: boolean; bias: boolean }): string[] {
  const L: string[] = [];
  const emit = (s: string) => L.push(s);
  emit(`// Writes (or adds) the 4 outputs of row offset 'row' at columns j..j+3 that exist.`);
  emit(`fn store(row: u32, j: u32, v: vec4<f32>, accumulate: bool, with_bias: bool) {`);
  if (layout.vecC) {
    emit(`  if (j >= p.J) { return; }`);
    emit(`  var x = v;`);
    if (layout.bias) emit(`  if (with_bias) { x += bias[j / 4u]; }`);
    emit(`  let idx = (row + j) / 4u;`);
    emit(`  if (accumulate) { x = out[idx] + x; }`);
    emit(`  out[idx] = x;`);
  } else {
    for (const m of range(4)) {
      emit(`  if (j + ${m}u < p.J) {`);
      emit(`    var x = v.${LANES[m]};`);
      if (layout.bias) emit(`    if (with_bias) { x += bias[j + ${m}u]; }`);
      emit(`    let idx = row + j + ${m}u;`);
      emit(`    if (accumulate) { x = out[idx] + x; }`);
      emit(`    out[idx] = x;`);
      emit(`  }`);
    }
  }
  emit(`}`);
  return L;
}

/**
 * Emits the f16 inner loops over one staged tile: for each group of {@linkcode F16_GROUP} k,
 * fresh f16 partial sums `part_<row>_<c>` take one f16 fused multiply-add per k in increasing
 * order, then are added to the f32 accumulators `acc_<row>_<c>`.
 */
function emitF16Products(emit: Emit, v: MatmulVariant): void {
  const { wgX, wgY, tm, tn, bk } = v;
  const BM4 = variantRows(v) / 4;
  const BN4 = variantCols(v) / 4;
  const q4 = tm / 4;
  const c4 = tn / 4;
  emit(`    for (var g = 0u; g < ${bk}u; g += ${F16_GROUP}u) {`);
  for (const t of range(tm)) {
    emit(`      ${range(c4).map((c) => `var part_${t}_${c} = vec4<f16>(0.0h);`).join(" ")}`);
  }
  // A constant trip count, so the compiler may unroll the group.
  emit(`      for (var kk = 0u; kk < ${F16_GROUP}u; kk++) {`);
  emit(`        let k = g + kk;`);
  for (const q of range(q4)) emit(`        let a${q} = As[k * ${BM4}u + ${q * wgY}u + ty];`);
  for (const c of range(c4)) emit(`        let b${c} = Bs[k * ${BN4}u + ${c * wgX}u + tx];`);
  for (const q of range(q4)) {
    for (const m of range(4)) {
      const t = q * 4 + m;
      for (const c of range(c4)) {
        emit(
          `        part_${t}_${c} = fma(vec4<f16>(a${q}.${LANES[m]}), b${c}, part_${t}_${c});`,
        );
      }
    }
  }
  emit(`      }`);
  for (const t of range(tm)) {
    emit(
      `      ${range(c4).map((c) => `acc_${t}_${c} += vec4<f32>(part_${t}_${c});`).join(" ")}`,
    );
  }
  emit(`    }`);
}

/** The WGSL that stores the f32 vec4 `expr` into a tile: rounded to f16 in the f16 flavour. */
function tileVec(expr: string, f16: boolean): string {
  return f16 ? `vec4<f16>(${expr})` : expr;
}

/** Global-to-register loads of one operand tile and their staging in workgroup memory. */
interface TileLoad {
  /** Declarations of the registers (function scope). */
  decls: string[];
  /** Loads of the tile starting at reduction index `r` (an expression) into the registers. */
  fetch: (r: string) => string[];
  /** Stores of the registers into the workgroup tile. */
  stash: string[];
}

/**
 * Plans the loads of one operand's BM x BK tile (A: rows i, or B: columns j — the same code
 * with the roles of the names swapped) and its staging in workgroup memory, k-major
 * (`S[k * BM4 + i / 4][i % 4]` = element (i, r0 + k)). The tile's E load elements are spread
 * over the NT invocations in a constant number of slots (element li + s·NT in slot s), so the
 * registers holding them are named variables: `<x><slot>_<m>` (x = "pa" or "pb").
 *
 * `kMajor` says the operand is stored with the reduction index major, i.e. element (i, r) at
 * `r * I + i` (A with `aTrans`, B without `bTrans`): a vec4 then holds 4 consecutive i and is
 * copied straight. Otherwise a vec4 holds 4 consecutive r: 4 of them (4 i) are transposed in
 * registers. Out-of-range elements load as zeros; `f16` rounds on staging.
 */
function tileLoad(
  which: "A" | "B",
  BM: number,
  bk: number,
  NT: number,
  kMajor: boolean,
  vec: boolean,
  f16: boolean,
): TileLoad {
  const [src, tile, I, i0, x] = which === "A"
    ? ["a", "As", "p.I", "i0", "pa"]
    : ["b", "Bs", "p.J", "j0", "pb"];
  const BM4 = BM / 4;
  const bk4 = bk / 4;
  const mode = vec ? (kMajor ? "straight" : "transpose") : "scalar";
  const E = mode === "straight" ? bk * BM4 : mode === "transpose" ? BM4 * bk4 : BM * bk;
  const slots = Math.ceil(E / NT);
  const perSlot = mode === "transpose" ? 4 : 1;
  const type = mode === "scalar" ? "f32" : "vec4<f32>";
  const zero = mode === "scalar" ? "0.0" : "vec4<f32>(0.0)";
  const reg = (s: number, m: number) => `${x}${s}_${m}`;
  const decls = range(slots).flatMap((s) =>
    range(perSlot).map((m) => `var ${reg(s, m)}: ${type} = ${zero};`)
  );
  // Element e = li + s * NT exists when e < E; the guard is dropped when every slot is full.
  const guard = (s: number) => (s + 1) * NT <= E ? "true" : `li + ${s * NT}u < ${E}u`;
  const coords = (s: number): string[] => {
    const e = `(li + ${s * NT}u)`;
    if (mode === "straight") return [`let k = ${e} / ${BM4}u;`, `let i4 = ${e} % ${BM4}u;`];
    if (mode === "transpose") return [`let i4 = ${e} / ${bk4}u;`, `let k4 = ${e} % ${bk4}u;`];
    return kMajor
      ? [`let k = ${e} / ${BM}u;`, `let i = ${e} % ${BM}u;`]
      : [`let i = ${e} / ${bk}u;`, `let k = ${e} % ${bk}u;`];
  };
  const fetch = (r: string): string[] => {
    const out: string[] = [];
    for (const s of range(slots)) {
      out.push(`{`);
      for (const c of coords(s)) out.push(`  ${c}`);
      if (mode === "straight") {
        out.push(`  let i = ${i0} + i4 * 4u;`);
        out.push(`  let rr = ${r} + k;`);
        out.push(`  ${reg(s, 0)} = vec4<f32>(0.0);`);
        out.push(
          `  if (${guard(s)} && i < ${I} && rr < r_end) { ${reg(s, 0)} = ` +
            `${src}[(rr * ${I} + i) / 4u]; }`,
        );
      } else if (mode === "transpose") {
        out.push(`  let rr = ${r} + k4 * 4u;`);
        out.push(`  let ok = ${guard(s)} && rr < r_end;`);
        for (const m of range(4)) {
          out.push(`  ${reg(s, m)} = vec4<f32>(0.0);`);
          out.push(
            `  if (ok && ${i0} + i4 * 4u + ${m}u < ${I}) { ${reg(s, m)} = ` +
              `${src}[((${i0} + i4 * 4u + ${m}u) * p.R + rr) / 4u]; }`,
          );
        }
      } else {
        const at = kMajor ? `(${r} + k) * ${I} + ${i0} + i` : `(${i0} + i) * p.R + ${r} + k`;
        out.push(`  ${reg(s, 0)} = 0.0;`);
        out.push(
          `  if (${guard(s)} && ${i0} + i < ${I} && ${r} + k < r_end) { ${reg(s, 0)} = ` +
            `${src}[${at}]; }`,
        );
      }
      out.push(`}`);
    }
    return out;
  };
  const stash: string[] = [];
  for (const s of range(slots)) {
    const g = guard(s);
    stash.push(g === "true" ? `{` : `if (${g}) {`);
    for (const c of coords(s)) stash.push(`  ${c}`);
    if (mode === "straight") {
      stash.push(`  ${tile}[k * ${BM4}u + i4] = ${tileVec(reg(s, 0), f16)};`);
    } else if (mode === "transpose") {
      for (const m of range(4)) {
        const l = LANES[m];
        const row = range(4).map((q) => `${reg(s, q)}.${l}`).join(", ");
        stash.push(
          `  ${tile}[(k4 * 4u + ${m}u) * ${BM4}u + i4] = ${tileVec(`vec4<f32>(${row})`, f16)};`,
        );
      }
    } else {
      stash.push(
        `  ${tile}[k * ${BM4}u + i / 4u][i % 4u] = ${f16 ? `f16(${reg(s, 0)})` : reg(s, 0)};`,
      );
    }
    stash.push(`}`);
  }
  return { decls, fetch, stash };
}
