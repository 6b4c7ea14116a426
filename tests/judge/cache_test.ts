import assert from "node:assert/strict";
import {
  cacheEntryDir,
  cacheKey,
  pythonJson,
  readCacheEntry,
  writeCacheEntry,
} from "../../src/judge/cache.ts";

// Expected digests from the reference's GPTJudge.hash_two_dicts in Python.
Deno.test("cacheKey() is the reference's hash_two_dicts, sorting by code point", async () => {
  // U+E000 sorts before U+1F600 by code point but after it by UTF-16 unit.
  assert.equal(
    await cacheKey({ story: "x\ue000", model: "a" }, { story: "x\u{1F600}", model: "b" }),
    "92fd4f1839f6ae6a46bd8b29bb23c0876ccb62a971928d7d710ba3950c442f0f",
  );
  assert.equal(
    await cacheKey(
      { model: "gpt", story: 'Ünïcödé "quoted", comma=yes' },
      { story: "plain", model: "bst" },
    ),
    "311d91833fe939165d4846e83d92dff478a38cffb8d0a226c98f86b949ae0384",
  );
});

Deno.test("cacheEntryDir() appends the prompt version unless the cache ignores the prompt", () => {
  assert.equal(cacheEntryDir("c", "abcdef0123456789", "v2", false), "c/abcdef0123_v2");
  assert.equal(cacheEntryDir("c", "abcdef0123456789", "v2", true), "c/abcdef0123");
});

Deno.test("pythonJson() writes json.dumps(indent=4) with ensure_ascii", () => {
  // Python: json.dumps({"s": "tab\tnl\nq\"bs\\ctl\x01del\x7f é 😀 \u2028"}, indent=4)
  assert.equal(
    pythonJson({ s: 'tab\tnl\nq"bs\\ctl\x01del\x7f é 😀 \u2028' }),
    '{\n    "s": "tab\\tnl\\nq\\"bs\\\\ctl\\u0001del\\u007f \\u00e9 \\ud83d\\ude00 \\u2028"\n}',
  );
  assert.equal(pythonJson({ a: [], b: [1] }), '{\n    "a": [],\n    "b": [\n        1\n    ]\n}');
});

Deno.test("writeCacheEntry() then readCacheEntry() round-trips; a missing entry reads null", async () => {
  const dir = await Deno.makeTempDir();
  const entry = {
    prompt: [{ role: "user" as const, content: "Story 1: é" }],
    story_1: "gpt",
    story_2: "bst",
    iteration: 1,
    model_judge: "judge",
    result: "Winner: Story 2",
  };
  await writeCacheEntry(`${dir}/k_v1`, entry);
  assert.deepEqual(await readCacheEntry(`${dir}/k_v1`, 1, ["bst", "gpt"]), entry);
  assert.equal(await readCacheEntry(`${dir}/k_v1`, 0, ["bst", "gpt"]), null);
  assert.deepEqual([...Deno.readDirSync(`${dir}/k_v1`)].map((e) => e.name), ["1.json"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("readCacheEntry() names the file when it is not JSON or credits another model", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/0.json`, "{");
  await assert.rejects(
    readCacheEntry(dir, 0, ["bst", "gpt"]),
    new RegExp(
      `^Error: Cache file "${dir}/0.json" is not JSON .*delete it to ask the judge again$`,
    ),
  );
  await Deno.writeTextFile(
    `${dir}/1.json`,
    JSON.stringify({ story_1: "other", story_2: "gpt", result: "Winner: None" }),
  );
  await assert.rejects(
    readCacheEntry(dir, 1, ["bst", "gpt"]),
    /gives "story_1" as "other", expected "bst" or "gpt"$/,
  );
  await Deno.writeTextFile(`${dir}/2.json`, JSON.stringify({ story_1: "bst", story_2: "gpt" }));
  await assert.rejects(readCacheEntry(dir, 2, ["bst", "gpt"]), /has no "result" string/);
  await Deno.remove(dir, { recursive: true });
});
