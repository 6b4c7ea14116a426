/**
 * Choice of the matmul variant (tile shape) per adapter and shape.
 *
 * Order of lookup for a (pattern, I, J, R) product on an adapter:
 * 1. what this process already chose;
 * 2. the checked-in table {@linkcode MATMUL_TABLE} for adapters already measured (matched by
 *    adapter name);
 * 3. the on-disk cache `matmul_tune_<adapter>.json` in a cache directory, when one is given
 *    (for the process-wide tuner: the `BST_CACHE_DIR` environment variable, used only when
 *    reading it and writing there are already permitted — never prompts);
 * 4. otherwise each candidate of {@linkcode MATMUL_CANDIDATES} is timed once on the GPU and the
 *    fastest is kept (and written to the cache file atomically when there is a cache).
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
  // 16 x 16 outputs per invocation: too many registers for a GPU, but on a CPU adapter
  // (lavapipe) the per-k loads from workgroup memory dominate, and this tile needs the fewest
  // per multiply-add.
  "128x128_t16x16_k8": { wgX: 8, wgY: 8, tm: 16, tn: 16, bk: 8 },
});

/** Choices for one measured adapter. */
export interface MatmulTableEntry {
  /** Regular expression source matched against the adapter name. */
  adapter: string;
  /** Where and how the choice was measured (for readers). */
  measured: string;
  /** Variant name for every shape not listed in `shapes`. */
  default: string;
  /** Variant names per {@linkcode matmulTuneKey}. */
  shapes?: Record<string, string>;
}

/**
 * Checked-in choices for adapters already measured. On a CPU adapter tuning at first use would
 * cost seconds per shape, so its choice is measured once and written here.
 */
export const MATMUL_TABLE: readonly MatmulTableEntry[] = Object.freeze([
  {
    adapter: "^llvmpipe",
    // 512^3 forward, GFLOP per CPU-second of the process (the machine was shared, so wall
    // times were noisy): 128x128_t16x16_k8 1.41, 64x64_t16x16 1.03-1.14, 128x128_t8x8_k8 0.79,
    // 64x64_t8x8_k16 0.75-0.80, 64x64_t4x8 0.51, 64x64_t4x4_k16 0.38-0.40.
    measured: "Mesa lavapipe, LLVM 15.0.6, 256-bit vectors, 2 cores (2026-11-27)",
    default: "128x128_t16x16_k8",
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

/** Options of {@linkcode MatmulTuner}. */
export interface MatmulTunerOptions {
  /** The adapter's name, e.g. "NVIDIA H200". */
  adapter: string;
  /** Directory of the on-disk cache; omitted: in memory only. */
  cacheDir?: string;
  /** Checked-in table; default {@linkcode MATMUL_TABLE}. */
  table?: readonly MatmulTableEntry[];
  /** Candidates to time; default {@linkcode MATMUL_CANDIDATES}. */
  candidates?: Readonly<Record<string, MatmulVariant>>;
}

/** How a choice was made. */
export type TuneSource = "memory" | "table" | "cache" | "tuned";

/**
 * Picks and remembers the matmul variant per shape for one adapter.
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
export class MatmulTuner {
  readonly adapter: string;
  readonly cacheDir?: string;
  readonly candidates: Readonly<Record<string, MatmulVariant>>;
  readonly #entry?: MatmulTableEntry;
  readonly #chosen = new Map<string, string>();
  readonly #seen = new Map<string, string>();
  #disk?: Record<string, string>;

  constructor(options: MatmulTunerOptions) {
    this.adapter = options.adapter;
    this.cacheDir = options.cacheDir;
    this.candidates = options.candidates ?? MATMUL_CANDIDATES;
    this.#entry = (options.table ?? MATMUL_TABLE).find((e) =>
      new RegExp(e.adapter).test(options.adapter)
    );
  }

  /** Path of this adapter's cache file, or undefined without a cache directory. */
  get cacheFile(): string | undefined {
    if (!this.cacheDir) return undefined;
    const safe = this.adapter.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100);
    return `${this.cacheDir}/matmul_tune_${safe}.json`;
  }

  /**
   * The variant for `key`: from memory, the table, the cache file, or by timing every
   * candidate with `measure` (ms; lower wins, ties to the first candidate).
   *
   * @param key from {@linkcode matmulTuneKey}.
   * @param measure times one candidate on the real shape.
   * @returns the variant, its name and where the choice came from.
   */
  async choose(
    key: string,
    measure: (v: MatmulVariant, name: string) => Promise<number>,
  ): Promise<{ variant: MatmulVariant; name: string; source: TuneSource }> {
    const known = this.#known(key);
    if (known) {
      if (!this.#seen.has(key)) this.#seen.set(key, `${known.name} (${known.source})`);
      return known;
    }
    let best = "";
    let bestMs = Infinity;
    for (const [name, v] of Object.entries(this.candidates)) {
      const ms = await measure(v, name);
      if (ms < bestMs) [best, bestMs] = [name, ms];
    }
    if (!best) throw new Error(`Cannot tune matmul ${key}: no candidate could be timed`);
    this.#chosen.set(key, best);
    this.#seen.set(key, `${best} (tuned)`);
    await this.#save(key, best);
    return { variant: this.candidates[best], name: best, source: "tuned" };
  }

  /** Every key asked for so far with its variant and where the choice came from. */
  choices(): Record<string, string> {
    return Object.fromEntries(this.#seen);
  }

  #known(key: string): { variant: MatmulVariant; name: string; source: TuneSource } | undefined {
    const pick = (name: string | undefined, source: TuneSource) => {
      const variant = name === undefined ? undefined : this.candidates[name];
      return variant ? { variant, name: name!, source } : undefined;
    };
    return pick(this.#chosen.get(key), "memory") ??
      pick(this.#entry?.shapes?.[key] ?? this.#entry?.default, "table") ??
      pick(this.#load()[key], "cache");
  }

  #load(): Record<string, string> {
    if (this.#disk) return this.#disk;
    this.#disk = {};
    const file = this.cacheFile;
    if (!file) return this.#disk;
    try {
      const data = JSON.parse(Deno.readTextFileSync(file));
      if (data && typeof data === "object" && data.adapter === this.adapter) {
        for (const [k, v] of Object.entries(data.choices ?? {})) {
          if (typeof v === "string") this.#disk[k] = v;
        }
      }
    } catch {
      // No cache yet, or an unreadable one: tune again and overwrite it.
    }
    return this.#disk;
  }

  async #save(key: string, name: string): Promise<void> {
    const file = this.cacheFile;
    const disk = this.#load();
    disk[key] = name;
    if (!file) return;
    const tmp = `${file}.${Deno.pid}.tmp`;
    try {
      await Deno.mkdir(this.cacheDir!, { recursive: true });
      const body = { adapter: this.adapter, choices: disk };
      await Deno.writeTextFile(tmp, JSON.stringify(body, null, 1) + "\n");
      await Deno.rename(tmp, file);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      console.error(
        `warning: cannot write the matmul tuning cache "${file}": ` +
          `${(e as Error).message}`,
      );
    }
  }
}

/**
 * The cache directory of the process-wide tuner: `BST_CACHE_DIR` when reading that variable
 * and writing to its value are both already granted (checked without prompting), else none.
 */
export function defaultCacheDir(): string | undefined {
  if (typeof Deno === "undefined") return undefined;
  const env = Deno.permissions.querySync({ name: "env", variable: "BST_CACHE_DIR" });
  if (env.state !== "granted") return undefined;
  const dir = Deno.env.get("BST_CACHE_DIR");
  if (!dir) return undefined;
  const write = Deno.permissions.querySync({ name: "write", path: dir });
  return write.state === "granted" ? dir : undefined;
}
