/**
 * Greedy next-token decoding with the BST, batched over rows of equal length: at each step the
 * forward state of the last token is paired with a fixed backward state (the lone-EOS state,
 * i.e. no goal) and the next-token head's argmax is appended. Used for star-graph path
 * accuracy (DESIGN §7).
 *
 * @module
 */

import { run } from "../gpu/kernel.ts";
import type { BST, PairHead } from "../models/bst.ts";

/**
 * Appends `steps` greedy tokens to each of `rows` prefixes of length `prefixLen`.
 *
 * @param prefixes (rows, prefixLen) token ids.
 * @returns (rows, steps) generated ids (rows that produced EOS keep generating; callers cut
 *   at the first EOS).
 */
export async function greedyDecode(
  model: BST,
  prefixes: Int32Array,
  rows: number,
  prefixLen: number,
  steps: number,
): Promise<Int32Array> {
  if (prefixes.length !== rows * prefixLen) {
    throw new Error(`Expected ${rows}×${prefixLen} prefix tokens, got ${prefixes.length}`);
  }
  const V = model.config.vocabSize;
  const eos = await model.encoders(1, 1);
  eos.setTokens(new Int32Array([model.config.eosTokenId]));
  const out = new Int32Array(rows * steps);
  let seq = prefixes;
  const heads = new Map<number, PairHead>();
  for (let s = 0; s < steps; s++) {
    const len = prefixLen + s;
    const enc = await model.encoders(rows, len);
    enc.setTokens(seq);
    await run(model.gpu, [...eos.forward, ...enc.forward, ...enc.copyEosStates(eos)]);
    let head = heads.get(len);
    if (!head) {
      head = model.pairHead(enc, rows, false);
      heads.set(len, head);
    }
    const fIndex = new Int32Array(rows).map((_, r) => r * len + len - 1);
    const bIndex = new Int32Array(rows).fill(rows * len);
    const none = new Int32Array(rows).fill(-100);
    const zero = new Float32Array(rows);
    const logits = await head.logits({
      count: rows,
      fIndex,
      bIndex,
      nextTarget: none,
      prevTarget: none,
      nextWeight: zero,
      prevWeight: zero,
    }); // (rows, 2, V)
    const next = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const base = 2 * r * V;
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[base + v] > logits[base + best]) best = v;
      next[r] = best;
      out[r * steps + s] = best;
    }
    const grown = new Int32Array(rows * (len + 1));
    for (let r = 0; r < rows; r++) {
      grown.set(seq.subarray(r * len, (r + 1) * len), r * (len + 1));
      grown[r * (len + 1) + len] = next[r];
    }
    seq = grown;
  }
  return out;
}

/**
 * The GPT's prompt and goal as the reference's `generate_samples` builds them: next-token
 * mode `[EOS, …prefix]` (the goal is ignored); FIM mode `[EOS, …suffix, <|fim|>, …prefix]`,
 * so the model fills in the middle. The goal reported is `[EOS]` in both.
 */
export function gptPromptAndGoal(
  mode: "next_token" | "fim",
  prefix: readonly number[],
  suffix: readonly number[],
  eos: number,
  fim: number,
): { prompt: number[]; goal: number[] } {
  const prompt = mode === "fim" ? [eos, ...suffix, fim, ...prefix] : [eos, ...prefix];
  return { prompt, goal: [eos] };
}
