/**
 * `deno task infer --checkpoint_path FILE --sampling_mode MODE [flags] [key=value ...]`:
 * samples from a trained checkpoint as microsoft/BST's `inference.py` does. Prompts and goals
 * come from validation rows: the first `--prefix_len` tokens and the last `--suffix_len`
 * tokens (64/64 by default; when a row is too short for that, a quarter of it each), with
 * EOS added before the prompt and after the goal; the rollout length is what lies between.
 * BST: the six modes; GPT: `AR` only (greedy, goal ignored). `--checkpoint` is the same flag
 * as `--checkpoint_path` (the name evaluate uses). A microsoft/BST `.pt` checkpoint is read
 * as it is (it holds no config: pass `--config`).
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
import {
  ALLOW_NON_FINITE_FLAG,
  CHECKPOINT_CONFIG_FLAG,
  OVERRIDES,
  parseCli,
  runMain,
} from "./_cli.ts";
import { createParquetTextReader } from "./_parquet.ts";

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
      help: "checkpoint written by deno task train, or a microsoft/BST .pt (required)",
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
    config: CHECKPOINT_CONFIG_FLAG,
    "allow-non-finite": ALLOW_NON_FINITE_FLAG,
  },
  positionals: OVERRIDES,
  notes: "key=value overrides apply to the config (e.g. data.stargraph_data_path=...).",
});
const mode = values.sampling_mode as SamplingMode;
const rolloutCount = values.rollout_count;
const topK = values.top_k;
const numSamples = values.num_samples;
const prefixLen = values.prefix_len;
const suffixLen = values.suffix_len;

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
  const data = await loadTrainData(config, { generate: false, parquet: createParquetTextReader() });
  const gpu = await getGpu({ log: true });
  const eos = data.eosTokenId;
  const decode = (ids: number[]) => (data.decode ? data.decode(ids) : ids.join(" "));
  let generate: (prompt: number[], goal: number[], rolloutLen: number) => Promise<Generation>;
  const model = await createModel(gpu, config, data);
  validateCheckpointTensors(file, path, {
    kind: model instanceof BST ? "bst" : "gpt",
    allowNonFinite: values["allow-non-finite"],
  });
  model.loadSafetensors(file.tensors, path);
  if (model instanceof BST) {
    const sampler = new BstSampler(model);
    generate = (prompt, goal, rolloutLen) =>
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
    generate = async (prefix, suffix, rolloutLen) => {
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
  let outFile: Deno.FsFile | null = null;
  const enc = new TextEncoder();
  if (values.output_path) {
    const existed = await Deno.stat(values.output_path).then(() => true, () => false);
    outFile = await Deno.open(values.output_path, { append: true, create: true });
    // The reference marks a new run appended to an existing file with this line.
    if (existed) {
      await outFile.write(enc.encode("--------------------- NEW SESSION --------------------\n"));
    }
  }
  try {
    let done = 0;
    let index = 0;
    for await (const sample of data.samples()) {
      if (done >= numSamples) break;
      index++;
      const row = [...sample.tokens];
      const split = promptSplit(row.length, prefixLen, suffixLen);
      if (!split) {
        console.error(`Sample ${index} has ${row.length} tokens, too few to sample from: skipped`);
        continue;
      }
      const g = await generate(
        row.slice(0, split.prefixLen),
        row.slice(row.length - split.suffixLen),
        split.rolloutLen,
      );
      g.original = sample.original;
      const line = JSON.stringify(g) + "\n";
      if (outFile) await outFile.write(enc.encode(line));
      else await Deno.stdout.write(enc.encode(line));
      done++;
      console.error(`Samples generated: ${done}`);
    }
  } finally {
    outFile?.close();
  }
});

/**
 * The reference's split of a sequence of `seqLen` tokens into prompt, rollout and goal:
 * `rollout = seqLen − prefix − suffix − 2` (the EOS added to the prompt and to the goal); when
 * that is below 1, prefix and suffix become a quarter of the sequence each. Null when even
 * that leaves no room.
 */
function promptSplit(
  seqLen: number,
  prefixLen: number,
  suffixLen: number,
): { prefixLen: number; suffixLen: number; rolloutLen: number } | null {
  let rolloutLen = seqLen - prefixLen - suffixLen - 2;
  if (rolloutLen < 1) {
    prefixLen = suffixLen = Math.floor(seqLen / 4);
    rolloutLen = seqLen - prefixLen - suffixLen - 2;
  }
  return rolloutLen >= 1 && prefixLen >= 1 ? { prefixLen, suffixLen, rolloutLen } : null;
}
