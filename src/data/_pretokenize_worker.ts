/**
 * Worker for {@linkcode pretokenizeSplit}: tokenizes batches of stories and posts the uint16
 * documents back (transferred). Messages in: `{ tokenizer, eosId }` once, then
 * `{ id, first, stories }`; out: `{ id, tokens, lengths, bytes }` or `{ id, error }`.
 *
 * @module
 */

import { HfTokenizer } from "../tokenizers/hf_bpe.ts";
import { encodeStories } from "./_pretokenize_encode.ts";

interface Init {
  tokenizer: string;
  eosId: number;
}

interface Job {
  id: number;
  first: number;
  stories: string[];
}

let tokenizer: HfTokenizer | undefined;
let eosId = 0;
let initError: string | undefined;

/** The worker's global scope, typed for the two members used here. */
const scope = self as unknown as {
  onmessage: (e: MessageEvent<Init | Job>) => void;
  postMessage: (message: unknown, transfer: Transferable[]) => void;
};

scope.onmessage = (e: MessageEvent<Init | Job>) => {
  if ("tokenizer" in e.data) {
    try {
      tokenizer = HfTokenizer.fromJSON(e.data.tokenizer);
      eosId = e.data.eosId;
    } catch (err) {
      initError = (err as Error).message;
    }
    return;
  }
  const { id, first, stories } = e.data;
  try {
    if (!tokenizer) throw new Error(initError ?? "the worker has no tokenizer");
    const r = encodeStories(tokenizer, eosId, stories, first);
    scope.postMessage(
      { id, tokens: r.tokens, lengths: r.lengths, bytes: r.bytes },
      [r.tokens.buffer as ArrayBuffer, r.lengths.buffer as ArrayBuffer],
    );
  } catch (err) {
    scope.postMessage({ id, error: (err as Error).message }, []);
  }
};
