/**
 * `deno task evaluate --checkpoint FILE [--config FILE] [key=value ...]`: loads a checkpoint
 * written by `deno task train` (or a microsoft/BST `.pt`, which needs `--config`), runs
 * validation with the config stored in it (or `--config`, then the overrides), and prints the
 * same final JSON object as training as the last stdout line. `--checkpoint_path` is the same flag as `--checkpoint` (the name infer uses).
 *
 * Permissions (`-P=evaluate`): read (the checkpoint, config and data files given), the env
 * variables Mesa and wgpu read. No writes, no network.
 *
 * @module
 */

import { loadCheckpointConfig } from "../src/config/load.ts";
import { getGpu } from "../src/gpu/device.ts";
import { loadCheckpoint } from "../src/train/checkpoints.ts";
import { loadTrainData } from "../src/train/data.ts";
import { createRun } from "../src/train/trainer.ts";
import {
  ALLOW_NON_FINITE_FLAG,
  CHECKPOINT_CONFIG_FLAG,
  OVERRIDES,
  parseCli,
  runMain,
} from "./_cli.ts";
import { createParquetTextReader } from "./_parquet.ts";

const { values, positionals } = parseCli({
  usage:
    "deno task evaluate --checkpoint FILE [--config FILE] [--allow-non-finite] [key=value ...]",
  about: `Runs validation (val_loss, val_loss_next_token, val_loss_prev_token and, for star graphs,
path_accuracy) of a checkpoint and prints one JSON object. The config comes from the
checkpoint's metadata unless --config is given; key=value overrides apply on top, e.g.
trainer.val_batches=-1 for the whole validation split. A checkpoint whose weights hold NaN or
Infinity is refused unless --allow-non-finite is given.`,
  flags: {
    checkpoint: {
      type: "string",
      alias: "checkpoint_path",
      required: true,
      file: true,
      help: "checkpoint written by deno task train, or a microsoft/BST .pt (required)",
    },
    config: CHECKPOINT_CONFIG_FLAG,
    "allow-non-finite": ALLOW_NON_FINITE_FLAG,
  },
  positionals: OVERRIDES,
});

await runMain(async () => {
  const path = values.checkpoint;
  const file = await loadCheckpoint(path);
  const config = await loadCheckpointConfig(file.metadata, path, {
    configFile: values.config,
    overrides: positionals,
  });
  const data = await loadTrainData(config, { generate: false, parquet: createParquetTextReader() });
  const started = performance.now();
  const run = await createRun(await getGpu({ log: true }), config, data);
  const steps = await run.loadWeights(path, { allowNonFinite: values["allow-non-finite"] });
  const metrics = await run.validate();
  console.log(JSON.stringify({
    ...metrics,
    steps,
    seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
  }));
});
