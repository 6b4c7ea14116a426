/**
 * Reading the judge's verdict as microsoft/BST's `GPTJudge.judge` does:
 *
 * ```python
 * result_str = result["result"].split("Winner: ")[1].split("\n", 1)[0].split("*")[0]
 * if "None" in result_str: tie
 * elif "Story 1" in result_str: the model shown first wins
 * elif "Story 2" in result_str: the model shown second wins
 * else: raise
 * ```
 *
 * The text after the first `"Winner: "` (up to a second one, if any), its first line, before any
 * `*`. The reference raises when there is no `"Winner: "` or the line names neither story; here
 * such an answer is {@linkcode Verdict} `"invalid"`, so a run counts it and goes on.
 *
 * @module
 */

/** Who won one judgement, by position in the prompt. */
export type Verdict = "story_1" | "story_2" | "tie" | "invalid";

/**
 * The verdict in a judge's answer (the reference's parsing; `"invalid"` where it raises).
 *
 * @param answer The judge's reply, stripped of surrounding whitespace.
 * @returns `"story_1"` or `"story_2"` for the story shown in that position, `"tie"` for
 *   "Winner: None", `"invalid"` when the answer has no verdict the reference can read.
 *
 * @example
 * ```ts
 * import { parseVerdict } from "./verdict.ts";
 * console.log(parseVerdict("Story 2 flows better.\nWinner: Story 2")); // story_2
 * console.log(parseVerdict("**Winner: Story 1**")); // story_1
 * console.log(parseVerdict("Winner: None")); // tie
 * console.log(parseVerdict("Both are fine.")); // invalid
 * ```
 */
export function parseVerdict(answer: string): Verdict {
  const parts = answer.split("Winner: ");
  if (parts.length < 2) return "invalid";
  const newline = parts[1].indexOf("\n");
  const line = newline < 0 ? parts[1] : parts[1].slice(0, newline);
  const text = line.split("*")[0];
  if (text.includes("None")) return "tie";
  if (text.includes("Story 1")) return "story_1";
  if (text.includes("Story 2")) return "story_2";
  return "invalid";
}
