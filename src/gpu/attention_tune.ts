/**
 * Choice of the attention variant (rows per workgroup, lanes per row) per adapter, pass and
 * shape, with the same lookup as the matmul tuner (`tune.ts`): this process's choices, the
 * cache file `attention_tune_<adapter>.json` in `BST_CACHE_DIR`, the checked-in
 * {@linkcode ATTENTION_TABLE}, else every candidate of {@linkcode ATTENTION_CANDIDATES} timed
 * once on the real shape.
 *
 * The three passes (forward, backward dq, backward dk/dv) are separate dispatches that share
 * only tensors, so each is tuned on its own. Keys bucket T to the next power of two (at least
 * 32), so inference at many lengths does not retune at each.
 *
 * Unlike matmul variants, attention variants with different lane counts sum each dot product in
 * a different order (see `attention_wgsl.ts`): results may differ in the last bits between
 * adapters or tuning outcomes, but one variant is bit-identical from run to run (and the
 * subgroup form of a variant adds the same partials in the same order as its workgroup-memory
 * form).
 *
 * @module
 */

import { type KindTunerOptions, type TuneTableEntry, VariantTuner } from "./tune.ts";

/** One attention kernel variant. */
export interface AttentionVariant {
  /** Rows (queries, or keys in the dk/dv pass) per workgroup. */
  rows: number;
  /** Invocations per row, splitting the head dimension: 1, 2, 4 or 8. */
  lanes: number;
  /**
   * Exchange the lanes' partial dot products by subgroup shuffles instead of workgroup memory
   * (lanes > 1; only where the device has `subgroups`, else the variant cannot be planned).
   */
  subgroups?: boolean;
  /**
   * Read streamed rows from flat textures, no workgroup tiles (lanes 1; head dims that are
   * multiples of 4, else the planner runs the staged twin): for CPU adapters.
   */
  tex?: boolean;
}

/** The three attention passes. */
export type AttentionPass = "forward" | "backward_dq" | "backward_dkv";

/**
 * The name of a variant: `r<rows>_l<lanes>`, with `_sg` for subgroup shuffles.
 *
 * @param v the variant.
 * @returns its name, as in {@linkcode ATTENTION_CANDIDATES} and the tuning cache.
 *
 * @example
 * ```ts
 * import { attentionVariantName } from "./attention_tune.ts";
 * console.log(attentionVariantName({ rows: 64, lanes: 4, subgroups: true })); // r64_l4_sg
 * ```
 */
export function attentionVariantName(v: AttentionVariant): string {
  return `r${v.rows}_l${v.lanes}${v.subgroups ? "_sg" : ""}${v.tex ? "_tex" : ""}`;
}

/** Variants the tuner tries, by name ({@linkcode attentionVariantName}). */
export const ATTENTION_CANDIDATES: Readonly<Record<string, AttentionVariant>> = Object.freeze(
  Object.fromEntries(
    [
      // One invocation per row: the whole head row in registers (fits for small D).
      { rows: 32, lanes: 1 },
      { rows: 64, lanes: 1 },
      { rows: 32, lanes: 2 },
      { rows: 64, lanes: 2 },
      // Split rows: D = 96 keeps 6 (lanes 4) or 3 (lanes 8) vec4 per row vector.
      { rows: 16, lanes: 4 },
      { rows: 32, lanes: 4 },
      { rows: 64, lanes: 4 },
      { rows: 16, lanes: 8 },
      { rows: 32, lanes: 8 },
      // The same exchange by subgroup shuffles: no barrier and less workgroup memory (bigger
      // tiles). Skipped by the tuner on devices without subgroups.
      { rows: 32, lanes: 4, subgroups: true },
      { rows: 64, lanes: 4, subgroups: true },
      { rows: 32, lanes: 8, subgroups: true },
      // Streamed rows read from textures instead of workgroup tiles: for CPU adapters, where
      // workgroup and storage loads are loops over the SIMD lanes and texture loads are not.
      { rows: 32, lanes: 1, tex: true },
    ].map((v: AttentionVariant) => [attentionVariantName(v), v]),
  ),
);

/**
 * Checked-in choices for adapters already measured. On a CPU adapter tuning at first use would
 * cost seconds, so its choice is measured once and written here.
 */
export const ATTENTION_TABLE: readonly TuneTableEntry[] = Object.freeze([
  {
    adapter: "^llvmpipe",
    // Forward + both backward passes at B=8 H=8 T=69 D=96, ms (GPU timestamps; the machine
    // was shared, so absolute times were noisy, the order was not): r32_l1 1068, r64_l1 1128,
    // r32_l2 2063, r32_l4 2163, r32_l4_sg 2184, r64_l2 2316, r64_l4 2340, r32_l8_sg 2395,
    // r16_l4 2432, r64_l4_sg 2531, r32_l8 3152, r16_l8 3278. On a CPU the vector units run
    // invocations side by side and registers are not scarce: one invocation per row wins.
    // Reading the streamed rows from textures instead of workgroup tiles (r32_l1_tex, same
    // sums) then took the tinystories_cpu step's three passes from 286 to 59 ms (B16 H4 T64 D16).
    measured: "Mesa lavapipe, LLVM 15.0.6, 256-bit vectors, 2 cores (2026-11-27)",
    default: "r32_l1_tex",
  },
  {
    adapter: "^NVIDIA H200",
    // Tuned at first use by `deno task bench --profile paper --batch 256 --retune` and a paper
    // training run (GPU timestamps): D = 96 at T = 69 (bucket 128) and the validation's short
    // rows (bucket 32). The default, for other shapes, splits rows over 4 lanes without
    // subgroups, so it plans on any device.
    measured: "NVIDIA H200 over Vulkan, Deno 2.9.6 (2026-11-27)",
    default: "r32_l4",
    shapes: {
      "backward_dkv:D96xT128": "r32_l8_sg",
      "backward_dkv:D96xT32": "r32_l8_sg",
      "backward_dq:D96xT128": "r32_l8_sg",
      "backward_dq:D96xT32": "r64_l1",
      "forward:D96xT128": "r64_l4_sg",
      "forward:D96xT32": "r32_l8",
    },
  },
]);

/**
 * The cache and table key of a pass: `"<pass>:D<D>xT<bucket>"`, T rounded up to 2^k ≥ 32.
 *
 * @param pass which of the three kernels.
 * @param D head dimension.
 * @param T sequence length.
 * @returns the key.
 *
 * @example
 * ```ts
 * import { attentionTuneKey } from "./attention_tune.ts";
 * console.log(attentionTuneKey("backward_dkv", 96, 69)); // backward_dkv:D96xT128
 * ```
 */
export function attentionTuneKey(pass: AttentionPass, D: number, T: number): string {
  let bucket = 32;
  while (bucket < T) bucket *= 2;
  return `${pass}:D${D}xT${bucket}`;
}

/** Options of {@linkcode AttentionTuner} (table and candidates default to this module's). */
export type AttentionTunerOptions = KindTunerOptions<AttentionVariant>;

/**
 * Picks and remembers the attention variant per pass and shape for one adapter.
 *
 * @example Tuning with a stand-in timer (no GPU needed)
 * ```ts
 * import { AttentionTuner, attentionTuneKey } from "./attention_tune.ts";
 * const tuner = new AttentionTuner({ adapter: "Example GPU", table: [] });
 * const { name } = await tuner.choose(
 *   attentionTuneKey("backward_dkv", 96, 69),
 *   (v) => Promise.resolve(v.lanes === 4 && v.rows === 64 ? 1 : 2),
 * );
 * console.log(name); // r64_l4
 * ```
 */
export class AttentionTuner extends VariantTuner<AttentionVariant> {
  constructor(options: AttentionTunerOptions) {
    super({
      ...options,
      kind: "attention",
      table: options.table ?? ATTENTION_TABLE,
      candidates: options.candidates ?? ATTENTION_CANDIDATES,
    });
  }
}
