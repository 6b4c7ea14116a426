/**
 * HfTokenizer against the official Hugging Face implementation (npm `tokenizers` 0.23.2, the
 * Rust library with its native binary; a test-only oracle, loaded with `--allow-ffi`) over
 * thousands of generated texts and id lists. Every encode and decode must agree exactly.
 */
import assert from "node:assert/strict";
// The full specifier, as in every source file: files imported by URL ignore the import map.
// deno-lint-ignore no-import-prefix
import { Tokenizer } from "npm:tokenizers@0.23.2";
import { HfTokenizer } from "../../src/tokenizers/hf_bpe.ts";
import { rng } from "../_util.ts";

const tokenizerUrl = new URL("../../src/tokenizers/tinystories_tokenizer.json", import.meta.url);
const fixtureUrl = new URL("../fixtures/tinystories/encodings.jsonl", import.meta.url);
const shipped = await Deno.readTextFile(tokenizerUrl);

/** Sentences (from the fixture texts) and words to build texts from. */
const sentences: string[] = (await Deno.readTextFile(fixtureUrl)).trim().split("\n")
  .map((l) => JSON.parse(l).text as string)
  .flatMap((t) => t.split("\n"))
  .filter((t) => t.length > 0);
const words = [...new Set(sentences.flatMap((s) => s.split(/\s+/)).filter((w) => w))];

const SPACES = [" ", "  ", "   ", "      ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0"];
const PUNCTUATION = [..."!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"];
const OTHER = [
  "é",
  "ß",
  "Ω",
  "Жук",
  "中文字",
  "ー",
  "²",
  "³",
  "¹",
  "½",
  "¼",
  "¾",
  "٣",
  "①",
  "Ⅻ",
  "\u0085",
  "\u3000",
  "\u2003",
  "\u2028",
  "\ufeff",
  "\u200b",
  "e\u0301",
  "İ",
  "ﬁ",
  "—",
  "…",
  "“",
  "”",
  "’",
  "😀",
  "👍🏽",
  "👨‍👩‍👧",
  "❤️",
  "𝟘",
  "𐍈",
  "\u0000",
  "\u001b",
  "\u007f",
  "\ud800", // lone surrogates: U+FFFD for both
  "\udc00",
];
const SPECIAL = ["<|eos|>", "<|pad|>", "<|fim|>", "<|eos", "eos|>", "<|", "|>", "<|<|eos|>|>"];
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "n't", "'", "''", "'x"];

/** A random text mixing story sentences, digits, spaces, punctuation, Unicode and specials. */
function generator(seed: number): () => string {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const digits = () => {
    let s = "";
    const n = 1 + Math.floor(random() * 8);
    for (let i = 0; i < n; i++) s += String(Math.floor(random() * 10));
    return s;
  };
  const fragments: (() => string)[] = [
    () => pick(words),
    () => pick(words),
    () => pick(sentences),
    digits,
    () => pick(SPACES),
    () => pick(PUNCTUATION) + (random() < 0.5 ? pick(PUNCTUATION) : ""),
    () => pick(OTHER),
    () => pick(["##", "###", "# #", "##ing", "a##b"]),
    () => pick(SPECIAL),
    () => pick(CONTRACTIONS),
    () => pick(words) + digits() + pick(words),
    () => pick(words).toUpperCase(),
  ];
  return () => {
    let text = "";
    const n = Math.floor(random() * 14);
    for (let i = 0; i < n; i++) {
      const r = random();
      text += r < 0.45 ? " " : r < 0.55 ? pick(SPACES) : "";
      text += pick(fragments)();
    }
    return text;
  };
}

/** Encodes `texts` with both; returns the number compared. Fails on the first difference. */
async function compareEncode(ours: HfTokenizer, oracle: Tokenizer, texts: string[]) {
  const theirs = await oracle.encodeBatch(texts, { addSpecialTokens: true });
  for (let i = 0; i < texts.length; i++) {
    const want = theirs[i].getIds();
    const got = ours.encode(texts[i]);
    if (got.length !== want.length || got.some((id, j) => id !== want[j])) {
      assert.fail(
        `encode(${JSON.stringify(texts[i])}): got ${JSON.stringify(got)}, ` +
          `the official library ${JSON.stringify(want)}`,
      );
    }
  }
}

/** Decodes `lists` with both, with and without skipping special tokens. */
async function compareDecode(ours: HfTokenizer, oracle: Tokenizer, lists: number[][]) {
  for (const skip of [false, true]) {
    const theirs = await oracle.decodeBatch(lists, skip);
    for (let i = 0; i < lists.length; i++) {
      const got = ours.decode(lists[i], {
        skipSpecialTokens: skip,
        cleanUpTokenizationSpaces: false,
      });
      if (got !== theirs[i]) {
        assert.fail(
          `decode(${JSON.stringify(lists[i])}, skip ${skip}): got ${JSON.stringify(got)}, ` +
            `the official library ${JSON.stringify(theirs[i])}`,
        );
      }
    }
  }
}

/** `n` random id lists over [0, bound): special, unknown and byte-level ids included. */
function randomIdLists(n: number, bound: number, seed: number): number[][] {
  const random = rng(seed);
  return Array.from({ length: n }, () => {
    const len = Math.floor(random() * 30);
    return Array.from({ length: len }, () => Math.floor(random() * bound));
  });
}

Deno.test("HfTokenizer agrees with the official tokenizers library on 4000 generated texts (TinyStories tokenizer, <|fim|> added)", async () => {
  const ours = HfTokenizer.fromJSON(shipped);
  const oracle = Tokenizer.fromString(shipped);
  const next = generator(2024);
  const texts = Array.from({ length: 2000 }, next);
  await compareEncode(ours, oracle, texts);
  // As the reference's FIM baseline: <|fim|> added as a special token (id 1000).
  assert.deepEqual(ours.addSpecialTokens(["<|fim|>"]), [1000]);
  oracle.addSpecialTokens(["<|fim|>"]);
  assert.equal(oracle.tokenToId("<|fim|>"), 1000);
  assert.equal(ours.vocabSize, oracle.getVocabSize(true));
  const more = Array.from({ length: 2000 }, next);
  await compareEncode(ours, oracle, more);
  const encoded = more.map((t) => ours.encode(t));
  await compareDecode(ours, oracle, [...encoded, ...randomIdLists(1000, 1010, 5)]);
});

Deno.test("HfTokenizer agrees with the official library for other ByteLevel, Digits and added-token settings", async () => {
  const variants: [string, (j: Record<string, unknown>) => void][] = [
    ["no prefix space", (j) => setPre(j, 0, "add_prefix_space", false)],
    ["no regex", (j) => setPre(j, 0, "use_regex", false)],
    ["contiguous digits", (j) => setPre(j, 1, "individual_digits", false)],
    ["ByteLevel alone", (j) => j.pre_tokenizer = (j.pre_tokenizer as Pre).pretokenizers[0]],
    ["merges as pairs", (j) => {
      const model = j.model as { merges: string[] | string[][] };
      model.merges = (model.merges as string[]).map((m) => m.split(" "));
    }],
    ["overlapping and normalized added tokens", (j) => {
      const added = j.added_tokens as Record<string, unknown>[];
      const token = (id: number, content: string, special: boolean, normalized: boolean) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized,
        special,
      });
      added.push(
        token(1000, "<|eo", true, false),
        token(1001, "<|eos|>|>", true, false),
        token(1002, "s|>", false, true),
        token(184, "Ġthe", false, true),
        token(1003, "cat", false, true),
      );
    }],
  ];
  const next = generator(99);
  const texts = Array.from({ length: 400 }, next);
  for (const [name, edit] of variants) {
    const j = JSON.parse(shipped);
    edit(j);
    const json = JSON.stringify(j);
    const ours = HfTokenizer.fromJSON(json);
    const oracle = Tokenizer.fromString(json);
    assert.equal(ours.vocabSize, oracle.getVocabSize(true), name);
    await compareEncode(ours, oracle, texts).catch((e) => {
      throw new Error(`${name}: ${(e as Error).message}`);
    });
    await compareDecode(ours, oracle, randomIdLists(100, 1010, 3));
  }
});

Deno.test("HfTokenizer.decode() agrees with the official library on invalid UTF-8 and non-byte characters", async () => {
  // A vocabulary of single byte characters (UTF-8 lead and continuation bytes), a byte-order
  // mark (EF BB BF, kept by the decoder) and tokens with characters outside the byte alphabet,
  // decoded in random orders.
  const vocab = ["Ã", "©", "â", "Ĥ", "¢", "ð", "Ł", "Ġ", "a", "€", "a€", "日本", "<s>", "ï»¿"];
  const json = JSON.stringify({
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{
      id: 12,
      content: "<s>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }],
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: true,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges: [],
    },
  });
  const ours = HfTokenizer.fromJSON(json);
  const oracle = Tokenizer.fromString(json);
  await compareDecode(ours, oracle, randomIdLists(1000, vocab.length + 2, 11));
});

type Pre = { pretokenizers: Record<string, unknown>[] };

function setPre(j: Record<string, unknown>, step: number, key: string, value: unknown) {
  (j.pre_tokenizer as Pre).pretokenizers[step][key] = value;
}
