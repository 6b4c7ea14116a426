/**
 * `deno task infer --checkpoint_path FILE --sampling_mode MODE [flags] [key=value ...]`:
 * samples from a trained checkpoint as microsoft/BST's `inference.py` does. Prompts and goals
 * come from validation rows: the first `--prefix_len` tokens and the last `--suffix_len`
 * tokens (64/64 by default; when a row is too short for that, a quarter of it each), with
 * EOS added before the prompt and after the goal; the rollout length is what lies between.
 * BST: the six modes; GPT: `AR` only (greedy, goal ignored).
 *
 * Output: one JSON object per sample (prompt, goal, sampling_method, generated, score,
 * greedy, greedy_score, top_n, original), appended to `--output_path` or printed on stdout.
 *
 * Permissions (`-P=infer`): read (checkpoint, config, data), write `./out` (for
 * `--output_path`), the env variables Mesa and wgpu read.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadCheckpointConfig } from "../src/config/load.ts";
import { getGpu } from "../src/gpu/device.ts";
import { BstSampler, type Generation, SAMPLING_MODES } from "../src/inference/bst_sampling.ts";
import { gptPromptAndGoal } from "../src/inference/greedy.ts";
import type { SamplingMode } from "../src/config/schema.ts";
import { loadCheckpoint } from "../src/train/checkpoints.ts";
import { resolveContained } from "../src/io/safe_paths.ts";
import { loadTrainData } from "../src/train/data.ts";
import { BstRun, GptRun } from "../src/train/trainer.ts";

const USAGE =
  `Usage: deno task infer --checkpoint_path FILE --sampling_mode MODE [flags] [key=value ...]

  --checkpoint_path FILE   checkpoint written by deno task train (required)
  --sampling_mode MODE     ${SAMPLING_MODES.join(", ")} (GPT: AR)
  --rollout_count N        rollouts for beam and goal_cond_plan (default 10)
  --top_k N                alternatives queued per step (default 5)
  --relative_prob          goal_cond_plan scores by relative probabilities
  --num_samples N          validation rows to sample from (default 1)
  --prefix_len N           prompt tokens (default 64; a quarter of the row if too long)
  --suffix_len N           goal tokens (default 64; likewise)
  --output_path FILE       append JSON lines here instead of printing them
  --config FILE            config instead of the one stored in the checkpoint
  --allow-non-finite       load weights holding NaN or Infinity (refused otherwise)
  -h, --help               this text

key=value overrides apply to the config (e.g. data.stargraph_data_path=...).`;

let parsed;
try {
  parsed = parseArgs({
    options: {
      help: { type: "boolean", short: "h" },
      checkpoint_path: { type: "string" },
      sampling_mode: { type: "string" },
      rollout_count: { type: "string", default: "10" },
      top_k: { type: "string", default: "5" },
      relative_prob: { type: "boolean", default: false },
      num_samples: { type: "string", default: "1" },
      prefix_len: { type: "string", default: "64" },
      suffix_len: { type: "string", default: "64" },
      output_path: { type: "string" },
      config: { type: "string", short: "c" },
      "allow-non-finite": { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
} catch (e) {
  console.error(`error: ${(e as Error).message}\n\n${USAGE}`);
  Deno.exit(2);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const usage = (why: string): never => {
  console.error(`error: ${why}\n\n${USAGE}`);
  Deno.exit(2);
};
const int = (name: string, text: string, min: number): number => {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || n < min) {
    usage(`--${name} must be an integer ≥ ${min}, got "${text}"`);
  }
  return n;
};
if (!values.checkpoint_path) usage("--checkpoint_path is required");
const mode = values.sampling_mode as SamplingMode;
if (!SAMPLING_MODES.includes(mode)) {
  usage(
    `--sampling_mode must be one of ${SAMPLING_MODES.join(", ")}, got "${values.sampling_mode}"`,
  );
}
const rolloutCount = int("rollout_count", values.rollout_count, 1);
const topK = int("top_k", values.top_k, 0);
const numSamples = int("num_samples", values.num_samples, 1);
let prefixLen = int("prefix_len", values.prefix_len, 1);
let suffixLen = int("suffix_len", values.suffix_len, 1);

try {
  const path = values.checkpoint_path!;
  if (values.output_path) {
    await resolveContained(values.output_path, { roots: ["out"], key: "--output_path" });
  }
  const file = await loadCheckpoint(path);
  const config = await loadCheckpointConfig(file.metadata, path, {
    configFile: values.config,
    overrides: positionals,
  });
  const data = await loadTrainData(config, { generate: false });
  const gpu = await getGpu({ log: true });
  const T = data.seqLen;
  const eos = data.eosTokenId;
  const decode = (ids: number[]) => (data.decode ? data.decode(ids) : ids.join(" "));
  // The reference's split of a row into prompt, rollout and goal.
  let rolloutLen = T - prefixLen - suffixLen - 2;
  if (rolloutLen < 1) {
    prefixLen = suffixLen = Math.floor(T / 4);
    rolloutLen = T - prefixLen - suffixLen - 2;
  }
  if (rolloutLen < 1) throw new Error(`Rows of ${T} tokens are too short to sample from`);
  const nVal = data.val.length / T;
  const rows = Math.min(numSamples, nVal);
  let generate: (prompt: number[], goal: number[]) => Promise<Generation>;
  if (config.use_bst) {
    const run = await BstRun.create(gpu, config, data);
    await run.loadWeights(path, { allowNonFinite: values["allow-non-finite"] });
    const sampler = new BstSampler(run.model);
    generate = (prompt, goal) =>
      sampler.sample(mode, [eos, ...prompt], [...goal, eos], {
        rolloutLen,
        rolloutCount,
        topK,
        relativeProb: values.relative_prob,
        decode,
      });
  } else {
    if (mode !== "AR") {
      throw new Error(`GPT sampling mode ${mode} is not valid: the GPT has AR only`);
    }
    const run = await GptRun.create(gpu, config, data);
    await run.loadWeights(path, { allowNonFinite: values["allow-non-finite"] });
    generate = async (prefix, suffix) => {
      const { prompt: full, goal } = gptPromptAndGoal(
        run.model.config.mode,
        prefix,
        suffix,
        eos,
        run.model.config.fimTokenId,
      );
      const out = await run.decode(new Int32Array(full), 1, full.length, rolloutLen);
      const gen: number[] = [];
      for (const t of out) {
        gen.push(t);
        if (t === eos) break;
      }
      return {
        prompt: decode(full),
        goal: decode(goal),
        sampling_method: "autoregressive_gpt",
        generated: decode(gen),
        score: null,
        greedy: null,
        greedy_score: null,
        top_n: [],
        original: null,
      };
    };
  }
  const outFile = values.output_path
    ? await Deno.open(values.output_path, { append: true, create: true })
    : null;
  const enc = new TextEncoder();
  try {
    for (let r = 0; r < rows; r++) {
      const row = [...data.val.subarray(r * T, (r + 1) * T)];
      const g = await generate(row.slice(0, prefixLen), row.slice(T - suffixLen));
      g.original = decode(row);
      const line = JSON.stringify(g) + "\n";
      if (outFile) await outFile.write(enc.encode(line));
      else await Deno.stdout.write(enc.encode(line));
      console.error(`Samples generated: ${r + 1}`);
    }
  } finally {
    outFile?.close();
  }
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
}
