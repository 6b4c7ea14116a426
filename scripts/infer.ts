/**
 * `deno task infer --checkpoint_path FILE --sampling_mode MODE [flags] [key=value ...]`:
 * samples from a trained checkpoint as microsoft/BST's `inference.py` does. Prompts and goals
 * come from validation rows: the first `--prefix_len` tokens and the last `--suffix_len`
 * tokens (64/64 by default; when a row is too short for that, a quarter of it each), with
 * EOS added before the prompt and after the goal; the rollout length is what lies between.
 * BST: the six modes; GPT: `AR` only (greedy, goal ignored). `--checkpoint` is the same flag
 * as `--checkpoint_path` (the name evaluate uses).
 *
 * Output: one JSON object per sample (prompt, goal, sampling_method, generated, score,
 * greedy, greedy_score, top_n, original), appended to `--output_path` or printed on stdout.
 *
 * Permissions (`-P=infer`): read (checkpoint, config, data), write `./out` (for
 * `--output_path`), the env variables Mesa and wgpu read.
 *
 * @module
 */

import { loadCheckpointConfig } from "../src/config/load.ts";
import { getGpu } from "../src/gpu/device.ts";
import { BstSampler, type Generation, SAMPLING_MODES } from "../src/inference/bst_sampling.ts";
import { gptPromptAndGoal, greedyDecode } from "../src/inference/greedy.ts";
import type { SamplingMode } from "../src/config/schema.ts";
import { loadCheckpoint } from "../src/train/checkpoints.ts";
import { validateCheckpointTensors } from "../src/train/checkpoint_validate.ts";
import { resolveContained } from "../src/io/safe_paths.ts";
import { loadTrainData } from "../src/train/data.ts";
import { BST } from "../src/models/bst.ts";
import { createModel } from "../src/models/from_config.ts";
import { OVERRIDES, parseCli, runMain } from "./_cli.ts";

const { values, positionals } = parseCli({
  usage: "deno task infer --checkpoint_path FILE --sampling_mode MODE [flags] [key=value ...]",
  about: `Samples from a checkpoint as microsoft/BST's inference.py does: prompts and goals come
from validation rows; one JSON line per sample.`,
  flags: {
    checkpoint_path: {
      type: "string",
      alias: "checkpoint",
      required: true,
      file: true,
      help: "checkpoint written by deno task train (required)",
    },
    sampling_mode: {
      type: "string",
      arg: "MODE",
      required: true,
      choices: SAMPLING_MODES,
      help: `${SAMPLING_MODES.join(", ")} (GPT: AR)`,
    },
    rollout_count: {
      type: "integer",
      default: 10,
      min: 1,
      help: "rollouts for beam and goal_cond_plan (default 10)",
    },
    top_k: {
      type: "integer",
      default: 5,
      min: 0,
      help: "alternatives queued per step (default 5)",
    },
    relative_prob: { type: "boolean", help: "goal_cond_plan scores by relative probabilities" },
    num_samples: {
      type: "integer",
      default: 1,
      min: 1,
      help: "validation rows to sample from (default 1)",
    },
    prefix_len: {
      type: "integer",
      default: 64,
      min: 1,
      help: "prompt tokens (default 64; a quarter of the row if too long)",
    },
    suffix_len: {
      type: "integer",
      default: 64,
      min: 1,
      help: "goal tokens (default 64; likewise)",
    },
    output_path: {
      type: "string",
      arg: "FILE",
      help: "append JSON lines here instead of printing them",
    },
    config: {
      type: "string",
      short: "c",
      file: true,
      help: "config instead of the one stored in the checkpoint",
    },
    "allow-non-finite": {
      type: "boolean",
      help: "load weights holding NaN or Infinity (refused otherwise)",
    },
  },
  positionals: OVERRIDES,
  notes: "key=value overrides apply to the config (e.g. data.stargraph_data_path=...).",
});
const mode = values.sampling_mode as SamplingMode;
const rolloutCount = values.rollout_count;
const topK = values.top_k;
const numSamples = values.num_samples;
let prefixLen = values.prefix_len;
let suffixLen = values.suffix_len;

await runMain(async () => {
  const path = values.checkpoint_path;
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
  const model = await createModel(gpu, config, data);
  validateCheckpointTensors(file, path, {
    kind: model instanceof BST ? "bst" : "gpt",
    allowNonFinite: values["allow-non-finite"],
  });
  model.loadSafetensors(file.tensors, path);
  if (model instanceof BST) {
    const sampler = new BstSampler(model);
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
    generate = async (prefix, suffix) => {
      const { prompt: full, goal } = gptPromptAndGoal(
        model.config.mode,
        prefix,
        suffix,
        eos,
        model.config.fimTokenId,
      );
      const out = await greedyDecode(model, new Int32Array(full), 1, full.length, rolloutLen);
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
});
