/**
 * Helpers of the fuzz suites: the seed shift and the check that a rejection is clean.
 *
 * @module
 */

import assert from "node:assert/strict";

/** Added to every seed: `FUZZ_SEED=N` runs other cases (default 0). */
export const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0);

/** Checks that `e` is a clean rejection: an Error naming `source` in one short line. */
export function assertClean(e: unknown, source: string, input: () => string): void {
  const what = () => `input ${input().slice(0, 300)}`;
  assert.ok(e instanceof Error, `not an Error: ${e} for ${what()}`);
  for (const bad of [TypeError, RangeError, SyntaxError, ReferenceError]) {
    assert.ok(!(e instanceof bad), `${e.name} from inside: ${e.message} for ${what()}`);
  }
  assert.ok(e.message.includes(source), `message does not name ${source}: ${e.message}`);
  assert.ok(!e.message.includes("\n"), `message has several lines: ${e.message}`);
  assert.ok(
    e.message.length <= 500,
    `message of ${e.message.length} characters: ${e.message.slice(0, 300)}`,
  );
}

/** One of `items`, chosen by `r`. */
export function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)];
}

/** Values that stress parsers: extremes, wrong types, nesting, long and odd strings. */
export const JSON_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  2 ** 31,
  2 ** 53,
  1e308,
  -1e308,
  "",
  "x",
  "NaN",
  "I32",
  "F16",
  "BOOL",
  "U64",
  "-1",
  "1e3",
  "__proto__",
  "constructor",
  [],
  [1],
  [-1, 2],
  [0, 0, 0, 0],
  [1, 2, 3, 4],
  [[1]],
  {},
  { a: 1 },
  { __proto__: 1 },
  "a".repeat(5000),
  JSON.parse('{"__proto__": {"x": 1}}'),
];
