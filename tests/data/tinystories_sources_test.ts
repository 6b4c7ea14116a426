import assert from "node:assert/strict";
import {
  holdOutLast,
  openStorySource,
  parquetFilesSource,
  type ParquetTextReader,
  sliceSource,
  storiesFromStrings,
  type StorySource,
  textFileSource,
} from "../../src/data/tinystories_sources.ts";

const SAMPLE = new URL("../fixtures/tinystories/stories_40.txt", import.meta.url).pathname;

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const s of it) out.push(s);
  return out;
}

/** The stories of a TinyStoriesV2 file, split the simple way (whole file in memory). */
function splitSimply(text: string): string[] {
  return text.split(/^[ \t]*<\|endoftext\|>[ \t\r]*$/m).map((s) => s.trim()).filter((s) => s);
}

/** A parquet reader stand-in: each "file" is a list of rows; records the calls. */
function fakeParquet(files: Record<string, string[]>, calls: string[] = []): ParquetTextReader {
  return {
    rowCount(p) {
      if (!(p in files)) return Promise.reject(new Error(`no file ${p}`));
      return Promise.resolve(files[p].length);
    },
    async *readText(p, s, e) {
      calls.push(`${p.split("/").pop()}[${s}:${e}]`);
      for (let i = s; i < e; i += 2) yield files[p].slice(i, Math.min(i + 2, e));
    },
  };
}

Deno.test("textFileSource() yields the 40 sample stories trimmed, in order", async () => {
  const text = await Deno.readTextFile(SAMPLE);
  const want = splitSimply(text);
  assert.equal(want.length, 40);
  const src = textFileSource(SAMPLE);
  const got = await collect(src.stories());
  assert.deepEqual(got, want);
  assert.ok(got[0].startsWith("One day, a little girl named Lily found a needle"));
  assert.equal(await src.count(), 40);
  assert.deepEqual(await collect(src.stories(38)), want.slice(38));
  assert.deepEqual(await collect(src.stories(3, 5)), want.slice(3, 5));
});

Deno.test("textFileSource() skips empty stories and handles CRLF, spaces and no final separator", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s.txt`;
    await Deno.writeTextFile(
      path,
      "\r\n  First story.\r\nSecond line.\r\n<|endoftext|>\r\n \n<|endoftext|>\n" +
        "  <|endoftext|>  \nLast <|endoftext|> inline\n\n",
    );
    assert.deepEqual(await collect(textFileSource(path).stories()), [
      "First story.\r\nSecond line.",
      "Last <|endoftext|> inline",
    ]);
    await Deno.writeTextFile(path, "");
    assert.equal(await textFileSource(path).count(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("textFileSource() reads files larger than a chunk with characters split across chunks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/big.txt`;
    const stories = Array.from(
      { length: 8000 },
      (_, i) => `Story ${i}: a cat 😀 met a dog — “hello” ${"é".repeat(i % 200)}.\nThe end.`,
    );
    const text = stories.map((s) => s + "\n<|endoftext|>\n").join("");
    assert.ok(new TextEncoder().encode(text).length > 2 * (1 << 20)); // several 1 MiB chunks
    await Deno.writeTextFile(path, text);
    const src = textFileSource(path);
    assert.deepEqual(await collect(src.stories()), stories);
    assert.equal(await src.count(), 8000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("textFileSource() rejects a story longer than the limit naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/one.txt`;
    await Deno.writeTextFile(path, "short\n<|endoftext|>\n" + "x".repeat(5000));
    const src = textFileSource(path, { maxStoryChars: 1000 });
    await assert.rejects(
      collect(src.stories()),
      /one\.txt": story 1 is longer than 1000 characters \(stories must be separated/,
    );
    await assert.rejects(collect(textFileSource(`${dir}/none.txt`).stories()), /none\.txt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parquetFilesSource() reads only the files and rows a range needs", async () => {
  const files = { a: ["a0", "a1", "a2"], b: [], c: ["c0", "c1", "c2", "c3"] };
  const calls: string[] = [];
  const src = parquetFilesSource("abc", ["a", "b", "c"], fakeParquet(files, calls));
  assert.equal(await src.count(), 7);
  assert.deepEqual(await collect(src.stories()), ["a0", "a1", "a2", "c0", "c1", "c2", "c3"]);
  calls.length = 0;
  assert.deepEqual(await collect(src.stories(4, 6)), ["c1", "c2"]);
  assert.deepEqual(calls, ["c[1:3]"]);
  calls.length = 0;
  assert.deepEqual(await collect(src.stories(2, 4)), ["a2", "c0"]);
  assert.deepEqual(calls, ["a[2:3]", "c[0:1]"]);
});

Deno.test("openStorySource() opens a folder's parquet files in name order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const n of ["train-00001.parquet", "train-00000.parquet", "notes.txt"]) {
      await Deno.writeTextFile(`${dir}/${n}`, "");
    }
    const files = {
      [`${dir}/train-00000.parquet`]: ["first", "second"],
      [`${dir}/train-00001.parquet`]: ["third"],
    };
    const src = await openStorySource(dir, fakeParquet(files));
    assert.deepEqual(await collect(src.stories()), ["first", "second", "third"]);
    const one = await openStorySource(`${dir}/train-00001.parquet`, fakeParquet(files));
    assert.deepEqual(await collect(one.stories()), ["third"]);
    await assert.rejects(openStorySource(dir), /no parquet reader was given/);
    await Deno.mkdir(`${dir}/empty`);
    await assert.rejects(openStorySource(`${dir}/empty`, fakeParquet({})), /no \.parquet files/);
    await assert.rejects(openStorySource(`${dir}/missing`), /Cannot read stories from ".*missing"/);
    const txt = await openStorySource(SAMPLE);
    assert.equal(await txt.count(), 40);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("holdOutLast() keeps the last 1% of stories, at least one, for validation", async () => {
  const split = async (src: StorySource) => {
    const { train, val, total } = await holdOutLast(src);
    return { train: await collect(train.stories()), val: await collect(val.stories()), total };
  };
  const s40 = await split(textFileSource(SAMPLE));
  const all = splitSimply(await Deno.readTextFile(SAMPLE));
  assert.deepEqual(s40, { train: all.slice(0, 39), val: all.slice(39), total: 40 });
  const texts = Array.from({ length: 1234 }, (_, i) => `s${i}`);
  const s1234 = await split(storiesFromStrings("m", texts));
  assert.equal(s1234.val.length, 12);
  assert.deepEqual(s1234.val, texts.slice(1222));
  assert.deepEqual(s1234.train, texts.slice(0, 1222));
  await assert.rejects(holdOutLast(storiesFromStrings("tiny", ["x"])), /"tiny": it has 1/);
});

Deno.test("sliceSource() clamps nested ranges to its own", async () => {
  const s = sliceSource(storiesFromStrings("m", ["a", "b", "c", "d", "e"]), 1, 4);
  assert.deepEqual(await collect(s.stories(1)), ["c", "d"]);
  assert.deepEqual(await collect(s.stories(0, 10)), ["b", "c", "d"]);
  assert.deepEqual(await collect(s.stories(5)), []);
});
