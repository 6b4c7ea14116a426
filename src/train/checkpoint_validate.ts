/**
 * Checks of what a checkpoint file says about itself, before any of it is used: the
 * `__metadata__` fields this project writes (model kind, step, stored config, pair-sampler
 * state, the checkpoint manager's kind and step), the AdamW moments (F32, one value per
 * parameter, second moments not negative) and the finiteness of every weight and moment.
 *
 * Each problem is one line naming the file and the field:
 * `Cannot load checkpoint "out/run1/ckpt_iter_100.safetensors": metadata field "step" is "-3",
 * expected a non-negative integer`. A checkpoint whose weights hold NaN or ±Infinity is
 * refused unless the caller passes `allowNonFinite` (`--allow-non-finite` on the command
 * line), for example to inspect a diverged run.
 *
 * Names, shapes and dtypes of the model's own tensors are checked against the model by
 * `paramsFromSafetensors` when the weights are loaded.
 *
 * @module
 */

import { type SafeTensor, type SafetensorsFile, toFloat32 } from "../io/safetensors.ts";

/** Options for loading a checkpoint's weights. */
export interface CheckpointLoadOptions {
  /** Load weights and optimizer moments holding NaN or ±Infinity instead of refusing them. */
  allowNonFinite?: boolean;
}

/** Metadata value of the model kind (`model`). */
export type CheckpointModelKind = "bst" | "gpt";

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;

/** What a metadata field may hold, checked by {@linkcode validateCheckpointMetadata}. */
const FIELDS: Readonly<Record<string, (text: string) => string | undefined>> = {
  model: (t) => t === "bst" || t === "gpt" ? undefined : 'expected "bst" or "gpt"',
  step: (t) => isStep(t) ? undefined : "expected a non-negative integer",
  "checkpoint.step": (t) => isStep(t) ? undefined : "expected a non-negative integer",
  "checkpoint.kind": (t) =>
    t === "validation" || t === "recovery" ? undefined : 'expected "validation" or "recovery"',
  config: (t) => {
    const v = parseJson(t);
    return isObject(v) ? undefined : "expected a JSON object";
  },
  pair_sampler: (t) => pairSamplerProblem(parseJson(t)),
};

function isStep(text: string): boolean {
  return DECIMAL.test(text) && Number.isSafeInteger(Number(text));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Why a parsed `pair_sampler` value is not a pair-sampler state, or `undefined`. */
function pairSamplerProblem(v: unknown): string | undefined {
  const expected = "expected the JSON state of the pair sampler";
  if (!isObject(v)) return `${expected} (an object)`;
  const avg = (x: unknown) => x === null || (typeof x === "number" && Number.isFinite(x));
  if (!Object.hasOwn(v, "avgValidPairs") || !avg(v.avgValidPairs)) {
    return `${expected}: avgValidPairs must be a finite number or null`;
  }
  if (!Object.hasOwn(v, "avgSampledPairs") || !avg(v.avgSampledPairs)) {
    return `${expected}: avgSampledPairs must be a finite number or null`;
  }
  const n = v.nItersAveraged;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    return `${expected}: nItersAveraged must be a non-negative integer`;
  }
  if ((v.avgValidPairs === null) !== (n === 0) || (v.avgSampledPairs === null) !== (n === 0)) {
    return `${expected}: the averages must be null exactly when nItersAveraged is 0`;
  }
  const rng = v.rng;
  if (
    !Array.isArray(rng) || rng.length !== 4 ||
    !rng.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) ||
    rng.every((w) => w === 0)
  ) {
    return `${expected}: rng must be 4 unsigned 32-bit integers, not all zero`;
  }
  return undefined;
}

/** A metadata value shortened for a message. */
function quote(text: string): string {
  const short = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(short);
}

/**
 * Checks the metadata fields this project writes, where present (a checkpoint written
 * elsewhere may lack them): `model`, `step`, `config`, `pair_sampler`, `checkpoint.kind`,
 * `checkpoint.step`. Other fields are left alone.
 *
 * @param metadata The file's `__metadata__`.
 * @param path The file, for the error.
 * @throws One line naming `path` and the first malformed field.
 *
 * @example
 * ```ts
 * import { validateCheckpointMetadata } from "./checkpoint_validate.ts";
 * validateCheckpointMetadata({ model: "bst", step: "100" }, "ckpt.safetensors"); // fine
 * try {
 *   validateCheckpointMetadata({ config: "null" }, "ckpt.safetensors");
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // Cannot load checkpoint "ckpt.safetensors": metadata field "config" is "null", expected a JSON object
 * }
 * ```
 */
export function validateCheckpointMetadata(metadata: Record<string, string>, path: string): void {
  for (const [field, check] of Object.entries(FIELDS)) {
    if (!Object.hasOwn(metadata, field)) continue;
    const text = metadata[field];
    const problem = check(text);
    if (problem !== undefined) {
      throw new Error(
        `Cannot load checkpoint "${path}": metadata field "${field}" is ${quote(text)}, ${problem}`,
      );
    }
  }
}

/** What {@linkcode validateCheckpointTensors} checks against. */
export interface ExpectedCheckpoint {
  /** The model kind of the run loading it; a different `model` metadata value is refused. */
  kind?: CheckpointModelKind;
  /** Parameter count: the length of each AdamW moment. Omit to skip the optimizer state. */
  optimizerSize?: number;
  /** Accept NaN and ±Infinity (see {@linkcode CheckpointLoadOptions}). */
  allowNonFinite?: boolean;
}

/**
 * Checks a checkpoint's tensors before they are loaded: the `model` metadata matches the
 * run's kind; with `optimizerSize`, `optimizer.exp_avg` and `optimizer.exp_avg_sq` are F32
 * of shape `[optimizerSize]` and the second moments are not negative; unless
 * `allowNonFinite`, no float tensor holds NaN or ±Infinity.
 *
 * @param file The parsed checkpoint.
 * @param path The file, for the error.
 * @param expected What the loading run needs.
 * @throws One line naming `path` and the tensor or field.
 *
 * @example
 * ```ts
 * import { fromFloat32 } from "../io/safetensors.ts";
 * import { validateCheckpointTensors } from "./checkpoint_validate.ts";
 * const tensors = new Map([["w", fromFloat32(new Float32Array([1, NaN]), [2])]]);
 * try {
 *   validateCheckpointTensors({ tensors, metadata: {} }, "ckpt.safetensors", {});
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // Cannot load checkpoint "ckpt.safetensors": tensor "w" holds NaN at element 1 (a diverged …
 * }
 * ```
 */
export function validateCheckpointTensors(
  file: SafetensorsFile,
  path: string,
  expected: ExpectedCheckpoint,
): void {
  const fail = (why: string): never => {
    // Tensor names come from the file: cut long ones so the message stays short.
    const line = why.length > 300 ? `${why.slice(0, 300)}…` : why;
    throw new Error(`Cannot load checkpoint "${path}": ${line.replace(/[\r\n]/g, " ")}`);
  };
  const kind = file.metadata.model;
  if (expected.kind !== undefined && kind !== undefined && kind !== expected.kind) {
    fail(
      `metadata field "model" is "${kind}" but the config trains a ${expected.kind} ` +
        `(use_bst: ${expected.kind === "bst"})`,
    );
  }
  if (expected.optimizerSize !== undefined) {
    for (const name of ["optimizer.exp_avg", "optimizer.exp_avg_sq"]) {
      const t = file.tensors.get(name);
      if (t === undefined) fail(`it has no optimizer state (tensor "${name}" is missing)`);
      const want = `F32 [${expected.optimizerSize}]`;
      if (t!.dtype !== "F32") fail(`tensor "${name}" is ${t!.dtype}, expected ${want}`);
      if (t!.shape.length !== 1 || t!.shape[0] !== expected.optimizerSize) {
        fail(`tensor "${name}" has shape [${t!.shape.join(", ")}], expected ${want}`);
      }
    }
  }
  for (const [name, t] of file.tensors) {
    if (!isFloat(t)) continue;
    // Loading weights only (evaluation, sampling) leaves the optimizer state unread.
    if (expected.optimizerSize === undefined && name.startsWith("optimizer.")) continue;
    const mustBeFinite = !expected.allowNonFinite;
    const nonNegative = name === "optimizer.exp_avg_sq";
    if (!mustBeFinite && !nonNegative) continue;
    const values = toFloat32(t, name);
    for (let i = 0; i < values.length; i++) {
      const x = values[i];
      if (mustBeFinite && !Number.isFinite(x)) {
        fail(
          `tensor "${name}" holds ${x} at element ${i} (a diverged run?); pass ` +
            `--allow-non-finite (allowNonFinite) to load it anyway`,
        );
      }
      if (nonNegative && x < 0) {
        fail(`tensor "${name}" holds ${x} at element ${i}; AdamW second moments are >= 0`);
      }
    }
  }
}

function isFloat(t: SafeTensor): boolean {
  return t.dtype === "F32" || t.dtype === "F16" || t.dtype === "BF16" || t.dtype === "F64";
}
