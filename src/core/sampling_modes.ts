/**
 * The sampling methods of the reference's `Inference` (`inference.py`): the values of the
 * config key `trainer.sampling_mode` and of `deno task infer --sampling_mode`.
 *
 * @module
 */

/**
 * Every mode name, in the reference's order.
 *
 * @example
 * ```ts
 * import { SAMPLING_MODES } from "./sampling_modes.ts";
 * console.log(SAMPLING_MODES.includes("goal_cond_plan")); // true
 * ```
 */
export const SAMPLING_MODES = [
  "AR",
  "beam",
  "goal_cond_plan",
  "reverse_AR",
  "reverse_beam",
  "reverse_goal_cond_plan",
] as const;

/** One sampling method (see {@linkcode SAMPLING_MODES}). */
export type SamplingMode = typeof SAMPLING_MODES[number];
