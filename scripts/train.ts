/**
 * `deno task train [--config FILE] [key=value ...]`: trains a BST from `config/defaults.yaml`
 * ← the config file ← dotlist overrides. With no arguments it runs the CPU-sized star-graph
 * config `config/stargraph_cpu.yaml`, generating its data when missing.
 *
 * Progress goes to stderr; the last stdout line is one JSON object with the final validation
 * figures (`val_loss`, `val_loss_next_token`, `val_loss_prev_token`, `path_accuracy`,
 * `steps`, `seconds`).
 *
 * Under Open MPI's `mpirun -np N` it trains data-parallel (`src/train/distributed.ts`): rank 0
 * writes the run directory and prints the JSON line; a failing rank aborts the job.
 *
 * Permissions (`-P=train`): read (configs, data and checkpoints the user names); write `out/`
 * and `data/` only; the env variables Mesa, wgpu and `mpirun` set, and `HF_ENDPOINT`; network
 * to the Hugging Face Hub's hosts only (the TinyStories download on first use); FFI for Open
 * MPI's `libmpi.so.40` in the usual directories.
 *
 * @module
 */

import { loadConfig } from "../src/config/load.ts";
import { checkOutputDir, TRAIN_OUTPUT_ROOTS } from "../src/io/safe_paths.ts";
import { loadTrainData } from "../src/train/data.ts";
import { mpiPlacement } from "../src/train/distributed.ts";
import { train } from "../src/train/trainer.ts";
import { errorReport, OVERRIDES, parseCli, runMain } from "./_cli.ts";
import { createParquetTextReader } from "./_parquet.ts";

const DEFAULT_CONFIG = "config/stargraph_cpu.yaml";

const { values, positionals } = parseCli({
  usage: "deno task train [--config FILE] [--allow-non-finite] [key=value ...]",
  about:
    `Trains the Belief State Transformer. The config is config/defaults.yaml, then FILE (default
${DEFAULT_CONFIG}: a star graph that a 2-core CPU learns in minutes), then the overrides,
e.g. trainer.train_batches=200 optimizer.learning_rate=1e-3 data.goal_range=[10,20].`,
  flags: {
    config: {
      type: "string",
      short: "c",
      file: true,
      help: `config file (default ${DEFAULT_CONFIG})`,
    },
    "allow-non-finite": {
      type: "boolean",
      help: "resume even from weights or optimizer state holding NaN or Infinity",
    },
  },
  positionals: OVERRIDES,
  notes: `Star-graph data missing at data.stargraph_data_path is generated first when its name is
graph_{paths}_{length}_sample_{count}.txt. Outputs go to trainer.out_dir/<run>/ (metrics.csv,
metrics.jsonl, run.json, checkpoints); trainer.init_from=resume continues the latest run.
The last stdout line is the final validation JSON. Resuming from a checkpoint whose weights
or optimizer state hold NaN or Infinity is refused unless --allow-non-finite is given.
Under mpirun -np N it trains data-parallel, one GPU per rank (BST_RANK_GPUS;
docs/multi-gpu.md).`,
});

const hint = (message: string) =>
  /exceeds the adapter's maxStorageBufferBindingSize/.test(message)
    ? "a smaller micro-batch needs smaller buffers: raise data.gradient_accum_steps " +
      "(effective_batch_size / gradient_accum_steps rows per micro-batch)"
    : undefined;

await runMain(async () => {
  const configFile = values.config ?? DEFAULT_CONFIG;
  const config = await loadConfig({ configFile, overrides: positionals });
  // Before generating data or starting the GPU (train() checks it again for library callers).
  const outDir = config.trainer.out_dir;
  await checkOutputDir(outDir, { roots: TRAIN_OUTPUT_ROOTS, key: "trainer.out_dir" });
  const load = (generate: boolean) =>
    loadTrainData(config, { generate, parquet: createParquetTextReader() });
  const allowNonFinite = values["allow-non-finite"];
  const placement = mpiPlacement();
  if (!placement) {
    const result = await train(config, await load(true), { allowNonFinite });
    console.log(JSON.stringify(result));
    return;
  }
  // Under mpirun: the bindings load only here, so a plain run never touches FFI.
  const { abortJob, startRank } = await import("../src/dist/rank.ts");
  const { mpi, gpu } = await startRank(placement);
  try {
    // rank 0 generates (or downloads) missing data while the others wait
    const data = mpi.rank === 0 ? await load(true) : null;
    await mpi.barrier(Infinity);
    const result = await train(config, data ?? await load(false), {
      allowNonFinite,
      gpu,
      collective: mpi,
    });
    if (mpi.rank === 0) console.log(JSON.stringify(result));
    mpi.finalize();
  } catch (e) {
    abortJob(mpi, e, (e) => errorReport(e, hint));
  }
}, { hint });
