/**
 * Greedy next-token decoding, batched over rows of equal length, for the BST and the GPT: at
 * each step the model's next-token logits at the last position of every row are computed and
 * their argmax (the lowest id among ties) is appended. The forward encoder keeps its keys and
 * values across steps (`DecodeStack`): the prefix is encoded once, then each step runs only
 * the new token through the stack. The BST pairs the last token's forward
 * state with the backward state of a lone EOS (no goal), as the star-graph path accuracy
 * does; the GPT reads its `lm_head` at the last position.
 *
 * @module
 */

import { IGNORE_INDEX } from "../gpu/cross_entropy.ts";
import { planCopyRows, run, submit } from "../gpu/kernel.ts";
import { readTensor } from "../gpu/tensor.ts";
import { BST, type PairHead, StateSlots } from "../models/bst.ts";
import type { GPT } from "../models/gpt.ts";

/** Next-token logits (rows, V) at the last position of (rows, len) sequences. */
type LastLogits = (seq: Int32Array, rows: number, len: number) => Promise<Float32Array>;

/**
 * Next-token logits (rows, V) after adding `count` tokens to each row, (rows, count) row-major
 * (the prefix first, then one token per step).
 */
type StepLogits = (tokens: Int32Array, count: number) => Promise<Float32Array>;

/** The lone-EOS states (depend on the weights only): encoded once per decode. */
async function eosStates(model: BST) {
  const eos = await model.encoders(1, 1, false);
  eos.setTokens(new Int32Array([model.config.eosTokenId]));
  await run(model.gpu, eos.forward);
  return eos;
}

/** The pair list of the rows' next-token logits: forward state r with backward state `b`. */
function lastPairs(rows: number, fIndex: (r: number) => number, b: number) {
  const none = new Int32Array(rows).fill(IGNORE_INDEX);
  const zero = new Float32Array(rows);
  return {
    count: rows,
    fIndex: new Int32Array(rows).map((_, r) => fIndex(r)),
    bIndex: new Int32Array(rows).fill(b),
    nextTarget: none,
    prevTarget: none,
    nextWeight: zero,
    prevWeight: zero,
  };
}

/** The next-token half of (rows, 2, V) pair-head logits. */
function nextHalf(both: Float32Array, rows: number, V: number): Float32Array {
  const out = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) out.set(both.subarray(2 * r * V, (2 * r + 1) * V), r * V);
  return out;
}

/** Re-encodes the whole sequences at every step (the reference's way; kept for comparison). */
function bstLastLogits(model: BST): LastLogits {
  const heads = new Map<number, PairHead>();
  const eosPlan = eosStates(model);
  return async (seq, rows, len) => {
    const eos = await eosPlan;
    const enc = await model.encoders(rows, len, false);
    enc.setTokens(seq);
    await run(model.gpu, [...enc.forward, ...enc.copyEosStates(eos)]);
    let head = heads.get(len);
    if (!head) {
      head = model.pairHead(enc, rows, false, true);
      heads.set(len, head);
    }
    // The lone-EOS backward state is row rows·len.
    const both = await head.logits(lastPairs(rows, (r) => r * len + len - 1, rows * len));
    return nextHalf(both, rows, model.config.vocabSize);
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

/** Slots and head of the cached BST path, per model and row count (planned once). */
const bstSlots = new WeakMap<BST, Map<number, { slots: StateSlots; head: PairHead }>>();

/**
 * The forward encoder keeps its keys and values across steps: each step runs only the new
 * tokens. Slots 0 … rows−1 take each row's last forward state, slot `rows` the lone-EOS
 * backward state.
 */
async function bstStepLogits(model: BST, rows: number, capacity: number): Promise<StepLogits> {
  const C = model.config.nEmbd;
  const dec = await model.decoder("forward", rows, capacity);
  dec.truncate(0);
  let perRows = bstSlots.get(model);
  if (!perRows) bstSlots.set(model, perRows = new Map());
  let sh = perRows.get(rows);
  if (!sh) {
    const slots = new StateSlots(model, rows + 1);
    sh = { slots, head: model.pairHead(slots, rows, false, true) };
    perRows.set(rows, sh);
  }
  const { slots, head } = sh;
  await run(model.gpu, [planCopyRows((await eosStates(model)).outB, 0, slots.outB, rows, 1, C)]);
  return async (tokens, count) => {
    const step = await dec.extend(tokens, count);
    const W = step.width;
    const copies = Array.from(
      { length: rows },
      (_, r) => planCopyRows(step.out, r * W + W - 1, slots.outF, r, 1, C),
    );
    // One submission and one wait per step: the new tokens, the copies and the head.
    submit(model.gpu, [
      ...step.ops,
      ...copies,
      ...await head.logitsOps(lastPairs(rows, (r) => r, rows)),
    ]);
    return nextHalf(await head.readLogits(rows), rows, model.config.vocabSize);
  };
}

/** The GPT's stack keeps its keys and values across steps; `lm_head` reads each row's last state. */
async function gptStepLogits(model: GPT, rows: number, capacity: number): Promise<StepLogits> {
  const C = model.config.nEmbd;
  const dec = await model.decoder(rows, capacity);
  dec.stack.truncate(0);
  return async (tokens, count) => {
    const step = await dec.stack.extend(tokens, count);
    const W = step.width;
    const copies = Array.from(
      { length: rows },
      (_, r) => planCopyRows(step.out, r * W + W - 1, dec.last, r, 1, C),
    );
    submit(model.gpu, [...step.ops, ...copies, dec.head]);
    return await readTensor(model.gpu, dec.logits); // waits for the submission
  };
}

/** Options of {@linkcode greedyDecode}. */
export interface GreedyOptions {
  /**
   * Re-encode every row in full at each step instead of extending the K/V cache (slower; the
   * same tokens up to f32 rounding; for comparisons and benchmarks).
   */
  reencode?: boolean;
}

/**
 * Appends `steps` greedy tokens to each of `rows` prefixes of length `prefixLen`.
 *
 * @param model a BST or a GPT with its weights loaded.
 * @param prefixes (rows, prefixLen) token ids.
 * @param options `reencode`: encode whole rows at every step (no K/V cache).
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
  options: GreedyOptions = {},
): Promise<Int32Array> {
  if (prefixes.length !== rows * prefixLen) {
    throw new Error(`Expected ${rows}×${prefixLen} prefix tokens, got ${prefixes.length}`);
  }
  if (options.reencode || prefixLen < 1) {
    return await reencodeDecode(model, prefixes, rows, prefixLen, steps);
  }
  const V = model.config.vocabSize;
  const out = new Int32Array(rows * steps);
  if (steps <= 0) return out;
  const capacity = prefixLen + steps - 1;
  const stepLogits = model instanceof BST
    ? await bstStepLogits(model, rows, capacity)
    : await gptStepLogits(model, rows, capacity);
  let logits = await stepLogits(prefixes, prefixLen); // (rows, V)
  for (let s = 0; s < steps; s++) {
    const next = new Int32Array(rows);
    for (let r = 0; r < rows; r++) next[r] = argmaxRow(logits, r, V);
    for (let r = 0; r < rows; r++) out[r * steps + s] = next[r];
    if (s + 1 < steps) logits = await stepLogits(next, 1);
  }
  return out;
}

/** The lowest index of the largest value of row r of (rows, V) logits. */
function argmaxRow(logits: Float32Array, r: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[r * V + v] > logits[r * V + best]) best = v;
  return best;
}

async function reencodeDecode(
  model: BST | GPT,
  prefixes: Int32Array,
  rows: number,
  prefixLen: number,
  steps: number,
): Promise<Int32Array> {
  const V = model.config.vocabSize;
  const lastLogits = model instanceof BST ? bstLastLogits(model) : gptLastLogits(model);
  const out = new Int32Array(rows * steps);
  let seq = prefixes;
  for (let s = 0; s < steps; s++) {
    const len = prefixLen + s;
    const logits = await lastLogits(seq, rows, len); // (rows, V)
    const grown = new Int32Array(rows * (len + 1));
    for (let r = 0; r < rows; r++) {
      const best = argmaxRow(logits, r, V);
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
