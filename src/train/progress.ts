/**
 * The live training progress line on stderr:
 *
 * ```
 * step 12/5000 | epoch 0 | loss 2.8512 | lr 1.00e-4 | 3.21 steps/s | 1.2k tok/s | ETA 25m 01s
 * ```
 *
 * On a terminal the line is redrawn in place (`\r`, clear to end of line) at most every
 * `minRedrawMs`; otherwise one full line is printed every `logInterval` steps, so log files
 * stay readable. Rates are measured over the last `window` updates, so a slow first step
 * (pipeline compilation) or a validation pause fades out of the figures.
 *
 * @module
 */

/**
 * A duration for humans: `"42s"`, `"25m 01s"`, `"3h 07m 09s"`, `"2d 04h 05m"`; `"?"` when
 * the value is not a finite, non-negative number. Seconds are rounded to the nearest whole.
 *
 * @param seconds The duration.
 * @returns The text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./progress.ts";
 * assert(formatDuration(1501) === "25m 01s");
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const t = Math.round(seconds);
  const d = Math.floor(t / 86400);
  const h = Math.floor((t % 86400) / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  if (d > 0) return `${d}d ${two(h)}h ${two(m)}m`;
  if (h > 0) return `${h}h ${two(m)}m ${two(s)}s`;
  if (m > 0) return `${m}m ${two(s)}s`;
  return `${s}s`;
}

const UNITS = ["", "k", "M", "G", "T"];

/**
 * A rate (or any non-negative quantity) in about three significant digits: `"0.05"`,
 * `"3.21"`, `"32.1"`, `"321"`, then with SI suffixes and one decimal below 100 of the unit:
 * `"1.2k"`, `"12.3k"`, `"123k"`, `"4.5M"`. `"-"` when not finite or negative.
 *
 * @param value The number.
 * @returns The text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatRate } from "./progress.ts";
 * assert(formatRate(1234) === "1.2k");
 * assert(formatRate(3.214) === "3.21");
 * ```
 */
export function formatRate(value: number): string {
  if (!Number.isFinite(value) || value < 0) return "-";
  if (Number(value.toFixed(1)) < 1000) {
    if (Number(value.toFixed(2)) < 10) return value.toFixed(2);
    if (Number(value.toFixed(1)) < 100) return value.toFixed(1);
    if (Math.round(value) < 1000) return value.toFixed(0);
  }
  let v = value;
  let u = 0;
  while (u < UNITS.length - 1 && Math.round(v) >= 1000) {
    v /= 1000;
    u++;
  }
  const text = Number(v.toFixed(1)) < 100 ? v.toFixed(1) : v.toFixed(0);
  return text + UNITS[u];
}

/**
 * A learning rate in the line's format: `"1.00e-4"`, `"3.00e-4"`, `"0"` for zero.
 *
 * @param lr The rate.
 * @returns The text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLr } from "./progress.ts";
 * assert(formatLr(1e-4) === "1.00e-4");
 * ```
 */
export function formatLr(lr: number): string {
  return lr === 0 ? "0" : lr.toExponential(2).replace("e+", "e");
}

/** One update of the progress line. */
export interface ProgressUpdate {
  /** Optimizer steps taken (the step just finished is `step`). */
  step: number;
  /** The current epoch. */
  epoch: number;
  /** The latest training loss, or `null` before the first one is known. */
  loss: number | null;
  /** The learning rate of the step. */
  lr: number;
}

/** Options of {@linkcode ProgressLine}. */
export interface ProgressOptions {
  /** The last step (`trainer.train_batches`). */
  totalSteps: number;
  /** Tokens per optimizer step (effective batch × block size), for tok/s. */
  tokensPerStep: number;
  /** Without a terminal, print one line every this many steps (`trainer.log_interval`). */
  logInterval: number;
  /** Redraw in place; default `Deno.stderr.isTerminal()`. */
  isTerminal?: boolean;
  /** Where text goes; default: written synchronously to stderr. */
  write?: (text: string) => void;
  /** Clock in milliseconds; default `performance.now`. */
  now?: () => number;
  /** Updates the rates are averaged over (default 20). */
  window?: number;
  /** On a terminal, the least time between redraws in milliseconds (default 100). */
  minRedrawMs?: number;
}

function stderrWrite(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let done = 0;
  while (done < bytes.length) done += Deno.stderr.writeSync(bytes.subarray(done));
}

/**
 * The progress line of a training run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProgressLine } from "./progress.ts";
 * const out: string[] = [];
 * const p = new ProgressLine({
 *   totalSteps: 100, tokensPerStep: 1024, logInterval: 10, isTerminal: false,
 *   write: (t) => out.push(t),
 * });
 * p.update({ step: 10, epoch: 0, loss: 2.85, lr: 3e-4 });
 * p.finish();
 * assert(out[0].startsWith("step 10/100 | epoch 0 | loss 2.8500 | lr 3.00e-4"));
 * ```
 */
export class ProgressLine {
  readonly #opts: Required<ProgressOptions>;
  readonly #samples: { t: number; step: number }[] = [];
  #shown = ""; // the line on screen (terminal mode), "" when none
  #lastDraw = -Infinity;
  #last: ProgressUpdate | null = null;

  /**
   * A progress line; nothing is printed until the first {@linkcode update}.
   *
   * @param options Totals, interval, and optional terminal/writer/clock overrides.
   */
  constructor(options: ProgressOptions) {
    this.#opts = {
      totalSteps: options.totalSteps,
      tokensPerStep: options.tokensPerStep,
      logInterval: options.logInterval,
      isTerminal: options.isTerminal ?? Deno.stderr.isTerminal(),
      write: options.write ?? stderrWrite,
      now: options.now ?? (() => performance.now()),
      window: options.window ?? 20,
      minRedrawMs: options.minRedrawMs ?? 100,
    };
    if (this.#opts.window < 2) throw new Error("Progress window must be at least 2 updates");
  }

  /** Steps per second over the recent window, or `NaN` before two updates. */
  get stepsPerSecond(): number {
    const s = this.#samples;
    if (s.length < 2) return NaN;
    const a = s[0];
    const b = s[s.length - 1];
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (b.step - a.step) / dt : NaN;
  }

  /**
   * The line for an update at the current rates (no `\r`, no newline).
   *
   * @param u The update.
   * @returns The text.
   */
  format(u: ProgressUpdate): string {
    const rate = this.stepsPerSecond;
    const eta = (this.#opts.totalSteps - u.step) / rate;
    return [
      `step ${u.step}/${this.#opts.totalSteps}`,
      `epoch ${u.epoch}`,
      `loss ${u.loss === null ? "-" : u.loss.toFixed(4)}`,
      `lr ${formatLr(u.lr)}`,
      `${formatRate(rate)} steps/s`,
      `${formatRate(rate * this.#opts.tokensPerStep)} tok/s`,
      `ETA ${formatDuration(eta)}`,
    ].join(" | ");
  }

  /**
   * Records a step and shows it: redrawn in place on a terminal (throttled), else printed as
   * one line when `step % logInterval == 0`.
   *
   * @param u The step's figures.
   */
  update(u: ProgressUpdate): void {
    const t = this.#opts.now();
    this.#samples.push({ t, step: u.step });
    if (this.#samples.length > this.#opts.window) this.#samples.shift();
    this.#last = u;
    if (this.#opts.isTerminal) {
      if (t - this.#lastDraw < this.#opts.minRedrawMs && u.step !== this.#opts.totalSteps) return;
      this.#lastDraw = t;
      this.#shown = this.format(u);
      this.#opts.write(`\r${this.#shown}\x1b[K`);
    } else if (this.#opts.logInterval > 0 && u.step % this.#opts.logInterval === 0) {
      this.#opts.write(this.format(u) + "\n");
    }
  }

  /**
   * Prints a message on its own line (validation results, warnings) without garbling the
   * progress line: on a terminal the line is cleared, the message printed, the line redrawn.
   *
   * @param text The message, without a trailing newline.
   */
  message(text: string): void {
    if (this.#opts.isTerminal && this.#shown !== "") {
      this.#opts.write(`\r\x1b[K${text}\n${this.#shown}`);
    } else {
      this.#opts.write(text + "\n");
    }
  }

  /**
   * Ends the line: on a terminal redraws the last update in full and writes the final
   * newline. Safe to call more than once.
   */
  finish(): void {
    if (this.#opts.isTerminal && this.#last !== null && this.#shown !== "") {
      this.#opts.write(`\r${this.format(this.#last)}\x1b[K\n`);
    }
    this.#shown = "";
    this.#last = null;
  }
}
