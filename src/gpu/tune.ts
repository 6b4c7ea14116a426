/**
 * A per-adapter chooser of kernel variants (used for matmul tiles and attention lanes).
 *
 * Order of lookup for a key (a kernel and its shape) on an adapter:
 * 1. what this process already chose;
 * 2. the on-disk cache `<kind>_tune_<adapter>.json` in a cache directory, when one is given
 *    (for the process-wide tuners: the `BST_CACHE_DIR` environment variable, used only when
 *    reading it and writing there are already permitted — never prompts): choices timed on this
 *    very machine win over checked-in ones;
 * 3. a checked-in table for adapters already measured (matched by adapter name): its choice for
 *    the key, else its default;
 * 4. otherwise each candidate is timed once on the GPU and the fastest is kept (and written to
 *    the cache file atomically when there is a cache).
 *
 * With `retune` steps 2 and 3 are skipped: every key is timed anew and the cache rewritten.
 *
 * @module
 */

/** Choices for one measured adapter. */
export interface TuneTableEntry {
  /** Regular expression source matched against the adapter name. */
  adapter: string;
  /** Where and how the choice was measured (for readers). */
  measured: string;
  /** Variant name for every key not listed in `shapes`. */
  default: string;
  /** Variant names per key. */
  shapes?: Record<string, string>;
}

/** Options of {@linkcode VariantTuner}. */
export interface VariantTunerOptions<V> {
  /** What is tuned, e.g. "matmul": names the cache file and error messages. */
  kind: string;
  /** The adapter's name, e.g. "NVIDIA H200". */
  adapter: string;
  /** Directory of the on-disk cache; omitted: in memory only. */
  cacheDir?: string;
  /** Checked-in table. */
  table: readonly TuneTableEntry[];
  /** Candidates to time, by name. */
  candidates: Readonly<Record<string, V>>;
  /** Ignore the cache and the table: time every key at first use (and rewrite the cache). */
  retune?: boolean;
}

/**
 * Options of a tuner for one kind of kernel ({@linkcode VariantTuner} subclasses): the kind is
 * fixed, and the table and candidates default to the kind's own.
 */
export type KindTunerOptions<V> =
  & Omit<VariantTunerOptions<V>, "kind" | "table" | "candidates">
  & Partial<Pick<VariantTunerOptions<V>, "table" | "candidates">>;

/** How a choice was made. */
export type TuneSource = "memory" | "table" | "cache" | "tuned";

/**
 * Picks and remembers a variant per key for one adapter.
 *
 * @example Tuning with a stand-in timer (no GPU needed)
 * ```ts
 * import { VariantTuner } from "./tune.ts";
 * const tuner = new VariantTuner({
 *   kind: "example",
 *   adapter: "Example GPU",
 *   table: [],
 *   candidates: { small: 1, big: 2 },
 * });
 * const { name, source } = await tuner.choose("k", (v) => Promise.resolve(v === 2 ? 1 : 3));
 * console.log(name, source); // big tuned
 * ```
 */
export class VariantTuner<V> {
  readonly kind: string;
  readonly adapter: string;
  readonly cacheDir?: string;
  readonly candidates: Readonly<Record<string, V>>;
  readonly #entry?: TuneTableEntry;
  readonly #retune: boolean;
  readonly #chosen = new Map<string, string>();
  readonly #seen = new Map<string, string>();
  #disk?: Record<string, string>;

  constructor(options: VariantTunerOptions<V>) {
    this.kind = options.kind;
    this.adapter = options.adapter;
    this.cacheDir = options.cacheDir;
    this.candidates = options.candidates;
    this.#retune = options.retune ?? false;
    this.#entry = options.table.find((e) => new RegExp(e.adapter).test(options.adapter));
  }

  /** Path of this adapter's cache file, or undefined without a cache directory. */
  get cacheFile(): string | undefined {
    if (!this.cacheDir) return undefined;
    const safe = this.adapter.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100);
    return `${this.cacheDir}/${this.kind}_tune_${safe}.json`;
  }

  /**
   * The variant for `key`: from memory, the table, the cache file, or by timing every
   * candidate with `measure` (ms; lower wins, ties to the first candidate).
   *
   * @param key names the kernel and shape.
   * @param measure times one candidate on the real shape.
   * @returns the variant, its name and where the choice came from.
   */
  async choose(
    key: string,
    measure: (v: V, name: string) => Promise<number>,
  ): Promise<{ variant: V; name: string; source: TuneSource }> {
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
    if (!best) throw new Error(`Cannot tune ${this.kind} ${key}: no candidate could be timed`);
    this.#chosen.set(key, best);
    this.#seen.set(key, `${best} (tuned)`);
    await this.#save(key, best);
    return { variant: this.candidates[best], name: best, source: "tuned" };
  }

  /** Every key asked for so far with its variant and where the choice came from. */
  choices(): Record<string, string> {
    return Object.fromEntries(this.#seen);
  }

  #known(key: string): { variant: V; name: string; source: TuneSource } | undefined {
    const pick = (name: string | undefined, source: TuneSource) => {
      const variant = name === undefined ? undefined : this.candidates[name];
      return variant !== undefined ? { variant, name: name!, source } : undefined;
    };
    const chosen = pick(this.#chosen.get(key), "memory");
    if (chosen || this.#retune) return chosen;
    return pick(this.#load()[key], "cache") ??
      pick(this.#entry?.shapes?.[key] ?? this.#entry?.default, "table");
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
        `warning: cannot write the ${this.kind} tuning cache "${file}": ` +
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
