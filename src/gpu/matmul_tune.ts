/**
 * Choice of the matmul variant (tile shape) per adapter and shape.
 *
 * Order of lookup for a (pattern, I, J, R) product on an adapter:
 * 1. what this process already chose;
 * 2. the on-disk cache `matmul_tune_<adapter>.json` in a cache directory, when one is given
 *    (for the process-wide tuner: the `BST_CACHE_DIR` environment variable, used only when
 *    reading it and writing there are already permitted — never prompts): choices timed on this
 *    very machine win over checked-in ones;
 * 3. the checked-in table {@linkcode MATMUL_TABLE} for adapters already measured (matched by
 *    adapter name): its choice for the shape, else its default;
 * 4. otherwise each candidate of {@linkcode MATMUL_CANDIDATES} is timed once on the GPU and the
 *    fastest is kept (and written to the cache file atomically when there is a cache).
 *
 * With `retune` (`deno task bench --retune`) steps 2 and 3 are skipped: every shape is timed
 * anew and the cache rewritten, e.g. to try new candidates on an adapter the table lists.
 *
 * Which variant runs never changes the numbers: every variant sums each output over r in
 * increasing order with one fused multiply-add per term, and the split-K of the weight gradient
 * depends on the shapes only, so results are bit-identical whatever the tuner picks. The same
 * holds for the f16 flavour (its f16 groups of 8 products are aligned in the reduction,
 * whatever the tile), which is tuned under its own keys (`…:f16`): a variant's speed differs
 * between the two.
 *
 * @module
 */

import type { MatmulVariant } from "./matmul_wgsl.ts";
import { type KindTunerOptions, type TuneTableEntry, VariantTuner } from "./tune.ts";

export { defaultCacheDir, type TuneSource } from "./tune.ts";

/** The three Linear patterns: forward `x·Wᵀ`, input gradient `dy·W`, weight gradient `dyᵀ·x`. */
export type MatmulPattern = "forward" | "backward_input" | "backward_weight";

/**
 * Precision of a matmul's products: `"f32"`, or `"f16"` (f16 inputs, f16 sums of 8 products,
 * f32 totals; see `matmul_wgsl.ts`). The two are tuned separately.
 */
export type MatmulPrecision = "f32" | "f16";

/** Variants the tuner tries, by name (`variantName()` of `matmul_wgsl.ts`). */
export const MATMUL_CANDIDATES: Readonly<Record<string, MatmulVariant>> = Object.freeze({
  // 128 x 128 tiles, 8 x 8 outputs per invocation: the large-GPU kernel (31.8 TFLOP/s on an
  // H200 at the encoder's shapes).
  "128x128_t8x8_k8": { wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 8 },
  "128x64_t8x4_k8": { wgX: 16, wgY: 16, tm: 8, tn: 4, bk: 8 },
  "64x128_t4x8_k8": { wgX: 16, wgY: 16, tm: 4, tn: 8, bk: 8 },
  // 64 x 64 tiles: more workgroups for mid-sized products.
  "64x64_t4x4_k16": { wgX: 16, wgY: 16, tm: 4, tn: 4, bk: 16 },
  "64x64_t8x8_k16": { wgX: 8, wgY: 8, tm: 8, tn: 8, bk: 16 },
  // 32 x 32 tiles: small products (few output tiles).
  "32x32_t4x4_k16": { wgX: 8, wgY: 8, tm: 4, tn: 4, bk: 16 },
  // Longer reduction tiles: with f16 tiles (2 bytes per element) 128 x 128 x 32 fits 16 KiB of
  // workgroup memory; in f32 the k16 one just fits and the k32 one needs a 32 KiB limit.
  "128x128_t8x8_k16": { wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 16 },
  "128x128_t8x8_k32": { wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 32 },
  // Register prefetch: the next tile's global loads overlap this tile's products.
  "128x128_t8x8_k8_p": { wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 8, prefetch: true },
  "128x128_t8x8_k16_p": { wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 16, prefetch: true },
  "64x64_t8x8_k16_p": { wgX: 8, wgY: 8, tm: 8, tn: 8, bk: 16, prefetch: true },
  // 16 x 16 outputs per invocation: too many registers for a GPU, but on a CPU adapter
  // (lavapipe) the per-k loads from workgroup memory dominate, and this tile needs the fewest
  // per multiply-add.
  "128x128_t16x16_k8": { wgX: 8, wgY: 8, tm: 16, tn: 16, bk: 8 },
  // Operands read from textures, no workgroup memory (matmul_tex_wgsl.ts): for CPU adapters,
  // where every storage or workgroup load is a per-lane loop and texture loads are not.
  "128x64_t16x8_tex": { wgX: 8, wgY: 8, tm: 16, tn: 8, bk: 4, tex: true },
});

/**
 * The variant for products of at most {@linkcode SMALL_ROWS} output rows (one token per row in
 * incremental decoding), taken without tuning: tiles of 4 × 64 outputs, so a single row does
 * not pay for a 128-row tile. Like every variant, it gives the same numbers.
 */
export const SMALL_ROWS_VARIANT: Readonly<MatmulVariant> = Object.freeze({
  wgX: 16,
  wgY: 1,
  tm: 4,
  tn: 4,
  bk: 16,
});

/**
 * {@linkcode SMALL_ROWS_VARIANT}'s tile with its operands read from textures
 * (`matmul_tex_wgsl.ts`), for CPU adapters: there a decoding step's small products cost mostly
 * loads from storage buffers, each a loop over the SIMD lanes (the text head's gate/up product
 * of one pair, 1 × 128 × 768, took 1.7 ms). The same numbers as every variant.
 */
export const SMALL_ROWS_TEX_VARIANT: Readonly<MatmulVariant> = Object.freeze({
  wgX: 16,
  wgY: 1,
  tm: 4,
  tn: 4,
  bk: 4,
  tex: true,
});

/** Output rows up to which {@linkcode SMALL_ROWS_VARIANT} runs. */
export const SMALL_ROWS = 4;

/** Choices for one measured adapter (variant names per {@linkcode matmulTuneKey}). */
export type MatmulTableEntry = TuneTableEntry;

/**
 * Checked-in choices for adapters already measured. On a CPU adapter tuning at first use would
 * cost seconds per shape, so its choice is measured once and written here.
 */
export const MATMUL_TABLE: readonly MatmulTableEntry[] = Object.freeze([
  {
    adapter: "^llvmpipe",
    // Texture operands (matmul_tex_wgsl.ts), 2026-11-27, at the text head's shapes (3328 x 1000 x
    // 64 forward / input grad / weight grad, ms): 128x64_t16x8_tex 39 / 34 / 34 (with A's loads
    // shared over subgroups 33 / 28 / 27) against 128x128_t16x16_k8 161 / 292 / 295; other
    // texture tiles (8x8, 4x8, 16x16, 32x8 outputs per invocation; 4x4, 16x4 invocations) were
    // slower. Among workgroup-memory tiles (512^3 forward, GFLOP per CPU-second):
    // 128x128_t16x16_k8 1.41, 64x64_t16x16 1.03-1.14, 128x128_t8x8_k8 0.79, 64x64_t8x8_k16
    // 0.75-0.80, 64x64_t4x8 0.51, 64x64_t4x4_k16 0.38-0.40.
    measured: "Mesa lavapipe, LLVM 15.0.6, 256-bit vectors, 2 cores (2026-11-27)",
    default: "128x64_t16x8_tex",
  },
  {
    adapter: "^NVIDIA H200",
    // Tuned at first use by `deno task bench --profile paper --batch 256 --retune` (f32, and with
    // `--precision 16-mixed` the f16 keys), GPU timestamps, one sample of each candidate per
    // shape: the paper step's products. The default is the variant picked most often.
    measured: "NVIDIA H200 over Vulkan, Deno 2.9.6 (2026-11-27)",
    default: "64x64_t8x8_k16",
    shapes: {
      "backward_input:17664x2048x768": "128x128_t8x8_k16_p",
      "backward_input:17664x768x2304": "128x128_t8x8_k16_p",
      "backward_input:17664x768x4096": "128x128_t8x8_k16_p",
      "backward_input:17664x768x768": "128x128_t8x8_k16_p",
      "backward_input:3584x1536x8192": "128x128_t8x8_k16_p",
      "backward_input:3584x4096x1536": "128x128_t8x8_k16_p",
      "backward_input:7168x768x56": "128x64_t8x4_k8",
      "backward_weight:1536x4096x3584": "64x64_t8x8_k16",
      "backward_weight:2304x768x17664": "64x64_t8x8_k16",
      "backward_weight:4096x768x17664": "64x64_t8x8_k16",
      "backward_weight:56x768x7168": "64x64_t4x4_k16",
      "backward_weight:768x2048x17664": "64x64_t4x4_k16",
      "backward_weight:768x768x17664": "32x32_t4x4_k16",
      "backward_weight:8192x1536x3584": "64x64_t8x8_k16",
      "forward:17664x2304x768": "64x64_t8x8_k16",
      "forward:17664x4096x768": "128x128_t8x8_k16",
      "forward:17664x768x2048": "64x64_t8x8_k16",
      "forward:17664x768x768": "128x128_t8x8_k16_p",
      "forward:3584x1536x4096": "64x64_t8x8_k16",
      "forward:3584x8192x1536": "64x64_t8x8_k16",
      "forward:7168x56x768": "64x64_t4x4_k16",
      "backward_input:17664x2048x768:f16": "128x128_t8x8_k32",
      "backward_input:17664x768x2304:f16": "64x64_t8x8_k16",
      "backward_input:17664x768x4096:f16": "64x64_t8x8_k16",
      "backward_input:17664x768x768:f16": "64x64_t8x8_k16",
      "backward_input:3584x1536x8192:f16": "128x128_t8x8_k32",
      "backward_input:3584x4096x1536:f16": "128x128_t8x8_k32",
      "backward_input:7168x768x56:f16": "128x128_t8x8_k8",
      "backward_weight:1536x4096x3584:f16": "128x128_t8x8_k32",
      "backward_weight:2304x768x17664:f16": "128x64_t8x4_k8",
      "backward_weight:4096x768x17664:f16": "64x64_t8x8_k16",
      "backward_weight:56x768x7168:f16": "64x128_t4x8_k8",
      "backward_weight:768x2048x17664:f16": "64x64_t4x4_k16",
      "backward_weight:768x768x17664:f16": "32x32_t4x4_k16",
      "backward_weight:8192x1536x3584:f16": "128x128_t8x8_k32",
      "forward:17664x2304x768:f16": "64x64_t8x8_k16_p",
      "forward:17664x4096x768:f16": "64x64_t8x8_k16_p",
      "forward:17664x768x2048:f16": "64x64_t8x8_k16_p",
      "forward:17664x768x768:f16": "64x64_t8x8_k16_p",
      "forward:3584x1536x4096:f16": "64x64_t8x8_k16_p",
      "forward:3584x8192x1536:f16": "64x64_t8x8_k16_p",
      "forward:7168x56x768:f16": "64x64_t4x4_k16",
    },
  },
]);

/**
 * The cache and table key of a product: `"<pattern>:<I>x<J>x<R>"` for f32, with `":f16"`
 * appended for the f16 flavour (so f16 and f32 choices are kept apart).
 */
export function matmulTuneKey(
  pattern: MatmulPattern,
  I: number,
  J: number,
  R: number,
  precision: MatmulPrecision = "f32",
): string {
  return `${pattern}:${I}x${J}x${R}${precision === "f16" ? ":f16" : ""}`;
}

/** Options of {@linkcode MatmulTuner} (table and candidates default to this module's). */
export type MatmulTunerOptions = KindTunerOptions<MatmulVariant>;

/**
 * Picks and remembers the matmul variant per shape for one adapter (cache file
 * `matmul_tune_<adapter>.json`; the lookup is `tune.ts`'s).
 *
 * @example Tuning with a stand-in timer (no GPU needed)
 * ```ts
 * import { MatmulTuner } from "./matmul_tune.ts";
 * const tuner = new MatmulTuner({ adapter: "Example GPU", table: [] });
 * const { name, source } = await tuner.choose(
 *   "forward:512x512x512",
 *   (_v, name) => Promise.resolve(name === "32x32_t4x4_k16" ? 1 : 2),
 * );
 * console.log(name, source); // 32x32_t4x4_k16 tuned
 * ```
 */
export class MatmulTuner extends VariantTuner<MatmulVariant> {
  constructor(options: MatmulTunerOptions) {
    super({
      ...options,
      kind: "matmul",
      table: options.table ?? MATMUL_TABLE,
      candidates: options.candidates ?? MATMUL_CANDIDATES,
    });
  }
}
