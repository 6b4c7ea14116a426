/**
 * Checkpoint files of a training run, their pointer files, the keep/remove rules and resume,
 * as the reference's `Trainer` does them (core_train.py `_validation_loop`,
 * `_save_checkpoint`, `_save_recovery_checkpoint`, `initialize_model(init_from="resume")`).
 *
 * Layout under `out_dir` (`trainer.out_dir`):
 *
 * ```
 * out/
 *   latest_ckpt                      pointer: path of the newest validation checkpoint
 *   recovery_ckpt                    pointer: path of the newest recovery checkpoint
 *   2026-11-27_07-31-12/             one directory per run (see newRunName)
 *     ckpt_iter_2000.safetensors     written after validation at step 2000
 *     recovery_ckpt_iter_2500.safetensors
 * ```
 *
 * The pointers sit in `out_dir`, not in the run directory, exactly as in the reference: a
 * resumed run is found through them without knowing its name. Each pointer holds one line,
 * the checkpoint path `join(out_dir, run, file)` with no trailing newline (the reference
 * writes `os.path.join(out_dir, experiment_name, filename)` and reads it back with
 * `f.read().strip()`). The reference names validation checkpoints
 * `ckpt_iter_{step}_loss_{val_loss}.pt`; ours are `ckpt_iter_{step}.safetensors`.
 *
 * A checkpoint's `step` is the number of optimizer steps taken (the reference's
 * `model.training_steps`): validation at step S and the recovery checkpoint written after the
 * S-th optimizer step both hold the state before step S runs.
 *
 * Every write is atomic (temporary file, sync, rename): the checkpoint first, then its
 * pointer, then the removal of checkpoints it supersedes, so a run killed at any moment leaves
 * pointers that name complete files.
 *
 * The manager does not know the model: callers pass tensors (model weights under PyTorch
 * names, optimizer state under `optimizer.` names) and metadata strings (step, data position,
 * RNG state, config). The manager adds its own bookkeeping under the `checkpoint.` metadata
 * keys so that a resumed run keeps and removes exactly the files an uninterrupted run would.
 *
 * @module
 */

import { writeTextFileAtomic } from "../io/atomic.ts";
import { basename, dirname, join } from "node:path";
import type { TrainerConfig } from "../config/schema.ts";
import { validateCheckpointMetadata } from "./checkpoint_validate.ts";
import {
  readCheckpointBytes,
  type SafeTensor,
  type SafetensorsFile,
  writeSafetensorsAtomic,
} from "../io/safetensors.ts";
import { parseCheckpoint } from "./torch_checkpoint.ts";

/** Name of the pointer file (in `out_dir`) to the newest validation checkpoint. */
export const LATEST_POINTER = "latest_ckpt";

/** Name of the pointer file (in `out_dir`) to the newest recovery checkpoint. */
export const RECOVERY_POINTER = "recovery_ckpt";

/** Metadata key the manager writes: `"validation"` or `"recovery"`. */
export const KIND_KEY = "checkpoint.kind";

/** Metadata key the manager writes: the checkpoint's step as a decimal string. */
export const STEP_KEY = "checkpoint.step";

/** Metadata key the manager writes: its {@linkcode CheckpointState} as JSON. */
export const STATE_KEY = "checkpoint.state";

/** The two kinds of checkpoint: after validation, or every `save_recovery_checkpoint` steps. */
export type CheckpointKind = "validation" | "recovery";

/**
 * File name of the validation checkpoint at `step`.
 *
 * @param step Optimizer steps taken.
 * @returns `ckpt_iter_{step}.safetensors`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpointFileName } from "./checkpoints.ts";
 * assert(checkpointFileName(2000) === "ckpt_iter_2000.safetensors");
 * ```
 */
export function checkpointFileName(step: number): string {
  return `ckpt_iter_${checkStep(step)}.safetensors`;
}

/**
 * File name of the recovery checkpoint at `step`.
 *
 * @param step Optimizer steps taken.
 * @returns `recovery_ckpt_iter_{step}.safetensors`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { recoveryFileName } from "./checkpoints.ts";
 * assert(recoveryFileName(500) === "recovery_ckpt_iter_500.safetensors");
 * ```
 */
export function recoveryFileName(step: number): string {
  return `recovery_ckpt_iter_${checkStep(step)}.safetensors`;
}

const NAME_RE = /^(recovery_)?ckpt_iter_(0|[1-9][0-9]*)\.safetensors$/;
/** The reference's names (core_train.py): `ckpt_iter_{N}_loss_{val_loss}.pt`, `recovery_…`. */
const TORCH_NAME_RE =
  /^(?:(recovery_)ckpt_iter_(0|[1-9][0-9]*)|ckpt_iter_(0|[1-9][0-9]*)_loss_.+)\.pt$/;

/**
 * Kind and step of a checkpoint file name (a path's directory is ignored): ours, or the
 * reference's `.pt` names, so that `init_from: resume` continues a reference run.
 *
 * @param path A file name or path.
 * @returns `{ kind, step }`, or `null` when the name is neither `ckpt_iter_{N}.safetensors`
 * nor `recovery_ckpt_iter_{N}.safetensors` (nor `ckpt_iter_{N}_loss_{L}.pt` nor
 * `recovery_ckpt_iter_{N}.pt`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCheckpointFileName } from "./checkpoints.ts";
 * const p = parseCheckpointFileName("out/run1/recovery_ckpt_iter_500.safetensors");
 * assert(p?.kind === "recovery" && p.step === 500);
 * ```
 */
export function parseCheckpointFileName(
  path: string,
): { kind: CheckpointKind; step: number } | null {
  const name = basename(path);
  const m = NAME_RE.exec(name);
  const t = m ? null : TORCH_NAME_RE.exec(name);
  if (m === null && t === null) return null;
  const step = Number(m ? m[2] : t![2] ?? t![3]);
  if (!Number.isSafeInteger(step)) return null;
  return { kind: (m ? m[1] : t![1]) ? "recovery" : "validation", step };
}

/**
 * A run directory name from the clock: the UTC date and time to the second,
 * `YYYY-MM-DD_HH-MM-SS` (the reference names runs `"run" + str(time.time())`). Names sort
 * in time order; {@linkcode claimRunDir} makes them unique.
 *
 * @param nowMs Milliseconds since the epoch (default: now).
 * @returns For example `"2024-06-10_06-13-20"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newRunName } from "./checkpoints.ts";
 * assert(newRunName(1718000000123) === "2024-06-10_06-13-20");
 * ```
 */
export function newRunName(nowMs: number = Date.now()): string {
  const iso = new Date(nowMs).toISOString(); // 2024-06-10T06:13:20.123Z
  return `${iso.slice(0, 10)}_${iso.slice(11, 19).replaceAll(":", "-")}`;
}

/**
 * Creates a fresh run directory under `outDir` named `base`, or `base-2`, `base-3`, … when
 * taken (two runs started in the same second), and returns the name. Creating the directory
 * is the claim, so two processes never get the same one.
 *
 * Requires `--allow-read` and `--allow-write` for `outDir`.
 *
 * @param outDir `trainer.out_dir` (created if missing).
 * @param base The name to try first (default: {@linkcode newRunName} of now).
 * @returns The claimed name.
 * @throws One line naming the directory when it cannot be created.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { claimRunDir } from "./checkpoints.ts";
 * const out = await Deno.makeTempDir();
 * assert.equal(await claimRunDir(out, "2026-11-27_07-31-12"), "2026-11-27_07-31-12");
 * assert.equal(await claimRunDir(out, "2026-11-27_07-31-12"), "2026-11-27_07-31-12-2");
 * await Deno.remove(out, { recursive: true });
 * ```
 */
export async function claimRunDir(outDir: string, base: string = newRunName()): Promise<string> {
  try {
    await Deno.mkdir(outDir, { recursive: true });
  } catch (e) {
    throw new Error(`Cannot create "${outDir}": ${(e as Error).message}`, { cause: e });
  }
  for (let n = 1;; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    try {
      await Deno.mkdir(join(outDir, name));
      return name;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) continue;
      throw new Error(`Cannot create "${join(outDir, name)}": ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
}

/** When checkpoints are written and which are kept (the `trainer.*` checkpoint keys). */
export interface CheckpointPolicy {
  /** Save after every validation and keep the latest (`save_last_checkpoint`). */
  saveLast: boolean;
  /** Save after a validation with a new lowest loss and keep it (`save_best_checkpoint`). */
  saveBest: boolean;
  /** Never remove validation checkpoints (`always_save_checkpoint`). */
  alwaysSave: boolean;
  /** Write a recovery checkpoint every N steps; `<= 0` disables (`save_recovery_checkpoint`). */
  recoveryEvery: number;
  /** Save at validations at these steps and never remove them (`keep_checkpoint_steps`). */
  keepSteps: readonly number[];
}

/**
 * The checkpoint policy of a config's `trainer` section.
 *
 * @param trainer The `trainer.*` settings.
 * @returns The policy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpointPolicy } from "./checkpoints.ts";
 * const p = checkpointPolicy({
 *   save_last_checkpoint: true,
 *   save_best_checkpoint: true,
 *   always_save_checkpoint: false,
 *   save_recovery_checkpoint: -1,
 *   keep_checkpoint_steps: [],
 * });
 * assert(p.recoveryEvery === -1);
 * ```
 */
export function checkpointPolicy(
  trainer: Pick<
    TrainerConfig,
    | "save_last_checkpoint"
    | "save_best_checkpoint"
    | "always_save_checkpoint"
    | "save_recovery_checkpoint"
    | "keep_checkpoint_steps"
  >,
): CheckpointPolicy {
  return {
    saveLast: trainer.save_last_checkpoint,
    saveBest: trainer.save_best_checkpoint,
    alwaysSave: trainer.always_save_checkpoint,
    recoveryEvery: trainer.save_recovery_checkpoint,
    keepSteps: [...trainer.keep_checkpoint_steps],
  };
}

/**
 * The manager's bookkeeping (the reference `Trainer`'s `latest_checkpoint_path`,
 * `best_checkpoint_path`, `best_val_loss`, `recovery_checkpoint_path`,
 * `checkpoints_to_always_keep`). File names are relative to the run directory.
 */
export interface CheckpointState {
  /** The newest validation checkpoint kept as "last" (only with `saveLast`). */
  latest: string | null;
  /** The validation checkpoint with the lowest loss (only with `saveBest`). */
  best: string | null;
  /** The lowest validation loss seen, saved or not. */
  bestValLoss: number | null;
  /** The newest recovery checkpoint. */
  recovery: string | null;
  /** Checkpoints never removed (`keep_checkpoint_steps`). */
  keep: string[];
  /** The most recently written checkpoint of either kind. */
  last: string | null;
}

/** What {@linkcode CheckpointManager.saveValidation} did. */
export interface ValidationSave {
  /** The file written, or `null` when the policy saves nothing at this validation. */
  path: string | null;
  /** Whether the loss is the lowest so far (strictly lower, or the first validation). */
  isNewBest: boolean;
  /** Checkpoints removed because the new one supersedes them. */
  removed: string[];
}

/** What {@linkcode CheckpointManager.saveRecovery} did. */
export interface RecoverySave {
  /** The file written. */
  path: string;
  /** The previous recovery checkpoint, removed. */
  removed: string[];
}

function checkStep(step: number): number {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new Error(`Checkpoint step must be a non-negative integer, got ${step}`);
  }
  return step;
}

function emptyState(): CheckpointState {
  return { latest: null, best: null, bestValLoss: null, recovery: null, keep: [], last: null };
}

function isName(x: unknown): x is string | null {
  return x === null || (typeof x === "string" && x.length > 0 && basename(x) === x);
}

function parseState(json: string, source: string): CheckpointState {
  const fail = (why: string): never => {
    throw new Error(`Cannot read checkpoint state of "${source}": ${why}`);
  };
  let s: unknown;
  try {
    s = JSON.parse(json);
  } catch (e) {
    return fail(`${STATE_KEY} is not JSON (${(e as Error).message})`);
  }
  const o = s as Record<string, unknown>;
  if (typeof s !== "object" || s === null || Array.isArray(s)) {
    fail(`${STATE_KEY} is not an object`);
  }
  for (const k of ["latest", "best", "recovery", "last"] as const) {
    if (!isName(o[k])) fail(`${STATE_KEY}.${k} is not a file name or null`);
  }
  if (o.bestValLoss !== null && typeof o.bestValLoss !== "number") {
    fail(`${STATE_KEY}.bestValLoss is not a number or null`);
  }
  if (!Array.isArray(o.keep) || !o.keep.every((k) => typeof k === "string" && isName(k))) {
    fail(`${STATE_KEY}.keep is not a list of file names`);
  }
  return {
    latest: o.latest as string | null,
    best: o.best as string | null,
    bestValLoss: o.bestValLoss as number | null,
    recovery: o.recovery as string | null,
    keep: [...(o.keep as string[])],
    last: o.last as string | null,
  };
}

function copyState(s: CheckpointState): CheckpointState {
  return { ...s, keep: [...s.keep] };
}

async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new Error(`Cannot remove old checkpoint "${path}": ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * Writes a run's checkpoints and pointer files and removes superseded checkpoints, with the
 * reference's rules:
 *
 * - After validation (only call it when training, not with `val_only`): the loss is a new
 *   best when it is the first or strictly lower than every earlier one. A checkpoint is
 *   written when `saveLast`, or `saveBest` and a new best, or the step is in `keepSteps`;
 *   `latest_ckpt` then points to it. Unless `alwaysSave`, the previous "latest" is removed
 *   (with `saveLast`, unless it is also the best and this one is not a new best) and the
 *   previous "best" is removed (with `saveBest` and a new best) — except files of
 *   `keepSteps`. Then "latest" (with `saveLast`) and "best" (with `saveBest` and a new best)
 *   become the new file, and a `keepSteps` file joins the kept set.
 * - Recovery: `recovery_ckpt_iter_{step}.safetensors`, `recovery_ckpt` points to it, and the
 *   previous recovery checkpoint is removed (`alwaysSave` does not affect recovery files).
 *
 * One departure from the reference: a file about to be removed that is the one just written
 * (the same step validated again after a resume) is kept, and a file already gone is skipped.
 *
 * Requires `--allow-read` and `--allow-write` for `outDir`.
 *
 * @example
 * ```ts ignore
 * import { CheckpointManager, checkpointPolicy } from "./checkpoints.ts";
 * const ckpt = new CheckpointManager("out", "run1", checkpointPolicy(config.trainer));
 * const { path } = await ckpt.saveValidation(step, valLoss, tensors, { config: yaml });
 * if (ckpt.isRecoveryStep(step)) await ckpt.saveRecovery(step, tensors, meta);
 * ```
 */
export class CheckpointManager {
  /** `trainer.out_dir`: holds the pointer files and the run directories. */
  readonly outDir: string;
  /** The run's directory name under `outDir`. */
  readonly runName: string;
  /** `join(outDir, runName)`: holds the checkpoint files. */
  readonly runDir: string;
  /** When to write and what to keep. */
  readonly policy: CheckpointPolicy;
  #state: CheckpointState;

  /**
   * A manager for `join(outDir, runName)`. The directory is created on the first save.
   *
   * @param outDir `trainer.out_dir`.
   * @param runName The run directory's name (see {@linkcode newRunName}).
   * @param policy Checkpoint settings (see {@linkcode checkpointPolicy}).
   * @param state Bookkeeping to continue from (see {@linkcode CheckpointManager.resume});
   * default: a fresh run.
   */
  constructor(
    outDir: string,
    runName: string,
    policy: CheckpointPolicy,
    state: CheckpointState = emptyState(),
  ) {
    if (runName.length === 0 || basename(runName) !== runName || runName === "..") {
      throw new Error(`Run name must be a plain directory name, got "${runName}"`);
    }
    this.outDir = outDir;
    this.runName = runName;
    this.runDir = join(outDir, runName);
    this.policy = { ...policy, keepSteps: [...policy.keepSteps] };
    this.#state = copyState(state);
  }

  /**
   * A manager that continues the bookkeeping stored in a checkpoint's metadata, so the
   * resumed run keeps and removes the same files as an uninterrupted one. Metadata without
   * the `checkpoint.state` key (a checkpoint written elsewhere) gives a fresh state.
   *
   * @param outDir `trainer.out_dir`.
   * @param runName The resumed run's directory name ({@linkcode ResumePoint.runName}).
   * @param policy Checkpoint settings.
   * @param metadata The loaded checkpoint's metadata.
   * @param source The checkpoint's path, for error messages.
   * @returns The manager.
   * @throws One line naming `source` when the state is malformed.
   */
  static resume(
    outDir: string,
    runName: string,
    policy: CheckpointPolicy,
    metadata: Record<string, string>,
    source = "<metadata>",
  ): CheckpointManager {
    const json = metadata[STATE_KEY];
    const state = json === undefined ? emptyState() : parseState(json, source);
    return new CheckpointManager(outDir, runName, policy, state);
  }

  /** A copy of the bookkeeping (file names relative to {@linkcode runDir}). */
  get state(): CheckpointState {
    return copyState(this.#state);
  }

  /** The lowest validation loss seen so far, or `null` before the first validation. */
  get bestValLoss(): number | null {
    return this.#state.bestValLoss;
  }

  /** Path of the most recently written checkpoint (for error messages), or `null`. */
  get lastWritten(): string | null {
    return this.#path(this.#state.last);
  }

  /** Path of the current "latest" validation checkpoint, or `null`. */
  get latestPath(): string | null {
    return this.#path(this.#state.latest);
  }

  /** Path of the current "best" validation checkpoint, or `null`. */
  get bestPath(): string | null {
    return this.#path(this.#state.best);
  }

  /** Path of the current recovery checkpoint, or `null`. */
  get recoveryPath(): string | null {
    return this.#path(this.#state.recovery);
  }

  #path(name: string | null): string | null {
    return name === null ? null : join(this.runDir, name);
  }

  /**
   * Whether a recovery checkpoint is due after `step` optimizer steps
   * (`recoveryEvery > 0 && step % recoveryEvery == 0`).
   *
   * @param step Optimizer steps taken.
   * @returns true when {@linkcode saveRecovery} should run now.
   */
  isRecoveryStep(step: number): boolean {
    const n = this.policy.recoveryEvery;
    return n > 0 && step % n === 0;
  }

  /**
   * Records a validation loss and writes, points to and prunes checkpoints by the policy
   * (see the class description).
   *
   * @param step Optimizer steps taken.
   * @param valLoss The validation loss; must be finite.
   * @param tensors Everything to store (model weights, optimizer state).
   * @param metadata Caller metadata; keys starting with `checkpoint.` are reserved.
   * @returns The file written (or `null`), whether this is a new best, and what was removed.
   * @throws One line naming the file on a write failure; on bad arguments.
   */
  async saveValidation(
    step: number,
    valLoss: number,
    tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
    metadata: Record<string, string> = {},
  ): Promise<ValidationSave> {
    checkStep(step);
    if (!Number.isFinite(valLoss)) {
      throw new Error(
        `Cannot save a checkpoint at step ${step}: the validation loss is ${valLoss}`,
      );
    }
    const p = this.policy;
    const s = this.#state;
    const isNewBest = s.bestValLoss === null || valLoss < s.bestValLoss;
    const keepStep = p.keepSteps.includes(step);
    const next = copyState(s);
    if (isNewBest) next.bestValLoss = valLoss;
    if (!(p.saveLast || (p.saveBest && isNewBest) || keepStep)) {
      this.#state = next;
      return { path: null, isNewBest, removed: [] };
    }
    const name = checkpointFileName(step);
    const old = new Set<string>();
    if (!p.alwaysSave) {
      if (p.saveLast && s.latest !== null && (s.latest !== s.best || isNewBest)) old.add(s.latest);
      if (p.saveBest && isNewBest && s.best !== null) old.add(s.best);
    }
    if (p.saveLast) next.latest = name;
    if (p.saveBest && isNewBest) next.best = name;
    if (keepStep && !next.keep.includes(name)) next.keep.push(name);
    next.last = name;

    const path = await this.#write(name, "validation", step, tensors, metadata, next);
    await writeTextFileAtomic(join(this.outDir, LATEST_POINTER), path);
    const removed: string[] = [];
    for (const o of old) {
      if (o === name || s.keep.includes(o)) continue;
      const p = join(this.runDir, o);
      if (await removeIfPresent(p)) removed.push(p);
    }
    this.#state = next;
    return { path, isNewBest, removed };
  }

  /**
   * Writes `recovery_ckpt_iter_{step}.safetensors`, points `recovery_ckpt` to it and removes
   * the previous recovery checkpoint. Call it when {@linkcode isRecoveryStep} says so, and on
   * an interrupt.
   *
   * @param step Optimizer steps taken.
   * @param tensors Everything to store.
   * @param metadata Caller metadata; keys starting with `checkpoint.` are reserved.
   * @returns The file written and what was removed.
   * @throws One line naming the file on a write failure.
   */
  async saveRecovery(
    step: number,
    tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
    metadata: Record<string, string> = {},
  ): Promise<RecoverySave> {
    const name = recoveryFileName(step);
    const prev = this.#state.recovery;
    const next = copyState(this.#state);
    next.recovery = name;
    next.last = name;
    const path = await this.#write(name, "recovery", step, tensors, metadata, next);
    await writeTextFileAtomic(join(this.outDir, RECOVERY_POINTER), path);
    const removed: string[] = [];
    if (prev !== null && prev !== name) {
      const p = join(this.runDir, prev);
      if (await removeIfPresent(p)) removed.push(p);
    }
    this.#state = next;
    return { path, removed };
  }

  async #write(
    name: string,
    kind: CheckpointKind,
    step: number,
    tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
    metadata: Record<string, string>,
    state: CheckpointState,
  ): Promise<string> {
    const path = join(this.runDir, name);
    const reserved = Object.keys(metadata).find((k) => k.startsWith("checkpoint."));
    if (reserved !== undefined) {
      throw new Error(
        `Cannot write checkpoint "${path}": metadata key "${reserved}" is reserved for the ` +
          `checkpoint manager`,
      );
    }
    try {
      await Deno.mkdir(this.runDir, { recursive: true });
    } catch (e) {
      throw new Error(`Cannot write checkpoint "${path}": ${(e as Error).message}`, {
        cause: e,
      });
    }
    await writeSafetensorsAtomic(path, tensors, {
      ...metadata,
      [KIND_KEY]: kind,
      [STEP_KEY]: String(step),
      [STATE_KEY]: JSON.stringify(state),
    });
    return path;
  }
}

/** Where {@linkcode resolveResume} found the checkpoint to continue from. */
export interface ResumePoint {
  /** The checkpoint file. */
  path: string;
  /** Its step (from the file name). */
  step: number;
  /** Its kind. */
  kind: CheckpointKind;
  /** The pointer file that named it. */
  pointer: string;
  /** The run directory holding it; a resumed run keeps writing there. */
  runDir: string;
  /** The run directory's name. */
  runName: string;
}

async function readPointer(outDir: string, name: string): Promise<ResumePoint | null> {
  const pointer = join(outDir, name);
  let text: string;
  try {
    text = await Deno.readTextFile(pointer);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read checkpoint pointer "${pointer}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  const target = text.trim();
  const fail = (why: string): never => {
    throw new Error(`Cannot resume from "${pointer}": ${why}`);
  };
  if (target.length === 0) fail("the pointer file is empty");
  const parsed = parseCheckpointFileName(target);
  if (parsed === null) {
    fail(
      `it names "${target}", which is not a checkpoint file ` +
        `(ckpt_iter_N.safetensors or recovery_ckpt_iter_N.safetensors, or the reference's .pt)`,
    );
  }
  // The path as written (relative to the working directory, like the reference), else the
  // same run directory and file under `outDir` (the output directory was moved or named
  // differently).
  const candidates = [target, join(outDir, basename(dirname(target)), basename(target))];
  for (const path of candidates) {
    try {
      if ((await Deno.stat(path)).isFile) {
        const runDir = dirname(path);
        return {
          path,
          step: parsed!.step,
          kind: parsed!.kind,
          pointer,
          runDir,
          runName: basename(runDir),
        };
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        fail(`cannot read "${path}" (${(e as Error).message})`);
      }
    }
  }
  return fail(`it names "${target}", which does not exist`);
}

async function mtime(path: string): Promise<number> {
  return (await Deno.stat(path)).mtime?.getTime() ?? 0;
}

/**
 * The checkpoint `init_from: resume` continues from: the one named by `out_dir/recovery_ckpt`
 * when present and not older, else the one named by `out_dir/latest_ckpt`.
 *
 * The reference takes the recovery pointer whenever it exists; we compare: when both name
 * files of the same run, the larger step wins (a tie goes to the recovery checkpoint); when
 * they name different runs, the pointer written last wins (a tie goes to recovery).
 *
 * Requires `--allow-read` for `outDir`.
 *
 * @param outDir `trainer.out_dir`.
 * @returns The checkpoint, its step and kind, and its run directory.
 * @throws One line naming the pointer when neither exists, one is empty, or it names a
 * missing file or a file that is not a checkpoint.
 *
 * @example
 * ```ts ignore
 * import { resolveResume } from "./checkpoints.ts";
 * const { path, step, runDir } = await resolveResume("out");
 * ```
 */
export async function resolveResume(outDir: string): Promise<ResumePoint> {
  const recovery = await readPointer(outDir, RECOVERY_POINTER);
  const latest = await readPointer(outDir, LATEST_POINTER);
  if (recovery === null && latest === null) {
    throw new Error(
      `Cannot resume from "${outDir}": neither ${join(outDir, RECOVERY_POINTER)} nor ` +
        `${join(outDir, LATEST_POINTER)} exists (no checkpoint was written there)`,
    );
  }
  if (recovery === null) return latest!;
  if (latest === null) return recovery;
  if (recovery.runDir === latest.runDir) {
    return recovery.step >= latest.step ? recovery : latest;
  }
  return (await mtime(recovery.pointer)) >= (await mtime(latest.pointer)) ? recovery : latest;
}

/**
 * Loads a checkpoint: its tensors and metadata (with the manager's `checkpoint.` keys). A
 * microsoft/BST `.pt` file is read as `torch_checkpoint.ts` maps it.
 *
 * Requires `--allow-read` for `path`.
 *
 * @param path The checkpoint file.
 * @returns Tensors by name in file order, and the `__metadata__` strings.
 * @throws One line naming `path` when it is missing, unreadable, truncated, neither
 * safetensors nor a reference `.pt`, or when a metadata field this project writes is malformed (see
 * `validateCheckpointMetadata`).
 *
 * @example
 * ```ts ignore
 * import { loadCheckpoint, resolveResume } from "./checkpoints.ts";
 * const { tensors, metadata } = await loadCheckpoint((await resolveResume("out")).path);
 * ```
 */
export async function loadCheckpoint(path: string): Promise<SafetensorsFile> {
  const file = parseCheckpoint(await readCheckpointBytes(path), path); // safetensors or .pt
  validateCheckpointMetadata(file.metadata, path);
  if (Object.hasOwn(file.metadata, STATE_KEY)) parseState(file.metadata[STATE_KEY], path);
  return file;
}
