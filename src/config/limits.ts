/**
 * Size limits on configuration input, so that a hostile or mistaken config file or override
 * cannot exhaust memory, overflow the stack or flood the terminal:
 *
 * - a config file is at most {@link CONFIG_LIMITS}`.fileBytes` bytes and one `key=value`
 *   override at most `overrideChars` characters (checked before parsing);
 * - a dotted override key has at most `keySegments` names of at most `keyChars` characters;
 * - a parsed value holds at most `nodes` values counted with YAML aliases expanded (a shared
 *   node counts each time it is reached), nested at most `depth` levels, with strings of at
 *   most `stringChars` characters. The YAML parser itself refuses more than `yamlAliases`
 *   aliases and deeper nesting, so an alias bomb is refused in microseconds instead of
 *   growing to gigabytes;
 * - error messages quote at most `excerptChars` characters of the offending input.
 *
 * The real configs are far inside these limits: `defaults.yaml` is about 3 KB, 60 keys and
 * 3 levels deep.
 *
 * @module
 */

import { ConfigError, excerpt } from "./schema.ts";

export { excerpt };

/** The limits this module enforces. */
export const CONFIG_LIMITS = {
  /** Bytes of one config file. */
  fileBytes: 1 << 20,
  /** Characters of one `key=value` override item. */
  overrideChars: 16_384,
  /** Characters of one key (a mapping key, or one name of a dotted key). */
  keyChars: 128,
  /** Names in a dotted override key (`a.b.c` has 3). */
  keySegments: 8,
  /** Nesting of mappings and lists in one parsed document. */
  depth: 16,
  /** Values in one parsed document, aliases expanded. */
  nodes: 10_000,
  /** Characters of one string value. */
  stringChars: 4096,
  /** YAML aliases (`*name`) in one document. */
  yamlAliases: 64,
  /** Characters of input quoted in an error message. */
  excerptChars: 60,
} as const;

/**
 * How an override item is named in errors: `override a.b=value`, or quoted and shortened
 * by {@link excerpt} when it is long or holds control characters.
 *
 * @param item The `key=value` item.
 * @returns The description.
 *
 * @example
 * ```ts
 * import { describeOverride } from "./limits.ts";
 * console.log(describeOverride("model.n_layer=6")); // override model.n_layer=6
 * ```
 */
export function describeOverride(item: string): string {
  const plain = excerpt(item);
  return plain === `"${item}"` ? `override ${item}` : `override ${plain}`;
}

/**
 * Reads a config file as UTF-8 text, reading at most {@link CONFIG_LIMITS}`.fileBytes` + 1
 * bytes, so a huge file (or `/dev/zero`) is refused without being read whole.
 *
 * Requires `--allow-read` for `path`.
 *
 * @param path The file.
 * @returns Its text.
 * @throws The `Deno.errors` of opening or reading it; an `Error` saying `file is larger than
 * the limit of … bytes` when it is too large.
 */
export async function readConfigText(path: string): Promise<string> {
  const limit = CONFIG_LIMITS.fileBytes;
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(limit + 1);
  let filled = 0;
  while (filled < buffer.length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  if (filled > limit) throw new Error(`file is larger than the limit of ${limit} bytes`);
  return new TextDecoder().decode(buffer.subarray(0, filled));
}

/**
 * Checks an override item's length and its key's form limits before anything is split or
 * parsed (30,000 dotted names would otherwise nest 30,000 levels deep).
 *
 * @param item The `key=value` item.
 * @throws {ConfigError} When the item, its key or one of the key's names is too long.
 *
 * @example
 * ```ts
 * import { checkOverrideItem } from "./limits.ts";
 * checkOverrideItem("model.n_layer=6"); // fine
 * try {
 *   checkOverrideItem("a.".repeat(20) + "b=1");
 * } catch (e) {
 *   console.log((e as Error).message); // Override "a.a.a.…" has a key of 21 names, …
 * }
 * ```
 */
export function checkOverrideItem(item: string): void {
  const L = CONFIG_LIMITS;
  if (item.length > L.overrideChars) {
    throw new ConfigError(
      `Override ${excerpt(item)} is longer than the limit of ${L.overrideChars} characters`,
    );
  }
  const eq = item.indexOf("=");
  const key = eq < 0 ? item : item.slice(0, eq);
  let segments = 1;
  let run = 0;
  for (let i = 0; i < key.length; i++) {
    if (key[i] === ".") {
      segments++;
      run = 0;
    } else if (++run > L.keyChars) {
      throw new ConfigError(
        `Override ${excerpt(item)} has a key name longer than ${L.keyChars} characters`,
      );
    }
  }
  if (segments > L.keySegments) {
    throw new ConfigError(
      `Override ${excerpt(item)} has a key of ${segments} names, more than the limit of ` +
        `${L.keySegments}`,
    );
  }
}

/**
 * Walks a parsed config value (mappings, lists, scalars) and checks the size limits: values
 * counted with shared (aliased) nodes counted at every use, nesting depth, key and string
 * lengths. The walk stops at the first excess, so it costs at most
 * {@link CONFIG_LIMITS}`.nodes` steps whatever the input.
 *
 * @param value The parsed value.
 * @param source Where it came from (a file path or an override), for the error.
 * @throws {ConfigError} Naming `source` and the limit exceeded.
 *
 * @example
 * ```ts
 * import { checkValueLimits } from "./limits.ts";
 * checkValueLimits({ data: { goal_range: [10, 20] } }, "override data.goal_range=[10,20]");
 * const row = Array(100).fill(0);
 * try {
 *   checkValueLimits({ a: Array(200).fill(row) }, "config.yaml"); // one row, used 200 times
 * } catch (e) {
 *   console.log((e as Error).message); // Config from config.yaml is too large: …
 * }
 * ```
 */
export function checkValueLimits(value: unknown, source: string): void {
  const L = CONFIG_LIMITS;
  let count = 0;
  const tooMany = () =>
    new ConfigError(
      `Config from ${source} is too large: more than ${L.nodes} values (YAML aliases count ` +
        `once per use)`,
    );
  // Iterative depth-first walk: no recursion, so no stack overflow whatever the nesting.
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (++count > L.nodes) throw tooMany();
    if (typeof v === "string") {
      if (v.length > L.stringChars) {
        throw new ConfigError(
          `Config from ${source} has a string of ${v.length} characters, more than the limit ` +
            `of ${L.stringChars}: ${excerpt(v, L.excerptChars)}`,
        );
      }
      continue;
    }
    if (typeof v !== "object" || v === null) continue;
    if (depth >= L.depth) {
      throw new ConfigError(
        `Config from ${source} is nested more than ${L.depth} levels deep`,
      );
    }
    if (Array.isArray(v)) {
      if (count + v.length > L.nodes) throw tooMany();
      for (const x of v) stack.push({ v: x, depth: depth + 1 });
      continue;
    }
    // Object.entries, not v[k]: an own key "__proto__" must give its value, not the prototype.
    const entries = Object.entries(v);
    if (count + entries.length > L.nodes) throw tooMany();
    for (const [k, x] of entries) {
      if (k.length > L.keyChars) {
        throw new ConfigError(
          `Config from ${source} has a key longer than ${L.keyChars} characters: ${excerpt(k)}`,
        );
      }
      stack.push({ v: x, depth: depth + 1 });
    }
  }
}
