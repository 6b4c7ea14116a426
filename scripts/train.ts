/**
 * `deno task train [--config FILE] [key=value ...]`: trains a BST from `config/defaults.yaml`
 * ← the config file ← dotlist overrides. With no arguments it runs the CPU-sized star-graph
 * config `config/stargraph_cpu.yaml`, generating its data when missing.
 *
 * Progress goes to stderr; the last stdout line is one JSON object with the final validation
 * figures (`val_loss`, `val_loss_next_token`, `val_loss_prev_token`, `path_accuracy`,
 * `steps`, `seconds`).
 *
 * Permissions (`-P=train`): read `config/`, `data/` and `deno.lock`; write `out/` and
 * `data/`; the env variables Mesa and wgpu read. No network.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../src/config/load.ts";
import { checkOutputDir, TRAIN_OUTPUT_ROOTS } from "../src/io/safe_paths.ts";
import { loadTrainData } from "../src/train/data.ts";
import { train } from "../src/train/trainer.ts";

const DEFAULT_CONFIG = "config/stargraph_cpu.yaml";

const USAGE = `Usage: deno task train [--config FILE] [--allow-non-finite] [key=value ...]

Trains the Belief State Transformer. The config is config/defaults.yaml, then FILE (default
${DEFAULT_CONFIG}: a star graph that a 2-core CPU learns in minutes), then the overrides,
e.g. trainer.train_batches=200 optimizer.learning_rate=1e-3 data.goal_range=[10,20].

Star-graph data missing at data.stargraph_data_path is generated first when its name is
graph_{paths}_{length}_sample_{count}.txt. Outputs go to trainer.out_dir/<run>/ (metrics.csv,
metrics.jsonl, run.json, checkpoints); trainer.init_from=resume continues the latest run.
The last stdout line is the final validation JSON. Resuming from a checkpoint whose weights
or optimizer state hold NaN or Infinity is refused unless --allow-non-finite is given.`;

const { values, positionals } = parseArgs({
  options: {
    help: { type: "boolean", short: "h" },
    config: { type: "string", short: "c" },
    "allow-non-finite": { type: "boolean" },
  },
  allowPositionals: true,
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
for (const p of positionals) {
  if (!p.includes("=")) {
    console.error(`error: "${p}" is not a key=value override\n\n${USAGE}`);
    Deno.exit(2);
  }
}

try {
  const configFile = values.config ?? DEFAULT_CONFIG;
  const config = await loadConfig({ configFile, overrides: positionals });
  // Before generating data or starting the GPU (train() checks it again for library callers).
  const outDir = config.trainer.out_dir;
  await checkOutputDir(outDir, { roots: TRAIN_OUTPUT_ROOTS, key: "trainer.out_dir" });
  const data = await loadTrainData(config, { generate: true });
  const result = await train(config, data, { allowNonFinite: values["allow-non-finite"] });
  console.log(JSON.stringify(result));
} catch (e) {
  const message = (e as Error).message;
  console.error(`error: ${message}`);
  if (/exceeds the adapter's maxStorageBufferBindingSize/.test(message)) {
    console.error(
      "hint: a smaller micro-batch needs smaller buffers: raise data.gradient_accum_steps " +
        "(effective_batch_size / gradient_accum_steps rows per micro-batch)",
    );
  }
  Deno.exit(1);
}
