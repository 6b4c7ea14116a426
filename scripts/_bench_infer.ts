/**
 * Incremental-decoding figure for `deno task bench`: a greedy BST rollout (`greedyDecode`, one
 * row: a 16-token prompt grown to the block size) with the forward encoder's K/V cache against
 * re-encoding the whole row at every step, both timed by the wall clock (each step reads its
 * logits back, so GPU timestamps would add nothing). The model is the CPU TinyStories
 * configuration (`config/tinystories_cpu.yaml`: 2 layers, 4 heads, width 64, vocabulary 1000)
 * at block size 256, with random weights.
 *
 * @module
 */

import type { Gpu } from "../src/gpu/device.ts";
import { greedyDecode } from "../src/inference/greedy.ts";
import { BST } from "../src/models/bst.ts";

/** Shape of the inference figure. */
export const INFER_BENCH = {
  nLayer: 2,
  nHead: 4,
  nEmbd: 64,
  vocab: 1000,
  blockSize: 256,
  prompt: 16,
};

/** Median of `repeats` wall-clock runs of `f` after one warm-up run (plans, pipelines). */
async function median(repeats: number, f: () => Promise<unknown>): Promise<number> {
  await f();
  const ms: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)];
}

/**
 * Times the rollout both ways. On a CPU adapter at most 2 timed runs each (re-encoding takes
 * about 100 s per rollout there).
 *
 * @returns ms per generated token and tokens/s with the cache and re-encoding, the speed-up,
 *   and whether both produced the same tokens.
 */
export async function benchInfer(gpu: Gpu, repeatsWanted: number) {
  const s = INFER_BENCH;
  const repeats = gpu.info.isFallbackAdapter ? Math.min(repeatsWanted, 2) : repeatsWanted;
  const model = await BST.create(gpu, {
    vocabSize: s.vocab,
    eosTokenId: 0,
    nLayer: s.nLayer,
    nHead: s.nHead,
    nEmbd: s.nEmbd,
    blockSize: s.blockSize,
    bias: false,
    contextLength: 0,
    pairMinimumGap: 1,
    pairMaximumGap: -1,
    pairSubsampleRate: 1,
    singleGapPredictionMode: "eos",
  }, { seed: 7 });
  const prompt = new Int32Array(s.prompt).map((_, i) => i === 0 ? 0 : (i * 37) % s.vocab);
  const steps = s.blockSize - s.prompt;
  const figure = async (reencode: boolean) => {
    let tokens: Int32Array = new Int32Array();
    console.error(
      `bench: greedy BST rollout of ${steps} tokens, ${reencode ? "re-encoding" : "K/V cache"}`,
    );
    const ms = await median(repeats, async () => {
      tokens = await greedyDecode(model, prompt, 1, s.prompt, steps, { reencode });
    });
    return { ms, tokens };
  };
  const cached = await figure(false);
  const full = await figure(true);
  const round = (x: number, d = 2) => Number(x.toFixed(d));
  return {
    ...s,
    generated: steps,
    repeats,
    cache_ms_per_token: round(cached.ms / steps, 3),
    cache_tokens_per_s: round(steps / cached.ms * 1000, 1),
    reencode_ms_per_token: round(full.ms / steps, 3),
    reencode_tokens_per_s: round(steps / full.ms * 1000, 1),
    speedup: round(full.ms / cached.ms),
    same_tokens: cached.tokens.every((t, i) => t === full.tokens[i]),
  };
}
