/**
 * The run configuration: the typed {@link Config}, a table ({@link CONFIG_KEYS}) giving every
 * key's type and one line of documentation, and validation that turns a parsed YAML tree into
 * a `Config` or throws one line naming the dotted key and where it came from.
 *
 * Keys and defaults follow microsoft/BST `defaults.yaml` (OmegaConf), plus a top-level `seed`.
 * Unlike OmegaConf, unknown keys and wrong types are errors. This module is npm-free; reading
 * YAML files and `key=value` overrides lives in `load.ts`, outside the `mod.ts` graph.
 *
 * @module
 */

import { SAMPLING_MODES, type SamplingMode } from "../core/sampling_modes.ts";

export type { SamplingMode };

/** Data modules of the reference `train.py` (`data.dataset`). */
export type DatasetName = "stargraph" | "tinystories" | "pretokenized";

/** How a run starts (`trainer.init_from`). */
export type InitFrom = "scratch" | "resume";

/**
 * Numeric precision of training (`trainer.precision`, Lightning's names): `32-true` runs
 * everything in f32; `16-mixed` runs the Linear layers' matmuls with f16 inputs and dynamic
 * loss scaling, everything else in f32; `bf16-mixed` is accepted for the reference's configs
 * and runs as `16-mixed` (WGSL has no bf16).
 */
export type Precision = "32-true" | "16-mixed" | "bf16-mixed";

/** GPT training objective (`model.gpt_mode`). */
export type GptMode = "next_token" | "fim";

/** What BST pairs with gap 1 predict (`model.bst_single_gap_prediction_mode`). */
export type SingleGapPredictionMode = "eos" | "next_token";

/** A pretokenized data file: a file name (weight 1) or a `[file, weight]` pair. */
export type DataFile = string | [file: string, weight: number];

/** `trainer.*`: loop length, validation, checkpoints, logging. See {@link CONFIG_KEYS}. */
export interface TrainerConfig {
  train_batches: number;
  val_batches: number;
  val_only: boolean;
  log_interval: number;
  val_interval: number;
  save_last_checkpoint: boolean;
  save_best_checkpoint: boolean;
  always_save_checkpoint: boolean;
  save_recovery_checkpoint: number;
  keep_checkpoint_steps: number[];
  out_dir: string;
  init_from: InitFrom;
  log_to_file: boolean;
  log_to_wandb: boolean;
  wandb_project: string;
  compile: boolean;
  use_fused_kernels: boolean;
  garbage_collect: number;
  print_samples: boolean;
  sampling_mode: SamplingMode;
  precision: Precision;
  wandb_log?: boolean;
}

/** `data.*`: data set, batch sizes, data files. See {@link CONFIG_KEYS}. */
export interface DataConfig {
  dataset: DatasetName;
  effective_batch_size: number;
  gradient_accum_steps: number;
  pair_batch_size: number;
  num_workers: number;
  goal_range: [number, number];
  tinystories_path: string;
  tinystories_val_path: string;
  pretokenized_data_path: string;
  pretokenized_train_data: DataFile[];
  pretokenized_val_data: DataFile[];
  tokenizer_name_or_path: string | null;
  tokenizer_eos_id: number;
  stargraph_data_path: string;
  stargraph_max_nodes: number;
  pair_accum_steps?: number;
}

/** `model.*`: model shape and BST pair options. See {@link CONFIG_KEYS}. */
export interface ModelConfig {
  n_layer: number;
  n_head: number;
  n_embd: number;
  dropout: number;
  bias: boolean;
  vocab_size: number;
  block_size: number;
  context_length: number;
  bst_pair_minimum_gap: number;
  bst_pair_maximum_gap: number;
  bst_pair_subsample_rate: number;
  bst_single_gap_prediction_mode: SingleGapPredictionMode;
  gpt_mode: GptMode;
}

/** `optimizer.*`: AdamW and gradient clipping. See {@link CONFIG_KEYS}. */
export interface OptimizerConfig {
  learning_rate: number;
  weight_decay: number;
  beta1: number;
  beta2: number;
  grad_clip: number | null;
}

/** `lr_scheduler.*`: warmup and cosine decay. See {@link CONFIG_KEYS}. */
export interface LrSchedulerConfig {
  decay_lr: boolean;
  warmup_iters: number;
  lr_decay_iters: number;
  min_lr: number;
}

/**
 * A complete, validated run configuration (`defaults.yaml` ← config file ← overrides). Field
 * names are the reference's YAML keys; {@link CONFIG_KEYS} documents each one.
 */
export interface Config {
  use_bst: boolean;
  seed: number;
  trainer: TrainerConfig;
  data: DataConfig;
  model: ModelConfig;
  optimizer: OptimizerConfig;
  lr_scheduler: LrSchedulerConfig;
}

/** A config layer (a config file or one override): any subset of the keys of {@link Config}. */
export interface PartialConfig {
  use_bst?: boolean;
  seed?: number;
  trainer?: Partial<TrainerConfig>;
  data?: Partial<DataConfig>;
  model?: Partial<ModelConfig>;
  optimizer?: Partial<OptimizerConfig>;
  lr_scheduler?: Partial<LrSchedulerConfig>;
}

/** The names of the nested sections of {@link Config}, in file order. */
export const CONFIG_SECTIONS = ["trainer", "data", "model", "optimizer", "lr_scheduler"] as const;

/** A nested section of {@link Config}. */
export type ConfigSection = typeof CONFIG_SECTIONS[number];

/** Every dotted config key: `"use_bst"`, `"seed"`, `"trainer.train_batches"`, …. */
export type ConfigKey =
  | "use_bst"
  | "seed"
  | { [S in ConfigSection]: `${S}.${keyof Config[S] & string}` }[ConfigSection];

/**
 * Value types of config keys:
 * - `int`: a YAML integer (`6`); a float literal such as `6.0` is rejected.
 * - `float`: any finite number; integers are accepted (`1` means 1.0), as in OmegaConf.
 * - `float|null`, `string|null`: the type or `null`.
 * - `enum`: one of the strings in `values`.
 * - `int[]`: a list of integers; `int_pair`: a list of exactly two integers.
 * - `data_files`: a list whose items are file names or `[file, weight]` pairs.
 */
export type ConfigValueType =
  | "int"
  | "float"
  | "float|null"
  | "bool"
  | "string"
  | "string|null"
  | "enum"
  | "int[]"
  | "int_pair"
  | "data_files";

/** The type and documentation of one config key. */
export interface ConfigKeySpec {
  /** Value type; see {@link ConfigValueType}. */
  readonly type: ConfigValueType;
  /** Allowed values when `type` is `enum`. */
  readonly values?: readonly string[];
  /** One line of documentation. */
  readonly doc: string;
  /** Not in `defaults.yaml` and may be absent (extra keys the reference config files carry). */
  readonly optional?: boolean;
  /** Accepted for compatibility with the PyTorch reference; has no effect here. */
  readonly noEffect?: boolean;
}

type ValueAt<K extends ConfigKey> = K extends `${infer S extends ConfigSection}.${infer F}`
  ? F extends keyof Config[S] ? Exclude<Config[S][F], undefined> : never
  : K extends keyof Config ? Config[K]
  : never;

type TypeFor<V> = [V] extends [boolean] ? "bool"
  : [V] extends [number] ? "int" | "float"
  : [V] extends [number | null] ? "float|null"
  : [V] extends [[number, number]] ? "int_pair"
  : [V] extends [number[]] ? "int[]"
  : [V] extends [DataFile[]] ? "data_files"
  : [V] extends [string] ? (string extends V ? "string" : "enum")
  : [V] extends [string | null] ? "string|null"
  : never;

type SpecFor<V> = TypeFor<V> extends "enum"
  ? ConfigKeySpec & { readonly type: "enum"; readonly values: readonly V[] }
  : ConfigKeySpec & { readonly type: TypeFor<V> };

const NO_EFFECT = "PyTorch only, accepted for compatibility: no effect here";

/**
 * Every config key with its type and documentation, in `defaults.yaml` order (the order
 * {@link validateConfig} returns and `configToYaml` writes). The type system checks that this
 * table and {@link Config} name the same keys with matching types.
 */
export const CONFIG_KEYS: { readonly [K in ConfigKey]: SpecFor<ValueAt<K>> } = {
  use_bst: { type: "bool", doc: "Train a BST if true, otherwise a GPT" },
  seed: {
    type: "int",
    doc: "Seed for every random choice (initialisation, shuffling, pair subsampling)",
  },

  "trainer.train_batches": { type: "int", doc: "Number of optimizer steps to train" },
  "trainer.val_batches": {
    type: "int",
    doc: "Validation batches of effective_batch_size rows per validation; -1: all full batches",
  },
  "trainer.val_only": { type: "bool", doc: "Only run validation, no training" },
  "trainer.log_interval": {
    type: "int",
    doc: "Log training metrics every N steps (train_loss: the mean over those N steps)",
  },
  "trainer.val_interval": { type: "int", doc: "Validate (and checkpoint) every N steps" },
  "trainer.save_last_checkpoint": {
    type: "bool",
    doc: "Save a checkpoint after the latest validation step",
  },
  "trainer.save_best_checkpoint": {
    type: "bool",
    doc: "Save a checkpoint after the validation step with the lowest loss",
  },
  "trainer.always_save_checkpoint": { type: "bool", doc: "Keep every checkpoint" },
  "trainer.save_recovery_checkpoint": {
    type: "int",
    doc: "Write a recovery checkpoint every N training steps; -1 or 0 disables it",
  },
  "trainer.keep_checkpoint_steps": {
    type: "int[]",
    doc: "Always keep checkpoints at these steps (multiples of val_interval)",
  },
  "trainer.out_dir": { type: "string", doc: "Output directory; each run writes a subdirectory" },
  "trainer.init_from": {
    type: "enum",
    values: ["scratch", "resume"],
    doc: "Start from fresh weights or resume the latest run in out_dir",
  },
  "trainer.log_to_file": { type: "bool", doc: "Write CSV/JSONL metrics under out_dir/<run>/" },
  "trainer.log_to_wandb": {
    type: "bool",
    doc: "Log to Weights & Biases (the reference's wandb logger)",
  },
  "trainer.wandb_project": { type: "string", doc: "Weights & Biases project name" },
  "trainer.compile": { type: "bool", doc: `Compile with torch.compile (${NO_EFFECT})` },
  "trainer.use_fused_kernels": { type: "bool", doc: `Use Liger fused kernels (${NO_EFFECT})` },
  "trainer.garbage_collect": {
    type: "int",
    doc: `Run Python's garbage collector every N steps (${NO_EFFECT})`,
  },
  "trainer.print_samples": {
    type: "bool",
    doc: "Generate and print samples during validation",
  },
  "trainer.sampling_mode": {
    type: "enum",
    values: SAMPLING_MODES,
    doc: "Sampling method for printed samples (GPT supports AR only)",
  },
  "trainer.precision": {
    type: "enum",
    values: ["32-true", "16-mixed", "bf16-mixed"],
    doc: "32-true: all f32; 16-mixed: f16 Linear matmuls with loss scaling (needs shader-f16); " +
      "bf16-mixed runs as 16-mixed",
  },
  "trainer.wandb_log": {
    type: "bool",
    optional: true,
    noEffect: true,
    doc: "Carried by the reference star-graph config but never read; no effect",
  },

  "data.dataset": {
    type: "enum",
    values: ["stargraph", "tinystories", "pretokenized"],
    doc: "Data module to train on",
  },
  "data.effective_batch_size": { type: "int", doc: "Rows per optimizer step" },
  "data.gradient_accum_steps": {
    type: "int",
    doc: "Micro-batches per optimizer step (divides effective_batch_size)",
  },
  "data.pair_batch_size": {
    type: "int",
    doc: "BST pairs per text-head chunk, independent of the other batch sizes",
  },
  "data.num_workers": { type: "int", doc: `Data loader worker processes (${NO_EFFECT})` },
  "data.goal_range": {
    type: "int_pair",
    doc: "TinyStories fill-in-the-middle goal length range [low, high] in tokens",
  },
  "data.tinystories_path": {
    type: "string",
    doc: "TinyStories stories: a .parquet file, a folder of them, or a TinyStoriesV2 .txt; " +
      "empty: download the Hugging Face dataset",
  },
  "data.tinystories_val_path": {
    type: "string",
    doc: "TinyStories validation stories (same kinds); empty with a local tinystories_path: " +
      "its last 1% of stories",
  },
  "data.pretokenized_data_path": {
    type: "string",
    doc: "Directory holding the pretokenized .npy files",
  },
  "data.pretokenized_train_data": {
    type: "data_files",
    doc: "Training files: file names or [file, weight] pairs",
  },
  "data.pretokenized_val_data": {
    type: "data_files",
    doc: "Validation files: file names or [file, weight] pairs",
  },
  "data.tokenizer_name_or_path": {
    type: "string|null",
    doc: "Tokenizer (tokenizer.json path) for pretokenized data; empty or null: none",
  },
  "data.tokenizer_eos_id": {
    type: "int",
    doc: "EOS token id of pretokenized data (must be set, >= 0, for dataset pretokenized)",
  },
  "data.stargraph_data_path": {
    type: "string",
    doc: "Star-graph data file (graph_{paths}_{len}_sample_{N}.txt)",
  },
  "data.stargraph_max_nodes": { type: "int", doc: "Largest node id in the star-graph data" },
  "data.pair_accum_steps": {
    type: "int",
    optional: true,
    noEffect: true,
    doc: "Carried by the reference star-graph config but never read; no effect",
  },

  "model.n_layer": { type: "int", doc: "Transformer blocks per encoder" },
  "model.n_head": { type: "int", doc: "Attention heads" },
  "model.n_embd": { type: "int", doc: "Embedding width C (divisible by n_head)" },
  "model.dropout": { type: "float", doc: "Dropout probability" },
  "model.bias": {
    type: "bool",
    doc: "LayerNorm and Linear biases if true; RMSNorm and no biases if false",
  },
  "model.vocab_size": {
    type: "int",
    doc: "Vocabulary size; the star-graph data sets it from the data file",
  },
  "model.block_size": {
    type: "int",
    doc: "Row length T the model is trained on; the star-graph data sets it",
  },
  "model.context_length": {
    type: "int",
    doc: "Prefix that forms no pairs (the star-graph description); set by the data",
  },
  "model.bst_pair_minimum_gap": { type: "int", doc: "Smallest gap t_b - t_f of a BST pair" },
  "model.bst_pair_maximum_gap": {
    type: "int",
    doc: "BST pair gaps are below this; <= 0 means block_size",
  },
  "model.bst_pair_subsample_rate": {
    type: "float",
    doc: "Fraction of BST pairs kept (pairs touching EOS always kept); 1.0 keeps all",
  },
  "model.bst_single_gap_prediction_mode": {
    type: "enum",
    values: ["eos", "next_token"],
    doc: "What BST pairs with gap 1 predict: EOS for both heads, or the normal targets",
  },
  "model.gpt_mode": {
    type: "enum",
    values: ["next_token", "fim"],
    doc: "GPT objective: plain next-token, or loss only on fill-in-the-middle spans",
  },

  "optimizer.learning_rate": { type: "float", doc: "Peak learning rate" },
  "optimizer.weight_decay": {
    type: "float",
    doc: "AdamW weight decay on tensors with >= 2 dimensions",
  },
  "optimizer.beta1": { type: "float", doc: "AdamW beta1" },
  "optimizer.beta2": { type: "float", doc: "AdamW beta2" },
  "optimizer.grad_clip": {
    type: "float|null",
    doc: "Per-module gradient norm clip; null disables clipping",
  },

  "lr_scheduler.decay_lr": {
    type: "bool",
    doc: "Warmup then cosine decay if true; constant learning rate if false",
  },
  "lr_scheduler.warmup_iters": { type: "int", doc: "Linear warmup steps" },
  "lr_scheduler.lr_decay_iters": {
    type: "int",
    doc: "Step where the cosine decay reaches min_lr",
  },
  "lr_scheduler.min_lr": { type: "float", doc: "Learning rate after lr_decay_iters" },
};

/**
 * A number written in float notation (`6.0`, `1e3`) whose value is an integer. YAML loaders
 * produce it so that integer keys can reject `6.0` while float keys take its `value`; plain
 * JavaScript numbers cannot tell `6` from `6.0`. Non-integer floats stay plain numbers.
 */
export class FloatLiteral {
  /**
   * @param value The number.
   * @param text The text it was written as, for error messages.
   */
  constructor(readonly value: number, readonly text: string) {}
}

/**
 * An invalid configuration: unknown key, wrong type, unreadable or malformed file. Its
 * message is one line naming the key and where the value came from.
 *
 * @example
 * ```ts
 * import { ConfigError, validatePartialConfig } from "./schema.ts";
 * try {
 *   validatePartialConfig({ trainer: { train_batches: "many" } }, "override");
 * } catch (e) {
 *   console.log(e instanceof ConfigError); // true
 * }
 * ```
 */
export class ConfigError extends Error {
  /** @param message One line naming the key or file. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Checks a complete config tree (every non-optional key present) and returns it as a
 * {@link Config}: values normalised, keys in {@link CONFIG_KEYS} order, input not modified.
 *
 * @param raw Parsed YAML (plain objects, arrays, scalars, {@link FloatLiteral}s).
 * @param source Where `raw` came from, for error messages (a file path or `override a.b=c`).
 * @returns The validated config.
 * @throws {ConfigError} On an unknown key, a wrong type or a missing key, naming the dotted
 * key and `source`.
 *
 * @example
 * ```ts
 * import { validateConfig } from "./schema.ts";
 * try {
 *   validateConfig({ model: { n_embed: 768 } }, "config/foo.yaml");
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // Unknown config key "model.n_embed" in config/foo.yaml (did you mean "model.n_embd"?)
 * }
 * ```
 */
export function validateConfig(raw: unknown, source: string): Config {
  const config = checkTree(raw, source, true) as unknown as Config;
  // The reference's default -1 means "take it from the tokenizer"; here the id must be given
  // (a tokenizer.json alone does not say which token is EOS).
  if (config.data.dataset === "pretokenized" && config.data.tokenizer_eos_id < 0) {
    throw new ConfigError(
      `Config key "data.tokenizer_eos_id" must be set to the EOS id of the pretokenized data ` +
        `(1 for TinyStories) when data.dataset is pretokenized, got ` +
        `${config.data.tokenizer_eos_id} (from ${source})`,
    );
  }
  return config;
}

/**
 * Checks one config layer (a config file or one override): like {@link validateConfig} but
 * keys may be missing.
 *
 * @param raw Parsed YAML.
 * @param source Where `raw` came from, for error messages.
 * @returns The layer with values normalised, keys in {@link CONFIG_KEYS} order.
 * @throws {ConfigError} On an unknown key or a wrong type.
 *
 * @example
 * ```ts
 * import { validatePartialConfig } from "./schema.ts";
 * const layer = validatePartialConfig({ optimizer: { grad_clip: null } }, "override");
 * console.log(layer.optimizer?.grad_clip); // null
 * ```
 */
export function validatePartialConfig(raw: unknown, source: string): PartialConfig {
  return checkTree(raw, source, false) as PartialConfig;
}

/** The model dimensions a data set determines (the reference's `update_config`). */
export interface DataDimensions {
  /** Vocabulary size. */
  vocabSize: number;
  /** Row length. */
  blockSize: number;
  /** Prefix length that forms no pairs (the graph description). */
  contextLength: number;
}

/**
 * Returns a copy of `config` with `model.vocab_size`, `model.block_size` and
 * `model.context_length` set from the star-graph data, as the reference's
 * `StarGraphDataModule.update_config` does. The other data sets leave them as configured.
 *
 * @param config A validated config.
 * @param dims Dimensions read from the data file.
 * @returns The updated copy.
 *
 * @example
 * ```ts
 * import { type Config, deriveStargraph } from "./schema.ts";
 * function fitToData(config: Config): Config {
 *   return deriveStargraph(config, { vocabSize: 52, blockSize: 46, contextLength: 32 });
 * }
 * ```
 */
export function deriveStargraph(config: Config, dims: DataDimensions): Config {
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new ConfigError(`Star-graph ${name} must be a non-negative integer, got ${v}`);
    }
  }
  return {
    ...config,
    model: {
      ...config.model,
      vocab_size: dims.vocabSize,
      block_size: dims.blockSize,
      context_length: dims.contextLength,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Validation internals

type Tree = { [key: string]: unknown };

const SPECS = CONFIG_KEYS as unknown as Record<string, ConfigKeySpec>;
const ALL_KEYS = Object.keys(SPECS);

function isSection(name: string): name is ConfigSection {
  return (CONFIG_SECTIONS as readonly string[]).includes(name);
}

function isMapping(v: unknown): v is Tree {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkTree(raw: unknown, source: string, complete: boolean): Tree {
  if (!isMapping(raw)) {
    throw new ConfigError(`Config from ${source} must be a mapping of keys, got ${show(raw)}`);
  }
  // Collect normalised values by dotted key, then rebuild in table order.
  const values = new Map<string, unknown>();
  for (const [top, value] of Object.entries(raw)) {
    if (isSection(top)) {
      if (!isMapping(value)) {
        throw new ConfigError(
          `Config key "${top}" must be a mapping of keys, got ${show(value)} (from ${source})`,
        );
      }
      for (const [field, v] of Object.entries(value)) {
        const key = `${top}.${field}`;
        values.set(key, checkValue(key, v, source));
      }
    } else {
      values.set(top, checkValue(top, value, source));
    }
  }
  const out: Tree = {};
  for (const key of ALL_KEYS) {
    const [a, b] = key.split(".");
    if (!values.has(key)) {
      if (complete && !SPECS[key].optional) {
        throw new ConfigError(`Config key "${key}" is missing (from ${source})`);
      }
      if (complete && b !== undefined) out[a] ??= {};
      continue;
    }
    if (b === undefined) {
      out[a] = values.get(key);
    } else {
      const section = (out[a] ??= {}) as Tree;
      section[b] = values.get(key);
    }
  }
  for (const top of Object.keys(raw)) {
    if (isSection(top)) out[top] ??= {};
  }
  return out;
}

function checkValue(key: string, v: unknown, source: string): unknown {
  // Own keys only: "toString" or "constructor" must be unknown keys, not Object's members.
  const spec: ConfigKeySpec | undefined = Object.hasOwn(SPECS, key) ? SPECS[key] : undefined;
  if (spec === undefined) throw unknownKey(key, source);
  const fail = (what: string): never => {
    throw new ConfigError(`Config key "${key}" ${what}, got ${show(v)} (from ${source})`);
  };
  switch (spec.type) {
    case "int":
      return isInt(v) ? v + 0 : fail("must be an integer"); // -0 as 0
    case "float":
      return asFloat(v) ?? fail("must be a number");
    case "float|null":
      return v === null ? null : asFloat(v) ?? fail("must be a number or null");
    case "bool":
      return typeof v === "boolean" ? v : fail("must be true or false");
    case "string":
      return typeof v === "string" ? v : fail("must be a string (quote numbers)");
    case "string|null":
      return v === null || typeof v === "string" ? v : fail("must be a string or null");
    case "enum": {
      const values = spec.values ?? [];
      if (typeof v === "string" && values.includes(v)) return v;
      const list = values.map((s) => JSON.stringify(s));
      return fail(
        list.length === 2
          ? `must be ${list[0]} or ${list[1]}`
          : `must be one of ${list.join(", ")}`,
      );
    }
    case "int[]":
      return Array.isArray(v) && v.every(isInt) ? [...v] : fail("must be a list of integers");
    case "int_pair":
      return Array.isArray(v) && v.length === 2 && v.every(isInt)
        ? [...v]
        : fail("must be a list of two integers [low, high]");
    case "data_files": {
      const what = "must be a list of file names or [file, weight] pairs";
      if (!Array.isArray(v)) return fail(what);
      return v.map((item) => {
        if (typeof item === "string") return item;
        if (Array.isArray(item) && item.length === 2 && typeof item[0] === "string") {
          const weight = asFloat(item[1]);
          if (weight !== undefined) return [item[0], weight];
        }
        return fail(what);
      });
    }
  }
}

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v);
}

/** A finite number, with `-0` as `0` (a dumped config must load back equal). */
function asFloat(v: unknown): number | undefined {
  const n = v instanceof FloatLiteral ? v.value : v;
  return typeof n === "number" && Number.isFinite(n) ? n + 0 : undefined;
}

function unknownKey(key: string, source: string): ConfigError {
  const hint = closestKey(key);
  return new ConfigError(
    `Unknown config key ${excerpt(key, 100)} in ${source}` +
      (hint ? ` (did you mean "${hint}"?)` : ""),
  );
}

/** The known key nearest to `key`: same field in another section, or a small edit away. */
function closestKey(key: string): string | undefined {
  const field = key.slice(key.lastIndexOf(".") + 1);
  const sameField = ALL_KEYS.find((k) => k.slice(k.lastIndexOf(".") + 1) === field);
  if (sameField !== undefined) return sameField;
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 5)) + 1;
  for (const k of [...CONFIG_SECTIONS, ...ALL_KEYS]) {
    const d = editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * A short quotation of input for an error message: in double quotes, control characters
 * escaped (the message stays one line), cut after `max` characters with the total length
 * noted.
 *
 * @param text The input.
 * @param max Characters kept (default 60).
 * @returns For example `"abc"`, or `"aaaa…" (2000000 characters)`.
 *
 * @example
 * ```ts
 * import { excerpt } from "./schema.ts";
 * console.log(excerpt("model.n_layer=6")); // "model.n_layer=6"
 * console.log(excerpt("x".repeat(100), 4)); // "xxxx…" (100 characters)
 * ```
 */
export function excerpt(text: string, max = 60): string {
  if (text.length <= max) return `"${oneLine(text)}"`;
  return `"${oneLine(text.slice(0, max))}…" (${text.length} characters)`;
}

function oneLine(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f\u2028\u2029]/g,
    (c) =>
      ({ "\n": "\\n", "\r": "\\r", "\t": "\\t" })[c] ??
        `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * A config value as it would be written in YAML, for error messages: at most 80 characters,
 * built only that far (a value with expanded YAML aliases can be gigabytes long).
 *
 * @param v A parsed value.
 * @returns The text, ending in `...` when cut.
 *
 * @example
 * ```ts
 * import { showValue } from "./schema.ts";
 * console.log(showValue({ goal_range: [10, 20] })); // {goal_range: [10, 20]}
 * ```
 */
export function showValue(v: unknown): string {
  return show(v);
}

/** A value as it would be written in YAML, shortened, for error messages. */
function show(v: unknown): string {
  const text = showFull(v, 81);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The YAML text of `v`, built only until it is `budget` characters long (aliases expand). */
function showFull(v: unknown, budget: number): string {
  if (v instanceof FloatLiteral) return v.text.slice(0, budget);
  if (typeof v === "string") return JSON.stringify(v.slice(0, budget));
  if (Array.isArray(v)) {
    let text = "[";
    for (let i = 0; i < v.length && text.length < budget; i++) {
      text += (i > 0 ? ", " : "") + showFull(v[i], budget - text.length);
    }
    return text + "]";
  }
  if (!isMapping(v)) return String(v);
  let text = "{";
  for (const [k, x] of Object.entries(v)) {
    if (text.length >= budget) break;
    text += `${text.length > 1 ? ", " : ""}${k.slice(0, budget)}: `;
    text += showFull(x, budget - text.length);
  }
  return text + "}";
}
