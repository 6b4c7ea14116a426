/**
 * What the judge prints, as microsoft/BST's `judge_bst_pipeline.py` prints it — per story the
 * prefix, both infills and the suffix with their lengths (in code points, as Python's `len`),
 * the votes as a Python dict, then the running histogram of vote patterns
 * `{model1 wins}_{ties}_{model2 wins}` — and the summary this project adds: counts, rates and
 * Wilson 95% intervals as one JSON object.
 *
 * @module
 */

/**
 * Python's `repr` of a string: single quotes unless the string holds a single quote and no
 * double quote; backslashes, the quote, `\n`, `\r`, `\t` and other control characters escaped.
 *
 * @example
 * ```ts
 * import { pythonStrRepr } from "./report.ts";
 * console.log(pythonStrRepr("bst"), pythonStrRepr("it's")); // 'bst' "it's"
 * ```
 */
export function pythonStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\" || ch === quote) out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + quote;
}

/** Python's `len` of a string: code points, not UTF-16 units. */
function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** The parts of one story block. */
export interface StoryBlock {
  prompt: string;
  infill1: string;
  infill2: string;
  goal: string;
  model1: string;
  model2: string;
  /** The votes in the reference's dict order: model1, model2, tie. */
  votes: { model1: number; model2: number; tie: number; invalid: number };
}

/**
 * The reference's per-story block (one `print` of nine parts joined by spaces), without the
 * final newline `print` adds. Answers without a verdict, which the reference cannot have,
 * appear as an `'invalid'` entry of the votes dict when there are any.
 *
 * @example
 * ```ts
 * import { formatStoryBlock } from "./report.ts";
 * const text = formatStoryBlock({
 *   prompt: "Once", infill1: " upon", infill2: " more", goal: " a time.",
 *   model1: "bst", model2: "gpt", votes: { model1: 2, model2: 0, tie: 1, invalid: 0 },
 * });
 * console.log(text.split("\n")[0]); // ------- PREFIX (len: 4)--------
 * console.log(text.endsWith("Votes: {'bst': 2, 'gpt': 0, 'tie': 1}\n")); // true
 * ```
 */
export function formatStoryBlock(b: StoryBlock): string {
  let votes = `{${pythonStrRepr(b.model1)}: ${b.votes.model1}, ${pythonStrRepr(b.model2)}: ` +
    `${b.votes.model2}, 'tie': ${b.votes.tie}`;
  if (b.votes.invalid > 0) votes += `, 'invalid': ${b.votes.invalid}`;
  votes += "}";
  return [
    `------- PREFIX (len: ${pyLen(b.prompt)})--------\n`,
    b.prompt,
    `\n\n------- INFILL ${b.model1} (len: ${pyLen(b.infill1)}) ------\n`,
    b.infill1,
    `\n\n------- INFILL ${b.model2} (len: ${pyLen(b.infill2)}) ------\n`,
    b.infill2,
    `\n\n------- SUFFIX (len: ${pyLen(b.goal)}) --------\n`,
    b.goal,
    `\n---------------------\n\nVotes: ${votes}\n`,
  ].join(" ");
}

/** The vote patterns the reference lists first when there are 3 judges, in its order. */
export const THREE_JUDGE_KEYS: readonly string[] = [
  "3_0_0",
  "2_1_0",
  "2_0_1",
  "1_2_0",
  "0_3_0",
  "0_2_1",
  "1_0_2",
  "0_1_2",
  "0_0_3",
  "1_1_1",
];

/**
 * The reference's running histogram of vote patterns `{model1}_{ties}_{model2}`: with 3 judges
 * the ten patterns above are listed from the start, other patterns in order of appearance.
 *
 * @example
 * ```ts
 * import { VoteHistogram } from "./report.ts";
 * const h = new VoteHistogram(2);
 * h.add(2, 0, 0);
 * h.add(1, 1, 0);
 * h.add(2, 0, 0);
 * console.log(h.lines().join(" | ")); // Votes histogram: | 2_0_0 2 | 1_1_0 1 | Total: 3
 * ```
 */
export class VoteHistogram {
  readonly #counts = new Map<string, number>();

  /** An empty histogram for `numJudges` judgements per story. */
  constructor(numJudges: number) {
    if (numJudges === 3) { for (const k of THREE_JUDGE_KEYS) this.#counts.set(k, 0); }
  }

  /** Counts one story's votes. */
  add(model1: number, tie: number, model2: number): void {
    const key = `${model1}_${tie}_${model2}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** The lines the reference prints after each story. */
  lines(): string[] {
    const out = ["Votes histogram:"];
    let total = 0;
    for (const [k, n] of this.#counts) {
      total += n;
      out.push(`${k} ${n}`);
    }
    out.push(`Total: ${total}`);
    return out;
  }
}

/** z for a two-sided 95% interval. */
const Z95 = 1.959963984540054;

/**
 * The Wilson score interval of a proportion `k / n` at 95%.
 *
 * @returns `[low, high]`, or `null` when `n` is 0.
 *
 * @example
 * ```ts
 * import { wilsonInterval } from "./report.ts";
 * console.log(wilsonInterval(7, 10)!.map((x) => x.toFixed(4))); // [ "0.3968", "0.8922" ]
 * ```
 */
export function wilsonInterval(k: number, n: number): [number, number] | null {
  if (n <= 0) return null;
  const p = k / n;
  const z2 = Z95 * Z95;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (Z95 / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, center - half), Math.min(1, center + half)];
}

/** The last line of `deno task judge`. */
export interface JudgeSummary {
  model1: string;
  model2: string;
  /** Story pairs judged. */
  stories: number;
  /** All judgements, invalid ones included. */
  judgements: number;
  model1_wins: number;
  model2_wins: number;
  ties: number;
  invalid: number;
  /** Rates are over the valid judgements (`judgements − invalid`); `null` when there are none. */
  model1_win_rate: number | null;
  model2_win_rate: number | null;
  tie_rate: number | null;
  /** Wilson 95% interval of `model1_win_rate`. */
  model1_win_rate_ci95: [number, number] | null;
  model2_win_rate_ci95: [number, number] | null;
  /** Judgements read from the cache and asked of the server in this run. */
  cached: number;
  requested: number;
}

/**
 * The summary of a run from its counts.
 *
 * @example
 * ```ts
 * import { summarize } from "./report.ts";
 * const s = summarize("bst", "gpt", { stories: 4, model1: 7, model2: 2, tie: 1, invalid: 2, cached: 0, requested: 12 });
 * console.log(s.judgements, s.model1_win_rate, s.tie_rate); // 12 0.7 0.1
 * ```
 */
export function summarize(
  model1: string,
  model2: string,
  c: {
    stories: number;
    model1: number;
    model2: number;
    tie: number;
    invalid: number;
    cached: number;
    requested: number;
  },
): JudgeSummary {
  const valid = c.model1 + c.model2 + c.tie;
  const rate = (k: number) => (valid > 0 ? k / valid : null);
  return {
    model1,
    model2,
    stories: c.stories,
    judgements: valid + c.invalid,
    model1_wins: c.model1,
    model2_wins: c.model2,
    ties: c.tie,
    invalid: c.invalid,
    model1_win_rate: rate(c.model1),
    model2_win_rate: rate(c.model2),
    tie_rate: rate(c.tie),
    model1_win_rate_ci95: wilsonInterval(c.model1, valid),
    model2_win_rate_ci95: wilsonInterval(c.model2, valid),
    cached: c.cached,
    requested: c.requested,
  };
}
