import assert from "node:assert/strict";
import { cleanUpTokenization, HfTokenizer } from "../../src/tokenizers/hf_bpe.ts";
import { tinyStoriesTokenizer } from "../../src/tokenizers/tinystories.ts";
import { GPT2_PATTERN, gpt2WordEnd } from "../../src/tokenizers/_gpt2_split.ts";
import { WordCache } from "../../src/tokenizers/_word_cache.ts";
import { rng } from "../_util.ts";

const fixtureUrl = new URL("../fixtures/tinystories/encodings.jsonl", import.meta.url);
const tokenizerUrl = new URL("../../src/tokenizers/tinystories_tokenizer.json", import.meta.url);

interface Encoded {
  text: string;
  ids: number[];
  tokens: string[];
  decoded: string;
}

Deno.test("HfTokenizer.encode() matches the official library's fixture encodings", async () => {
  const lines: Encoded[] = (await Deno.readTextFile(fixtureUrl)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.ok(lines.length >= 30);
  const tok = tinyStoriesTokenizer();
  for (const { text, ids, tokens, decoded } of lines) {
    const got = tok.encode(text);
    assert.deepEqual(got, ids, JSON.stringify(text));
    assert.deepEqual(got.map((id) => tok.idToToken(id)), tokens, JSON.stringify(text));
    const back = tok.decode(ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false });
    assert.equal(back.replaceAll("##", ""), decoded, JSON.stringify(text));
  }
});

Deno.test("tinyStoriesTokenizer() has the reference's ids: <|pad|> 0, <|eos|> 1, vocabulary 1000, <|fim|> 1000", () => {
  const tok = tinyStoriesTokenizer();
  assert.equal(tok.vocabSize, 1000);
  assert.equal(tok.tokenToId("<|pad|>"), 0);
  assert.equal(tok.tokenToId("<|eos|>"), 1);
  assert.equal(tok.tokenToId("<|fim|>"), undefined);
  assert.deepEqual(tok.encode("<|eos|>"), [1]);
  // Not a special token yet: the text is tokenized as text.
  assert.equal(tok.encode("<|fim|>").includes(1000), false);
  assert.deepEqual(tok.addSpecialTokens(["<|fim|>", ""]), [1000]);
  assert.equal(tok.vocabSize, 1001);
  assert.equal(tok.idToToken(1000), "<|fim|>");
  assert.deepEqual(tok.encode("<|fim|>"), [1000]);
  assert.ok(tok.isSpecialId(1000) && tok.isSpecialId(1) && !tok.isSpecialId(2));
  // Adding it again changes nothing; an existing token keeps its id.
  assert.deepEqual(tok.addSpecialTokens(["<|fim|>", "<|eos|>"]), [1000, 1]);
  assert.equal(tok.vocabSize, 1001);
  // Each call gives a fresh instance.
  assert.equal(tinyStoriesTokenizer().vocabSize, 1000);
  assert.equal(tinyStoriesTokenizer({ fim: true }).tokenToId("<|fim|>"), 1000);
});

Deno.test("HfTokenizer.encode() cuts added tokens out of the raw text first, each piece with its own prefix space", () => {
  const tok = tinyStoriesTokenizer();
  const the = tok.tokenToId("Ġthe")!;
  // "the" after <|eos|> is a piece of its own: it gets a prefix space too.
  assert.deepEqual(tok.encode("the<|eos|>the"), [the, 1, the]);
  assert.deepEqual(tok.encode("<|eos|><|pad|><|eos|>"), [1, 0, 1]);
  assert.deepEqual(tok.encode(""), []);
  // A lone surrogate is read as U+FFFD (which the vocabulary lacks): only the prefix space stays.
  assert.deepEqual(tok.encode("\ud800"), tok.encode("\ufffd"));
});

Deno.test("HfTokenizer.decode() skips unknown ids, and special tokens on request", () => {
  const tok = tinyStoriesTokenizer({ fim: true });
  const ids = tok.encode("The cat.<|eos|>");
  assert.equal(tok.decode(ids), " The cat.<|eos|>");
  assert.equal(tok.decode([...ids, 1000, 5000, -1, 2.5]), " The cat.<|eos|><|fim|>");
  assert.equal(tok.decode([1000, ...ids, 0], { skipSpecialTokens: true }), " The cat.");
  assert.equal(tok.decode(new Int32Array(ids)), " The cat.<|eos|>");
  // Bytes that are not valid UTF-8 become U+FFFD; a character outside the byte alphabet
  // (here €) stands for its own UTF-8.
  const small = HfTokenizer.fromJSON(smallJson([], ["Ã", "©", "€", "Ġ"]));
  assert.equal(small.decode([0, 1]), "é");
  assert.equal(small.decode([0, 3, 1]), "\ufffd \ufffd");
  assert.equal(small.decode([2, 3]), "€ ");
});

Deno.test("cleanUpTokenization() replaces like transformers' clean_up_tokenization", () => {
  // Expected values computed with Python's str.replace in the same order.
  const cases: [string, string][] = [
    [" Hello , world !", " Hello, world!"],
    ["a  . b", "a . b"],
    [" ' ' ' ", "'''"],
    ["I do n't know , you 're sure ?", "I don't know, you're sure?"],
    ["x ' s", "x's"],
    ["it 's 'm 've", "it's'm've"],
    ["  .  .", " . ."],
    [" ' 's", "''s"],
    ["no change here.", "no change here."],
    [" n't n't", "n'tn't"],
    ["a ' b ' c", "a'b'c"],
  ];
  for (const [text, want] of cases) assert.equal(cleanUpTokenization(text), want, text);
  // The tokenizer writes " ," as the tokens "Ġ" and ",".
  const tok = tinyStoriesTokenizer();
  const tokens = ["ĠThe", "Ġ", ",", "Ġyou", "Ġ", "'", "m", "Ġ", "!"];
  const ids = tokens.map((t) => tok.tokenToId(t)!);
  assert.equal(tok.decode(ids, { cleanUpTokenizationSpaces: false }), " The , you 'm !");
  assert.equal(tok.decode(ids), " The, you'm!");
});

/** A tokenizer.json with the given merges and vocabulary (ids in order), no prefix space. */
function smallJson(merges: string[], vocab: string[]): string {
  return JSON.stringify({
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel" },
    model: {
      type: "BPE",
      continuing_subword_prefix: "##",
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges,
    },
  });
}

/** A parsed tokenizer.json that the cases below edit freely. */
// deno-lint-ignore no-explicit-any
type TokenizerJson = Record<string, any>;

/** The shipped tokenizer.json, parsed, for edits. */
async function shippedJson(): Promise<TokenizerJson> {
  return JSON.parse(await Deno.readTextFile(tokenizerUrl));
}

Deno.test("HfTokenizer.fromJSON() names the field it does not support", async () => {
  const cases: [(j: TokenizerJson) => void, RegExp][] = [
    [
      (j) => j.normalizer = { type: "NFC" },
      /Unsupported tokenizer\.json: normalizer is \{"type":"NFC"\} \(supported: null\)$/,
    ],
    [(j) => j.post_processor = { type: "ByteLevel" }, /post_processor is/],
    [(j) => j.truncation = { max_length: 5 }, /truncation is/],
    [(j) => j.padding = {}, /padding is/],
    [(j) => j.version = "2.0", /version is "2\.0"/],
    [(j) => j.extra = 1, /unknown field top-level\.extra/],
    [(j) => j.model.type = "WordPiece", /model\.type is "WordPiece"/],
    [(j) => j.model.unk_token = "<unk>", /model\.unk_token is "<unk>"/],
    [(j) => j.model.dropout = 0.1, /model\.dropout is 0\.1/],
    [(j) => j.model.byte_fallback = true, /model\.byte_fallback is true/],
    [(j) => j.model.ignore_merges = true, /model\.ignore_merges is true/],
    [(j) => j.model.end_of_word_suffix = "</w>", /model\.end_of_word_suffix/],
    [(j) => j.model.merges = [1], /model\.merges\[0\] is 1/],
    [(j) => j.model.merges = ["a b c"], /model\.merges\[0\] is "a b c"/],
    [(j) => j.decoder = { type: "WordPiece" }, /decoder\.type is "WordPiece"/],
    [(j) => j.pre_tokenizer = { type: "Whitespace" }, /pre_tokenizer\.type is "Whitespace"/],
    [
      (j) => j.pre_tokenizer.pretokenizers.reverse(),
      /pre_tokenizer\.pretokenizers\[0\]\.type is "Digits"/,
    ],
    [
      (j) => j.pre_tokenizer.pretokenizers.push({ type: "Punctuation" }),
      /pre_tokenizer\.pretokenizers is/,
    ],
    [
      (j) => j.pre_tokenizer.pretokenizers[1].foo = 1,
      /unknown field pre_tokenizer\.pretokenizers\[1\]\.foo/,
    ],
    [(j) => j.added_tokens[1].lstrip = true, /added_tokens\[1\]\.lstrip is true/],
    [(j) => j.added_tokens[0].single_word = true, /added_tokens\[0\]\.single_word is true/],
  ];
  for (const [edit, message] of cases) {
    const j = await shippedJson();
    edit(j);
    assert.throws(() => HfTokenizer.fromJSON(JSON.stringify(j)), message, String(message));
  }
  assert.throws(() => HfTokenizer.fromJSON("{"), /Invalid tokenizer\.json: /);
  const j = await shippedJson();
  j.model.merges.push("Ġ zz");
  assert.throws(
    () => HfTokenizer.fromJSON(JSON.stringify(j)),
    /model\.merges\[822\] uses "zz", which is not in model\.vocab/,
  );
  const k = await shippedJson();
  k.added_tokens[1].id = 7;
  assert.throws(() => HfTokenizer.fromJSON(JSON.stringify(k)), /"<\|eos\|>" has id 7/);
});

Deno.test("HfTokenizer.fromJSON() reads merges as pairs and skips #version lines", async () => {
  const j = await shippedJson();
  const text = "Once upon a time, 42 cats sang.";
  const want = HfTokenizer.fromJSON(JSON.stringify(j)).encode(text);
  j.model.merges = ["#version: 0.2", ...j.model.merges.map((m: string) => m.split(" "))];
  assert.deepEqual(HfTokenizer.fromJSON(JSON.stringify(j)).encode(text), want);
});

Deno.test("HfTokenizer BPE merges by rank, leftmost first, and drops symbols missing from the vocabulary", () => {
  const json = smallJson;
  const vocab = ["a", "##a", "aa", "##aa", "b", "##b", "ab", "aab"];
  // "aaa" = a ##a ##a: the leftmost (a ##a) merges first, then nothing joins aa and ##a.
  const t1 = HfTokenizer.fromJSON(json(["a ##a", "##a ##a"], vocab));
  assert.deepEqual(t1.encode("aaa"), [2, 1]);
  // With (##a ##a) ranked first, the right pair merges first.
  const t2 = HfTokenizer.fromJSON(json(["##a ##a", "a ##a"], vocab));
  assert.deepEqual(t2.encode("aaa"), [0, 3]);
  // "axb": ##x is unknown and dropped, then a and ##b meet and merge.
  const t3 = HfTokenizer.fromJSON(json(["a ##b", "aa ##b"], vocab));
  assert.deepEqual(t3.encode("axb"), [6]);
  assert.deepEqual(t3.encode("xab"), [1, 5]);
});

Deno.test("gpt2WordEnd() cuts random texts exactly as the GPT-2 pattern does", () => {
  const alphabet = [
    ..."aZ09 '\t\n\r.,!?-\"",
    "s",
    "t",
    "re",
    "ve",
    "m",
    "ll",
    "d",
    "'s",
    " '",
    "  ",
    "é",
    "Ж",
    "中",
    "²",
    "½",
    "٣",
    "Ⅻ",
    "\u00a0",
    "\u0085",
    "\u2003",
    "\u3000",
    "\u2028",
    "\ufeff",
    "\u200b",
    "\u0301",
    "😀",
    "𝟘",
    "𐍈",
    "👍🏽",
  ];
  const random = rng(7);
  const enc = new TextEncoder();
  const dec = new TextDecoder("utf-8", { ignoreBOM: true });
  for (let n = 0; n < 3000; n++) {
    let text = "";
    const len = Math.floor(random() * 20);
    for (let i = 0; i < len; i++) text += alphabet[Math.floor(random() * alphabet.length)];
    const want = [...text.matchAll(GPT2_PATTERN)].map((m) => m[0]);
    const bytes = enc.encode(text);
    const got: string[] = [];
    for (let i = 0; i < bytes.length;) {
      const end = gpt2WordEnd(bytes, i, bytes.length);
      assert.ok(end > i);
      got.push(dec.decode(bytes.subarray(i, end)));
      i = end;
    }
    assert.deepEqual(got, want, JSON.stringify(text));
  }
});

Deno.test("WordCache returns stored ids only for the same bytes, and stops storing when full", () => {
  const cache = new WordCache(2, 4);
  const b = new TextEncoder().encode("abcdefgh");
  const out: number[] = [];
  assert.equal(cache.pushIds(b, 0, 2, 99, out), false);
  cache.store(b, 0, 2, 99, [1, 2]);
  // The same hash for other bytes (a collision) is not a hit.
  cache.store(b, 2, 4, 99, [3]);
  assert.equal(cache.pushIds(b, 4, 6, 99, out), false);
  assert.equal(cache.pushIds(b, 0, 2, 99, out), true);
  assert.equal(cache.pushIds(b, 2, 4, 99, out), true);
  assert.deepEqual(out, [1, 2, 3]);
  // Full at two words; too-long words are never stored.
  cache.store(b, 4, 6, WordCache.hash(b, 4, 6), [4]);
  assert.equal(cache.size, 2);
  const big = new WordCache(8, 4);
  big.store(b, 0, 5, WordCache.hash(b, 0, 5), [5]);
  assert.equal(big.size, 0);
  assert.equal(WordCache.hash(b, 0, 2), WordCache.hash(new TextEncoder().encode("ab"), 0, 2));
});

Deno.test("HfTokenizer.fromJSON() names the file it was given in every error", async () => {
  const source = "data/my_tokenizer.json";
  const json = await shippedJson();
  json.model.dropout = 0.1;
  const cases: [string, RegExp][] = [
    ["{", /^Cannot load tokenizer "data\/my_tokenizer\.json": Invalid tokenizer\.json: /],
    [
      JSON.stringify(json),
      /^Cannot load tokenizer "data\/my_tokenizer\.json": Unsupported tokenizer\.json: model\.dropout is 0\.1/,
    ],
    [
      smallJson(["a c"], ["a", "b"]),
      /^Cannot load tokenizer "data\/my_tokenizer\.json": Invalid tokenizer\.json: model\.merges\[0\] uses "c"/,
    ],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(
      () => HfTokenizer.fromJSON(text, source),
      (e: Error) => pattern.test(e.message) && !e.message.includes("\n"),
    );
  }
  // Without a source, the messages are as before.
  assert.throws(
    () => HfTokenizer.fromJSON("{"),
    (e: Error) => e.message.startsWith("Invalid tokenizer.json: "),
  );
});
