/**
 * The per-story step of pretokenization, shared by the main thread and the worker threads of
 * {@linkcode ./pretokenize.ts}: each story becomes `[EOS] + ids` as uint16, as the reference's
 * `data/tinystories/prepare.py` `tokenize()` does. Kept apart so the worker loads only this
 * module and the tokenizer (read access to `src/data` and `src/tokenizers`).
 *
 * @module
 */

import type { HfTokenizer } from "../tokenizers/hf_bpe.ts";

/** Token ids must fit in the shards' uint16 elements. */
export const MAX_TOKEN_ID = 0xffff;

/** A batch of stories tokenized: their documents concatenated, and each document's length. */
export interface EncodedStories {
  /** `[EOS] + ids` of each story, concatenated in order. */
  tokens: Uint16Array;
  /** Tokens of each story's document (its EOS included). */
  lengths: Uint32Array;
  /** UTF-8 bytes of the stories' texts. */
  bytes: number;
}

let scratch = new Uint8Array(1 << 16);
const utf8 = new TextEncoder();

/** UTF-8 length of a string (lone surrogates count as U+FFFD, 3 bytes), by native encoding. */
function utf8Length(s: string): number {
  if (scratch.length < 3 * s.length) scratch = new Uint8Array(3 * s.length);
  return utf8.encodeInto(s, scratch).written;
}

/**
 * Tokenizes stories into documents `[eosId] + tokenizer.encode(story)`.
 *
 * @param tokenizer The tokenizer.
 * @param eosId The id put before every story.
 * @param stories The texts, in order.
 * @param firstIndex Index of `stories[0]` in its split, for error messages.
 * @returns The documents concatenated, their lengths, and the texts' UTF-8 size.
 * @throws When an id does not fit in uint16 (≥ 65,536), naming the story.
 *
 * @example
 * ```ts
 * import { encodeStories } from "./_pretokenize_encode.ts";
 * import { tinyStoriesTokenizer } from "../tokenizers/tinystories.ts";
 * const r = encodeStories(tinyStoriesTokenizer(), 1, ["The cat sat.", "Hi"], 0);
 * console.log([...r.tokens], [...r.lengths]); // [ 1, 205, 382, 213, 107, 15, 1, 229, 99 ] [ 6, 3 ]
 * ```
 */
export function encodeStories(
  tokenizer: HfTokenizer,
  eosId: number,
  stories: readonly string[],
  firstIndex: number,
): EncodedStories {
  const lengths = new Uint32Array(stories.length);
  const parts: number[][] = [];
  let total = 0;
  let bytes = 0;
  for (let s = 0; s < stories.length; s++) {
    const ids = tokenizer.encode(stories[s]);
    for (const id of ids) {
      if (id > MAX_TOKEN_ID) {
        throw new Error(
          `Story ${firstIndex + s} has token id ${id}, which does not fit in a uint16 shard ` +
            `(ids must be below 65,536)`,
        );
      }
    }
    parts.push(ids);
    lengths[s] = ids.length + 1;
    total += ids.length + 1;
    bytes += utf8Length(stories[s]);
  }
  const tokens = new Uint16Array(total);
  let at = 0;
  for (const ids of parts) {
    tokens[at++] = eosId;
    tokens.set(ids, at);
    at += ids.length;
  }
  return { tokens, lengths, bytes };
}
