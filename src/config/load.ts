/**
 * Loads a run configuration the way the reference `train.py` does with OmegaConf:
 * `defaults.yaml` ← config file ← `a.b=value` overrides (values parsed as YAML), then
 * validated against `schema.ts`. Also writes a config back as YAML for run manifests.
 *
 * Uses the YAML library (npm), so it is not part of the `mod.ts` graph: scripts import it.
 * Requires `--allow-read` for the defaults file and the config file.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { parseYaml, yamlInline, YamlSyntaxError } from "./_yaml.ts";
import {
  checkOverrideItem,
  checkValueLimits,
  describeOverride,
  excerpt,
  readConfigText,
} from "./limits.ts";
import { type ConfigTree, dotlistToTree, isConfigTree, mergeConfig } from "./merge.ts";
import { checkConsistency, checkRanges } from "./ranges.ts";
import {
  type Config,
  CONFIG_KEYS,
  ConfigError,
  type ConfigKeySpec,
  validateConfig,
  validatePartialConfig,
} from "./schema.ts";

/** Where {@link loadConfig} reads from. */
export interface LoadConfigOptions {
  /** A YAML config file merged over the defaults (e.g. `config/bst_stargraph_defaults.yaml`). */
  configFile?: string;
  /** `a.b=value` overrides merged last, in order; values are YAML (`[10,20]`, `null`, `1e-4`). */
  overrides?: readonly string[];
  /** The defaults file; {@link defaultsFilePath} when omitted. */
  defaultsFile?: string;
}

/**
 * The project's `config/defaults.yaml`, located relative to this module.
 *
 * @returns An absolute file path.
 * @throws {ConfigError} When this module was not loaded from a file (then pass `defaultsFile`).
 */
export function defaultsFilePath(): string {
  const url = new URL("../../config/defaults.yaml", import.meta.url);
  if (url.protocol !== "file:") {
    throw new ConfigError(
      `Cannot locate defaults.yaml next to ${import.meta.url}: pass defaultsFile explicitly`,
    );
  }
  return fileURLToPath(url);
}

/**
 * Loads, merges and validates a configuration: defaults ← `configFile` ← `overrides`.
 * Each layer is checked on its own, so an error names the file or the override it came from.
 *
 * @param options Files and overrides; all optional.
 * @returns The validated config.
 * @throws {ConfigError} One line for a missing or unreadable file, malformed YAML (with its
 * line), an unknown key or a wrong type (with the dotted key and its source).
 *
 * @example
 * ```ts ignore
 * import { loadConfig } from "./load.ts";
 * const config = await loadConfig({
 *   configFile: "config/bst_stargraph_defaults.yaml",
 *   overrides: ["model.n_layer=2", "data.goal_range=[10,20]", "optimizer.grad_clip=null"],
 * });
 * console.log(config.model.n_layer); // 2
 * ```
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<Config> {
  const defaultsFile = options.defaultsFile ?? defaultsFilePath();
  let merged: ConfigTree = {
    ...checkRanges(validateConfig(await readConfigFile(defaultsFile), defaultsFile), defaultsFile),
  };
  if (options.configFile !== undefined) {
    const layer = validatePartialConfig(
      await readConfigFile(options.configFile),
      options.configFile,
    );
    merged = mergeConfig(merged, checkRanges(layer, options.configFile));
  }
  for (const item of options.overrides ?? []) {
    const source = describeOverride(item);
    const layer = validatePartialConfig(parseDotlist([item]), source);
    merged = mergeConfig(merged, checkRanges(layer, source));
  }
  const sources = describeSources(defaultsFile, options);
  return checkConsistency(validateConfig(merged, sources), sources);
}

/**
 * Reads a YAML config file into a tree (not validated). An empty file is an empty mapping.
 *
 * @param path File path.
 * @returns The parsed mapping.
 * @throws {ConfigError} When the file is missing or unreadable, the YAML is malformed (naming
 * the line), or the document is not a mapping.
 */
export async function readConfigFile(path: string): Promise<ConfigTree> {
  let text: string;
  try {
    text = await readConfigText(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`Cannot read config file "${path}": no such file`);
    }
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new ConfigError(`Cannot read config file "${path}": read permission denied`);
    }
    throw new ConfigError(`Cannot read config file "${path}": ${(e as Error).message}`);
  }
  let tree: unknown;
  try {
    tree = parseYaml(text);
  } catch (e) {
    if (!(e instanceof YamlSyntaxError)) throw e;
    const where = e.line === undefined ? "" : ` at line ${e.line}, column ${e.column}`;
    throw new ConfigError(`Cannot parse config file "${path}"${where}: ${e.reason}`);
  }
  if (tree === null) return {};
  checkValueLimits(tree, path);
  if (!isConfigTree(tree)) {
    throw new ConfigError(`Config file "${path}" must hold a mapping of keys, got a list or value`);
  }
  return tree;
}

/**
 * Parses `a.b=value` override items (OmegaConf dotlist) into a tree, each value as a YAML
 * scalar or flow collection: `6` int, `6.0` float, `null`, `[10,20]`, `"text"`. An empty
 * value (`a.b=`) is null, as in OmegaConf. Later items win. Not validated.
 *
 * @param items Override items.
 * @returns The nested tree, e.g. `{ data: { goal_range: [10, 20] } }`.
 * @throws {ConfigError} On an item without `=`, a malformed key or malformed YAML.
 *
 * @example
 * ```ts
 * import { parseDotlist } from "./load.ts";
 * console.log(parseDotlist(["data.goal_range=[10,20]", "optimizer.grad_clip=null"]));
 * // { data: { goal_range: [10, 20] }, optimizer: { grad_clip: null } }
 * ```
 */
export function parseDotlist(items: readonly string[]): ConfigTree {
  for (const item of items) checkOverrideItem(item);
  return dotlistToTree(items, (text, item) => {
    let value: unknown;
    try {
      value = parseYaml(text);
    } catch (e) {
      if (!(e instanceof YamlSyntaxError)) throw e;
      throw new ConfigError(`Cannot parse override ${excerpt(item)}: ${e.reason}`);
    }
    checkValueLimits(value, describeOverride(item));
    return value;
  });
}

/** Options of {@link configToYaml}. */
export interface ConfigToYamlOptions {
  /** Write each key's documentation as a comment above it. */
  comments?: boolean;
}

/**
 * Writes a config as YAML in {@link CONFIG_KEYS} order (deterministic: the same config gives
 * the same text). Float keys keep a decimal point (`1.0`), lists are written inline. Loading
 * the text gives the same config back.
 *
 * @param config A validated config.
 * @param options `comments: true` adds each key's documentation.
 * @returns YAML text ending in a newline.
 *
 * @example
 * ```ts ignore
 * import { configToYaml, loadConfig } from "./load.ts";
 * await Deno.writeTextFile("out/run/config.yaml", configToYaml(await loadConfig()));
 * ```
 */
export function configToYaml(config: Config, options: ConfigToYamlOptions = {}): string {
  const lines: string[] = [];
  let section = "";
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [string, ConfigKeySpec][]) {
    const dot = key.indexOf(".");
    const [top, field] = dot < 0 ? [key, undefined] : [key.slice(0, dot), key.slice(dot + 1)];
    const value = field === undefined
      ? (config as unknown as ConfigTree)[top]
      : (config as unknown as Record<string, ConfigTree>)[top][field];
    if (value === undefined) continue;
    if (field !== undefined && top !== section) {
      lines.push("", `${top}:`);
      section = top;
    }
    const indent = field === undefined ? "" : "  ";
    if (options.comments) lines.push(`${indent}# ${spec.doc}`);
    lines.push(`${indent}${field ?? top}: ${formatValue(spec, value)}`);
  }
  return lines.join("\n") + "\n";
}

function formatValue(spec: ConfigKeySpec, value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "number") {
    const isFloat = spec.type === "float" || spec.type === "float|null";
    return isFloat && Number.isInteger(value) ? value.toFixed(1) : String(value);
  }
  if (typeof value === "boolean") return String(value);
  return yamlInline(value);
}

function describeSources(defaultsFile: string, options: LoadConfigOptions): string {
  const parts = [defaultsFile];
  if (options.configFile !== undefined) parts.push(options.configFile);
  if (options.overrides?.length) parts.push("overrides");
  return parts.join(" + ");
}

/**
 * The config of a checkpoint: `configFile` (+ overrides) when given, else the JSON config its
 * metadata stores (as `deno task train` writes it, without `trainer.init_from`) with the
 * overrides applied.
 *
 * @param metadata the checkpoint's `__metadata__`.
 * @param source the checkpoint path, for errors.
 */
export async function loadCheckpointConfig(
  metadata: Record<string, string>,
  source: string,
  options: { configFile?: string; overrides?: readonly string[] } = {},
): Promise<Config> {
  const overrides = options.overrides ?? [];
  if (options.configFile) return await loadConfig({ configFile: options.configFile, overrides });
  if (!metadata.config) {
    throw new ConfigError(`Checkpoint "${source}" has no config in its metadata; pass --config`);
  }
  let stored: unknown;
  try {
    stored = JSON.parse(metadata.config);
  } catch {
    throw new ConfigError(`Checkpoint "${source}" has a config that is not JSON`);
  }
  if (!isConfigTree(stored)) {
    throw new ConfigError(
      `Checkpoint "${source}" has a metadata field "config" that is not a JSON object ` +
        `(got ${excerpt(metadata.config)})`,
    );
  }
  const metaSource = `${source} (metadata)`;
  checkValueLimits(stored, metaSource);
  // Checkpoints written before trainer.precision existed trained in 32-true.
  if (isConfigTree(stored.trainer)) {
    stored.trainer = { precision: "32-true", ...stored.trainer, init_from: "scratch" };
  }
  let tree: ConfigTree = { ...checkRanges(validateConfig(stored, metaSource), metaSource) };
  for (const item of overrides) {
    const layer = validatePartialConfig(parseDotlist([item]), describeOverride(item));
    tree = mergeConfig(tree, checkRanges(layer, describeOverride(item)));
  }
  const sources = `${source} (metadata) with overrides`;
  return checkConsistency(validateConfig(tree, sources), sources);
}
