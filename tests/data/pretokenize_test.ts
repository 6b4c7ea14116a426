/**
 * pretokenizeSplit() against the reference pipeline: the expected shards are built here the
 * way microsoft/BST `data/tinystories/prepare.py` builds them, with the official Hugging Face
 * tokenizer (npm `tokenizers` 0.23.2, a test-only oracle) and numpy's `.npy` layout written
 * out by hand (`numpy/lib/format.py`), independently of the project's tokenizer and npy code.
 */
import assert from "node:assert/strict";
// The full specifier, as in every source file: files imported by URL ignore the import map.
// deno-lint-ignore no-import-prefix
import { Tokenizer } from "npm:tokenizers@0.23.2";
import {
  manifestFileName,
  type PretokenizeOptions,
  pretokenizeSplit,
  readManifest,
  sha256File,
  shardFileName,
} from "../../src/data/pretokenize.ts";
import { storiesFromStrings, textFileSource } from "../../src/data/tinystories_sources.ts";

const SAMPLE = new URL("../fixtures/tinystories/stories_40.txt", import.meta.url).pathname;
const TOKENIZER = await Deno.readTextFile(
  new URL("../../src/tokenizers/tinystories_tokenizer.json", import.meta.url),
);

/** The stories of a TinyStoriesV2 file, split the simple way (whole file in memory). */
function splitSimply(text: string): string[] {
  return text.split(/^[ \t]*<\|endoftext\|>[ \t\r]*$/m).map((s) => s.trim()).filter((s) => s);
}

/** numpy's `np.save` of a 1-D uint16 array, as format.py writes it (format 1.0). */
function npSaveU2(values: ArrayLike<number>): Uint8Array {
  let dict = `{'descr': '<u2', 'fortran_order': False, 'shape': (${values.length},), }`;
  dict += " ".repeat(21 - String(values.length).length); // GROWTH_AXIS_MAX_DIGITS
  const unpadded = 10 + dict.length + 1; // magic, version, uint16 length; the newline
  const pad = 64 - (unpadded % 64);
  const header = dict + " ".repeat(pad) + "\n";
  const out = new Uint8Array(10 + header.length + 2 * values.length);
  out.set([0x93, ..."NUMPY"].map((c) => typeof c === "number" ? c : c.charCodeAt(0)), 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const body = new DataView(out.buffer, 10 + header.length);
  for (let i = 0; i < values.length; i++) body.setUint16(2 * i, values[i], true);
  return out;
}

/** The reference's tokenize_dataset(): documents [EOS] + ids, cut into shards of `size`. */
async function referenceShards(stories: string[], size: number): Promise<Uint8Array[]> {
  const oracle = Tokenizer.fromString(TOKENIZER);
  const encoded = await oracle.encodeBatch(stories, { addSpecialTokens: true });
  const shards: number[][] = [];
  let current: number[] = [];
  for (const e of encoded) {
    const doc = [1, ...e.getIds()];
    if (current.length + doc.length < size) {
      current.push(...doc);
    } else {
      const remainder = size - current.length;
      current.push(...doc.slice(0, remainder));
      shards.push(current);
      current = doc.slice(remainder);
    }
  }
  if (current.length > 0) shards.push(current);
  return shards.map(npSaveU2);
}

async function withDir(f: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "pretok_" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function options(dir: string, extra: Partial<PretokenizeOptions>): PretokenizeOptions {
  return {
    split: "train",
    source: textFileSource(SAMPLE),
    sourceInfo: [{ path: SAMPLE, bytes: Deno.statSync(SAMPLE).size }],
    tokenizerJson: TOKENIZER,
    eosId: 1,
    outputDir: dir,
    prefix: "tinystories2",
    ...extra,
  };
}

const STORIES = splitSimply(await Deno.readTextFile(SAMPLE));

Deno.test("pretokenizeSplit() writes the reference's shard of the 40-story sample byte for byte", async () => {
  const [want] = await referenceShards(STORIES, 100_000_000);
  await withDir(async (dir) => {
    const r = await pretokenizeSplit(options(dir, { workers: 2 }));
    assert.equal(r.record.shards.length, 1);
    const got = await Deno.readFile(`${dir}/tinystories2_train_000000.npy`);
    assert.equal(got.length, want.length);
    assert.deepEqual(got, want);
    assert.equal(r.record.stories, 40);
    assert.equal(r.record.tokens, (want.length - 128) / 2);
  });
});

Deno.test("pretokenizeSplit() cuts shards where the reference does, documents continuing in the next", async () => {
  // 997 tokens per shard: boundaries fall inside documents; batches of 3 stories on 2 workers.
  const want = await referenceShards(STORIES, 997);
  await withDir(async (dir) => {
    const r = await pretokenizeSplit(
      options(dir, { shardTokens: 997, workers: 2, batchStories: 3 }),
    );
    assert.equal(r.record.shards.length, want.length);
    assert.ok(want.length >= 8, `${want.length} shards`);
    for (let i = 0; i < want.length; i++) {
      const got = await Deno.readFile(`${dir}/${shardFileName("tinystories2", "train", i)}`);
      assert.deepEqual(got, want[i], `shard ${i}`);
      assert.equal(
        r.record.shards[i].sha256,
        await sha256File(`${dir}/${r.record.shards[i].file}`),
      );
    }
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, [
      manifestFileName("tinystories2"),
      ...want.map((_, i) => shardFileName("tinystories2", "train", i)),
    ]);
  });
});

Deno.test("pretokenizeSplit() gives the same bytes on this thread and on workers", async () => {
  await withDir(async (dir) => {
    await pretokenizeSplit(options(`${dir}/a`, { shardTokens: 3000, workers: 0 }));
    await pretokenizeSplit(options(`${dir}/b`, { shardTokens: 3000, workers: 3, batchStories: 1 }));
    const a = await readManifest(`${dir}/a`, "tinystories2");
    const b = await readManifest(`${dir}/b`, "tinystories2");
    assert.deepEqual(a, b);
    assert.equal(a!.splits.train.complete, true);
  });
});

Deno.test("pretokenizeSplit() keeps finished shards on a re-run and continues after the last one", async () => {
  const want = await referenceShards(STORIES, 1500);
  await withDir(async (dir) => {
    const first = await pretokenizeSplit(options(dir, { shardTokens: 1500, workers: 0 }));
    assert.equal(first.written, want.length);
    // A complete split is skipped.
    const notes: string[] = [];
    const again = await pretokenizeSplit(
      options(dir, { shardTokens: 1500, workers: 0, onNote: (l) => notes.push(l) }),
    );
    assert.equal(again.written, 0);
    assert.equal(again.stories, 0);
    assert.match(notes[0], /up to date/);
    // An interrupted run: the manifest lists 3 shards and is not complete; shard 3 is gone.
    const m = (await readManifest(dir, "tinystories2"))!;
    m.splits.train.shards = m.splits.train.shards.slice(0, 3);
    m.splits.train.complete = false;
    await Deno.writeTextFile(`${dir}/${manifestFileName("tinystories2")}`, JSON.stringify(m));
    await Deno.remove(`${dir}/${shardFileName("tinystories2", "train", 3)}`);
    const mtime = (await Deno.stat(`${dir}/${shardFileName("tinystories2", "train", 1)}`)).mtime;
    const resumed = await pretokenizeSplit(options(dir, { shardTokens: 1500, workers: 2 }));
    assert.equal(resumed.kept, 3);
    assert.equal(resumed.written, want.length - 3);
    assert.ok(resumed.stories < 40, `re-tokenized ${resumed.stories} stories`);
    for (let i = 0; i < want.length; i++) {
      const got = await Deno.readFile(`${dir}/${shardFileName("tinystories2", "train", i)}`);
      assert.deepEqual(got, want[i], `shard ${i}`);
    }
    assert.deepEqual(
      (await Deno.stat(`${dir}/${shardFileName("tinystories2", "train", 1)}`)).mtime,
      mtime,
    );
    assert.deepEqual(await readManifest(dir, "tinystories2"), {
      ...m,
      splits: { train: first.record },
    });
  });
});

Deno.test("pretokenizeSplit() starts over when the shard size changes and removes stale shards", async () => {
  await withDir(async (dir) => {
    const small = await pretokenizeSplit(options(dir, { shardTokens: 1000, workers: 0 }));
    assert.ok(small.record.shards.length > 3);
    const notes: string[] = [];
    const big = await pretokenizeSplit(
      options(dir, { shardTokens: 5000, workers: 0, onNote: (l) => notes.push(l) }),
    );
    assert.equal(big.kept, 0);
    assert.match(notes.join("\n"), /shard size changed: starting over/);
    const want = await referenceShards(STORIES, 5000);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".npy"));
    assert.equal(names.length, want.length);
  });
});

Deno.test("pretokenizeSplit() fails on an id that does not fit in uint16 and leaves no partial shard", async () => {
  // The TinyStories tokenizer with the word " cat" moved to id 70000.
  const json = JSON.parse(TOKENIZER);
  const vocab = json.model.vocab as Record<string, number>;
  assert.equal(vocab["\u0120cat"], 382);
  vocab["\u0120cat"] = 70000;
  await withDir(async (dir) => {
    const source = storiesFromStrings("mem", ["One day.", "The cat sat.", "The end."]);
    await assert.rejects(
      pretokenizeSplit(
        options(dir, { source, sourceInfo: [], tokenizerJson: JSON.stringify(json), workers: 1 }),
      ),
      /^Error: Story 1 has token id 70000, which does not fit in a uint16 shard \(ids must be below 65,536\)$/,
    );
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, [manifestFileName("tinystories2")]);
    const m = await readManifest(dir, "tinystories2");
    assert.equal(m!.splits.train.complete, false);
    assert.deepEqual(m!.splits.train.shards, []);
  });
});

Deno.test("pretokenizeSplit() rejects a bad shard size, EOS id and prefix", async () => {
  await withDir(async (dir) => {
    await assert.rejects(pretokenizeSplit(options(dir, { shardTokens: 0 })), /Shard size must/);
    await assert.rejects(pretokenizeSplit(options(dir, { eosId: 70000 })), /EOS id must/);
    await assert.rejects(pretokenizeSplit(options(dir, { prefix: "a/b" })), /Prefix and split/);
  });
});
