/**
 * Config layering without YAML: deep merge of config trees (OmegaConf `merge` semantics for
 * plain data) and turning `a.b=value` override items into trees. Parsing each value as YAML
 * is the caller's (see `load.ts`); this module is npm-free.
 *
 * @module
 */

import { ConfigError, excerpt } from "./schema.ts";

/** A parsed config layer: nested mappings of keys to values. */
export type ConfigTree = { [key: string]: unknown };

/**
 * Whether `v` is a plain mapping (an object literal or a parsed YAML mapping), not a list,
 * `null` or a class instance.
 *
 * @param v Any value.
 * @returns True for plain objects.
 */
export function isConfigTree(v: unknown): v is ConfigTree {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Deep-merges `override` onto `base` as OmegaConf does for plain data: mappings merge key by
 * key, anything else (lists included, and `null`) replaces. Neither input is modified; the
 * result shares no mappings or lists with them. The result is not validated: pass it to
 * `validateConfig`.
 *
 * @param base The lower layer.
 * @param override The higher layer; its values win.
 * @returns The merged tree: `base`'s keys in order, then keys only `override` has.
 *
 * @example
 * ```ts
 * import { mergeConfig } from "./merge.ts";
 * const merged = mergeConfig(
 *   { model: { n_layer: 8, n_head: 8 }, data: { goal_range: [25, 75] } },
 *   { model: { n_layer: 6 }, data: { goal_range: [10] } },
 * );
 * console.log(merged); // { model: { n_layer: 6, n_head: 8 }, data: { goal_range: [10] } }
 * ```
 */
export function mergeConfig(base: object, override: object): ConfigTree {
  const out = cloneTree(base as ConfigTree);
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    setKey(
      out,
      key,
      isConfigTree(current) && isConfigTree(value)
        ? mergeConfig(current, value)
        : cloneValue(value),
    );
  }
  return out;
}

/** One `key=value` override item split at its first `=`. */
export interface DotlistItem {
  /** The dotted key, e.g. `model.n_layer`. */
  key: string;
  /** The text after the first `=`, not yet parsed. */
  valueText: string;
}

const KEY_SEGMENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Splits an override item `a.b=value` at its first `=` and checks the key's form. Unlike
 * OmegaConf, an item without `=` is an error rather than setting the key to null.
 *
 * @param item The override as given on the command line.
 * @returns The dotted key and the unparsed value text.
 * @throws {ConfigError} When there is no `=` or the key is not dot-separated identifiers.
 *
 * @example
 * ```ts
 * import { splitDotlistItem } from "./merge.ts";
 * console.log(splitDotlistItem("data.goal_range=[10,20]"));
 * // { key: "data.goal_range", valueText: "[10,20]" }
 * ```
 */
export function splitDotlistItem(item: string): DotlistItem {
  const eq = item.indexOf("=");
  if (eq < 0) {
    throw new ConfigError(
      `Override ${excerpt(item)} must have the form key=value, e.g. model.n_layer=6`,
    );
  }
  const key = item.slice(0, eq);
  if (!key.split(".").every((segment) => KEY_SEGMENT.test(segment))) {
    throw new ConfigError(
      `Override ${excerpt(item)} has an invalid key ${
        excerpt(key)
      }: expected dot-separated names such as ` +
        `model.n_layer (give a whole list, e.g. data.goal_range=[10,20])`,
    );
  }
  return { key, valueText: item.slice(eq + 1) };
}

/**
 * Builds a config tree from override items, parsing each value with `parseValue`; later
 * items win over earlier ones for the same key (mappings merge).
 *
 * @param items Override items `a.b=value`.
 * @param parseValue Parses one value's text (YAML in `load.ts`); gets the whole item too, for
 * error messages.
 * @returns The nested tree, e.g. `{ model: { n_layer: 6 } }` for `model.n_layer=6`.
 * @throws {ConfigError} On a malformed item (see {@link splitDotlistItem}).
 *
 * @example
 * ```ts
 * import { dotlistToTree } from "./merge.ts";
 * const tree = dotlistToTree(["model.n_layer=6", "use_bst=false"], (t) => JSON.parse(t));
 * console.log(tree); // { model: { n_layer: 6 }, use_bst: false }
 * ```
 */
export function dotlistToTree(
  items: readonly string[],
  parseValue: (text: string, item: string) => unknown,
): ConfigTree {
  let tree: ConfigTree = {};
  for (const item of items) {
    const { key, valueText } = splitDotlistItem(item);
    let layer: unknown = parseValue(valueText, item);
    for (const segment of key.split(".").reverse()) layer = { [segment]: layer };
    tree = mergeConfig(tree, layer as ConfigTree);
  }
  return tree;
}

function cloneTree(tree: ConfigTree): ConfigTree {
  const out: ConfigTree = {};
  for (const [key, value] of Object.entries(tree)) setKey(out, key, cloneValue(value));
  return out;
}

/** Sets an own property even for the key `__proto__`, which plain assignment would not. */
function setKey(tree: ConfigTree, key: string, value: unknown): void {
  Object.defineProperty(tree, key, { value, enumerable: true, writable: true, configurable: true });
}

function cloneValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(cloneValue);
  if (isConfigTree(v)) return cloneTree(v);
  return v;
}
