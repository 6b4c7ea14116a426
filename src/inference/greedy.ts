/**
 * Greedy next-token decoding, batched over rows of equal length, for the BST and the GPT: at
 * each step the model's next-token logits at the last position of every row are computed and
 * their argmax (the lowest id among ties) is appended. The BST pairs the last token's forward
 * state with the backward state of a lone EOS (no goal), as the star-graph path accuracy
 * does; the GPT reads its `lm_head` at the last position.
 *
 * @module
 */

import { IGNORE_INDEX } from "../gpu/cross_entropy.ts";
import { run } from "../gpu/kernel.ts";
import { BST, type PairHead } from "../models/bst.ts";
import type { GPT } from "../models/gpt.ts";

/** Next-token logits (rows, V) at the last position of (rows, len) sequences. */
type LastLogits = (seq: Int32Array, rows: number, len: number) => Promise<Float32Array>;

function bstLastLogits(model: BST): LastLogits {
  const heads = new Map<number, PairHead>();
  const V = model.config.vocabSize;
  // The lone-EOS states depend on the weights only: encoded once per decode.
  const eosStates = model.encoders(1, 1).then(async (eos) => {
    eos.setTokens(new Int32Array([model.config.eosTokenId]));
    await run(model.gpu, eos.forward);
    return eos;
  });
  return async (seq, rows, len) => {
    const eos = await eosStates;
    const enc = await model.encoders(rows, len);
    enc.setTokens(seq);
    await run(model.gpu, [...enc.forward, ...enc.copyEosStates(eos)]);
    let head = heads.get(len);
    if (!head) {
      head = model.pairHead(enc, rows, false);
      heads.set(len, head);
    }
    const none = new Int32Array(rows).fill(IGNORE_INDEX);
    const zero = new Float32Array(rows);
    const both = await head.logits({
      count: rows,
      fIndex: new Int32Array(rows).map((_, r) => r * len + len - 1),
      bIndex: new Int32Array(rows).fill(rows * len), // the lone-EOS backward state
      nextTarget: none,
      prevTarget: none,
      nextWeight: zero,
      prevWeight: zero,
    }); // (rows, 2, V): next-token logits first
    const out = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) out.set(both.subarray(2 * r * V, (2 * r + 1) * V), r * V);
    return out;
  };
}

function gptLastLogits(model: GPT): LastLogits {
  const V = model.config.vocabSize;
  return async (seq, rows, len) => {
    const all = await model.logits(seq, rows, len); // (rows, len, V)
    const out = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      out.set(all.subarray((r * len + len - 1) * V, (r * len + len) * V), r * V);
    }
    return out;
  };
}

/**
 * Appends `steps` greedy tokens to each of `rows` prefixes of length `prefixLen`.
 *
 * @param model a BST or a GPT with its weights loaded.
 * @param prefixes (rows, prefixLen) token ids.
 * @returns (rows, steps) generated ids (rows that produced EOS keep generating; callers cut
 *   at the first EOS).
 *
 * @example
 * ```ts
 * import { getGpu, GPT, greedyDecode } from "../../mod.ts";
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 8, bias: false,
 *   mode: "next_token" as const, fimTokenId: -1,
 * };
 * const gpt = await GPT.create(await getGpu(), cfg, { seed: 1 });
 * const out = await greedyDecode(gpt, new Int32Array([7, 1, 7, 2]), 2, 2, 3); // 2 rows
 * console.log(out.length); // 6
 * ```
 */
export async function greedyDecode(
  model: BST | GPT,
  prefixes: Int32Array,
  rows: number,
  prefixLen: number,
  steps: number,
): Promise<Int32Array> {
  if (prefixes.length !== rows * prefixLen) {
    throw new Error(`Expected ${rows}×${prefixLen} prefix tokens, got ${prefixes.length}`);
  }
  const V = model.config.vocabSize;
  const lastLogits = model instanceof BST ? bstLastLogits(model) : gptLastLogits(model);
  const out = new Int32Array(rows * steps);
  let seq = prefixes;
  for (let s = 0; s < steps; s++) {
    const len = prefixLen + s;
    const logits = await lastLogits(seq, rows, len); // (rows, V)
    const grown = new Int32Array(rows * (len + 1));
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[r * V + v] > logits[r * V + best]) best = v;
      out[r * steps + s] = best;
      grown.set(seq.subarray(r * len, (r + 1) * len), r * (len + 1));
      grown[r * (len + 1) + len] = best;
    }
    seq = grown;
  }
  return out;
}

/**
 * The GPT's prompt and goal as the reference's `generate_samples` builds them: next-token
 * mode `[EOS, …prefix]` (the goal is ignored); FIM mode `[EOS, …suffix, <|fim|>, …prefix]`,
 * so the model fills in the middle. The goal reported is `[EOS]` in both.
 *
 * @example
 * ```ts
 * import { gptPromptAndGoal } from "./greedy.ts";
 * console.log(gptPromptAndGoal("fim", [4, 5], [8, 9], 1, 1000).prompt); // [ 1, 8, 9, 1000, 4, 5 ]
 * ```
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
