/**
 * A Hugging Face byte-level BPE tokenizer read from a `tokenizer.json`, reproducing the Rust
 * `tokenizers` library (v0.23) exactly for the features the reference's TinyStories tokenizer
 * (microsoft/BST `data/tinystories/tokenizer.json`) uses:
 *
 * - added tokens (`<|pad|>` = 0, `<|eos|>` = 1, `<|fim|>` when added) are found in the raw text
 *   first, leftmost-longest, and become their ids; the text between them is tokenized apart;
 * - pre-tokenizer `ByteLevel`: a space is put before each piece of text that does not start
 *   with one (`add_prefix_space`), the piece is cut by the GPT-2 pattern
 *   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (`use_regex`;
 *   `\s` is Unicode White_Space as in Oniguruma, so U+0085 is a space and U+FEFF is not), and
 *   every UTF-8 byte becomes one printable character (GPT-2's `bytes_to_unicode`: a space is
 *   `Ġ`);
 * - pre-tokenizer `Digits`: every numeric character of those byte characters stands alone
 *   (`individual_digits`; Rust's `char::is_numeric`, which besides `0`–`9` also holds for the
 *   byte characters `²`, `³`, `¹`, `¼`, `½`, `¾`, so UTF-8 continuation bytes 0xB2, 0xB3, 0xB9,
 *   0xBC–0xBE split a word too);
 * - model `BPE`: each word starts as one symbol per character, every character after the first
 *   prefixed with `continuing_subword_prefix` (`##`); a symbol missing from the vocabulary is
 *   dropped (no unknown token); then the pair of adjacent symbols with the lowest merge rank
 *   (leftmost on ties) is merged until none is left, the merged token being the left symbol
 *   followed by the right one without its prefix;
 * - decoder `ByteLevel`: tokens map back to bytes (a token with a character outside the byte
 *   alphabet contributes its own UTF-8), decoded as UTF-8 with U+FFFD for invalid sequences;
 *   `##` stays in the text. Then, as transformers' `PreTrainedTokenizerFast.decode` does by
 *   default, `clean_up_tokenization` removes the space before `.`, `?`, `!`, `,` and a few
 *   English contractions.
 *
 * Anything else in a tokenizer.json (a normalizer, a post-processor, an unknown token,
 * dropout, other pre-tokenizers or decoders…) is refused with an error naming the field.
 *
 * @module
 */

import { gpt2WordEnd } from "./_gpt2_split.ts";
import { WordCache } from "./_word_cache.ts";

/** Words longer than this many bytes are not cached (the Rust cache's limit is 256). */
const CACHE_MAX_WORD = 255;
/** Entries of the word → ids cache; once full, new words are computed but not stored. */
const CACHE_CAPACITY = 1 << 16;

/** GPT-2's `bytes_to_unicode`: the printable character standing for each byte. */
const BYTE_CHARS: readonly string[] = (() => {
  const chars: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    chars[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return chars;
})();
/** The byte of each byte character (inverse of {@linkcode BYTE_CHARS}). */
const CHAR_BYTES: ReadonlyMap<string, number> = new Map(BYTE_CHARS.map((c, b) => [c, b]));
/** Bytes whose character is numeric for Rust's `char::is_numeric` (Unicode N*). */
const NUMERIC_BYTES: Uint8Array = Uint8Array.from(BYTE_CHARS, (c) => /\p{N}/u.test(c) ? 1 : 0);

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/** Options of {@linkcode HfTokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens (`<|pad|>`, `<|eos|>`, `<|fim|>`, …). Default false. */
  skipSpecialTokens?: boolean;
  /**
   * Apply transformers' `clean_up_tokenization` (remove the space before `.`, `?`, `!`, `,`,
   * `'m`, `'s`, `'ve`, `'re`, `n't` and around a lone `'`), as `PreTrainedTokenizerFast.decode`
   * does by default and the reference's inference asks for. Default true; false gives the Rust
   * library's `decode`.
   */
  cleanUpTokenizationSpaces?: boolean;
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  /** Matched in the text after the non-normalized ones (there is no normalizer). */
  normalized: boolean;
}

/**
 * A Hugging Face BPE tokenizer (see the module documentation for what it supports).
 * `encode` keeps a cache of the ids of up to 65,536 words (of at most 255 bytes each) in the
 * instance, so memory stays bounded however much text goes through it.
 *
 * @example
 * ```ts
 * import { tinyStoriesTokenizer } from "./tinystories.ts";
 * const tok = tinyStoriesTokenizer();
 * const ids = tok.encode("Once upon a time<|eos|>");
 * console.log(ids); // [352, 361, 180, 319, 1]
 * console.log(tok.decode(ids)); // " Once upon a time<|eos|>"
 * console.log(tok.decode(ids, { skipSpecialTokens: true })); // " Once upon a time"
 * ```
 */
export class HfTokenizer {
  /** The BPE model's vocabulary: token → id. */
  readonly #vocab: Map<string, number>;
  /** The BPE model's tokens by id (holes where an id is unused). */
  readonly #modelTokens: (string | undefined)[] = [];
  /** Added tokens by content and by id. */
  readonly #added = new Map<string, AddedToken>();
  readonly #addedById = new Map<number, AddedToken>();
  /** Contents of the special added tokens (skipped by `decode` on request). */
  readonly #specialContents = new Set<string>();
  /** Contents of the non-normalized added tokens, longest first. */
  #addedContents: string[] = [];
  /** The same for normalized added tokens, matched in the text left between the others. */
  #addedNormalizedContents: string[] = [];

  readonly #addPrefixSpace: boolean;
  readonly #useRegex: boolean;
  /** Digits pre-tokenizer: null without one, else whether each digit stands alone. */
  readonly #digits: null | { individual: boolean };

  /** Id of each byte as the first character of a word, −1 if not in the vocabulary. */
  readonly #firstIds = new Int32Array(256);
  /** Id of each byte after the first character (with the continuing-subword prefix). */
  readonly #nextIds = new Int32Array(256);
  /** Merges: pair key (left × idBound + right) → rank (the merge's line number). */
  readonly #mergeRanks = new Map<number, number>();
  /** Id of the token made by the merge of each rank. */
  readonly #mergeIds: Int32Array;
  /** One above the largest model id: the multiplier of pair keys. */
  readonly #idBound: number;

  /** Pre-tokenizer word (UTF-8 bytes) → its ids. */
  readonly #cache = new WordCache(CACHE_CAPACITY, CACHE_MAX_WORD);
  /** Scratch of `#bpe`: symbols of the word, their neighbours, whether alive; the queue. */
  #sym = new Int32Array(64);
  #prev = new Int32Array(64);
  #next = new Int32Array(64);
  #alive = new Uint8Array(64);
  readonly #heap = new MinHeap();
  /** UTF-8 of the piece of text being encoded. */
  #scratch = new Uint8Array(1 << 16);
  /** Bytes of each id for `decode`, built on first use. */
  #idBytes: (Uint8Array | undefined)[] | null = null;

  private constructor(config: TokenizerConfig) {
    this.#vocab = config.vocab;
    for (const [token, id] of config.vocab) this.#modelTokens[id] = token;
    this.#idBound = this.#modelTokens.length;
    this.#addPrefixSpace = config.addPrefixSpace;
    this.#useRegex = config.useRegex;
    this.#digits = config.digits;
    const prefix = config.prefix ?? "";
    for (let b = 0; b < 256; b++) {
      this.#firstIds[b] = config.vocab.get(BYTE_CHARS[b]) ?? -1;
      this.#nextIds[b] = config.vocab.get(prefix + BYTE_CHARS[b]) ?? -1;
    }
    const prefixBytes = utf8.encode(prefix).length;
    this.#mergeIds = new Int32Array(config.merges.length);
    config.merges.forEach(([a, b], rank) => {
      const where = `model.merges[${rank}]`;
      const left = config.vocab.get(a);
      const right = config.vocab.get(b);
      if (left === undefined || right === undefined) {
        throw new Error(
          `Invalid tokenizer.json: ${where} uses "${left === undefined ? a : b}", ` +
            `which is not in model.vocab`,
        );
      }
      // As the Rust library: the right token's first prefix-length bytes are dropped.
      const merged = a +
        (b.startsWith(prefix) ? b.slice(prefix.length) : dropBytes(b, prefixBytes));
      const id = config.vocab.get(merged);
      if (id === undefined) {
        throw new Error(
          `Invalid tokenizer.json: ${where} makes "${merged}", which is not in model.vocab`,
        );
      }
      this.#mergeRanks.set(left * this.#idBound + right, rank);
      this.#mergeIds[rank] = id;
    });
    for (const t of config.added) {
      const id = this.#addToken(t.content, t.special, t.normalized);
      if (id !== t.id) {
        throw new Error(
          `Invalid tokenizer.json: added token "${t.content}" has id ${t.id}, ` +
            `but the Hugging Face library would give it id ${id}`,
        );
      }
    }
    this.#refreshAddedPatterns();
  }

  /**
   * Reads a Hugging Face `tokenizer.json`.
   *
   * @param json The file's text.
   * @param source Where `json` came from (a path): when given, every error names it, as
   *   `Cannot load tokenizer "PATH": …`.
   * @returns The tokenizer.
   * @throws An Error naming the field for anything this implementation does not support (or
   *   the JSON's syntax error, or an inconsistency such as a merge of unknown tokens).
   *
   * @example
   * ```ts
   * import { HfTokenizer } from "./hf_bpe.ts";
   * const json = JSON.stringify({
   *   version: "1.0", truncation: null, padding: null, normalizer: null, post_processor: null,
   *   added_tokens: [],
   *   pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
   *   decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
   *   model: {
   *     type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
   *     end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
   *     vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"],
   *   },
   * });
   * const tok = HfTokenizer.fromJSON(json);
   * console.log(tok.encode("abba")); // [2, 1, 0]
   * ```
   */
  static fromJSON(json: string, source?: string): HfTokenizer {
    try {
      let parsed: unknown;
      try {
        parsed = JSON.parse(json);
      } catch (e) {
        // V8 quotes the text around the error, newlines included: keep it on one line.
        throw new Error(`Invalid tokenizer.json: ${(e as Error).message.replaceAll("\n", "\\n")}`);
      }
      return new HfTokenizer(readConfig(parsed));
    } catch (e) {
      if (source === undefined) throw e;
      throw new Error(`Cannot load tokenizer "${source}": ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Number of ids: the model's vocabulary plus the added tokens outside it (the Rust
   * `get_vocab_size(true)`, transformers' `len(tokenizer)`): 1000 for the TinyStories
   * tokenizer, 1001 once `<|fim|>` is added.
   */
  get vocabSize(): number {
    let n = this.#vocab.size;
    for (const content of this.#added.keys()) if (!this.#vocab.has(content)) n++;
    return n;
  }

  /**
   * The id of a token (an added token or a model token, e.g. `"Ġthe"`), or undefined.
   *
   * @example
   * ```ts
   * import { tinyStoriesTokenizer } from "./tinystories.ts";
   * const tok = tinyStoriesTokenizer();
   * console.log(tok.tokenToId("<|eos|>"), tok.tokenToId("Ġthe"), tok.tokenToId("zzz")); // 1 184 undefined
   * ```
   */
  tokenToId(token: string): number | undefined {
    return this.#added.get(token)?.id ?? this.#vocab.get(token);
  }

  /**
   * The token of an id, or undefined for an id outside the vocabulary.
   *
   * @example
   * ```ts
   * import { tinyStoriesTokenizer } from "./tinystories.ts";
   * console.log(tinyStoriesTokenizer().idToToken(184)); // "Ġthe"
   * ```
   */
  idToToken(id: number): string | undefined {
    return this.#addedById.get(id)?.content ?? this.#modelTokens[id];
  }

  /** Whether `id` is a special token (skipped by `decode` with `skipSpecialTokens`). */
  isSpecialId(id: number): boolean {
    const token = this.idToToken(id);
    return token !== undefined && this.#specialContents.has(token);
  }

  /**
   * Adds special tokens as transformers' `additional_special_tokens` does (the Rust
   * `add_special_tokens`): a token already in the vocabulary keeps its id, a new one gets the
   * next free id (`<|fim|>` → 1000 for the TinyStories tokenizer). They are then matched in
   * the text by `encode` and skipped by `decode` with `skipSpecialTokens`.
   *
   * @param tokens Token contents; empty strings are ignored.
   * @returns Their ids, in order.
   *
   * @example
   * ```ts
   * import { tinyStoriesTokenizer } from "./tinystories.ts";
   * const tok = tinyStoriesTokenizer();
   * console.log(tok.addSpecialTokens(["<|fim|>"]), tok.vocabSize); // [1000] 1001
   * console.log(tok.encode("a<|fim|>b")); // [180, 1000, 186]
   * ```
   */
  addSpecialTokens(tokens: readonly string[]): number[] {
    const ids = tokens.map((t) => t === "" ? -1 : this.#addToken(t, true, false));
    this.#refreshAddedPatterns();
    return ids.filter((id) => id >= 0);
  }

  /**
   * Token ids of `text` (no special tokens are added around it, as the reference calls the
   * tokenizer); added tokens written in the text (`<|eos|>`) become their ids.
   *
   * @example
   * ```ts
   * import { tinyStoriesTokenizer } from "./tinystories.ts";
   * console.log(tinyStoriesTokenizer().encode("Lily saw 12 cats.")); // [323, 303, 95, 18, 19, 382, 103, 15]
   * ```
   */
  encode(text: string): number[] {
    // Rust strings hold no lone surrogates: the Node binding passes them as U+FFFD.
    if (!text.isWellFormed()) text = text.toWellFormed();
    const out: number[] = [];
    this.#splitAdded(text, this.#addedContents, out, (rest) => {
      this.#splitAdded(rest, this.#addedNormalizedContents, out, (piece) => {
        this.#encodePiece(piece, out);
      });
    });
    return out;
  }

  /**
   * The text of `ids`: ids outside the vocabulary are skipped, as in the Rust library.
   *
   * @param ids Token ids.
   * @param options See {@linkcode DecodeOptions}.
   *
   * @example
   * ```ts
   * import { tinyStoriesTokenizer } from "./tinystories.ts";
   * const tok = tinyStoriesTokenizer();
   * const ids = tok.encode("She said, \"Hi!\" and left.<|eos|>");
   * console.log(tok.decode(ids, { skipSpecialTokens: true })); // " She said, \"H##i!\" and le##ft."
   * console.log(tok.decode(ids, { cleanUpTokenizationSpaces: false })); // " She said, \"H##i!\" and le##ft.<|eos|>"
   * ```
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    const table = this.#idBytes ??= this.#buildIdBytes();
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const bytes = Number.isInteger(id) && id >= 0 ? table[id] : undefined;
      if (bytes === undefined) continue;
      if (skip && this.isSpecialId(id)) continue;
      parts.push(bytes);
      total += bytes.length;
    }
    const all = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    const text = utf8Decoder.decode(all);
    return (options.cleanUpTokenizationSpaces ?? true) ? cleanUpTokenization(text) : text;
  }

  // ---------------------------------------------------------------------------------------

  /** The Rust `AddedVocabulary::add_tokens` for one token; returns its id. */
  #addToken(content: string, special: boolean, normalized: boolean): number {
    const existing = this.#added.get(content);
    let id = existing?.id ?? this.#vocab.get(content);
    if (id === undefined) {
      // The next id: past the model's vocabulary, or past the largest added id beyond it.
      let maxAdded = -1;
      for (const key of this.#addedById.keys()) maxAdded = Math.max(maxAdded, key);
      const size = this.#vocab.size;
      id = maxAdded >= 0 && (maxAdded >= size || size === 0) ? maxAdded + 1 : size;
    }
    if (existing) this.#addedById.delete(existing.id);
    const token = { id, content, special, normalized };
    this.#added.set(content, token);
    this.#addedById.set(id, token);
    if (special) this.#specialContents.add(content);
    this.#idBytes = null;
    return id;
  }

  #refreshAddedPatterns(): void {
    const contents = (normalized: boolean): string[] =>
      [...this.#added.values()]
        .filter((t) => t.normalized === normalized)
        .map((t) => t.content)
        // Longest first: of the tokens found at one position, the longest wins.
        .sort((a, b) => b.length - a.length);
    this.#addedContents = contents(false);
    this.#addedNormalizedContents = contents(true);
  }

  /**
   * Pushes the ids of the added tokens among `contents` (longest first) found in `text`, and
   * calls `rest` for each non-empty stretch of text between them. The matches are those of
   * the Rust library's leftmost-longest Aho-Corasick search: the earliest match, the longest
   * there, then the next one from its end on.
   */
  #splitAdded(
    text: string,
    contents: readonly string[],
    out: number[],
    rest: (piece: string) => void,
  ): void {
    const k = contents.length;
    const at = contents.map((c) => text.indexOf(c));
    let prev = 0;
    for (;;) {
      let best = -1;
      for (let j = 0; j < k; j++) {
        if (at[j] >= 0 && (best < 0 || at[j] < at[best])) best = j;
      }
      if (best < 0) break;
      const start = at[best];
      if (start > prev) rest(text.slice(prev, start));
      out.push(this.#added.get(contents[best])!.id);
      prev = start + contents[best].length;
      for (let j = 0; j < k; j++) {
        if (at[j] >= 0 && at[j] < prev) at[j] = text.indexOf(contents[j], prev);
      }
    }
    if (prev < text.length) rest(prev === 0 ? text : text.slice(prev));
  }

  /** Pre-tokenizes a non-empty piece of text between added tokens and pushes its ids. */
  #encodePiece(piece: string, out: number[]): void {
    // The piece as UTF-8 in the scratch buffer, after a space when add_prefix_space asks.
    const prefix = this.#addPrefixSpace && piece.charCodeAt(0) !== 0x20 ? 1 : 0;
    if (this.#scratch.length < 3 * piece.length + 1) {
      this.#scratch = new Uint8Array(3 * piece.length + 1024);
    }
    const b = this.#scratch;
    b[0] = 0x20;
    const n = prefix + utf8.encodeInto(piece, b.subarray(prefix)).written!;
    if (!this.#useRegex) {
      this.#encodeWord(b, 0, n, out);
      return;
    }
    for (let i = 0; i < n;) {
      const end = gpt2WordEnd(b, i, n);
      this.#encodeWord(b, i, end, out);
      i = end;
    }
  }

  /** Pushes the ids of the pre-tokenizer word `b[start, end)` (through the cache). */
  #encodeWord(b: Uint8Array, start: number, end: number, out: number[]): void {
    const cache = this.#cache;
    const cacheable = end - start <= cache.maxWordBytes;
    const h = cacheable ? WordCache.hash(b, start, end) : 0;
    if (cacheable && cache.pushIds(b, start, end, h, out)) return;
    const ids = this.#wordIds(b, start, end);
    if (cacheable) cache.store(b, start, end, h, ids);
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  /** The Digits split and BPE of the word `b[start, end)` (its bytes are its characters). */
  #wordIds(b: Uint8Array, start: number, end: number): number[] {
    const ids: number[] = [];
    const digits = this.#digits;
    if (digits === null) {
      this.#bpe(b, start, end, ids);
      return ids;
    }
    let from = start;
    for (let i = start; i < end; i++) {
      if (NUMERIC_BYTES[b[i]] === 0) continue;
      // Isolated: each numeric character alone; contiguous: each run of them together.
      let stop = i + 1;
      if (!digits.individual) { while (stop < end && NUMERIC_BYTES[b[stop]]) stop++; }
      if (i > from) this.#bpe(b, from, i, ids);
      this.#bpe(b, i, stop, ids);
      from = stop;
      i = stop - 1;
    }
    if (from < end) this.#bpe(b, from, end, ids);
    return ids;
  }

  /**
   * BPE of one word whose characters are the bytes `bytes[start, end)`, as the Rust
   * `Word::merge_all`: a priority queue of candidate merges ordered by (rank, position);
   * a popped merge is applied if its left symbol is still alive, has a right neighbour, and
   * the pair there still makes the same token; the merged symbol's new pairs with its
   * neighbours are queued.
   */
  #bpe(bytes: Uint8Array, start: number, end: number, out: number[]): void {
    const n = end - start;
    if (n >= POS_LIMIT) {
      throw new Error(`Cannot tokenize a word of ${n} bytes: the limit is ${POS_LIMIT - 1}`);
    }
    if (this.#sym.length < n) {
      const size = Math.max(n, 2 * this.#sym.length);
      this.#sym = new Int32Array(size);
      this.#prev = new Int32Array(size);
      this.#next = new Int32Array(size);
      this.#alive = new Uint8Array(size);
    }
    const sym = this.#sym, prev = this.#prev, next = this.#next, alive = this.#alive;
    let count = 0;
    for (let i = start; i < end; i++) {
      const id = (i === start ? this.#firstIds : this.#nextIds)[bytes[i]];
      if (id < 0) continue; // no unknown token: the character is dropped
      sym[count] = id;
      prev[count] = count - 1;
      next[count] = -1;
      if (count > 0) next[count - 1] = count;
      alive[count] = 1;
      count++;
    }
    if (count > 1) {
      const ranks = this.#mergeRanks;
      const mergeIds = this.#mergeIds;
      const bound = this.#idBound;
      const heap = this.#heap;
      heap.clear();
      for (let i = 0; i + 1 < count; i++) {
        const rank = ranks.get(sym[i] * bound + sym[i + 1]);
        if (rank !== undefined) heap.push(rank * POS_LIMIT + i);
      }
      while (heap.size > 0) {
        const top = heap.pop();
        const rank = Math.floor(top / POS_LIMIT);
        const pos = top - rank * POS_LIMIT;
        if (alive[pos] === 0) continue;
        const right = next[pos];
        if (right < 0) continue;
        const current = ranks.get(sym[pos] * bound + sym[right]);
        const newId = mergeIds[rank];
        if (current === undefined || mergeIds[current] !== newId) continue;
        sym[pos] = newId;
        next[pos] = next[right];
        alive[right] = 0;
        if (next[right] >= 0) prev[next[right]] = pos;
        if (prev[pos] >= 0) {
          const r = ranks.get(sym[prev[pos]] * bound + newId);
          if (r !== undefined) heap.push(r * POS_LIMIT + prev[pos]);
        }
        if (next[pos] >= 0) {
          const r = ranks.get(newId * bound + sym[next[pos]]);
          if (r !== undefined) heap.push(r * POS_LIMIT + pos);
        }
      }
    }
    for (let i = 0; i < count; i++) if (alive[i]) out.push(sym[i]);
  }

  /** UTF-8 bytes of every id as the ByteLevel decoder gives them. */
  #buildIdBytes(): (Uint8Array | undefined)[] {
    const table: (Uint8Array | undefined)[] = [];
    const ids = new Set<number>(this.#addedById.keys());
    this.#modelTokens.forEach((_, id) => ids.add(id));
    for (const id of ids) {
      const token = this.idToToken(id)!;
      const bytes = new Uint8Array(token.length);
      let ok = true;
      for (let i = 0; i < token.length && ok; i++) {
        const b = CHAR_BYTES.get(token[i]);
        if (b === undefined) ok = false;
        else bytes[i] = b;
      }
      // A character outside the byte alphabet: the token's own UTF-8, as the Rust decoder.
      table[id] = ok ? bytes : utf8.encode(token);
    }
    return table;
  }
}

/** Positions in a word are below this; a heap entry is rank × POS_LIMIT + position. */
const POS_LIMIT = 2 ** 26;

/** A binary min-heap of numbers (merge candidates encoded as rank × POS_LIMIT + position). */
class MinHeap {
  #items: number[] = [];
  get size(): number {
    return this.#items.length;
  }
  clear(): void {
    this.#items.length = 0;
  }
  push(x: number): void {
    const a = this.#items;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= x) break;
      a[i] = a[parent];
      i = parent;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.#items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1] < a[l] ? l + 1 : l;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/**
 * transformers' `PreTrainedTokenizerBase.clean_up_tokenization`: removes the space before
 * `.`, `?`, `!`, `,`, around a lone `'`, and before `n't`, `'m`, `'s`, `'ve`, `'re` (in that
 * order, each a plain left-to-right replace as Python's `str.replace`).
 *
 * @example
 * ```ts
 * import { cleanUpTokenization } from "./hf_bpe.ts";
 * console.log(cleanUpTokenization("Hi , I do n't know . ' x ' ?")); // "Hi, I don't know.'x '?"
 * ```
 */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/** The UTF-8 text of `s` without its first `n` bytes (a merge's right token, prefix dropped). */
function dropBytes(s: string, n: number): string {
  const bytes = utf8.encode(s);
  if (bytes.length < n) return "";
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(n));
}

// ---------------------------------------------------------------------------------------
// tokenizer.json reading

interface TokenizerConfig {
  vocab: Map<string, number>;
  merges: [string, string][];
  prefix: string | null;
  addPrefixSpace: boolean;
  useRegex: boolean;
  digits: null | { individual: boolean };
  added: AddedToken[];
}

type Json = Record<string, unknown>;

function unsupported(field: string, value: unknown, supported: string): Error {
  let shown = JSON.stringify(value) ?? String(value);
  if (shown.length > 60) shown = shown.slice(0, 57) + "...";
  return new Error(
    `Unsupported tokenizer.json: ${field} is ${shown} (supported: ${supported})`,
  );
}

function isObject(x: unknown): x is Json {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function object(x: unknown, field: string): Json {
  if (!isObject(x)) throw unsupported(field, x, "an object");
  return x;
}

/** Refuses keys of `obj` outside `known`. */
function onlyKeys(obj: Json, field: string, known: string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) {
      throw new Error(`Unsupported tokenizer.json: unknown field ${field}.${key}`);
    }
  }
}

function mustBeNull(obj: Json, key: string, field: string): void {
  if (obj[key] !== null && obj[key] !== undefined) throw unsupported(field, obj[key], "null");
}

function bool(obj: Json, key: string, field: string, fallback?: boolean): boolean {
  const v = obj[key] ?? fallback;
  if (typeof v !== "boolean") throw unsupported(field, obj[key], "true or false");
  return v;
}

function mustBe(obj: Json, key: string, field: string, want: unknown, fallback?: unknown): void {
  const v = obj[key] === undefined ? fallback : obj[key];
  if (v !== want) throw unsupported(field, obj[key], JSON.stringify(want));
}

function readConfig(root: unknown): TokenizerConfig {
  const top = object(root, "the top level");
  onlyKeys(top, "top-level", [
    "version",
    "truncation",
    "padding",
    "added_tokens",
    "normalizer",
    "pre_tokenizer",
    "post_processor",
    "decoder",
    "model",
  ]);
  mustBe(top, "version", "version", "1.0");
  for (const key of ["truncation", "padding", "normalizer", "post_processor"]) {
    mustBeNull(top, key, key);
  }

  const model = object(top.model, "model");
  onlyKeys(model, "model", [
    "type",
    "dropout",
    "unk_token",
    "continuing_subword_prefix",
    "end_of_word_suffix",
    "fuse_unk",
    "byte_fallback",
    "ignore_merges",
    "vocab",
    "merges",
  ]);
  mustBe(model, "type", "model.type", "BPE");
  for (const key of ["dropout", "unk_token", "end_of_word_suffix"]) {
    mustBeNull(model, key, `model.${key}`);
  }
  bool(model, "fuse_unk", "model.fuse_unk", false); // no effect without an unknown token
  mustBe(model, "byte_fallback", "model.byte_fallback", false, false);
  mustBe(model, "ignore_merges", "model.ignore_merges", false, false);
  const prefix = model.continuing_subword_prefix ?? null;
  if (prefix !== null && typeof prefix !== "string") {
    throw unsupported("model.continuing_subword_prefix", prefix, "a string or null");
  }
  const vocab = readVocab(model.vocab);
  const merges = readMerges(model.merges);

  const { addPrefixSpace, useRegex, digits } = readPreTokenizer(top.pre_tokenizer);

  const decoder = object(top.decoder, "decoder");
  onlyKeys(decoder, "decoder", ["type", "add_prefix_space", "trim_offsets", "use_regex"]);
  mustBe(decoder, "type", "decoder.type", "ByteLevel");

  if (!Array.isArray(top.added_tokens)) {
    throw unsupported("added_tokens", top.added_tokens, "a list");
  }
  const added = top.added_tokens.map((x, i): AddedToken => {
    const field = `added_tokens[${i}]`;
    const t = object(x, field);
    onlyKeys(t, field, [
      "id",
      "content",
      "single_word",
      "lstrip",
      "rstrip",
      "normalized",
      "special",
    ]);
    for (const key of ["single_word", "lstrip", "rstrip"]) {
      mustBe(t, key, `${field}.${key}`, false, false);
    }
    if (typeof t.content !== "string" || t.content === "") {
      throw unsupported(`${field}.content`, t.content, "a non-empty string");
    }
    if (!Number.isSafeInteger(t.id) || (t.id as number) < 0) {
      throw unsupported(`${field}.id`, t.id, "an integer >= 0");
    }
    const special = bool(t, "special", `${field}.special`, false);
    return {
      id: t.id as number,
      content: t.content,
      special,
      normalized: bool(t, "normalized", `${field}.normalized`, !special),
    };
  });
  return { vocab, merges, prefix, addPrefixSpace, useRegex, digits, added };
}

function readVocab(x: unknown): Map<string, number> {
  const obj = object(x, "model.vocab");
  const vocab = new Map<string, number>();
  const byId = new Map<number, string>();
  for (const [token, id] of Object.entries(obj)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= 2 ** 26) {
      throw unsupported(`model.vocab["${token}"]`, id, "an integer in [0, 2^26)");
    }
    const other = byId.get(id);
    if (other !== undefined) {
      throw new Error(
        `Invalid tokenizer.json: model.vocab gives id ${id} to "${other}" and "${token}"`,
      );
    }
    byId.set(id, token);
    vocab.set(token, id);
  }
  return vocab;
}

function readMerges(x: unknown): [string, string][] {
  if (!Array.isArray(x)) throw unsupported("model.merges", x, "a list");
  const merges: [string, string][] = [];
  for (const [i, m] of x.entries()) {
    if (typeof m === "string") {
      if (m.startsWith("#version")) continue; // skipped by the Rust reader too
      const parts = m.split(" ");
      if (parts.length !== 2) {
        throw unsupported(`model.merges[${i}]`, m, `"left right" with one space, or a pair`);
      }
      merges.push([parts[0], parts[1]]);
    } else if (
      Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string"
    ) {
      merges.push([m[0], m[1]]);
    } else {
      throw unsupported(`model.merges[${i}]`, m, `"left right" or a pair of strings`);
    }
  }
  return merges;
}

/** Pre-tokenizer: ByteLevel, or a Sequence of ByteLevel then Digits. */
function readPreTokenizer(
  x: unknown,
): Pick<TokenizerConfig, "addPrefixSpace" | "useRegex" | "digits"> {
  const pre = object(x, "pre_tokenizer");
  const SUPPORTED = "ByteLevel, or Sequence [ByteLevel, Digits]";
  let steps: [Json, string][];
  if (pre.type === "Sequence") {
    onlyKeys(pre, "pre_tokenizer", ["type", "pretokenizers"]);
    const list = pre.pretokenizers;
    if (!Array.isArray(list) || list.length < 1 || list.length > 2) {
      throw unsupported("pre_tokenizer.pretokenizers", list, SUPPORTED);
    }
    steps = list.map((
      s,
      i,
    ) => [object(s, `pre_tokenizer.pretokenizers[${i}]`), `pre_tokenizer.pretokenizers[${i}]`]);
  } else {
    steps = [[pre, "pre_tokenizer"]];
  }
  const [byteLevel, byteField] = steps[0];
  if (byteLevel.type !== "ByteLevel") {
    throw unsupported(`${byteField}.type`, byteLevel.type, SUPPORTED);
  }
  onlyKeys(byteLevel, byteField, ["type", "add_prefix_space", "trim_offsets", "use_regex"]);
  const addPrefixSpace = bool(byteLevel, "add_prefix_space", `${byteField}.add_prefix_space`, true);
  bool(byteLevel, "trim_offsets", `${byteField}.trim_offsets`, true); // offsets only
  const useRegex = bool(byteLevel, "use_regex", `${byteField}.use_regex`, true);
  let digits: null | { individual: boolean } = null;
  if (steps.length === 2) {
    const [d, field] = steps[1];
    if (d.type !== "Digits") throw unsupported(`${field}.type`, d.type, SUPPORTED);
    onlyKeys(d, field, ["type", "individual_digits"]);
    digits = { individual: bool(d, "individual_digits", `${field}.individual_digits`, false) };
  }
  return { addPrefixSpace, useRegex, digits };
}
