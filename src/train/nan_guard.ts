/**
 * Stopping on a NaN or infinite loss: one clear line that names the step and the
 * last good checkpoint, which the trainer leaves untouched.
 *
 * @module
 */

/** The error {@linkcode checkFinite} throws. */
export class NonFiniteError extends Error {
  /** What became non-finite (`"Loss"`, `"Validation loss"`, `"Gradient norm"`). */
  readonly what: string;
  /** The optimizer step. */
  readonly step: number;
  /** The value: `NaN`, `Infinity` or `-Infinity`. */
  readonly value: number;
  /** The last good checkpoint, or `null` when none was written. */
  readonly lastCheckpoint: string | null;

  /**
   * An error with the one-line message of {@linkcode checkFinite}.
   *
   * @param what What became non-finite.
   * @param step The optimizer step.
   * @param value The value.
   * @param lastCheckpoint The last good checkpoint, or `null`.
   */
  constructor(what: string, step: number, value: number, lastCheckpoint: string | null) {
    const subject = what.length > 0 ? what[0].toUpperCase() + what.slice(1) : "Value";
    const tail = lastCheckpoint === null
      ? "no checkpoint was written yet"
      : `the last good checkpoint is ${lastCheckpoint}`;
    super(`${subject} became ${value} at step ${step}: stopping; ${tail}`);
    this.name = "NonFiniteError";
    this.what = what;
    this.step = step;
    this.value = value;
    this.lastCheckpoint = lastCheckpoint;
  }
}

/**
 * Throws a {@linkcode NonFiniteError} when `value` is NaN or infinite.
 *
 * @param value The number to check (a loss read back from the GPU).
 * @param what What it is, capitalised in the message (`"loss"` → `"Loss became NaN …"`).
 * @param step The optimizer step.
 * @param lastCheckpoint The last checkpoint written (e.g. `CheckpointManager.lastWritten`),
 * or `null`.
 * @throws NonFiniteError: `Loss became NaN at step 123: stopping; the last good checkpoint
 * is out/run/ckpt_iter_100.safetensors`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFinite } from "./nan_guard.ts";
 * checkFinite(2.85, "loss", 10, null); // fine
 * assert.throws(
 *   () => checkFinite(NaN, "loss", 123, "out/run/ckpt_iter_100.safetensors"),
 *   { message: /^Loss became NaN at step 123: stopping; the last good checkpoint is / },
 * );
 * ```
 */
export function checkFinite(
  value: number,
  what: string,
  step: number,
  lastCheckpoint: string | null,
): void {
  if (!Number.isFinite(value)) throw new NonFiniteError(what, step, value, lastCheckpoint);
}
