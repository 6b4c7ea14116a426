/**
 * The valid range of every numeric config key, and the checks between keys, so that a
 * mistaken value stops at load time with one line naming the key and its source instead of
 * failing deep in GPU planning, wrapping a token id or silently training zero steps.
 *
 * Counts are at least 1, rates at least 0, fractions within [0, 1], ids within int32. Keys
 * that the reference (microsoft/BST `defaults.yaml`, `core_train.py`) gives a special
 * meaning below 1 keep it: `trainer.val_batches: -1` validates on the whole set,
 * `trainer.save_recovery_checkpoint` and `trainer.garbage_collect` of -1 or 0 are off,
 * `data.tokenizer_eos_id: -1` means none, `model.bst_pair_maximum_gap <= 0` means the block
 * size. Every other integer key must fit in int32 (`seed` in uint32).
 *
 * `load.ts` runs {@link checkRanges} on every layer (defaults, config file, each override, a
 * checkpoint's stored config) and {@link checkConsistency} on the merged config.
 *
 * @module
 */

import {
  type Config,
  CONFIG_SECTIONS,
  ConfigError,
  type PartialConfig,
  showValue,
} from "./schema.ts";

const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);

/** A range: the test and how an error states it (after `must be`). */
interface Range {
  ok: (x: number) => boolean;
  text: string;
}

const atLeast = (min: number, what?: string): Range => ({
  ok: (x) => x >= min && x <= INT32_MAX,
  text: what === undefined ? `from ${min} to ${INT32_MAX}` : `${what}, at most ${INT32_MAX}`,
});
const nonNegative = (): Range => ({ ok: (x) => x >= 0, text: "0 or more" });
const fraction = (): Range => ({ ok: (x) => x >= 0 && x <= 1, text: "within [0, 1]" });
const belowOne = (): Range => ({ ok: (x) => x >= 0 && x < 1, text: "within [0, 1)" });

/** Ranges by dotted key; integer list keys apply the range to every item. */
const RANGES: Readonly<Record<string, Range>> = {
  seed: { ok: (x) => x >= 0 && x <= 2 ** 32 - 1, text: `within [0, ${2 ** 32 - 1}]` },
  "trainer.train_batches": atLeast(1),
  "trainer.val_batches": {
    ok: (x) => x === -1 || (x >= 1 && x <= INT32_MAX),
    text: `-1 (the whole validation set) or from 1 to ${INT32_MAX}`,
  },
  "trainer.log_interval": atLeast(1),
  "trainer.val_interval": atLeast(1),
  "trainer.save_recovery_checkpoint": atLeast(-1, "-1 or 0 (off) or a step count"),
  "trainer.keep_checkpoint_steps": atLeast(1, "a list of steps of 1 or more"),
  "trainer.garbage_collect": atLeast(-1, "-1 or 0 (off) or a step count"),
  "data.effective_batch_size": atLeast(1),
  "data.gradient_accum_steps": atLeast(1),
  "data.pair_batch_size": atLeast(1),
  "data.num_workers": atLeast(0),
  "data.goal_range": atLeast(1, "a pair of token counts of 1 or more"),
  "data.tokenizer_eos_id": atLeast(-1, "-1 (none) or a token id"),
  // The vocabulary is max_nodes + 6 tokens, and token ids are int32.
  "data.stargraph_max_nodes": {
    ok: (x) => x >= 1 && x <= INT32_MAX - 6,
    text: `from 1 to ${INT32_MAX - 6} (the vocabulary, max_nodes + 6, must fit in int32)`,
  },
  "data.pair_accum_steps": atLeast(1),
  "model.n_layer": atLeast(1),
  "model.n_head": atLeast(1),
  "model.n_embd": atLeast(1),
  "model.dropout": belowOne(),
  "model.vocab_size": atLeast(0, "0 (set from the data) or more"),
  "model.block_size": atLeast(1),
  "model.context_length": atLeast(0),
  "model.bst_pair_minimum_gap": atLeast(1),
  "model.bst_pair_maximum_gap": {
    ok: (x) => x >= INT32_MIN && x <= INT32_MAX,
    text: "an int32 (<= 0 means block_size)",
  },
  "model.bst_pair_subsample_rate": fraction(),
  "optimizer.learning_rate": nonNegative(),
  "optimizer.weight_decay": nonNegative(),
  "optimizer.beta1": belowOne(),
  "optimizer.beta2": belowOne(),
  "optimizer.grad_clip": {
    ok: (x) => x > 0,
    text: "greater than 0, or null for no clipping (0 would zero every gradient)",
  },
  "lr_scheduler.warmup_iters": atLeast(0),
  "lr_scheduler.lr_decay_iters": atLeast(0),
  "lr_scheduler.min_lr": nonNegative(),
};

/**
 * What is wrong with one key's value, if anything: the range, for numeric keys (a list's
 * items, a data file's weight). Other keys and `null` always pass.
 *
 * @param key The dotted key, e.g. `trainer.train_batches`.
 * @param value The value after type checking.
 * @returns `undefined` when valid, else the text after `must be`, e.g. `from 1 to 2147483647`.
 *
 * @example
 * ```ts
 * import { rangeProblem } from "./ranges.ts";
 * console.log(rangeProblem("trainer.train_batches", 5000)); // undefined
 * console.log(rangeProblem("trainer.train_batches", -1)); // from 1 to 2147483647
 * console.log(rangeProblem("trainer.val_batches", -1)); // undefined
 * ```
 */
export function rangeProblem(key: string, value: unknown): string | undefined {
  if (key === "data.pretokenized_train_data" || key === "data.pretokenized_val_data") {
    if (!Array.isArray(value)) return undefined;
    for (const item of value) {
      if (Array.isArray(item) && typeof item[1] === "number" && !(item[1] >= 0)) {
        return "a list of files whose [file, weight] weights are 0 or more";
      }
    }
    return undefined;
  }
  if (!Object.hasOwn(RANGES, key)) return undefined;
  const range = RANGES[key];
  const numbers = Array.isArray(value) ? value : [value];
  for (const x of numbers) {
    if (typeof x === "number" && !range.ok(x)) return range.text;
  }
  if (key === "data.goal_range" && Array.isArray(value) && value[0] > value[1]) {
    return "[low, high] with low <= high";
  }
  return undefined;
}

/**
 * Checks the range of every numeric key of a validated config layer.
 *
 * @param layer A config or config layer from `validateConfig` / `validatePartialConfig`.
 * @param source Where it came from, for the error.
 * @returns `layer`, unchanged.
 * @throws {ConfigError} `Config key "K" must be …, got V (from SOURCE)` for the first value
 * out of range.
 *
 * @example
 * ```ts
 * import { checkRanges } from "./ranges.ts";
 * try {
 *   checkRanges({ trainer: { train_batches: -1 } }, 'override "trainer.train_batches=-1"');
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // Config key "trainer.train_batches" must be from 1 to 2147483647, got -1 (from override …)
 * }
 * ```
 */
export function checkRanges<T extends PartialConfig>(layer: T, source: string): T {
  const tree = layer as Record<string, unknown>;
  const keys: [string, unknown][] = [];
  for (const [top, value] of Object.entries(tree)) {
    if ((CONFIG_SECTIONS as readonly string[]).includes(top)) {
      for (const [field, v] of Object.entries(value as Record<string, unknown>)) {
        keys.push([`${top}.${field}`, v]);
      }
    } else {
      keys.push([top, value]);
    }
  }
  for (const [key, v] of keys) {
    const problem = rangeProblem(key, v);
    if (problem !== undefined) {
      throw new ConfigError(
        `Config key "${key}" must be ${problem}, got ${showValue(v)} (from ${source})`,
      );
    }
  }
  return layer;
}

/**
 * Checks between keys of a complete config: the micro-batch divides the batch, heads divide
 * the width (into an even head size), ids fit the vocabulary.
 *
 * @param config A complete config whose layers passed {@link checkRanges}.
 * @param source Where it came from, for the error.
 * @returns `config`, unchanged.
 * @throws {ConfigError} Naming the key at fault and `source`.
 *
 * @example
 * ```ts ignore
 * import { checkConsistency } from "./ranges.ts";
 * checkConsistency(config, "config/defaults.yaml + overrides");
 * // Config key "model.n_embd" (100) must be divisible by model.n_head (8) (from …)
 * ```
 */
export function checkConsistency(config: Config, source: string): Config {
  const problem = consistencyProblem(config);
  if (problem !== undefined) {
    throw new ConfigError(`Config key "${problem.key}" ${problem.message} (from ${source})`);
  }
  return config;
}

function consistencyProblem(
  config: Config,
): { key: string; message: string } | undefined {
  const d = config.data;
  const m = config.model;
  if (d.effective_batch_size % d.gradient_accum_steps !== 0) {
    return {
      key: "data.gradient_accum_steps",
      message: `(${d.gradient_accum_steps}) must divide data.effective_batch_size ` +
        `(${d.effective_batch_size})`,
    };
  }
  if (m.n_embd % m.n_head !== 0) {
    return {
      key: "model.n_embd",
      message: `(${m.n_embd}) must be divisible by model.n_head (${m.n_head})`,
    };
  }
  if ((m.n_embd / m.n_head) % 2 !== 0) {
    return {
      key: "model.n_embd",
      message: `(${m.n_embd}) / model.n_head (${m.n_head}) must be even: RoPE rotates pairs`,
    };
  }
  const maxGap = m.bst_pair_maximum_gap;
  if (config.use_bst && maxGap > 0 && maxGap < m.bst_pair_minimum_gap) {
    return {
      key: "model.bst_pair_maximum_gap",
      message: `(${maxGap}) must be <= 0 (the block size) or at least ` +
        `model.bst_pair_minimum_gap (${m.bst_pair_minimum_gap})`,
    };
  }
  // Star-graph runs take the vocabulary from the data, the others from the config.
  if (d.dataset !== "stargraph" && m.vocab_size < 1) {
    return {
      key: "model.vocab_size",
      message: `(${m.vocab_size}) must be at least 1 for data.dataset "${d.dataset}"`,
    };
  }
  if (d.dataset === "pretokenized" && d.tokenizer_eos_id >= m.vocab_size) {
    return {
      key: "data.tokenizer_eos_id",
      message: `(${d.tokenizer_eos_id}) must be below model.vocab_size (${m.vocab_size})`,
    };
  }
  return undefined;
}
