/**
 * The trainer (microsoft/BST `core_train.py` semantics, DESIGN §6) for the BST or the GPT
 * baseline (`use_bst`): optimizer steps of
 * `effective_batch_size` rows in `gradient_accum_steps` micro-batches, validation every
 * `val_interval` steps and at the end, checkpoints after validation and every
 * `save_recovery_checkpoint` steps, resume, metrics, a run manifest and a progress line.
 *
 * Every random choice comes from `seed`: initialisation (stream 0), pair subsampling
 * (stream 1), the per-epoch shuffle of training rows (stream 3 + epoch). A step's rows are a
 * function of (seed, step) alone, so a resumed run sees exactly the rows an uninterrupted one
 * would, and with the same adapter produces the same bytes.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { BstRun } from "./bst_run.ts";
import {
  CheckpointManager,
  checkpointPolicy,
  loadCheckpoint,
  newRunName,
  resolveResume,
} from "./checkpoints.ts";
import { GptRun } from "./gpt_run.ts";
import { installInterrupt, INTERRUPT_EXIT_CODE } from "./interrupt.ts";
import { checkOutputDir, TRAIN_OUTPUT_ROOTS } from "../io/safe_paths.ts";
import { cleanLeftovers, openRunDir } from "./leftovers.ts";
import { RunManifest } from "./manifest.ts";
import { MetricsLogger } from "./metrics.ts";
import { checkFinite } from "./nan_guard.ts";
import { ProgressLine } from "./progress.ts";
import type { FinalMetrics, TrainData, TrainRun, ValMetrics } from "./run.ts";

export * from "./run.ts";
export { BstRun } from "./bst_run.ts";
export { GptRun } from "./gpt_run.ts";

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** Print progress on stderr (default true). */
  progress?: boolean;
  /** Install the Ctrl-C handler (default true). */
  handleInterrupt?: boolean;
  /** Override the run directory name (default: from the clock, or the resumed run's). */
  runName?: string;
  /** The GPU (default: the process-wide one, logged). */
  gpu?: Gpu;
  /** Resume from a checkpoint whose weights or moments hold NaN or ±Infinity (default false). */
  allowNonFinite?: boolean;
}

/** The run for a config: the BST (`use_bst: true`) or the GPT baseline. */
export async function createRun(gpu: Gpu, config: Config, data: TrainData): Promise<TrainRun> {
  return config.use_bst
    ? await BstRun.create(gpu, config, data)
    : await GptRun.create(gpu, config, data);
}

/**
 * Runs training as the config says and returns the final validation figures. Writes metrics,
 * checkpoints and `run.json` under `out_dir/<run name>/`.
 */
export async function train(
  config: Config,
  data: TrainData,
  options: TrainOptions = {},
): Promise<FinalMetrics> {
  // Before the GPU starts: the output folder is usable, and crashed runs' leftovers go.
  const outDir = config.trainer.out_dir;
  await checkOutputDir(outDir, { roots: TRAIN_OUTPUT_ROOTS, key: "trainer.out_dir" });
  await cleanLeftovers(outDir, options.progress === false ? { log: null } : {});
  const gpu = options.gpu ?? await getGpu({ log: true });
  const t = config.trainer;
  const started = performance.now();
  const r = await createRun(gpu, config, data);
  const policy = checkpointPolicy(t);
  let step = 0;
  let ckpt: CheckpointManager;
  let resumedFrom: string | null = null;
  if (t.init_from === "resume") {
    const point = await resolveResume(t.out_dir);
    resumedFrom = point.path;
    step = await r.restore(point.path, { allowNonFinite: options.allowNonFinite });
    const meta = (await loadCheckpoint(point.path)).metadata;
    ckpt = CheckpointManager.resume(t.out_dir, point.runName, policy, meta, point.path);
    console.error(`Resuming from ${point.path} at step ${step}`);
  } else {
    ckpt = new CheckpointManager(t.out_dir, options.runName ?? newRunName(), policy);
  }
  const lock = await openRunDir(t.out_dir, ckpt.runDir);
  const unlockAndThrow = async (e: unknown): Promise<never> => {
    await lock.release();
    throw e;
  };
  const metrics = await MetricsLogger.open(
    ckpt.runDir,
    t.init_from === "resume" ? { dropFromStep: step + 1 } : {},
  ).catch(unlockAndThrow);
  const manifest = await RunManifest.start(ckpt.runDir, {
    runName: ckpt.runName,
    config,
    seed: config.seed,
    adapter: gpu.info,
    resumedFrom,
  }).catch(unlockAndThrow);
  const progress = options.progress === false ? null : new ProgressLine({
    totalSteps: t.train_batches,
    tokensPerStep: config.data.effective_batch_size * data.seqLen,
    logInterval: t.log_interval,
  });
  const interrupt = options.handleInterrupt === false ? null : installInterrupt();
  let last: ValMetrics | null = null;
  try {
    if (t.val_only) {
      last = await r.validate();
    } else {
      while (step < t.train_batches) {
        const logNow = (step + 1) % t.log_interval === 0 || step + 1 === t.train_batches;
        const s = await r.step(step, logNow);
        step++;
        if (s.loss !== null) {
          checkFinite(s.loss, "loss", step, ckpt.lastWritten);
          await metrics.log({ step, epoch: s.epoch, lr: s.lr, train_loss: s.loss });
          progress?.update({ step, epoch: s.epoch, loss: s.loss, lr: s.lr });
        }
        const valNow = step % t.val_interval === 0 || step === t.train_batches;
        if (valNow) {
          last = await r.validate();
          await metrics.log({ step, epoch: s.epoch, ...last });
          progress?.message(`validation at step ${step}: ${JSON.stringify(last)}`);
          const c = await r.checkpoint(step);
          await ckpt.saveValidation(step, last.val_loss, c.tensors, c.metadata);
        }
        if (policy.recoveryEvery > 0 && step % policy.recoveryEvery === 0) {
          const c = await r.checkpoint(step);
          await ckpt.saveRecovery(step, c.tensors, c.metadata);
        }
        if (interrupt?.requested) {
          const c = await r.checkpoint(step);
          const saved = await ckpt.saveRecovery(step, c.tensors, c.metadata);
          progress?.finish();
          console.error(`Interrupted: wrote ${saved.path}; resume with trainer.init_from=resume`);
          await manifest.finish({ status: "interrupted", finalStep: step });
          Deno.exit(INTERRUPT_EXIT_CODE);
        }
      }
    }
  } catch (e) {
    progress?.finish();
    await manifest.finish({
      status: "failed",
      finalStep: step,
      result: { error: (e as Error).message },
    });
    await lock.release();
    throw e;
  } finally {
    interrupt?.dispose();
  }
  progress?.finish();
  const seconds = (performance.now() - started) / 1000;
  const final = { ...last!, steps: step, seconds: Number(seconds.toFixed(1)) };
  await manifest.finish({ status: "completed", finalStep: step, result: { ...final } });
  await lock.release();
  return final;
}
