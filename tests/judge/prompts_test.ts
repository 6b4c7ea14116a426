import assert from "node:assert/strict";
import { isPromptVersion, judgePrompt } from "../../src/judge/prompts.ts";

const fixture = (name: string) =>
  JSON.parse(Deno.readTextFileSync(new URL(`../fixtures/judge/${name}`, import.meta.url)));

/** The first prompt the reference cached in a fixture run, and the stories it holds. */
function referencePrompt(run: string) {
  const cache: Record<string, string> = fixture(`expected_${run}.json`).cache;
  const entry = JSON.parse(Object.values(cache)[0]);
  const content: string = entry.prompt[0].content;
  const m = /\nStory 1: ([^]*)\n\nStory 2: ([^]*)$/.exec(content)!;
  return { prompt: entry.prompt, story1: m[1], story2: m[2] };
}

for (const [run, version] of [["v1", "v1"], ["v2_n3_j4", "v2"]] as const) {
  Deno.test(`judgePrompt() is the reference's ${version} chat word for word`, () => {
    const ref = referencePrompt(run);
    assert.deepEqual(judgePrompt(ref.story1, ref.story2, version), ref.prompt);
  });
}

Deno.test("judgePrompt() throws on an unknown prompt version", () => {
  assert.equal(isPromptVersion("v3"), false);
  // @ts-expect-error: checked at run time too
  assert.throws(() => judgePrompt("a", "b", "v3"), /^Error: Unknown prompt version "v3"/);
});
