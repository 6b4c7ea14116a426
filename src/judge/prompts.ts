/**
 * The judge's prompts, word for word as microsoft/BST `tinystories_judge/judge/tinystories_judge.py`
 * (`GPTJudge.generate_judge_prompt`) writes them: one user message holding the instructions of
 * the chosen version followed by `"\nStory 1: {story1}\n\nStory 2: {story2}"`.
 *
 * - `v1`: the general comparison the paper's TinyStories table uses.
 * - `v2`: the same question framed as completions between a shared beginning and end, asking
 *   which has the least abrupt transitions.
 *
 * @module
 */

/** The prompt versions the reference defines. */
export const PROMPT_VERSIONS = ["v1", "v2"] as const;

/** One of {@linkcode PROMPT_VERSIONS}. */
export type PromptVersion = typeof PROMPT_VERSIONS[number];

/** A chat message as the OpenAI chat completions API takes it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

const INSTRUCTIONS: Record<PromptVersion, string> = {
  v1: "You are evaluating two story generation models. First, analyze the outputs and note " +
    "their properties. Then, make an argument for why one is better than another, or say that " +
    "both are roughly equal. Finally, using all the analysis above, decide which is the best " +
    'story writing the string "Winner: name of story" or if both story are comparable write ' +
    '"Winner: None" .',
  v2: "You are evaluating two story generation models that complete a story given the same " +
    "beginning and end. You are particularly interested in deciding which story has the least " +
    "abrupt transitions. First, analyze the outputs and note their properties. Then, make an " +
    "argument for why one story is better than another, or say that both are roughly equal. " +
    "Finally, using all the analysis above, decide which is the best story writing the string " +
    '"Winner: name of story" or, if both stories are comparable, write "Winner: None" .',
};

/**
 * Whether `text` names a prompt version.
 *
 * @example
 * ```ts
 * import { isPromptVersion } from "./prompts.ts";
 * console.log(isPromptVersion("v2"), isPromptVersion("v3")); // true false
 * ```
 */
export function isPromptVersion(text: string): text is PromptVersion {
  return (PROMPT_VERSIONS as readonly string[]).includes(text);
}

/**
 * The judge's chat: one user message with the instructions and the two stories.
 *
 * @param story1 The story shown as "Story 1".
 * @param story2 The story shown as "Story 2".
 * @param version Which instructions to use.
 * @returns The messages to send (and to store in the cache file's `prompt` field).
 * @throws When `version` is not one of {@linkcode PROMPT_VERSIONS}.
 *
 * @example
 * ```ts
 * import { judgePrompt } from "./prompts.ts";
 * const [message] = judgePrompt("A cat sat.", "A dog ran.", "v1");
 * console.log(message.role); // user
 * console.log(message.content.endsWith("\nStory 1: A cat sat.\n\nStory 2: A dog ran.")); // true
 * ```
 */
export function judgePrompt(story1: string, story2: string, version: PromptVersion): ChatMessage[] {
  if (!isPromptVersion(version)) {
    throw new Error(
      `Unknown prompt version "${version}" (expected ${PROMPT_VERSIONS.join(" or ")})`,
    );
  }
  return [{
    role: "user",
    content: `${INSTRUCTIONS[version]}\nStory 1: ${story1}\n\nStory 2: ${story2}`,
  }];
}
