import assert from "node:assert/strict";
import { parseVerdict, type Verdict } from "../../src/judge/verdict.ts";

// Expected values from the reference's expression in Python
// (`split("Winner: ")[1].split("\n", 1)[0].split("*")[0]`, then None / Story 1 / Story 2;
// "invalid" where it raises).
const CASES: [string, Verdict][] = [
  ["Winner: Story 1", "story_1"],
  ["Winner: Story 2", "story_2"],
  ["Winner: None", "tie"],
  ["**Winner: Story 1**", "story_1"],
  ["Winner: **Story 2**", "invalid"],
  ["Analysis...\nWinner: Story 2\nBecause Story 1 ...", "story_2"],
  ["Winner: Story 1 and Story 2 are both None", "tie"],
  ["Winner:Story 1", "invalid"],
  ["winner: Story 1", "invalid"],
  ["No verdict here", "invalid"],
  ["Winner: Story 3", "invalid"],
  ["Winner: \nStory 1", "invalid"],
  ["Winner: Story 2 Winner: Story 1", "story_2"],
  ["Winner: Story 1*Story 2", "story_1"],
  ["Winner: None of them; Story 2", "tie"],
  ["The Winner: Story 2!", "story_2"],
  ["Winner:  Story 1", "story_1"],
  ["", "invalid"],
];

Deno.test("parseVerdict() reads answers as the reference does and marks what it raises on invalid", () => {
  for (const [answer, want] of CASES) assert.equal(parseVerdict(answer), want, answer);
});
