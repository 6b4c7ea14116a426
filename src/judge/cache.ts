/**
 * The judge's cache, laid out as microsoft/BST's `GPTJudge` lays it out, so a cache written by
 * either is read by the other:
 *
 * ```
 * {cache_dir}/{key[:10]}{_prompt_ver}/{i}.json     i = 0 .. num_judges-1
 * ```
 *
 * `key` is the SHA-256 (hex) of the two stories' items `"{key}={value}"` (each story is
 * `{story, model}`), sorted and joined by `","`; `_prompt_ver` (e.g. `_v1`) is left out with
 * `--cache_without_prompt`. Each file holds the fields `prompt` (the chat sent), `story_1`,
 * `story_2` (the models shown in those positions), `iteration`, `model_judge` and `result` (the
 * judge's stripped answer), written as Python's `json.dump(result, f, indent=4)` writes them.
 *
 * Files are written atomically (temporary file, sync, rename): an interrupted run leaves each
 * judgement either complete or absent, and a re-run asks only for the absent ones.
 *
 * Requires `--allow-read` and `--allow-write` for the cache directory.
 *
 * @module
 */

import { writeTextFileAtomic } from "../io/atomic.ts";
import type { ChatMessage } from "./prompts.ts";

/** A story and the model that wrote it (the reference's `{"story": ..., "model": ...}`). */
export interface ModelStory {
  story: string;
  model: string;
}

/** One cached judgement, in the reference's field order. */
export interface CacheEntry {
  prompt: ChatMessage[];
  story_1: string;
  story_2: string;
  iteration: number;
  model_judge: string;
  result: string;
}

/** Orders strings by code point, as Python's `sorted` does (JavaScript's sort uses UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done || cb.done) return ca.done ? (cb.done ? 0 : -1) : 1;
    const d = ca.value.codePointAt(0)! - cb.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * The reference's `hash_two_dicts`: SHA-256 of the sorted `key=value` items of both records,
 * joined by commas, as 64 hex digits (the cache directory uses the first 10).
 *
 * @param a The first record (keys in any order).
 * @param b The second record.
 * @returns The hex digest.
 *
 * @example
 * ```ts
 * import { cacheKey } from "./cache.ts";
 * const key = await cacheKey({ story: "A.", model: "bst" }, { story: "B.", model: "gpt" });
 * // Python: hashlib.sha256("model=bst,model=gpt,story=A.,story=B.".encode()).hexdigest()
 * console.log(key.slice(0, 10)); // 5d0b977840
 * ```
 */
export async function cacheKey(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): Promise<string> {
  const items = [...Object.keys(a).map((k) => `${k}=${a[k]}`)];
  items.push(...Object.keys(b).map((k) => `${k}=${b[k]}`));
  items.sort(compareCodePoints);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(items.join(",")),
  );
  return [...new Uint8Array(digest)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * The directory of one story pair's judgements: `{cacheDir}/{key[:10]}_{promptVer}`, or without
 * the `_{promptVer}` suffix when `withoutPrompt`.
 *
 * @example
 * ```ts
 * import { cacheEntryDir } from "./cache.ts";
 * console.log(cacheEntryDir("./judge_cache/m", "0123456789abcdef", "v1", false));
 * // ./judge_cache/m/0123456789_v1
 * ```
 */
export function cacheEntryDir(
  cacheDir: string,
  key: string,
  promptVer: string,
  withoutPrompt: boolean,
): string {
  return `${cacheDir}/${key.slice(0, 10)}${withoutPrompt ? "" : `_${promptVer}`}`;
}

/**
 * JSON text as Python's `json.dumps(value, indent=4)` writes it: `ensure_ascii` escapes every
 * character outside printable ASCII as `\uXXXX` (astral characters as surrogate pairs), no
 * trailing newline.
 *
 * @example
 * ```ts
 * import { pythonJson } from "./cache.ts";
 * console.log(pythonJson({ a: "é" }) === '{\n    "a": "\\u00e9"\n}'); // true
 * ```
 */
export function pythonJson(value: unknown): string {
  return JSON.stringify(value, null, 4).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Reads judgement `i` of a story pair, or `null` when it is not cached yet.
 *
 * @param dir The pair's directory ({@linkcode cacheEntryDir}).
 * @param i The repeat index.
 * @param models The two model names the pair's entries may credit.
 * @throws One line naming the file when it is not a judgement of these models.
 */
export async function readCacheEntry(
  dir: string,
  i: number,
  models: readonly [string, string],
): Promise<CacheEntry | null> {
  const path = `${dir}/${i}.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read cache file "${path}": ${(e as Error).message}`);
  }
  let entry: CacheEntry;
  try {
    entry = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `Cache file "${path}" is not JSON (${
        (e as Error).message
      }); delete it to ask the judge again`,
    );
  }
  if (entry === null || typeof entry !== "object" || typeof entry.result !== "string") {
    throw new Error(
      `Cache file "${path}" has no "result" string; delete it to ask the judge again`,
    );
  }
  for (const field of ["story_1", "story_2"] as const) {
    if (!models.includes(entry[field])) {
      throw new Error(
        `Cache file "${path}" gives "${field}" as ${JSON.stringify(entry[field])}, expected ` +
          `"${models[0]}" or "${models[1]}"`,
      );
    }
  }
  return entry;
}

/**
 * Writes judgement `entry.iteration` of a story pair atomically, creating the directory.
 *
 * @param dir The pair's directory ({@linkcode cacheEntryDir}).
 * @param entry The judgement.
 * @throws One line naming the file when it cannot be written.
 */
export async function writeCacheEntry(dir: string, entry: CacheEntry): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const ordered: CacheEntry = {
    prompt: entry.prompt,
    story_1: entry.story_1,
    story_2: entry.story_2,
    iteration: entry.iteration,
    model_judge: entry.model_judge,
    result: entry.result,
  };
  await writeTextFileAtomic(`${dir}/${entry.iteration}.json`, pythonJson(ordered));
}
