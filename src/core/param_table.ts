/**
 * The offset table of a flat float32 parameter buffer, built from ONE ordered list of
 * (name, shape, decay) — the same list that names the safetensors entries — plus conversion
 * between the flat buffer and safetensors tensors.
 *
 * Each tensor starts at a multiple of {@linkcode PARAM_ALIGN_ELEMENTS} elements (256 bytes,
 * the `minStorageBufferOffsetAlignment` of most GPUs), so every tensor can be bound as its own
 * storage-buffer view; the gaps are zeros. Gradients and optimizer moments use the same table.
 *
 * @module
 */

import { fromFloat32, type SafeTensor, toFloat32 } from "../io/safetensors.ts";

/** Alignment of each tensor's start, in float32 elements (256 bytes). */
export const PARAM_ALIGN_ELEMENTS = 64;

/** What the table needs of a parameter; model specs may carry more fields. */
export interface ParamTableSpec {
  /** PyTorch state-dict name, also the safetensors name. */
  name: string;
  /** PyTorch shape (`Linear.weight` is (out, in)). */
  shape: readonly number[];
  /** AdamW weight decay applies; defaults to `shape.length >= 2` (the reference rule). */
  decay?: boolean;
}

/** One tensor's place in the flat buffer. */
export interface ParamEntry<S extends ParamTableSpec = ParamTableSpec> {
  /** Position in the spec list. */
  index: number;
  /** Name (from the spec). */
  name: string;
  /** Shape (from the spec). */
  shape: readonly number[];
  /** Whether weight decay applies. */
  decay: boolean;
  /** First element in the flat buffer (a multiple of the table's alignment). */
  offset: number;
  /** Element count. */
  numel: number;
  /** The spec it came from. */
  spec: S;
}

/** Offsets of every parameter tensor in one flat float32 buffer, in spec order. */
export class ParamTable<S extends ParamTableSpec = ParamTableSpec> {
  /** Entries in spec order. */
  readonly entries: readonly ParamEntry<S>[];
  /** Elements of the flat buffer (the last tensor's end, rounded up to the alignment). */
  readonly size: number;
  /** Alignment of each tensor's start, in elements. */
  readonly align: number;
  readonly #byName: Map<string, ParamEntry<S>>;

  constructor(entries: ParamEntry<S>[], size: number, align: number) {
    this.entries = entries;
    this.size = size;
    this.align = align;
    this.#byName = new Map(entries.map((e) => [e.name, e]));
  }

  /** Bytes of the flat float32 buffer. */
  get byteSize(): number {
    return 4 * this.size;
  }

  /** Number of parameters (padding excluded). */
  get paramCount(): number {
    return this.entries.reduce((n, e) => n + e.numel, 0);
  }

  /** Whether a tensor of this name is in the table. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The entry of `name`; throws when there is none. */
  get(name: string): ParamEntry<S> {
    const e = this.#byName.get(name);
    if (!e) throw new Error(`Parameter "${name}" is not in the parameter table`);
    return e;
  }

  /** A view of `name`'s elements in a flat buffer laid out by this table. */
  view(flat: Float32Array, name: string): Float32Array {
    this.#checkFlat(flat);
    const e = this.get(name);
    return flat.subarray(e.offset, e.offset + e.numel);
  }

  #checkFlat(flat: Float32Array): void {
    if (flat.length !== this.size) {
      throw new Error(
        `Flat parameter buffer has ${flat.length} elements, the parameter table needs ${this.size}`,
      );
    }
  }
}

/**
 * Builds the offset table from one ordered list of parameter specs.
 *
 * @param specs Parameters in order; names unique, shapes lists of non-negative integers.
 * @param align Alignment of each tensor's start in elements (default 64 = 256 bytes).
 * @returns The table.
 *
 * @example
 * ```ts
 * import { buildParamTable } from "./param_table.ts";
 * const table = buildParamTable([
 *   { name: "lm_head.weight", shape: [10, 3] },
 *   { name: "norm.weight", shape: [3] },
 * ]);
 * console.log(table.get("norm.weight").offset, table.size); // 64 128
 * console.log(table.get("norm.weight").decay); // false (1-D)
 * ```
 */
export function buildParamTable<S extends ParamTableSpec>(
  specs: readonly S[],
  align: number = PARAM_ALIGN_ELEMENTS,
): ParamTable<S> {
  if (!Number.isSafeInteger(align) || align <= 0) {
    throw new Error(`Parameter alignment must be a positive integer, got ${align}`);
  }
  const seen = new Set<string>();
  const entries: ParamEntry<S>[] = [];
  let offset = 0;
  for (const [index, spec] of specs.entries()) {
    const { name, shape } = spec;
    if (typeof name !== "string" || name === "") {
      throw new Error(`Parameter ${index} has an empty name`);
    }
    if (seen.has(name)) throw new Error(`Parameter "${name}" is listed twice`);
    seen.add(name);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(
        `Parameter "${name}" has shape ${JSON.stringify(shape)}, expected non-negative integers`,
      );
    }
    const numel = shape.reduce((a, b) => a * b, 1);
    entries.push({
      index,
      name,
      shape: [...shape],
      decay: spec.decay ?? shape.length >= 2,
      offset,
      numel,
      spec,
    });
    offset = Math.ceil((offset + numel) / align) * align;
  }
  return new ParamTable(entries, offset, align);
}

/**
 * The tensors of a flat buffer as safetensors entries (F32 copies, or F16/BF16), in table
 * order, named `prefix + name`.
 *
 * @param table The layout of `flat`.
 * @param flat The flat buffer (`table.size` elements).
 * @param options `prefix` for every name (e.g. `"optimizer.exp_avg."`), storage `dtype`.
 * @returns Tensors by name, ready for `serializeSafetensors` / `writeSafetensorsAtomic`.
 *
 * @example
 * ```ts
 * import { buildParamTable, paramsToSafetensors } from "./param_table.ts";
 * const table = buildParamTable([{ name: "w", shape: [2, 2] }, { name: "b", shape: [2] }]);
 * const flat = new Float32Array(table.size);
 * table.view(flat, "b").set([5, 6]);
 * console.log(paramsToSafetensors(table, flat).get("b")!.shape); // [2]
 * ```
 */
export function paramsToSafetensors(
  table: ParamTable,
  flat: Float32Array,
  options: { prefix?: string; dtype?: "F32" | "F16" | "BF16" } = {},
): Map<string, SafeTensor> {
  const { prefix = "", dtype = "F32" } = options;
  const out = new Map<string, SafeTensor>();
  for (const e of table.entries) {
    out.set(prefix + e.name, fromFloat32(table.view(flat, e.name), e.shape, dtype));
  }
  return out;
}

/** Options of {@linkcode paramsFromSafetensors}. */
export interface ParamsFromSafetensorsOptions {
  /**
   * Only names starting with this prefix are parameters (the prefix is removed before the
   * table lookup); others are ignored. Default `""`.
   */
  prefix?: string;
  /**
   * Names (full, prefix included) for which this returns true are ignored instead of being
   * reported as unexpected, e.g. `(n) => n.startsWith("optimizer.")`.
   */
  ignore?: (name: string) => boolean;
}

/** A message part cut to 300 characters on one line (headers can hold megabyte-long names). */
function clip(text: string): string {
  const line = text.replace(/[\r\n\u2028\u2029]/g, " ");
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

function listNames(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => `"${n}"`).join(", ");
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

/**
 * Fills a flat buffer from safetensors tensors, checking that every parameter of the table is
 * present with its exact shape and that nothing unexpected is there. F32, F16, BF16 (and
 * F64) are converted to float32; padding between tensors is zero.
 *
 * @param table The layout to fill.
 * @param tensors Tensors by name (e.g. `parseSafetensors(...).tensors`).
 * @param source What to call the checkpoint in errors (usually its path).
 * @param options Name prefix and names to ignore.
 * @returns A new flat buffer of `table.size` elements.
 * @throws One line naming `source`: missing and unexpected names, or the first wrong shape or
 *   dtype.
 *
 * @example
 * ```ts
 * import { buildParamTable, paramsFromSafetensors } from "./param_table.ts";
 * import { fromFloat32 } from "../io/safetensors.ts";
 * const table = buildParamTable([{ name: "w", shape: [2] }]);
 * const flat = paramsFromSafetensors(table, { w: fromFloat32(new Float32Array([1, 2]), [2]) }, "x");
 * console.log(table.view(flat, "w")); // Float32Array [1, 2]
 * ```
 */
export function paramsFromSafetensors(
  table: ParamTable,
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  source: string,
  options: ParamsFromSafetensorsOptions = {},
): Float32Array {
  const { prefix = "", ignore = () => false } = options;
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const fail = (why: string): never => {
    throw new Error(`Cannot load checkpoint "${source}": ${clip(why)}`);
  };
  const missing = table.entries.map((e) => e.name).filter((n) => !map.has(prefix + n));
  const unexpected = [...map.keys()].filter((n) =>
    n.startsWith(prefix) && !ignore(n) && !table.has(n.slice(prefix.length))
  );
  if (missing.length > 0 || unexpected.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing tensors ${listNames(missing)}`);
    if (unexpected.length > 0) parts.push(`unexpected tensors ${listNames(unexpected)}`);
    fail(parts.join("; "));
  }
  const flat = new Float32Array(table.size);
  for (const e of table.entries) {
    const name = prefix + e.name;
    const t = map.get(name)!;
    const same = t.shape.length === e.shape.length && t.shape.every((d, i) => d === e.shape[i]);
    if (!same) {
      fail(`tensor "${name}" has shape [${t.shape.join(", ")}], expected [${e.shape.join(", ")}]`);
    }
    if (t.dtype !== "F32" && t.dtype !== "F16" && t.dtype !== "BF16" && t.dtype !== "F64") {
      fail(`tensor "${name}" has dtype ${t.dtype}, expected a float type (F32, F16, BF16)`);
    }
    flat.set(toFloat32(t, name), e.offset);
  }
  return flat;
}
