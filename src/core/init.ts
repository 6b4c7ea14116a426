/**
 * Parameter initialisation: Linear and embedding weights N(0, 0.02), biases 0,
 * norm weights 1 — the reference's `_init_weights` — from a seed.
 *
 * Normals come from Box–Muller over our xoshiro128** ({@linkcode Xoshiro128}, stream 0 of the
 * seed), drawn as pairs and consumed in order, one stream over all `normal` tensors in the
 * parameter list's order (zeros/ones tensors draw nothing). Torch's initial weights cannot be
 * reproduced (its generator and call order differ); the same seed and parameter list always
 * give the same weights here.
 *
 * @module
 */

import { Xoshiro128 } from "./rng.ts";
import type { ParamTable } from "./param_table.ts";

/** Standard deviation of the reference's weight initialisation. */
export const INIT_STD = 0.02;

/** What initialisation needs of a parameter (the model's `ParamSpec` has these fields). */
export interface InitSpec {
  /** Parameter name (for errors). */
  name: string;
  /** Shape; its product is the element count. */
  shape: readonly number[];
  /** N(0, std), ones (norm weights) or zeros (biases). */
  init: "normal" | "ones" | "zeros";
}

/**
 * Fills `out` with N(mean, std) values from `rng`, pairs of Box–Muller normals in order (an odd
 * length discards the last pair's second value).
 *
 * @param out destination.
 * @param rng generator, advanced by 4 draws per pair of values.
 * @param std standard deviation (default 0.02).
 * @param mean mean (default 0).
 */
export function fillNormal(out: Float32Array, rng: Xoshiro128, std = INIT_STD, mean = 0): void {
  for (let i = 0; i < out.length; i += 2) {
    const [z0, z1] = rng.nextNormalPair();
    out[i] = mean + std * z0;
    if (i + 1 < out.length) out[i + 1] = mean + std * z1;
  }
}

function fillSpec(out: Float32Array, spec: InitSpec, rng: Xoshiro128, std: number): void {
  if (spec.init === "normal") fillNormal(out, rng, std);
  else if (spec.init === "ones") out.fill(1);
  else if (spec.init === "zeros") out.fill(0);
  else throw new Error(`Parameter "${spec.name}" has unknown init ${JSON.stringify(spec.init)}`);
}

function numelOf(spec: InitSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1);
}

/**
 * Initial values of every parameter, in list order.
 *
 * @param specs the model's ordered parameter list (e.g. `bstParamSpecs(cfg)`).
 * @param seed the run seed (1337 by default in the configs).
 * @param std standard deviation of `normal` tensors (default 0.02).
 * @returns one Float32Array per spec, row-major in the spec's (PyTorch) shape.
 *
 * @example
 * ```ts
 * import { initParameters } from "./init.ts";
 * const [w, g, b] = initParameters([
 *   { name: "lin.weight", shape: [4, 3], init: "normal" },
 *   { name: "norm.weight", shape: [3], init: "ones" },
 *   { name: "lin.bias", shape: [4], init: "zeros" },
 * ], 1337);
 * console.log(w.length, [...g], [...b]); // 12 [1, 1, 1] [0, 0, 0, 0]
 * ```
 */
export function initParameters(
  specs: readonly InitSpec[],
  seed: number,
  std = INIT_STD,
): Float32Array[] {
  const rng = Xoshiro128.fromSeed(seed, 0);
  return specs.map((spec) => {
    const out = new Float32Array(numelOf(spec));
    fillSpec(out, spec, rng, std);
    return out;
  });
}

/**
 * Initial values laid out in a flat parameter buffer (padding zeros), the same numbers as
 * {@linkcode initParameters} on the table's specs.
 *
 * @param table the parameter table; its specs must carry `init`.
 * @param seed the run seed.
 * @param std standard deviation of `normal` tensors (default 0.02).
 * @returns (table.size) flat buffer.
 */
export function initFlatParameters<S extends InitSpec>(
  table: ParamTable<S>,
  seed: number,
  std = INIT_STD,
): Float32Array {
  const rng = Xoshiro128.fromSeed(seed, 0);
  const flat = new Float32Array(table.size);
  for (const e of table.entries) {
    fillSpec(flat.subarray(e.offset, e.offset + e.numel), e.spec, rng, std);
  }
  return flat;
}
