/**
 * The BST's six sampling modes, as microsoft/BST `inference.py` defines them: `AR`,
 * `reverse_AR`, `beam`, `reverse_beam`, `goal_cond_plan`, `reverse_goal_cond_plan`.
 *
 * Prompt = EOS + prefix tokens, goal = suffix tokens + EOS (the caller adds them). Forward
 * modes pair the forward state of the sequence's last token with the backward state of the
 * goal's first token and read the next-token head; reverse modes pair a fixed forward state
 * with the backward state of the sequence's first token and read the previous-token head.
 * Beam search and goal-conditioned planning keep a priority queue of partial sequences
 * (highest mean log-prob, or sum with relative probabilities; ties by insertion order); each
 * rollout extends its sequence greedily and queues the top-k alternatives of every step (never
 * the best token, never EOS). Goal-conditioned planning re-scores each completed sequence by
 * the mean log-prob of the goal (or prompt) tokens under (t−1, t+1) pairs.
 *
 * Rollouts do not re-encode their sequence at each step: forward modes extend the forward
 * encoder's K/V cache at the back, reverse modes the backward encoder's at the front
 * (`DecodeStack`), and a rollout that starts from a queued partial sequence keeps the cached
 * tokens it shares with the previous one. The fixed state (the goal's, or the prompt's) is
 * encoded once per sample; goal-conditioned planning re-scores each completed sequence with one
 * full encode.
 *
 * Reproduced reference details: a greedy EOS ends a rollout without being appended (AR and
 * reverse AR do append it); `reverse_goal_cond_plan` takes its fixed forward state from the
 * goal's last token, as the reference's code does.
 *
 * @module
 */

import { IGNORE_INDEX } from "../gpu/cross_entropy.ts";
import { SAMPLING_MODES, type SamplingMode } from "../core/sampling_modes.ts";
import { type Op, planCopyRows, run, submit } from "../gpu/kernel.ts";
import type { BST, PairHead, PairList } from "../models/bst.ts";
import type { DecodeStack } from "../nn/decode_stack.ts";
import { StateSlots } from "../models/bst.ts";

export { SAMPLING_MODES, type SamplingMode };

/** One output record (the reference's `Generation`; one JSON object per line). */
export interface Generation {
  prompt: string;
  goal: string;
  sampling_method: string;
  generated: string;
  score: number | null;
  greedy: string | null;
  greedy_score: number | null;
  top_n: [string, number][];
  original: string | null;
}

/** Options of the samplers. */
export interface SamplingOptions {
  /** Tokens to generate at most. */
  rolloutLen: number;
  /** Rollouts of beam search and goal-conditioned planning (reference default 10). */
  rolloutCount?: number;
  /** Alternatives queued per step (reference default 5; ≤ 0: the whole vocabulary). */
  topK?: number;
  /** Goal-conditioned planning scores by summed relative log-probs (`--relative_prob`). */
  relativeProb?: boolean;
  /** Token ids to text (default: ids joined by spaces, as the fixtures write them). */
  decode?: (ids: number[]) => string;
}

interface Partial {
  sequence: number[];
  generatedLen: number;
  sumLogProb: number;
}

const avg = (p: Partial) => (p.generatedLen > 0 ? p.sumLogProb / p.generatedLen : 0);

/** The reference's `CandidatesQueue`: max by mean (or sum) log-prob, ties by insertion. */
class CandidatesQueue {
  #items: { key: number; count: number; state: Partial }[] = [];
  #count = 0;
  constructor(readonly useSum: boolean) {}

  put(state: Partial): void {
    const prob = this.useSum ? state.sumLogProb : avg(state);
    this.#items.push({ key: -prob, count: this.#count++, state });
  }

  get empty(): boolean {
    return this.#items.length === 0;
  }

  get(): Partial {
    let best = 0;
    for (let i = 1; i < this.#items.length; i++) {
      const a = this.#items[i];
      const b = this.#items[best];
      if (a.key < b.key || (a.key === b.key && a.count < b.count)) best = i;
    }
    return this.#items.splice(best, 1)[0].state;
  }
}

function logSoftmax(logits: Float32Array, offset: number, V: number): Float64Array {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v]);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[offset + v] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = logits[offset + v] - lse;
  return out;
}

/** Indices of the k largest values, largest first (torch.topk order). */
function topK(values: Float64Array, k: number): number[] {
  return [...values.keys()].sort((a, b) => values[b] - values[a] || a - b).slice(0, k);
}

/**
 * The six sampling modes over one BST (single sequences, batch size 1 like the reference).
 *
 * @example Goal-conditioned planning with an untrained model
 * ```ts
 * import { BST, BstSampler, getGpu } from "../../mod.ts";
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1, pairSubsampleRate: 1,
 *   singleGapPredictionMode: "eos" as const,
 * };
 * const model = await BST.create(await getGpu(), cfg, { seed: 1 });
 * const g = await new BstSampler(model).sample("goal_cond_plan", [7, 1], [3, 7], {
 *   rolloutLen: 2,
 *   rolloutCount: 2,
 *   topK: 2,
 * });
 * console.log(g.sampling_method, g.prompt); // goal_cond_plan 7 1
 * ```
 */
export class BstSampler {
  readonly slots: StateSlots;
  #slotHead?: PairHead;
  #scoreHeads = new Map<number, PairHead>();
  #forward?: DecodeStack;
  #backward?: DecodeStack;

  /**
   * @param model the BST with its weights loaded.
   * @param options `reencode`: encode the whole sequence at every rollout step instead of
   *   extending the encoders' K/V caches (slower; for comparisons and benchmarks).
   */
  constructor(readonly model: BST, readonly options: { reencode?: boolean } = {}) {
    // Row 0 holds the state of the sequence being extended, row 1 the fixed state (the goal's
    // first backward state, or the prompt's last forward state), copied in right after it is
    // computed, so reusing an encoder plan of the same length cannot overwrite it.
    this.slots = new StateSlots(model, 2);
  }

  /** Runs both encoders on one sequence and returns its plan (states in outF/outB). */
  private async encode(seq: number[]) {
    const enc = await this.model.encoders(1, seq.length, false);
    enc.setTokens(new Int32Array(seq));
    await run(this.model.gpu, enc.forward);
    return enc;
  }

  /** Stores the backward state of `goal`'s first token as the fixed state. */
  private async fixBackward(goal: number[]): Promise<void> {
    const enc = await this.encode(goal);
    await run(this.model.gpu, [this.slots.copyBackward(enc, 0, 1)]);
  }

  /** Stores the forward state of `seq`'s last token as the fixed state. */
  private async fixForward(seq: number[]): Promise<void> {
    const enc = await this.encode(seq);
    await run(this.model.gpu, [this.slots.copyForward(enc, seq.length - 1, 1)]);
  }

  /** (2, V) logits of the text head on slot pair (f, b), submitted after `before`. */
  private async headLogits(f: number, b: number, before: Op[] = []): Promise<Float32Array> {
    this.#slotHead ??= this.model.pairHead(this.slots, 1, false, true);
    submit(this.model.gpu, [...before, ...await this.#slotHead.logitsOps(onePair(f, b))]);
    return await this.#slotHead.readLogits(1); // waits for the submission
  }

  /**
   * Brings the decoder of `direction` to hold `seq` (forward: in order; backward: last token
   * first) and returns the ops that compute the state of its last token (forward) or first
   * token (backward), copied into slot 0. Keeps the cached tokens `seq` shares (the longest
   * common prefix in cache order, less one so that the copied state is recomputed), and runs
   * only the rest through the stack.
   */
  private async decode(direction: "forward" | "backward", seq: number[]): Promise<Op[]> {
    const n = seq.length;
    const C = this.model.config.nEmbd;
    if (this.options.reencode) {
      const enc = await this.encode(seq);
      return direction === "forward"
        ? [this.slots.copyForward(enc, n - 1, 0)]
        : [this.slots.copyBackward(enc, 0, 0)];
    }
    let dec = direction === "forward" ? this.#forward : this.#backward;
    if (!dec || dec.shape.capacity < n) {
      const capacity = Math.max(n, this.model.config.blockSize, 2 * (dec?.shape.capacity ?? 0));
      dec = await this.model.decoder(direction, 1, capacity);
      dec.truncate(0);
      if (direction === "forward") this.#forward = dec;
      else this.#backward = dec;
    }
    const order = direction === "forward" ? seq : seq.toReversed();
    const held = dec.tokens(0);
    let keep = 0;
    while (keep < Math.min(held.length, n - 1) && held[keep] === order[keep]) keep++;
    dec.truncate(keep);
    const fresh = direction === "forward" ? seq.slice(keep) : seq.slice(0, n - keep);
    const step = await dec.extend(new Int32Array(fresh), fresh.length);
    const table = direction === "forward" ? this.slots.outF : this.slots.outB;
    return [...step.ops, planCopyRows(step.out, step.width - 1, table, 0, 1, C)];
  }

  /** Next-token log-probs for `seq` with the fixed backward state. */
  private async nextLogProbs(seq: number[]): Promise<Float64Array> {
    const logits = await this.headLogits(0, 1, await this.decode("forward", seq));
    return logSoftmax(logits, 0, this.model.config.vocabSize);
  }

  /** Previous-token log-probs for `seq` with the fixed forward state. */
  private async prevLogProbs(seq: number[]): Promise<Float64Array> {
    const logits = await this.headLogits(1, 0, await this.decode("backward", seq));
    const V = this.model.config.vocabSize;
    return logSoftmax(logits, V, V);
  }

  /**
   * Samples with `mode` and returns the reference's output record.
   *
   * @param prompt EOS + prefix token ids.
   * @param goal suffix token ids + EOS.
   */
  async sample(
    mode: SamplingMode,
    prompt: number[],
    goal: number[],
    options: SamplingOptions,
  ): Promise<Generation> {
    const decode = options.decode ?? ((ids: number[]) => ids.join(" "));
    const base = { prompt: decode(prompt), goal: decode(goal) };
    const o = { rolloutCount: 10, topK: 5, relativeProb: false, ...options };
    switch (mode) {
      case "AR": {
        const gen = await this.autoregressive(prompt, goal, o.rolloutLen);
        return { ...base, sampling_method: "autoregressive", generated: decode(gen), ...none };
      }
      case "reverse_AR": {
        const gen = await this.reverseAutoregressive(prompt, goal, o.rolloutLen);
        return {
          ...base,
          sampling_method: "reverse_autoregressive",
          generated: decode(gen),
          ...none,
        };
      }
      case "beam":
      case "goal_cond_plan":
        return await this.search(false, mode === "goal_cond_plan", prompt, goal, o, base, decode);
      case "reverse_beam":
      case "reverse_goal_cond_plan":
        return await this.search(
          true,
          mode === "reverse_goal_cond_plan",
          prompt,
          goal,
          o,
          base,
          decode,
        );
    }
  }

  /**
   * Beam search (`planning` false) or goal-conditioned planning, forward or reverse: rollouts
   * from a priority queue, then (planning) re-scoring of the completed sequences.
   */
  private async search(
    reverse: boolean,
    planning: boolean,
    prompt: number[],
    goal: number[],
    o: Required<Omit<SamplingOptions, "decode">>,
    base: { prompt: string; goal: string },
    decode: (ids: number[]) => string,
  ): Promise<Generation> {
    const relative = planning && o.relativeProb;
    // The fixed state: the goal's first backward state (forward modes); the prompt's last
    // forward state (reverse beam) — or, as the reference's code does for
    // reverse_goal_cond_plan, the goal's last forward state.
    if (!reverse) await this.fixBackward(goal);
    else await this.fixForward(planning ? goal : prompt);
    const start = reverse ? goal : prompt;
    const queue = new CandidatesQueue(relative);
    queue.put({ sequence: [...start], generatedLen: 0, sumLogProb: 0 });
    const completed: Partial[] = [];
    for (let i = 0; i < o.rolloutCount && !queue.empty; i++) {
      const partial = queue.get();
      const maxNew = o.rolloutLen - (partial.sequence.length - start.length);
      const logProbs = (s: number[]) => reverse ? this.prevLogProbs(s) : this.nextLogProbs(s);
      completed.push(
        await this.rollout(partial, maxNew, queue, relative, o.topK, logProbs, reverse),
      );
    }
    // Sequentially: the scoring runs share GPU plans.
    const scored: [number[], number][] = [];
    for (const c of completed) {
      if (!planning) scored.push([c.sequence, avg(c)]);
      else if (!reverse) {
        const full = [...c.sequence, ...goal];
        scored.push([full, await this.goalScore(full, c.sequence.length, false)]);
      } else {
        const full = [...prompt, ...c.sequence];
        scored.push([full, await this.goalScore(full, prompt.length, true)]);
      }
    }
    const method = planning ? "goal_cond_plan" : "beamsearch";
    return output(
      base,
      reverse ? `reverse_${method}` : method,
      reverse && !planning ? 0 : prompt.length,
      !reverse && !planning ? 0 : goal.length,
      scored,
      decode,
    );
  }

  /** Greedy AR: append the next-head argmax until EOS (appended) or `rolloutLen`. */
  async autoregressive(prompt: number[], goal: number[], rolloutLen: number): Promise<number[]> {
    const eos = this.model.config.eosTokenId;
    await this.fixBackward(goal);
    const seq = [...prompt];
    for (let g = 0; g < rolloutLen; g++) {
      const lp = await this.nextLogProbs(seq);
      const best = argmax(lp);
      seq.push(best);
      if (best === eos) break;
    }
    return seq.slice(prompt.length);
  }

  /** Greedy reverse AR: prepend the previous-head argmax until EOS (prepended) or the limit. */
  async reverseAutoregressive(
    prompt: number[],
    goal: number[],
    rolloutLen: number,
  ): Promise<number[]> {
    const eos = this.model.config.eosTokenId;
    await this.fixForward(prompt);
    const seq = [...goal];
    for (let g = 0; g < rolloutLen; g++) {
      const lp = await this.prevLogProbs(seq);
      const best = argmax(lp);
      seq.unshift(best);
      if (best === eos) break;
    }
    return seq.slice(0, seq.length - goal.length);
  }

  /** The reference's `_generate_rollout_bst_forward` / `_reverse`. */
  private async rollout(
    partial: Partial,
    maxNew: number,
    queue: CandidatesQueue,
    relative: boolean,
    k: number,
    logProbs: (seq: number[]) => Promise<Float64Array>,
    reverse: boolean,
  ): Promise<Partial> {
    const eos = this.model.config.eosTokenId;
    let sequence = partial.sequence;
    let generatedLen = partial.generatedLen;
    let sum = partial.sumLogProb;
    for (let i = 0; i < maxNew; i++) {
      const lp = await logProbs(sequence);
      const best = argmax(lp);
      const candidates = k > 0 ? topK(lp, k) : [...lp.keys()];
      for (const t of candidates) {
        if (t === best || t === eos) continue;
        const reward = relative ? lp[t] - lp[best] : lp[t];
        queue.put({
          sequence: reverse ? [t, ...sequence] : [...sequence, t],
          generatedLen: generatedLen + 1,
          sumLogProb: sum + reward,
        });
      }
      if (best === eos) break;
      sequence = reverse ? [best, ...sequence] : [...sequence, best];
      generatedLen++;
      if (!relative) sum += lp[best];
    }
    return { sequence, generatedLen, sumLogProb: sum };
  }

  /**
   * Mean log-prob of the tokens of the goal (forward planning: positions from `start` to the
   * second-to-last) or the prompt (reverse: positions 1 .. start−1) under (t−1, t+1) pairs, with
   * the next-token head (forward) or the previous-token head (reverse).
   */
  private async goalScore(seq: number[], start: number, reverse: boolean): Promise<number> {
    const enc = await this.encode(seq);
    const targets = reverse
      ? Array.from({ length: start - 1 }, (_, i) => i + 1)
      : Array.from({ length: seq.length - 1 - start }, (_, i) => start + i);
    if (targets.length === 0) return NaN;
    let head = this.#scoreHeads.get(seq.length);
    if (!head) {
      head = this.model.pairHead(enc, seq.length, false);
      this.#scoreHeads.set(seq.length, head);
    }
    const n = targets.length;
    const ignored = new Int32Array(n).fill(IGNORE_INDEX);
    const logits = await head.logits({
      count: n,
      fIndex: new Int32Array(targets.map((t) => t - 1)),
      bIndex: new Int32Array(targets.map((t) => t + 1)),
      nextTarget: ignored,
      prevTarget: ignored,
      nextWeight: new Float32Array(n),
      prevWeight: new Float32Array(n),
    }); // (n, 2, V)
    const V = this.model.config.vocabSize;
    let total = 0;
    targets.forEach((t, p) => {
      const lp = logSoftmax(logits, (2 * p + (reverse ? 1 : 0)) * V, V);
      total += lp[seq[t]];
    });
    return total / n;
  }
}

/** The fields AR modes leave empty, in the reference's key order. */
const none = {
  score: null,
  greedy: null,
  greedy_score: null,
  top_n: [] as [string, number][],
  original: null,
};

function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function onePair(f: number, b: number): PairList {
  return {
    count: 1,
    fIndex: new Int32Array([f]),
    bIndex: new Int32Array([b]),
    nextTarget: new Int32Array([IGNORE_INDEX]),
    prevTarget: new Int32Array([IGNORE_INDEX]),
    nextWeight: new Float32Array(1),
    prevWeight: new Float32Array(1),
  };
}

/** The reference's `_create_generation_output`: greedy = first rollout, then sorted by score. */
function output(
  base: { prompt: string; goal: string },
  method: string,
  promptLen: number,
  goalLen: number,
  scored: [number[], number][],
  decode: (ids: number[]) => string,
): Generation {
  const strip = (s: number[]) => s.slice(promptLen, s.length - goalLen);
  const sorted = scored.map((x, i) => ({ x, i })).sort((a, b) => b.x[1] - a.x[1] || a.i - b.i)
    .map((e) => e.x);
  return {
    ...base,
    sampling_method: method,
    generated: decode(strip(sorted[0][0])),
    score: sorted[0][1],
    greedy: decode(strip(scored[0][0])),
    greedy_score: scored[0][1],
    top_n: sorted.map(([s, score]) => [decode(strip(s)), score]),
    original: null,
  };
}
