/**
 * One pairwise judgement of two stories, repeated, as microsoft/BST's `GPTJudge.judge` makes it:
 *
 * 1. The pair's cache directory comes from the hash of both `{story, model}` records
 *    (see `cache.ts`); the line `current_cache_dir: {dir}, prompt_ver: {ver}` is printed.
 * 2. For each repeat `i` < `repeat`: a cached `{i}.json` is read back; otherwise the judge's
 *    seeded CPython `random.choice([True, False])` decides whether to swap the two stories
 *    (the swap stays for the following repeats of the pair), the prompt is sent, and the answer
 *    is cached with the models in the positions they were shown.
 * 3. Each answer's verdict credits the model shown in the winning position, or a tie.
 *
 * The generator is seeded once per judge (CPython `random.seed(42)`) and moves only when a
 * request is made, so a run that reads some judgements from the cache swaps differently from
 * one that reads none, exactly as the reference does.
 *
 * @module
 */

import { PyRandom } from "../data/mt19937.ts";
import {
  type CacheEntry,
  cacheEntryDir,
  cacheKey,
  type ModelStory,
  readCacheEntry,
  writeCacheEntry,
} from "./cache.ts";
import { type ChatMessage, judgePrompt, type PromptVersion } from "./prompts.ts";
import { parseVerdict } from "./verdict.ts";

/** The votes of one pair: wins per model name, ties and unreadable answers. */
export interface Votes {
  /** Wins of each of the two models, by name. */
  wins: Map<string, number>;
  tie: number;
  /** Answers without a verdict the reference can read (it raises on them). */
  invalid: number;
  /** Judgements read from the cache. */
  cached: number;
  /** Judgements asked of the server. */
  requested: number;
}

/** Options of {@linkcode StoryJudge}. */
export interface StoryJudgeOptions {
  /** Sends the chat and returns the judge's stripped answer. */
  complete: (messages: ChatMessage[]) => Promise<string>;
  /** The judge model's name, stored as `model_judge`. */
  deploymentName: string;
  /** Cache root (the reference: `./judge_cache/{deploymentName}`). */
  cacheDir: string;
  promptVer: PromptVersion;
  /** Cache directory names without the `_{promptVer}` suffix. */
  cacheWithoutPrompt?: boolean;
  /** CPython `random.seed` of the swaps (default 42, as the reference). */
  seed?: number;
  /** Receives the reference's stdout lines. */
  print?: (line: string) => void;
  /** Receives a line for each answer without a verdict. */
  warn?: (line: string) => void;
}

/**
 * The reference's `GPTJudge`: repeated, cached, position-swapped pairwise judgements.
 *
 * Requires `--allow-read` and `--allow-write` for the cache directory, and whatever `complete`
 * needs (`--allow-net` for the server).
 *
 * @example A judge that always prefers the first story it is shown
 * ```ts
 * import { StoryJudge } from "./judge.ts";
 * const cacheDir = await Deno.makeTempDir();
 * const judge = new StoryJudge({
 *   complete: () => Promise.resolve("Winner: Story 1"),
 *   deploymentName: "always-first",
 *   cacheDir,
 *   promptVer: "v1",
 *   print: () => {},
 * });
 * const votes = await judge.judge({ story: "A.", model: "bst" }, { story: "B.", model: "gpt" }, 3);
 * // random.seed(42): swap, swap, keep → shown first: gpt, bst, bst
 * console.log(votes.wins.get("bst"), votes.wins.get("gpt"), votes.tie); // 2 1 0
 * await Deno.remove(cacheDir, { recursive: true });
 * ```
 */
export class StoryJudge {
  readonly #o: StoryJudgeOptions;
  readonly #rng: PyRandom;

  /** A judge with its generator seeded; nothing is read or sent yet. */
  constructor(options: StoryJudgeOptions) {
    this.#o = options;
    this.#rng = new PyRandom(options.seed ?? 42);
  }

  /** CPython's `random.choice([True, False])`: `[True, False][_randbelow(2)]`. */
  #coin(): boolean {
    return this.#rng.randbelow(2) === 0;
  }

  /**
   * Judges two stories `repeat` times (cached judgements are read, not asked again).
   *
   * @param storyA The first model's story (its name credits its wins).
   * @param storyB The second model's story; its model name must differ from the first.
   * @param repeat How many judgements.
   * @param label Names the pair in warnings (e.g. "Story 3").
   * @returns The votes.
   */
  async judge(
    storyA: ModelStory,
    storyB: ModelStory,
    repeat: number,
    label = "Story",
  ): Promise<Votes> {
    const o = this.#o;
    const print = o.print ?? ((line: string) => console.log(line));
    const warn = o.warn ?? ((line: string) => console.error(line));
    if (storyA.model === storyB.model) {
      throw new Error(`The two models need different names, got "${storyA.model}" twice`);
    }
    const models = [storyA.model, storyB.model] as const;
    const key = await cacheKey({ ...storyA }, { ...storyB });
    const dir = cacheEntryDir(o.cacheDir, key, o.promptVer, o.cacheWithoutPrompt ?? false);
    print(`current_cache_dir: ${dir}, prompt_ver: ${o.promptVer}`);
    const votes: Votes = {
      wins: new Map([[storyA.model, 0], [storyB.model, 0]]),
      tie: 0,
      invalid: 0,
      cached: 0,
      requested: 0,
    };
    let first = storyA;
    let second = storyB;
    for (let i = 0; i < repeat; i++) {
      let entry: CacheEntry | null = await readCacheEntry(dir, i, models);
      if (entry) {
        votes.cached++;
      } else {
        if (this.#coin()) [first, second] = [second, first];
        const prompt = judgePrompt(first.story, second.story, o.promptVer);
        const result = await o.complete(prompt);
        entry = {
          prompt,
          story_1: first.model,
          story_2: second.model,
          iteration: i,
          model_judge: o.deploymentName,
          result,
        };
        await writeCacheEntry(dir, entry);
        votes.requested++;
      }
      const verdict = parseVerdict(entry.result);
      if (verdict === "tie") votes.tie++;
      else if (verdict === "invalid") {
        votes.invalid++;
        warn(
          `${label}, judgement ${i}: no "Winner: Story 1|Story 2|None" in the answer ` +
            `(${dir}/${i}.json); counted as invalid`,
        );
      } else {
        const winner = verdict === "story_1" ? entry.story_1 : entry.story_2;
        votes.wins.set(winner, votes.wins.get(winner)! + 1);
      }
    }
    return votes;
  }
}
