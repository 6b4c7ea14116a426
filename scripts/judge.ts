/**
 * `deno task judge --file1_path A --file2_path B [flags]`: an LLM judge compares the TinyStories
 * completions of two models, as microsoft/BST's `tinystories_judge/judge_bst_pipeline.py` does,
 * against OpenAI or any OpenAI-compatible server. Prints the reference's per-story lines and
 * running histogram, then one JSON summary line.
 *
 * Permissions (`-P=judge`): read (the inputs and the cache), write `./judge_cache`, env
 * `OPENAI_API_KEY`, net `api.openai.com`, `127.0.0.1` and `localhost`. Another server or
 * cache directory needs `deno run` with its own flags (see `--help`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ChatClient, OPENAI_BASE_URL } from "../src/judge/client.ts";
import { DEFAULT_DEPLOYMENT, defaultCacheDir, judgeFiles } from "../src/judge/pipeline.ts";
import { isPromptVersion, PROMPT_VERSIONS } from "../src/judge/prompts.ts";
import { installInterrupt, INTERRUPT_EXIT_CODE } from "../src/train/interrupt.ts";

const USAGE = `Usage: deno task judge --file1_path FILE --file2_path FILE [flags]

Asks an LLM judge (OpenAI or any OpenAI-compatible server) which of two models completed each
TinyStories story better, as microsoft/BST's judge_bst_pipeline.py does: the inputs are
two \`deno task infer\` outputs for the same stories; each story is judged --num_judges
times with the two stories in an order CPython's random.seed(42) decides, every answer is
cached, and a re-run asks only for what the cache lacks.

  --file1_path FILE        inference output of model 1 (required)
  --file2_path FILE        inference output of model 2, same stories in the same order (required)
  -n, --n_stories N        stories to judge, -1 for all (default -1)
  --num_judges N           judgements per story (default 3)
  --prompt_ver V           judge prompt: ${PROMPT_VERSIONS.join(" or ")} (default v1)
  --cache_without_prompt   cache directories without the _{prompt_ver} suffix
  --model1_name NAME       name of model 1 (default model1)
  --model2_name NAME       name of model 2 (default model2)
  --deployment_name NAME   the judge model (default ${DEFAULT_DEPLOYMENT})
  --base_url URL           API root; requests go to URL/chat/completions
                           (default ${OPENAI_BASE_URL})
  --cache_dir DIR          cache root (default ./judge_cache/{deployment_name})
  --timeout_s S            per-request timeout in seconds (default 120)
  --max_attempts N         attempts per request before giving up (default 10000)
  --retry_base_s S         first wait between attempts without a server hint (default 1);
                           it doubles up to --retry_max_s (default 60)
  -h, --help               this text

The key comes from OPENAI_API_KEY (sent as a Bearer token; give any value to a server that
needs none). Rate limits, timeouts, 5xx answers and network errors are retried, waiting as
long as the server's Retry-After or "retry after N" asks. Ctrl-C stops at once and leaves the
cache consistent. The last stdout line is a JSON summary: wins, ties, invalid answers, rates
over the valid judgements and Wilson 95% intervals.

The task may reach api.openai.com, 127.0.0.1 and localhost and write under ./judge_cache.
For another server or cache directory, run the script with your own flags, e.g.
  deno run --allow-read --allow-write=DIR --allow-env=OPENAI_API_KEY --allow-net=HOST:PORT \\
    scripts/judge.ts --base_url http://HOST:PORT/v1 --cache_dir DIR ...`;

let values;
try {
  values = parseArgs({
    options: {
      help: { type: "boolean", short: "h" },
      file1_path: { type: "string" },
      file2_path: { type: "string" },
      n_stories: { type: "string", short: "n", default: "-1" },
      num_judges: { type: "string", default: "3" },
      prompt_ver: { type: "string", default: "v1" },
      cache_without_prompt: { type: "boolean", default: false },
      model1_name: { type: "string", default: "model1" },
      model2_name: { type: "string", default: "model2" },
      deployment_name: { type: "string", default: DEFAULT_DEPLOYMENT },
      base_url: { type: "string", default: OPENAI_BASE_URL },
      cache_dir: { type: "string" },
      timeout_s: { type: "string", default: "120" },
      max_attempts: { type: "string", default: "10000" },
      retry_base_s: { type: "string", default: "1" },
      retry_max_s: { type: "string", default: "60" },
    },
  }).values;
} catch (e) {
  // parseArgs explains some mistakes over several lines: keep the first, point to --help.
  const first = (e as Error).message.split("\n")[0].replace(/\.$/, "");
  console.error(`error: ${first} (see --help)`);
  Deno.exit(2);
}
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}

const usage: (why: string) => never = (why) => {
  console.error(`error: ${why} (see --help)`);
  Deno.exit(2);
};
const int = (name: string, text: string, ok: (n: number) => boolean, what: string): number => {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || !ok(n)) usage(`--${name} must be ${what}, got "${text}"`);
  return n;
};
const seconds = (name: string, text: string): number => {
  const s = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(s > 0)) {
    usage(`--${name} must be a positive number of seconds, got "${text}"`);
  }
  return s;
};

if (!values.file1_path) usage("--file1_path is required");
if (!values.file2_path) usage("--file2_path is required");
const nStories = int("n_stories", values.n_stories, (n) => n === -1 || n >= 1, "-1 or ≥ 1");
const numJudges = int("num_judges", values.num_judges, (n) => n >= 1, "an integer ≥ 1");
const maxAttempts = int("max_attempts", values.max_attempts, (n) => n >= 1, "an integer ≥ 1");
const timeoutS = seconds("timeout_s", values.timeout_s);
const retryBaseS = seconds("retry_base_s", values.retry_base_s);
const retryMaxS = seconds("retry_max_s", values.retry_max_s);
const promptVer = values.prompt_ver;
if (!isPromptVersion(promptVer)) {
  usage(`--prompt_ver must be ${PROMPT_VERSIONS.join(" or ")}, got "${promptVer}"`);
}
if (values.model1_name === values.model2_name) {
  usage(`--model1_name and --model2_name must differ, got "${values.model1_name}" for both`);
}
let url: URL;
try {
  url = new URL(values.base_url);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error();
} catch {
  usage(`--base_url must be an http(s) URL, got "${values.base_url}"`);
}
for (const path of [values.file1_path!, values.file2_path!]) {
  try {
    if (!(await Deno.stat(path)).isFile) usage(`"${path}" is not a file`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) usage(`No such file "${path}"`);
    usage(`Cannot read "${path}": ${(e as Error).message}`);
  }
}
const cacheDir = values.cache_dir ?? defaultCacheDir(values.deployment_name);
const writable = await Deno.permissions.query({ name: "write", path: cacheDir });
if (writable.state !== "granted") {
  usage(
    `No permission to write the cache "${cacheDir}": run the script with --allow-write=${cacheDir}`,
  );
}
const host = url!.host;
const reachable = await Deno.permissions.query({ name: "net", host });
if (reachable.state !== "granted") {
  usage(`No permission to reach ${host}: run the script with --allow-net=${host}`);
}
let apiKey: string | undefined;
try {
  apiKey = Deno.env.get("OPENAI_API_KEY");
} catch {
  // no env permission: reported as a missing key below
}
if (!apiKey) {
  usage("OPENAI_API_KEY is not set (give any value to a server that needs no key)");
}

const interrupt = installInterrupt({
  log: () =>
    console.error(
      "Interrupted: every answer received so far is in the cache; run the same command again " +
        "to continue (Ctrl-C again quits at once)",
    ),
});
const client = new ChatClient({
  baseUrl: values.base_url,
  apiKey: apiKey!,
  model: values.deployment_name,
  timeoutMs: timeoutS * 1000,
  maxAttempts,
  backoffBaseMs: retryBaseS * 1000,
  backoffMaxMs: retryMaxS * 1000,
  signal: interrupt.signal,
});
try {
  const summary = await judgeFiles({
    file1Path: values.file1_path!,
    file2Path: values.file2_path!,
    nStories,
    numJudges,
    promptVer,
    cacheWithoutPrompt: values.cache_without_prompt,
    model1Name: values.model1_name,
    model2Name: values.model2_name,
    deploymentName: values.deployment_name,
    cacheDir,
    complete: async (messages) => (await client.complete(messages)).content,
  });
  console.log(JSON.stringify(summary));
} catch (e) {
  if (interrupt.requested) Deno.exit(INTERRUPT_EXIT_CODE);
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
}
interrupt.dispose();
