/**
 * The trainer (microsoft/BST `core_train.py` semantics) for the BST or the GPT baseline
 * (`use_bst`): optimizer steps of `effective_batch_size` rows in `gradient_accum_steps`
 * micro-batches, validation every `val_interval` steps and at the end, checkpoints after
 * validation and every `save_recovery_checkpoint` steps, resume, a run manifest and a
 * progress line.
 *
 * Logs: one metrics row per step that logs (every `log_interval` steps and the last) or
 * validates, with the reference's keys — `train_loss` averaged over the steps since the
 * previous log row, `lr`, `grad_norm` when clipping, the BST's `avg_valid_pairs` and
 * `avg_sampled_pairs`, and the validation figures — and `curves.svg` redrawn from the rows
 * at each validation. GPU figures are read back only at log steps. docs/differences.md lists where
 * the reference's loop differs (it runs `train_batches + 1` updates, among others).
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
  claimRunDir,
  loadCheckpoint,
  resolveResume,
} from "./checkpoints.ts";
import { writeCurves } from "./curves.ts";
import { GptRun } from "./gpt_run.ts";
import { anyRank, type Collective } from "./distributed.ts";
import { installInterrupt, INTERRUPT_EXIT_CODE } from "./interrupt.ts";
import { checkOutputDir, TRAIN_OUTPUT_ROOTS } from "../io/safe_paths.ts";
import { cleanLeftovers, openRunDir } from "./leftovers.ts";
import { RunManifest } from "./manifest.ts";
import { MetricsLogger, type MetricsRow } from "./metrics.ts";
import { checkFinite } from "./nan_guard.ts";
import { ProgressLine } from "./progress.ts";
import type { FinalMetrics, StepResult, TrainData, TrainRun, ValMetrics } from "./run.ts";

export * from "./run.ts";
export * from "./rows.ts";
export { BstRun } from "./bst_run.ts";
export { GptRun } from "./gpt_run.ts";

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** Print progress on stderr (default true). */
  progress?: boolean;
  /** Install the Ctrl-C handler (default true). */
  handleInterrupt?: boolean;
  /**
   * Override the run directory name (default: the UTC start time, `2026-11-27_07-31-12`,
   * with `-2`, `-3`, … when taken; or the resumed run's).
   */
  runName?: string;
  /** The GPU (default: the process-wide one, logged). */
  gpu?: Gpu;
  /** Resume from a checkpoint whose weights or moments hold NaN or ±Infinity (default false). */
  allowNonFinite?: boolean;
  /**
   * Train data-parallel as one rank of this communicator (`mpirun`; see `distributed.ts`):
   * rank 0 alone writes the run directory and prints progress.
   */
  collective?: Collective;
}

/** The run for a config: the BST (`use_bst: true`) or the GPT baseline. */
export async function createRun(gpu: Gpu, config: Config, data: TrainData): Promise<TrainRun> {
  return config.use_bst
    ? await BstRun.create(gpu, config, data)
    : await GptRun.create(gpu, config, data);
}

/**
 * Runs training as the config says and returns the final validation figures. Writes metrics
 * (`metrics.csv`, `metrics.jsonl`), the loss curves (`curves.svg`, redrawn at each
 * validation), checkpoints and `run.json` under `out_dir/<run name>/`.
 */
export async function train(
  config: Config,
  data: TrainData,
  options: TrainOptions = {},
): Promise<FinalMetrics> {
  const comm = options.collective;
  const lead = !comm || comm.rank === 0; // writes the run directory, logs and prints
  // Before the GPU starts: the output folder is usable, and crashed runs' leftovers go.
  const outDir = config.trainer.out_dir;
  await checkOutputDir(outDir, { roots: TRAIN_OUTPUT_ROOTS, key: "trainer.out_dir" });
  if (lead) await cleanLeftovers(outDir, options.progress === false ? { log: null } : {});
  const gpu = options.gpu ?? await getGpu({ log: lead });
  const t = config.trainer;
  if (lead && t.precision === "bf16-mixed") {
    console.error("note: trainer.precision=bf16-mixed runs as 16-mixed (WGSL has no bf16)");
  }
  const started = performance.now();
  const r = await createRun(gpu, config, data);
  if (comm) r.distribute!(comm);
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
    if (lead) console.error(`Resuming from ${point.path} at step ${step}`);
    await r.checkReplicas?.(step);
  } else {
    // ranks other than 0 write nothing: their manager only names the run
    const name = options.runName ?? (lead ? await claimRunDir(t.out_dir) : "rank");
    ckpt = new CheckpointManager(t.out_dir, name, policy);
  }
  const lock = lead ? await openRunDir(t.out_dir, ckpt.runDir) : null;
  const unlockAndThrow = async (e: unknown): Promise<never> => {
    await lock?.release();
    throw e;
  };
  const metrics = !lead ? null : await MetricsLogger.open(
    ckpt.runDir,
    t.init_from === "resume" ? { dropFromStep: step + 1 } : {},
  ).catch(unlockAndThrow);
  const manifest = !lead ? null : await RunManifest.start(ckpt.runDir, {
    runName: ckpt.runName,
    config,
    seed: config.seed,
    adapter: gpu.info,
    resumedFrom,
  }).catch(unlockAndThrow);
  const progress = options.progress === false || !lead ? null : new ProgressLine({
    totalSteps: t.train_batches,
    tokensPerStep: config.data.effective_batch_size * data.seqLen,
    logInterval: t.log_interval,
  });
  const interrupt = options.handleInterrupt === false ? null : installInterrupt(
    comm ? { signals: ["SIGINT", "SIGTERM"], log: lead ? undefined : () => {} } : {},
  );
  let last: ValMetrics | null = null;
  try {
    if (t.val_only) {
      last = await r.validate();
    } else {
      const title = `${ckpt.runName} · ${config.use_bst ? "BST" : "GPT"} · ${config.data.dataset}`;
      // A log step's figures are read when the next step is queued (so the read overlaps that
      // step's GPU work), or before anything that needs them first: validation, a checkpoint,
      // stopping, the end. Then its row is checked, shown and written.
      let pending: { row: MetricsRow; s: StepResult } | null = null;
      const readFigures = async (): Promise<MetricsRow | null> => {
        if (pending === null) return null;
        const { row, s } = pending;
        pending = null;
        const f = await s.figures!();
        checkFinite(f.loss, "loss", row.step, ckpt.lastWritten);
        Object.assign(row, { lr: s.lr, train_loss: f.loss, ...f.logs });
        progress?.update({ step: row.step, epoch: row.epoch, loss: f.loss, lr: s.lr });
        return row;
      };
      const flush = async () => {
        const row = await readFigures();
        if (metrics && row) await metrics.log(row);
      };
      while (step < t.train_batches) {
        const logNow = (step + 1) % t.log_interval === 0 || step + 1 === t.train_batches;
        const s = await r.step(step, logNow);
        step++;
        await flush(); // the previous step's line, now that this step is queued
        // One metrics row per step that logs or validates, as the reference's log_dict.
        const row: MetricsRow = { step, epoch: s.epoch };
        if (s.figures !== null) pending = { row, s };
        const valNow = step % t.val_interval === 0 || step === t.train_batches;
        if (valNow) {
          await readFigures(); // fills `row`
          const val = await r.validate();
          await r.checkReplicas?.(step);
          if (metrics) await metrics.log({ ...row, ...val });
          last = val;
          if (metrics) await writeCurves(ckpt.runDir, metrics.rows, title);
          progress?.message(`validation at step ${step}: ${JSON.stringify(val)}`);
          // every rank builds the checkpoint (it sums the ranks' loss shares); rank 0 saves it
          const c = await r.checkpoint(step);
          if (lead) await ckpt.saveValidation(step, val.val_loss, c.tensors, c.metadata);
        }
        if (policy.recoveryEvery > 0 && step % policy.recoveryEvery === 0) {
          await flush();
          const c = await r.checkpoint(step);
          if (lead) await ckpt.saveRecovery(step, c.tensors, c.metadata);
        }
        // under mpirun every rank stops at the same step when any rank was signalled
        const stop = comm
          ? await anyRank(comm, interrupt?.requested ?? false)
          : interrupt?.requested;
        if (stop) {
          await flush();
          const c = await r.checkpoint(step);
          if (lead) {
            const saved = await ckpt.saveRecovery(step, c.tensors, c.metadata);
            progress?.finish();
            console.error(
              `Interrupted: wrote ${saved.path}; resume with trainer.init_from=resume`,
            );
            await manifest?.finish({ status: "interrupted", finalStep: step });
          }
          if (comm) {
            await comm.barrier(); // the others wait for rank 0's checkpoint
            comm.finalize();
          }
          Deno.exit(INTERRUPT_EXIT_CODE);
        }
      }
      await flush(); // (the last step validates, which reads its figures: nothing is left)
    }
  } catch (e) {
    progress?.finish();
    await manifest?.finish({
      status: "failed",
      finalStep: step,
      result: { error: (e as Error).message },
    });
    await lock?.release();
    throw e;
  } finally {
    interrupt?.dispose();
  }
  progress?.finish();
  const seconds = (performance.now() - started) / 1000;
  const final = { ...last!, steps: step, seconds: Number(seconds.toFixed(1)) };
  await manifest?.finish({ status: "completed", finalStep: step, result: { ...final } });
  await lock?.release();
  return final;
}
