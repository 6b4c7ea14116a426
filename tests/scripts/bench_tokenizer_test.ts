import assert from "node:assert/strict";
import { benchTokenizer, splitStories } from "../../scripts/_bench_tokenizer.ts";
import { tinyStoriesTokenizer } from "../../src/tokenizers/tinystories.ts";

Deno.test("splitStories() cuts at <|endoftext|> lines, trims and skips empty stories", () => {
  const text =
    "One.\n<|endoftext|>\n  Two\nlines. \n<|endoftext|>\r\n\n<|endoftext|>\nx <|endoftext|> y\n";
  assert.deepEqual(splitStories(text), ["One.", "Two\nlines.", "x <|endoftext|> y"]);
  assert.deepEqual(splitStories("no separator"), ["no separator"]);
});

Deno.test("benchTokenizer() counts the file's bytes, stories and tokens", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/stories.txt`;
  const stories = ["Once upon a time, 12 cats sang.", "The end."];
  const text = stories.map((s) => `${s}\n<|endoftext|>\n`).join("");
  await Deno.writeTextFile(path, text);
  const r = await benchTokenizer(path, 3);
  const tok = tinyStoriesTokenizer();
  assert.equal(r.bytes, new TextEncoder().encode(text).length);
  assert.equal(r.stories, 2);
  assert.equal(r.tokens, stories.reduce((n, s) => n + tok.encode(s).length, 0));
  // Each figure is positive, or null when the time was below the clock's resolution.
  for (const figure of [r.mb_s, r.first_pass_mb_s, r.cpu_mb_s]) {
    assert.ok(figure === null || figure > 0, String(figure));
  }
  await Deno.remove(dir, { recursive: true });
});
