/**
 * Learning-rate schedule: the reference's `Trainer._get_lr` (core_train.py),
 * nanoGPT's linear warmup + cosine decay.
 *
 * @module
 */

/** The schedule's settings (YAML `optimizer.learning_rate` and `lr_scheduler.*`). */
export interface LrScheduleConfig {
  /** Peak rate (`optimizer.learning_rate`). */
  learningRate: number;
  /** false: always `learningRate` (`lr_scheduler.decay_lr`). */
  decayLr: boolean;
  /** Warmup length in optimizer steps (`lr_scheduler.warmup_iters`). */
  warmupIters: number;
  /** Step where the cosine reaches `minLr` (`lr_scheduler.lr_decay_iters`). */
  lrDecayIters: number;
  /** Floor of the decay (`lr_scheduler.min_lr`). */
  minLr: number;
}

/**
 * The learning rate for an optimizer step, exactly as the reference computes it:
 *
 * - `decayLr` false: `learningRate`;
 * - `step < warmupIters`: `learningRate · step / warmupIters` (so step 0 trains at rate 0 —
 *   the reference's behaviour, with the default `warmup_iters: 1` too);
 * - `step > lrDecayIters`: `minLr`;
 * - otherwise `minLr + ½(1 + cos(π·r))·(learningRate − minLr)` with
 *   `r = (step − warmupIters)/(lrDecayIters − warmupIters)`.
 *
 * @param step optimizer steps already taken (0 for the first step).
 * @param cfg schedule settings.
 * @returns the rate for this step.
 * @throws when `step` is not a non-negative integer, or when the cosine is undefined because
 * `lrDecayIters == warmupIters == step` (the reference divides by zero there).
 *
 * @example
 * ```ts
 * import { learningRate } from "./lr_schedule.ts";
 * const cfg = { learningRate: 1e-3, decayLr: true, warmupIters: 10, lrDecayIters: 110, minLr: 1e-4 };
 * console.log(learningRate(0, cfg), learningRate(5, cfg)); // 0 0.0005
 * console.log(learningRate(10, cfg), learningRate(60, cfg)); // 0.001 0.00055
 * console.log(learningRate(1000, cfg)); // 0.0001
 * ```
 */
export function learningRate(step: number, cfg: LrScheduleConfig): number {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new Error(`Learning-rate step must be a non-negative integer, got ${step}`);
  }
  const maxLr = cfg.learningRate;
  if (!cfg.decayLr) return maxLr;
  if (step < cfg.warmupIters) return maxLr * step / cfg.warmupIters;
  if (step > cfg.lrDecayIters) return cfg.minLr;
  const span = cfg.lrDecayIters - cfg.warmupIters;
  if (span === 0) {
    throw new Error(
      `lr_scheduler.lr_decay_iters (${cfg.lrDecayIters}) equals warmup_iters at step ${step}: ` +
        `the cosine decay is undefined`,
    );
  }
  const decayRatio = (step - cfg.warmupIters) / span;
  const coeff = 0.5 * (1 + Math.cos(Math.PI * decayRatio));
  return cfg.minLr + coeff * (maxLr - cfg.minLr);
}
