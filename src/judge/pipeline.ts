/**
 * `judge_files` of microsoft/BST's `tinystories_judge/judge_bst_pipeline.py`: judges the
 * stories of two inference files pair by pair and prints what the reference prints, then
 * returns the counts.
 *
 * For story `i` (its `original` must be the same in both files): the two stories are
 * `prompt + generated + goal` with the prompt and goal of the first file; the judge
 * ({@linkcode StoryJudge}) gives `num_judges` votes; the story block and the running histogram
 * are printed. Both files are checked to the end of the judged range before anything is
 * sent, so a mismatch costs no request.
 *
 * @module
 */

import { StoryJudge } from "./judge.ts";
import type { ChatMessage, PromptVersion } from "./prompts.ts";
import { formatStoryBlock, type JudgeSummary, summarize, VoteHistogram } from "./report.ts";
import { readStoryPairs } from "./stories.ts";

/** Options of {@linkcode judgeFiles}; the defaults are the reference's. */
export interface JudgeFilesOptions {
  /** Inference output of model 1 (its prompts and goals build both stories). */
  file1Path: string;
  /** Inference output of model 2, same stories in the same order. */
  file2Path: string;
  /** Stories to judge; −1 (default) for all. */
  nStories?: number;
  /** Judgements per story (default 3). */
  numJudges?: number;
  /** Prompt version (default `v1`). */
  promptVer?: PromptVersion;
  /** Cache directories without the `_{promptVer}` suffix (default false). */
  cacheWithoutPrompt?: boolean;
  /** Default `model1`. */
  model1Name?: string;
  /** Default `model2`. */
  model2Name?: string;
  /** The judge model (default `gpt-4o-mini-2024-07-18`). */
  deploymentName?: string;
  /** Cache root (default `./judge_cache/{deploymentName}`). */
  cacheDir?: string;
  /** Sends the chat, returns the judge's stripped answer (e.g. a `ChatClient`). */
  complete: (messages: ChatMessage[]) => Promise<string>;
  /** Receives the reference's stdout text, one `print` at a time (default: stdout). */
  print?: (text: string) => void;
  /** Receives warnings (default: stderr). */
  warn?: (line: string) => void;
}

/** The reference's default judge model. */
export const DEFAULT_DEPLOYMENT = "gpt-4o-mini-2024-07-18";

/**
 * The default cache root for a judge model: `./judge_cache/{deploymentName}`.
 *
 * @example
 * ```ts
 * import { defaultCacheDir } from "./pipeline.ts";
 * console.log(defaultCacheDir("gpt-4o-mini-2024-07-18")); // ./judge_cache/gpt-4o-mini-2024-07-18
 * ```
 */
export function defaultCacheDir(deploymentName: string): string {
  return `./judge_cache/${deploymentName}`;
}

/**
 * Judges two inference files against each other.
 *
 * Requires `--allow-read` for both files and the cache, `--allow-write` for the cache and what
 * `complete` needs.
 *
 * @returns The counts, rates and Wilson intervals.
 * @throws One line on bad options, unreadable or mismatched inputs, an unreadable cache file or
 *   a failure of `complete`; judgements cached until then stay cached.
 *
 * @example A stub judge that always answers "None"
 * ```ts
 * import { judgeFiles } from "./pipeline.ts";
 * const dir = await Deno.makeTempDir();
 * const line = (g: string) =>
 *   JSON.stringify({ prompt: "Once", generated: g, goal: " the end.", original: "x" }) + "\n";
 * await Deno.writeTextFile(`${dir}/a.jsonl`, line(" upon"));
 * await Deno.writeTextFile(`${dir}/b.jsonl`, line(" more"));
 * const summary = await judgeFiles({
 *   file1Path: `${dir}/a.jsonl`,
 *   file2Path: `${dir}/b.jsonl`,
 *   cacheDir: `${dir}/cache`,
 *   complete: () => Promise.resolve("Both are fine. Winner: None"),
 *   print: () => {},
 * });
 * console.log(summary.ties, summary.tie_rate); // 3 1
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function judgeFiles(options: JudgeFilesOptions): Promise<JudgeSummary> {
  const o = {
    nStories: -1,
    numJudges: 3,
    promptVer: "v1" as PromptVersion,
    cacheWithoutPrompt: false,
    model1Name: "model1",
    model2Name: "model2",
    deploymentName: DEFAULT_DEPLOYMENT,
    print: (text: string) => console.log(text),
    warn: (line: string) => console.error(line),
    ...options,
  };
  const cacheDir = o.cacheDir ?? defaultCacheDir(o.deploymentName);
  if (!(Number.isInteger(o.nStories) && (o.nStories === -1 || o.nStories >= 1))) {
    throw new Error(`n_stories must be -1 (all) or a positive integer, got ${o.nStories}`);
  }
  if (!(Number.isInteger(o.numJudges) && o.numJudges >= 1)) {
    throw new Error(`num_judges must be a positive integer, got ${o.numJudges}`);
  }
  if (o.model1Name === o.model2Name) {
    throw new Error(`The two models need different names, got "${o.model1Name}" twice`);
  }
  // Check both files over the judged range before the first request.
  for await (const _ of readStoryPairs(o.file1Path, o.file2Path, o.nStories)) {
    // readStoryPairs throws on the first bad line or mismatch
  }
  const judge = new StoryJudge({
    complete: o.complete,
    deploymentName: o.deploymentName,
    cacheDir,
    promptVer: o.promptVer,
    cacheWithoutPrompt: o.cacheWithoutPrompt,
    print: o.print,
    warn: o.warn,
  });
  const histogram = new VoteHistogram(o.numJudges);
  const counts = { stories: 0, model1: 0, model2: 0, tie: 0, invalid: 0, cached: 0, requested: 0 };
  for await (const { index, a, b } of readStoryPairs(o.file1Path, o.file2Path, o.nStories)) {
    o.print(`\nStory ${index}`);
    const story1 = { story: a.prompt + a.generated + a.goal, model: o.model1Name };
    const story2 = { story: a.prompt + b.generated + a.goal, model: o.model2Name };
    const v = await judge.judge(story1, story2, o.numJudges, `Story ${index}`);
    const votes = {
      model1: v.wins.get(o.model1Name)!,
      model2: v.wins.get(o.model2Name)!,
      tie: v.tie,
      invalid: v.invalid,
    };
    o.print(formatStoryBlock({
      prompt: a.prompt,
      infill1: a.generated,
      infill2: b.generated,
      goal: a.goal,
      model1: o.model1Name,
      model2: o.model2Name,
      votes,
    }));
    histogram.add(votes.model1, votes.tie, votes.model2);
    for (const line of histogram.lines()) o.print(line);
    counts.stories++;
    counts.model1 += votes.model1;
    counts.model2 += votes.model2;
    counts.tie += votes.tie;
    counts.invalid += votes.invalid;
    counts.cached += v.cached;
    counts.requested += v.requested;
  }
  return summarize(o.model1Name, o.model2Name, counts);
}
