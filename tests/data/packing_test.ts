import assert from "node:assert/strict";
import {
  codePointLength,
  drawGoalLength,
  fimRow,
  PackedRows,
  type PackingOptions,
  TrainBatches,
  validationBatches,
} from "../../src/data/packing.ts";
import { storiesFromStrings, textFileSource } from "../../src/data/tinystories_sources.ts";
import { PyRandom } from "../../src/data/mt19937.ts";

const SAMPLE = new URL("../fixtures/tinystories/stories_40.txt", import.meta.url).pathname;
const EOS = 1;
const FIM = 999;

/** Stand-in tokenizer: one id per code point, in [2, 901] (never EOS or FIM). */
const encode = (t: string): number[] => Array.from(t, (c) => 2 + (c.codePointAt(0)! % 900));

/** A word-level stand-in: one id per word, so stories have tens to hundreds of tokens. */
const encodeWords = (t: string): number[] =>
  t.split(/\s+/).filter((w) => w).map((w) =>
    2 + ([...w].reduce((a, c) => a * 31 + c.charCodeAt(0), 7) % 900)
  );

async function sampleStories(): Promise<string[]> {
  const out: string[] = [];
  for await (const s of textFileSource(SAMPLE).stories()) out.push(s);
  return out;
}

async function allRows(p: PackedRows): Promise<number[][]> {
  const out: number[][] = [];
  for (let r = await p.next(); r; r = await p.next()) out.push([...r]);
  return out;
}

Deno.test("codePointLength() counts code points as Python's len()", () => {
  assert.equal(codePointLength(""), 0);
  assert.equal(codePointLength("abc"), 3);
  assert.equal(codePointLength("é—“x”"), 5);
  assert.equal(codePointLength("😀😀a"), 3);
  assert.equal(codePointLength("\ud800x"), 2); // a lone surrogate counts once
});

Deno.test("fimRow() puts the goal first, then <|fim|>, the rest and EOS", () => {
  const ids = Array.from({ length: 30 }, (_, i) => 100 + i);
  const row = fimRow(ids, 25, FIM, EOS);
  assert.deepEqual(row, [...ids.slice(5), FIM, ...ids.slice(0, 5), EOS]);
  assert.throws(() => fimRow(ids, 30, FIM, EOS), /outside \[1, 29\]/);
});

Deno.test("drawGoalLength() draws from [25, min(50, len − 2)] and refuses short stories", () => {
  const rng = new PyRandom(5);
  assert.equal(drawGoalLength(rng, 26), undefined);
  assert.equal(drawGoalLength(rng, 27), 25);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const g = drawGoalLength(rng, 40)!;
    assert.ok(g >= 25 && g <= 38, `${g}`);
    seen.add(g);
  }
  assert.equal(seen.size, 14);
  for (let i = 0; i < 2000; i++) seen.add(drawGoalLength(rng, 500)!);
  assert.equal(Math.min(...seen), 25);
  assert.equal(Math.max(...seen), 50);
});

Deno.test("PackedRows() without shuffling is the stories plus EOS cut into rows, tails dropped per buffer", async () => {
  const stories = await sampleStories();
  const T = 64;
  const bufferChars = 3000;
  // The reference's buffers: add stories while fewer than bufferChars characters are in.
  const want: number[][] = [];
  for (let i = 0; i < stories.length;) {
    let chars = 0;
    const tokens: number[] = [];
    while (i < stories.length && chars < bufferChars) {
      chars += stories[i].length;
      tokens.push(...encode(stories[i]), EOS);
      i++;
    }
    for (let r = 0; r + T <= tokens.length; r += T) want.push(tokens.slice(r, r + T));
  }
  const opts = { blockSize: T, encode, seed: 0, shuffle: false, bufferChars };
  const got = await allRows(new PackedRows(textFileSource(SAMPLE), opts));
  assert.deepEqual(got, want);
  assert.ok(want.length > 300);
});

Deno.test("PackedRows() fills a buffer to blockSize × 3.6 × 1024 characters by default", async () => {
  // 10-character stories, blockSize 1: the limit is 3686.4, so 369 stories per buffer.
  const stories = Array.from({ length: 1000 }, (_, i) => `s${String(i).padStart(9, "0")}`);
  const rows = new PackedRows(storiesFromStrings("m", stories), {
    blockSize: 1,
    encode,
    seed: 0,
  });
  for (let i = 0; i < 369 * 11; i++) await rows.next();
  assert.deepEqual(rows.position, {
    epoch: 0,
    buffer: 0,
    storyStart: 0,
    row: 369 * 11,
    fimSkipped: 0,
  });
  await rows.next();
  assert.deepEqual(rows.position, { epoch: 0, buffer: 1, storyStart: 369, row: 1, fimSkipped: 0 });
});

Deno.test("PackedRows() shuffles stories and rows by seed and epoch, keeping every buffer's stories", async () => {
  const stories = await sampleStories();
  const base: PackingOptions = { blockSize: 32, encode: encodeWords, seed: 1, bufferChars: 5000 };
  const a = await allRows(new PackedRows(storiesFromStrings("m", stories), base));
  const again = await allRows(new PackedRows(storiesFromStrings("m", stories), base));
  const other = await allRows(
    new PackedRows(storiesFromStrings("m", stories), { ...base, seed: 2 }),
  );
  const epoch1 = await allRows(
    new PackedRows(storiesFromStrings("m", stories), base, {
      epoch: 1,
      buffer: 0,
      storyStart: 0,
      row: 0,
      fimSkipped: 0,
    }),
  );
  const plain = await allRows(
    new PackedRows(storiesFromStrings("m", stories), { ...base, shuffle: false }),
  );
  assert.deepEqual(a, again);
  assert.notDeepEqual(a, other);
  assert.notDeepEqual(a, epoch1);
  assert.notDeepEqual(a, plain);
  // Shuffling moves stories only within a buffer: each row holds whole words of the right
  // stories, and the row count per buffer can change only through the dropped tails.
  assert.ok(Math.abs(a.length - plain.length) <= 8);
  const eosCount = (rows: number[][]) => rows.flat().filter((t) => t === EOS).length;
  assert.ok(Math.abs(eosCount(a) - eosCount(plain)) <= 8);
  // With one-token rows nothing is dropped: each buffer's tokens are the same multiset.
  const one = { ...base, blockSize: 1 };
  const firstBuffer = async (o: PackingOptions) => {
    const p = new PackedRows(storiesFromStrings("m", stories), o);
    const out: number[] = [];
    for (let r = await p.next(); r && p.position.buffer === 0; r = await p.next()) out.push(r[0]);
    return out;
  };
  const shuffled = await firstBuffer(one);
  const ordered = await firstBuffer({ ...one, shuffle: false });
  assert.notDeepEqual(shuffled, ordered);
  assert.deepEqual([...shuffled].sort(), [...ordered].sort());
});

Deno.test("TrainBatches() resumes bit-identically from a JSON state at any batch, across epochs", async () => {
  const stories = await sampleStories();
  const src = storiesFromStrings("m", stories);
  const opts: PackingOptions = { blockSize: 48, encode: encodeWords, seed: 11, bufferChars: 4000 };
  const B = 8;
  const ref = new TrainBatches(src, opts, B);
  const seq: number[][] = [];
  const states: string[] = [];
  for (let i = 0; i < 40; i++) {
    states.push(JSON.stringify(ref.state));
    seq.push([...await ref.next()]);
  }
  assert.ok(ref.epoch >= 2, `epoch ${ref.epoch}`); // the run crossed epoch boundaries
  for (const i of [0, 1, 5, 13, 27, 39]) {
    const resumed = new TrainBatches(src, opts, B, JSON.parse(states[i]));
    for (let j = i; j < Math.min(i + 4, 40); j++) {
      assert.deepEqual([...await resumed.next()], seq[j], `resumed at ${i}, batch ${j}`);
    }
  }
  const tiny = new TrainBatches(storiesFromStrings("tiny", ["one two"]), opts, B);
  await assert.rejects(tiny.next(), /stories of tiny do not fill one batch of 8 rows of 48 tokens/);
});

Deno.test("PackedRows() in FIM mode builds reference FIM rows and counts short stories", async () => {
  const stories = await sampleStories();
  stories.splice(3, 0, "Too short.", "Also far too short to have a goal.");
  const opts: PackingOptions = {
    blockSize: 1,
    encode: encodeWords,
    seed: 4,
    fimTokenId: FIM,
    shuffle: false,
  };
  const rows = new PackedRows(storiesFromStrings("m", stories), opts);
  const stream = (await allRows(rows)).flat();
  const long = stories.map(encodeWords).filter((ids) => ids.length >= 27);
  assert.equal(rows.fimSkipped, stories.length - long.length);
  assert.ok(rows.fimSkipped >= 2);
  // Split the stream at EOS: one FIM row per long story, in order.
  const pieces: number[][] = [];
  let cur: number[] = [];
  for (const t of stream) {
    if (t === EOS) {
      pieces.push(cur);
      cur = [];
    } else cur.push(t);
  }
  assert.deepEqual(cur, []);
  assert.equal(pieces.length, long.length);
  pieces.forEach((piece, i) => {
    const ids = long[i];
    const g = piece.indexOf(FIM);
    assert.ok(g >= 25 && g <= Math.min(50, ids.length - 2), `goal ${g}`);
    assert.deepEqual(piece, [...ids.slice(ids.length - g), FIM, ...ids.slice(0, ids.length - g)]);
  });
});

Deno.test("PackedRows() in FIM mode counts one character per story for <|fim|>", async () => {
  const stories = Array.from({ length: 100 }, () => "w ".repeat(30).trim()); // 59 chars, 30 words
  const base: PackingOptions = {
    blockSize: 1,
    encode: encodeWords,
    seed: 0,
    shuffle: false,
    bufferChars: 59 * 10 + 5,
  };
  const plain = new PackedRows(storiesFromStrings("m", stories), base);
  const fim = new PackedRows(storiesFromStrings("m", stories), { ...base, fimTokenId: FIM });
  const firstBuffer = async (p: PackedRows) => {
    while (p.position.buffer === 0) await p.next();
    return p.position.storyStart;
  };
  assert.equal(await firstBuffer(plain), 11); // 10 × 59 = 590 < 595
  assert.equal(await firstBuffer(fim), 10); // 10 × 60 = 600 ≥ 595
});

Deno.test("validationBatches() gives the same batches whatever the run's seed", async () => {
  const stories = await sampleStories();
  const src = storiesFromStrings("m", stories);
  const get = async (seed: number) => {
    const out: number[][] = [];
    for await (const b of validationBatches(src, { blockSize: 40, encode: encodeWords, seed }, 4)) {
      out.push([...b]);
    }
    return out;
  };
  const a = await get(1);
  assert.deepEqual(await get(12345), a);
  const rows = await allRows(new PackedRows(src, { blockSize: 40, encode: encodeWords, seed: 0 }));
  assert.equal(a.length, Math.floor(rows.length / 4));
  assert.deepEqual(a.flat(), rows.slice(0, a.length * 4).flat());
});
