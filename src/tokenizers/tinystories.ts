/**
 * The reference's TinyStories tokenizer, shipped with the project so nothing needs
 * downloading: `tinystories_tokenizer.json` is a verbatim copy of microsoft/BST
 * `data/tinystories/tokenizer.json` (MIT licence, notice in `TINYSTORIES_TOKENIZER_LICENSE`
 * beside it). A 1000-token byte-level BPE with the `##` continuing-subword prefix and digits
 * split one by one; `<|pad|>` = 0, `<|eos|>` = 1.
 *
 * The file arrives as a text import, so no read permission is needed.
 *
 * @module
 */

import json from "./tinystories_tokenizer.json" with { type: "text" };
import { HfTokenizer } from "./hf_bpe.ts";

/** Id of `<|eos|>` in the TinyStories tokenizer. */
export const TINYSTORIES_EOS_ID = 1;
/** Id of `<|pad|>` in the TinyStories tokenizer. */
export const TINYSTORIES_PAD_ID = 0;

/**
 * A fresh instance of the reference's TinyStories tokenizer (vocabulary 1000). Each call
 * returns a new one, so adding `<|fim|>` to one does not change the others.
 *
 * @param options `fim`: add the special token `<|fim|>` (id 1000, vocabulary 1001) as the
 *   reference does for its fill-in-the-middle GPT baseline.
 *
 * @example
 * ```ts
 * import { tinyStoriesTokenizer } from "./tinystories.ts";
 * const tok = tinyStoriesTokenizer({ fim: true });
 * console.log(tok.vocabSize, tok.tokenToId("<|fim|>")); // 1001 1000
 * console.log(tok.encode("The cat sat.")); // [205, 382, 213, 107, 15]
 * ```
 */
export function tinyStoriesTokenizer(options: { fim?: boolean } = {}): HfTokenizer {
  const tok = HfTokenizer.fromJSON(json);
  if (options.fim) tok.addSpecialTokens(["<|fim|>"]);
  return tok;
}
