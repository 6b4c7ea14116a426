/**
 * Seeded fuzzing of the data parsers: Hugging Face `tokenizer.json` files (and `encode` /
 * `decode` on random text and ids), parquet files, `.npy` headers and bodies (the in-memory
 * decoder, the positioned reader and the pretokenized data module that opens shards with it),
 * and TinyStories `.txt` story files. As in `fuzz_test.ts`: each input is rejected with an
 * `Error` of one short line that names its source, or accepted and valid — never a TypeError
 * or RangeError from inside, a hang or an OOM. Counts keep each target to about a second on a
 * 2-core CPU; `FUZZ_SEED=N` shifts every seed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { HfTokenizer } from "../../src/tokenizers/hf_bpe.ts";
import { tinyStoriesTokenizer } from "../../src/tokenizers/tinystories.ts";
import { decodeNpy, encodeNpy, type NpyArray, NpyReader } from "../../src/io/npy.ts";
import { PretokenizedDataset } from "../../src/data/pretokenized.ts";
import { STORY_SEPARATOR, textFileSource } from "../../src/data/tinystories_sources.ts";
import { createParquetTextReader } from "../../scripts/_parquet.ts";
import { rng } from "../_util.ts";
import { assertClean, JSON_VALUES, pick, SEED } from "./_fuzz.ts";

/** Replaces the value at a random path of a JSON tree (objects and arrays) by `value`. */
function replaceSomewhere(root: unknown, r: () => number, value: unknown): void {
  let node = root as Record<string, unknown>;
  for (;;) {
    const keys = Object.keys(node);
    if (keys.length === 0) return;
    const key = pick(r, keys);
    const child = node[key];
    if (typeof child === "object" && child !== null && r() < 0.6) {
      node = child as Record<string, unknown>;
      continue;
    }
    node[key] = value;
    return;
  }
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

const SHIPPED = Deno.readTextFileSync(
  new URL("../../src/tokenizers/tinystories_tokenizer.json", import.meta.url),
);

/** A mutated tokenizer.json text: fields replaced, a merge added, bytes changed, truncation. */
function mutateTokenizer(base: Record<string, unknown>, text: string, r: () => number): string {
  const kind = Math.floor(r() * 4);
  if (kind <= 1) {
    const json = structuredClone(base);
    for (let k = 1 + Math.floor(r() * 2); k > 0; k--) {
      const value = r() < 0.3
        ? pick(r, ["Ġt", "Ġ", "<|eos|>", "a b", "Ġ Ġ", "#version", "ByteLevel", "Digits"])
        : pick(r, JSON_VALUES);
      replaceSomewhere(json, r, value);
    }
    if (r() < 0.2) {
      const model = (json.model ?? {}) as Record<string, unknown>;
      const merges = model.merges;
      if (Array.isArray(merges)) merges.unshift(pick(r, ["Ġ t", "t Ġ", "x y", "Ġt he", ""]));
    }
    return JSON.stringify(json);
  }
  if (kind === 2) {
    let out = text;
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const at = Math.floor(r() * out.length);
      out = out.slice(0, at) + pick(r, ['"', "{", "}", "[", "]", ",", ":", "0", "-", "\\", ""]) +
        out.slice(at + 1);
    }
    return out;
  }
  return text.slice(0, Math.floor(r() * text.length));
}

Deno.test("fuzz: mutated tokenizer.json files are rejected cleanly or tokenize validly", () => {
  const base = JSON.parse(SHIPPED);
  const r = rng(SEED + 5150);
  let accepted = 0;
  const n = 400;
  for (let i = 0; i < n; i++) {
    const text = mutateTokenizer(base, SHIPPED, r);
    const source = `fuzz-${i}/tokenizer.json`;
    let tok: HfTokenizer;
    try {
      tok = HfTokenizer.fromJSON(text, source);
    } catch (e) {
      assertClean(e, source, () => text);
      continue;
    }
    accepted++;
    // Accepted means valid: every id it gives is one it can name and decode.
    const ids = tok.encode("Once upon a time, Lily saw 12 big cats.<|eos|> 🐈\u0000");
    for (const id of ids) {
      assert.ok(Number.isInteger(id) && id >= 0 && id < 2 ** 26, `id ${id} in case ${i}`);
      assert.ok(tok.idToToken(id) !== undefined, `id ${id} has no token in case ${i}`);
    }
    assert.equal(typeof tok.decode(ids), "string");
  }
  assert.ok(accepted > 0 && accepted < n, `accepted ${accepted}`);
});

/** Random text: pieces that stress the pre-tokenizer, added tokens, odd code points. */
function randomText(r: () => number): string {
  const pieces = [
    " ",
    "  ",
    "\n",
    "\t",
    "a",
    "Lily",
    "'s",
    "'S",
    "12",
    "٣",
    "½",
    "<|eos|>",
    "<|pad|>",
    "<|eos",
    "|>",
    "é",
    "🐈",
    "\u0000",
    "\uD800",
    "\uDC00",
    "\uFFFD",
    "\u200B",
    "!",
    "...",
    "ﬁ",
  ];
  let s = "";
  for (let k = Math.floor(r() * 40); k > 0; k--) {
    s += r() < 0.1 ? String.fromCharCode(Math.floor(r() * 0x10000)) : pick(r, pieces);
  }
  if (r() < 0.02) s += pick(r, ["a", "1", " ", "é"]).repeat(20_000);
  return s;
}

Deno.test("fuzz: HfTokenizer encode and decode take any text and any ids", () => {
  const tok = tinyStoriesTokenizer({ fim: true });
  const r = rng(SEED + 99);
  for (let i = 0; i < 1500; i++) {
    const text = randomText(r);
    const ids = tok.encode(text);
    for (const id of ids) {
      assert.ok(Number.isInteger(id) && id >= 0 && id < tok.vocabSize, `id ${id} of case ${i}`);
    }
    // The same text gives the same ids, and they decode (the prefix space, the "##" of the
    // continuing subwords and bytes without a symbol mean the text need not come back).
    assert.deepEqual(tok.encode(text), ids, `case ${i}`);
    assert.equal(typeof tok.decode(ids), "string");
    const noise = Array.from(
      { length: Math.floor(r() * 50) },
      () => pick(r, [-1, 0.5, NaN, Infinity, 2 ** 31, 2 ** 53, 1e308, 999, 1000, 1001, 5]),
    );
    assert.equal(typeof tok.decode(noise), "string");
    assert.equal(typeof tok.decode(noise, { skipSpecialTokens: true }), "string");
  }
});

// ---------------------------------------------------------------------------------------------
// Parquet

const PARQUET_DIR = new URL("../fixtures/parquet/", import.meta.url);
const PARQUET = [
  { name: "strings.parquet", column: "c_utf8" },
  { name: "alpha.parquet", column: "id" },
  { name: "dictionary_offset_indexed.parquet", column: "country" },
];

/** A mutated copy of a parquet file: truncated, bytes flipped (often in the footer), bad magic. */
function mutateParquet(base: Uint8Array, r: () => number): Uint8Array {
  const kind = Math.floor(r() * 5);
  if (kind === 0) return base.subarray(0, Math.floor(r() * base.length));
  const bytes = base.slice();
  const footerLength = new DataView(bytes.buffer).getUint32(bytes.length - 8, true);
  const footerStart = bytes.length - 8 - footerLength;
  if (kind === 1) {
    // The 4-byte magic at either end.
    const at = r() < 0.5 ? Math.floor(r() * 4) : bytes.length - 1 - Math.floor(r() * 4);
    bytes[at] ^= 1 + Math.floor(r() * 255);
    return bytes;
  }
  if (kind === 2) {
    // The footer length.
    new DataView(bytes.buffer).setUint32(
      bytes.length - 8,
      pick(r, [0, 1, footerLength - 1, footerLength + 1, bytes.length, 0x7fffffff, 0xffffffff]),
      true,
    );
    return bytes;
  }
  // Bytes of the footer metadata (kind 3) or anywhere (kind 4).
  for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
    const at = kind === 3
      ? footerStart + Math.floor(r() * footerLength)
      : Math.floor(r() * bytes.length);
    bytes[at] = r() < 0.5 ? pick(r, [0x00, 0xff, 0x7f, 0x80, 0x15, 0x19, 0x1c]) : bytes[at] ^ 0x10;
  }
  return bytes;
}

Deno.test("fuzz: mutated parquet files are rejected cleanly or read validly", async () => {
  const dir = await Deno.makeTempDir();
  const r = rng(SEED + 2718);
  let accepted = 0;
  const n = 240;
  try {
    const bases = await Promise.all(
      PARQUET.map(async (p) => ({
        ...p,
        bytes: await Deno.readFile(new URL(p.name, PARQUET_DIR)),
      })),
    );
    for (let i = 0; i < n; i++) {
      const base = pick(r, bases);
      const bytes = mutateParquet(base.bytes, r);
      const path = join(dir, `fuzz-${i}.parquet`);
      await Deno.writeFile(path, bytes);
      const reader = createParquetTextReader({ column: base.column });
      try {
        const rows = await reader.rowCount(path);
        // Bounded: a mutated row count is not trusted to size anything here.
        const end = Math.min(rows, 1000);
        const got: string[] = [];
        for await (const batch of reader.readText(path, 0, end)) got.push(...batch);
        assert.equal(got.length, end);
        assert.ok(got.every((s) => typeof s === "string"));
        accepted++;
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assertClean(e, path, () => `${base.name} mutated`);
      } finally {
        await Deno.remove(path);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(accepted > 0 && accepted < n, `accepted ${accepted}`);
});

// ---------------------------------------------------------------------------------------------
// .npy

/** A valid `.npy` file of a random dtype, shape and format version. */
function randomNpy(r: () => number): Uint8Array {
  const dtype = pick(r, ["u1", "u2", "i4", "i8", "f4"] as const);
  const shape = pick(r, [[], [0], [5], [3, 4], [2, 0, 3], [1, 1, 1, 2]]);
  const count = shape.reduce((a, b) => a * b, 1);
  const data: NpyArray = dtype === "u1"
    ? new Uint8Array(count)
    : dtype === "u2"
    ? new Uint16Array(count)
    : dtype === "i4"
    ? new Int32Array(count)
    : dtype === "i8"
    ? new BigInt64Array(count)
    : new Float32Array(count);
  return encodeNpy(data, shape, { version: pick(r, [1, 2, 3] as const) });
}

/** Header texts that stress the literal parser: types, extremes, nesting, length. */
const NPY_VALUES = [
  "'<u2'",
  "'|u1'",
  "'>i4'",
  "'<f8'",
  "'<U3'",
  "[('a', '<i4')]",
  "True",
  "False",
  "None",
  "()",
  "(5,)",
  "(-1,)",
  "(2**31,)",
  "(9007199254740993,)",
  "(99999999999999999999999,)",
  "(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25)",
  "(1000000, 1000000, 1000000)",
  "(5L,)",
  "'unterminated",
  "'a\\'b'",
  `${"(".repeat(5000)}${")".repeat(5000)}`,
  `${"[".repeat(20000)}`,
  `(${"1, ".repeat(3000)})`,
  "x".repeat(3000),
  `(${"7".repeat(300_000)},)`,
  "é",
];

/** A mutation of a valid `.npy` file: a header value, the header length, bytes, truncation. */
function mutateNpy(base: Uint8Array, r: () => number): Uint8Array {
  const major = base[6];
  const lengthBytes = major === 1 ? 2 : 4;
  const view = new DataView(base.buffer, base.byteOffset, base.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lengthBytes;
  const kind = Math.floor(r() * 6);
  if (kind <= 1) {
    // A header value replaced (the header length follows, padding kept as numpy pads).
    const text = new TextDecoder().decode(base.subarray(start, start + hlen));
    const key = pick(r, ["descr", "fortran_order", "shape"]);
    const re = new RegExp(`'${key}': ([^,]*(\\([^)]*\\))?[^,]*),`);
    let mutated = text.replace(re, `'${key}': ${pick(r, NPY_VALUES)},`);
    if (r() < 0.2) mutated = mutated.replace("{", pick(r, ["{'x': 1, ", "{'shape': (1,), ", "["]));
    const header = new TextEncoder().encode(mutated);
    const big = header.length > 65535 || major !== 1 || r() < 0.3;
    const version = big && major === 1 ? 2 : major;
    const lb = version === 1 ? 2 : 4;
    const out = new Uint8Array(8 + lb + header.length + base.length - start - hlen);
    out.set(base.subarray(0, 8));
    out[6] = version;
    const ov = new DataView(out.buffer);
    if (lb === 2) ov.setUint16(8, header.length, true);
    else ov.setUint32(8, header.length, true);
    out.set(header, 8 + lb);
    out.set(base.subarray(start + hlen), 8 + lb + header.length);
    return out;
  }
  const bytes = base.slice();
  const bv = new DataView(bytes.buffer);
  if (kind === 2) {
    const v = pick(r, [0, 1, hlen - 1, hlen + 1, 0xffff, 0x7fffffff, 0xffffffff]);
    if (lengthBytes === 2) bv.setUint16(8, v & 0xffff, true);
    else bv.setUint32(8, v >>> 0, true);
    return bytes;
  }
  if (kind === 3) {
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const at = r() < 0.7 ? Math.floor(r() * Math.min(bytes.length, start + hlen)) : Math.floor(
        r() * bytes.length,
      );
      bytes[at] = pick(r, [0x00, 0xff, 0x80, 0x27, 0x28, 0x29, 0x2c, 0x31, 0x0a, 0x20]);
    }
    return bytes;
  }
  if (kind === 4) {
    bytes[Math.floor(r() * 8)] = pick(r, [0x00, 0x01, 0x02, 0x03, 0x04, 0x4e, 0x93]);
    return bytes;
  }
  return bytes.subarray(0, Math.floor(r() * bytes.length));
}

Deno.test("fuzz: mutated .npy bytes are rejected cleanly or decode validly", () => {
  const r = rng(SEED + 314);
  let accepted = 0;
  const n = 3000;
  for (let i = 0; i < n; i++) {
    const bytes = mutateNpy(randomNpy(r), r);
    const source = `fuzz-${i}.npy`;
    try {
      const a = decodeNpy(bytes, source);
      accepted++;
      assert.equal(a.shape.reduce((x, y) => x * y, 1), a.data.length);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assertClean(e, source, () => new TextDecoder().decode(bytes.subarray(0, 200)));
    }
  }
  assert.ok(accepted > 0 && accepted < n, `accepted ${accepted}`);
});

Deno.test("fuzz: mutated .npy files are rejected cleanly by NpyReader and PretokenizedDataset", async () => {
  const dir = await Deno.makeTempDir();
  const r = rng(SEED + 1618);
  let accepted = 0;
  const n = 300;
  try {
    for (let i = 0; i < n; i++) {
      const bytes = mutateNpy(randomNpy(r), r);
      const name = `fuzz-${i}.npy`;
      const path = join(dir, name);
      await Deno.writeFile(path, bytes);
      try {
        if (i % 2 === 0) {
          const reader = await NpyReader.open(path);
          try {
            const data = await reader.readRows(0, reader.rows);
            assert.equal(data.length, reader.rows * reader.rowLength);
          } finally {
            reader.close();
          }
        } else {
          const ds = await PretokenizedDataset.open(dir, [[name, pick(r, [1, 0.5, 2])]], 2);
          try {
            if (ds.length > 0) {
              const rows = await ds.readRows([0, ds.length - 1]);
              assert.equal(rows.length, 4);
            }
          } finally {
            ds.close();
          }
        }
        accepted++;
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assertClean(e, path, () => new TextDecoder().decode(bytes.subarray(0, 200)));
      } finally {
        await Deno.remove(path);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(accepted > 0 && accepted < n, `accepted ${accepted}`);
});

// ---------------------------------------------------------------------------------------------
// TinyStories .txt story files

Deno.test("fuzz: random bytes as a TinyStories .txt file give stories or a clean error", async () => {
  const dir = await Deno.makeTempDir();
  const r = rng(SEED + 8080);
  const pieces = [
    STORY_SEPARATOR,
    `\n${STORY_SEPARATOR}\n`,
    "\n",
    "\r\n",
    " ",
    "Once upon a time.",
    "<|endoftext",
    "\u0000",
    "é",
  ].map((s) => new TextEncoder().encode(s));
  const n = 200;
  let accepted = 0;
  try {
    for (let i = 0; i < n; i++) {
      const parts: Uint8Array[] = [];
      for (let k = Math.floor(r() * 30); k > 0; k--) {
        parts.push(
          r() < 0.4
            ? Uint8Array.from({ length: Math.floor(r() * 20) }, () => Math.floor(r() * 256))
            : pick(r, pieces),
        );
      }
      if (r() < 0.05) parts.push(new Uint8Array(3000).fill(0x61));
      const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
      const path = join(dir, `fuzz-${i}.txt`);
      await Deno.writeFile(path, bytes);
      const source = textFileSource(path, { maxStoryChars: pick(r, [2000, 1 << 24]) });
      try {
        const stories: string[] = [];
        for await (const s of source.stories()) stories.push(s);
        assert.equal(await source.count(), stories.length);
        for (const s of stories) {
          assert.ok(s.length > 0 && s === s.trim(), `case ${i}: story ${JSON.stringify(s)}`);
        }
        const start = Math.floor(r() * (stories.length + 1));
        const tail: string[] = [];
        for await (const s of source.stories(start)) tail.push(s);
        assert.deepEqual(tail, stories.slice(start));
        accepted++;
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assertClean(e, path, () => new TextDecoder().decode(bytes.subarray(0, 200)));
      } finally {
        await Deno.remove(path);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Most random files are accepted; the short story limit rejects some.
  assert.ok(accepted > 0 && accepted < n, `accepted ${accepted}`);
});
