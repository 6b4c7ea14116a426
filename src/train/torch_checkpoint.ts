/**
 * microsoft/BST's `.pt` checkpoints mapped to and from this project's checkpoint contents
 * (model tensors under PyTorch names, the AdamW moments flat as `optimizer.exp_avg` and
 * `optimizer.exp_avg_sq`, the step and the rest in metadata), from bytes: no `Deno.*`.
 *
 * The reference saves `fabric.save(path, state)` of `_get_checkpoint_state()`:
 *
 * - BST: `{"encoder": state_dict, "text_head": state_dict, "optimizer": ..., "training_steps"}`
 * - GPT: `{"model": state_dict, "optimizer": ..., "training_steps"}`
 *
 * Names: `encoder.`/`text_head.`/`model.` + the module's state-dict name, with what wrappers
 * add removed — `_orig_mod.` (a `torch.compile`d module) wherever it appears, `module.` (DDP)
 * at the start. The model's sizes (vocabulary, width, layers, biases) are read off the
 * tensors, and the names and shapes must be exactly the model's parameter list; a difference
 * is one line naming the tensor.
 *
 * Optimizer: `torch.optim.AdamW.state_dict()` numbers parameters across its `param_groups` in
 * order. The reference builds two groups (`configure_optimizers`): the tensors with ≥ 2
 * dimensions (weight decay), then the others, each in `named_parameters()` order — encoder
 * then text head for the BST. `state[i]` holds `step`, `exp_avg`, `exp_avg_sq` of parameter
 * i; this project keeps the moments in its flat layout (module, then decayed before not,
 * see `flatParamTable`). `training_steps` becomes the `step` metadata. What has no place in
 * the flat layout — the optimizer's own step count and tensor dtypes, the groups'
 * hyper-parameters — goes into a `torch` metadata entry, so that writing the file back gives
 * the same tensors bit for bit and the same groups.
 *
 * Writing: the same structure, state dicts as `OrderedDict`s, the optimizer's groups from the
 * `torch` entry or else from the settings given (the run's config), and this project's
 * metadata under an extra top-level key `bst_webgpu` (a dict of strings), which `fabric.load`
 * ignores even when strict.
 *
 * @module
 */

import {
  fromFloat32,
  parseSafetensors,
  type SafeTensor,
  type SafetensorsDtype,
  type SafetensorsFile,
  toFloat32,
} from "../io/safetensors.ts";
import { describePy, PyDict, PyOrderedDict, PyTuple, type PyValue } from "../io/pickle.ts";
import { isTorchCheckpoint, parseTorchCheckpoint, TorchTensor } from "../io/torch_pt.ts";
import type { Config } from "../config/schema.ts";
import { bstParamSpecs } from "../models/bst_config.ts";
import { gptParamSpecs } from "../models/gpt.ts";
import { flatParamTable } from "../models/flat_params.ts";
import type { ParamSpec } from "../models/param_specs.ts";
import { learningRate } from "./lr_schedule.ts";

/** The top-level key under which written `.pt` files keep this project's metadata. */
export const TORCH_METADATA_KEY = "bst_webgpu";

/** The metadata entry holding what a `.pt` file's optimizer has beyond the flat moments. */
export const TORCH_OPTIMIZER_KEY = "torch";

/** A model's kind and sizes as its tensors show them, and its parameter list. */
export interface ModelShape {
  kind: "bst" | "gpt";
  vocabSize: number;
  nEmbd: number;
  nLayer: number;
  bias: boolean;
  /** The parameter list in `named_parameters()` order (names with the module prefix). */
  specs: ParamSpec[];
}

/** AdamW settings for the written optimizer's `param_groups` (no `torch` entry to copy). */
export interface TorchOptimizerSettings {
  /** The learning rate of the last step taken (the reference sets it before each step). */
  lr: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  /** Default 1e-8, the reference's. */
  eps?: number;
}

/** What a `.pt` optimizer holds beyond the moments (the `torch` metadata entry, as JSON). */
interface TorchOptimizerInfo {
  /** The optimizer's own step count (equals `training_steps` unless steps were skipped). */
  step: number;
  /** How `state[i]["step"]` was stored: a tensor dtype, or a Python `int`/`float`. */
  stepType: SafetensorsDtype | "int" | "float";
  /** The moments' dtype. */
  momentDtype: "F32" | "F16" | "BF16";
  /** The groups' hyper-parameters without `params`, as {@linkcode pyToJson} writes them. */
  groups: unknown[];
}

const clip = (text: string) => {
  const line = text.replace(/[\r\n\u2028\u2029]/g, " ");
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
};

function failer(source: string) {
  return (why: string): never => {
    throw new Error(`Cannot load checkpoint "${source}": ${clip(why)}`);
  };
}

function listNames(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => `"${n}"`).join(", ");
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

/**
 * The model kind, sizes and parameter list that tensors under PyTorch names describe, checked
 * against the list those sizes give: every parameter present with its shape, nothing else.
 *
 * @param shapes Tensor shapes by name (model tensors only).
 * @param source The checkpoint, for errors.
 * @returns The kind, sizes and parameter list.
 * @throws One line naming `source` and the tensors that do not fit.
 *
 * @example
 * ```ts
 * import { modelShapeOf } from "./torch_checkpoint.ts";
 * import { gptParamSpecs } from "../models/gpt.ts";
 * const specs = gptParamSpecs({
 *   vocabSize: 8, eosTokenId: 7, nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   mode: "next_token", fimTokenId: -1,
 * });
 * const shape = modelShapeOf(new Map(specs.map((s) => [s.name, s.shape])), "x.pt");
 * console.log(shape.kind, shape.nLayer, shape.vocabSize); // gpt 2 8
 * ```
 */
export function modelShapeOf(shapes: Map<string, readonly number[]>, source: string): ModelShape {
  const fail = failer(source);
  const bst = [...shapes.keys()].some((n) =>
    n.startsWith("encoder.") || n.startsWith("text_head.")
  );
  const kind = bst ? "bst" : "gpt";
  const embedding = bst ? "encoder.token_embedding.weight" : "model.token_embedding.weight";
  const stack = bst ? "encoder.transformer_f" : "model.transformer";
  const emb = shapes.get(embedding);
  if (!emb) {
    fail(
      `it has no tensor "${embedding}" (a ${kind === "bst" ? "BST" : "GPT"} of the reference ` +
        `has one)`,
    );
  }
  if (emb!.length !== 2) fail(`tensor "${embedding}" has shape [${emb}], expected 2 dimensions`);
  const [vocabSize, nEmbd] = emb!;
  let nLayer = 0;
  const block = new RegExp(`^${stack.replace(".", "\\.")}\\.blocks\\.(\\d+)\\.`);
  for (const name of shapes.keys()) {
    const m = block.exec(name);
    if (m) nLayer = Math.max(nLayer, Number(m[1]) + 1);
  }
  const bias = shapes.has(`${stack}.norm.bias`);
  // Only the sizes shape the parameter list; the other fields are placeholders.
  const trunk = { vocabSize, nEmbd, nLayer, bias, eosTokenId: 0, nHead: 1, blockSize: 1 };
  const specs = kind === "bst"
    ? bstParamSpecs({
      ...trunk,
      contextLength: 0,
      pairMinimumGap: 1,
      pairMaximumGap: -1,
      pairSubsampleRate: 1,
      singleGapPredictionMode: "eos",
    })
    : gptParamSpecs({ ...trunk, mode: "next_token", fimTokenId: -1 });
  const wanted = new Set(specs.map((s) => s.name));
  const missing = specs.map((s) => s.name).filter((n) => !shapes.has(n));
  const unexpected = [...shapes.keys()].filter((n) => !wanted.has(n));
  if (missing.length > 0 || unexpected.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing tensors ${listNames(missing)}`);
    if (unexpected.length > 0) parts.push(`unexpected tensors ${listNames(unexpected)}`);
    fail(
      `${parts.join("; ")} (for a ${kind.toUpperCase()} of vocabulary ${vocabSize}, width ` +
        `${nEmbd}, ${nLayer} layers${bias ? ", with biases" : ""})`,
    );
  }
  for (const s of specs) {
    const got = shapes.get(s.name)!;
    if (got.length !== s.shape.length || got.some((d, i) => d !== s.shape[i])) {
      fail(`tensor "${s.name}" has shape [${got.join(", ")}], expected [${s.shape.join(", ")}]`);
    }
  }
  return { kind, vocabSize, nEmbd, nLayer, bias, specs };
}

/** The reference optimizer's parameter order: decayed tensors, then the others. */
function referenceOrder(specs: readonly ParamSpec[]): { names: string[]; decayed: number } {
  const decayed = specs.filter((s) => s.decay).map((s) => s.name);
  const others = specs.filter((s) => !s.decay).map((s) => s.name);
  return { names: [...decayed, ...others], decayed: decayed.length };
}

/** A module state dict's name as this project writes it: wrapper prefixes removed. */
function plainName(key: string): string {
  let k = key;
  while (k.startsWith("module.")) k = k.slice("module.".length);
  return k.split(".").filter((part) => part !== "_orig_mod").join(".");
}

const MODULES = { bst: ["encoder", "text_head"], gpt: ["model"] } as const;

function asDict(v: PyValue, what: string, fail: (why: string) => never): PyDict {
  if (!(v instanceof PyDict)) fail(`${what} is ${describePy(v)}, expected a dict`);
  return v as PyDict;
}

/** A Python value as JSON that keeps ints, floats and tuples apart (for the `torch` entry). */
function pyToJson(v: PyValue): unknown {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "bigint") return { int: String(v) };
  if (typeof v === "number") return Number.isFinite(v) ? v : { float: String(v) };
  if (Array.isArray(v)) return v.map(pyToJson);
  if (v instanceof PyTuple) return { tuple: v.items.map(pyToJson) };
  throw new Error(`${describePy(v)} in an optimizer group is not kept`);
}

function jsonToPy(v: unknown): PyValue {
  if (v === null || typeof v === "boolean" || typeof v === "string" || typeof v === "number") {
    return v;
  }
  if (Array.isArray(v)) return v.map(jsonToPy);
  const o = v as Record<string, unknown>;
  if (typeof o?.int === "string") return BigInt(o.int);
  if (typeof o?.float === "string") return Number(o.float);
  if (Array.isArray(o?.tuple)) return new PyTuple(o.tuple.map(jsonToPy));
  throw new Error(`${JSON.stringify(v)} is not an optimizer group value`);
}

/** The step of one `state[i]`, and how it was stored. */
function readStep(
  v: PyValue,
  what: string,
  fail: (why: string) => never,
): { step: number; type: TorchOptimizerInfo["stepType"] } {
  if (typeof v === "bigint") return { step: Number(v), type: "int" };
  if (typeof v === "number") return { step: v, type: "float" };
  if (v instanceof TorchTensor && v.shape.length === 0) {
    return { step: toFloat32(v, what)[0], type: v.dtype };
  }
  return fail(`${what} is ${describePy(v)}, expected a step count`);
}

/**
 * This project's checkpoint contents from the object of a reference `.pt` file.
 *
 * @param value What `parseTorchCheckpoint` returned.
 * @param source The file, for errors.
 * @returns Model tensors (their stored dtype), the flat AdamW moments when the file has an
 * optimizer state, and metadata: `model`, `step` (`training_steps`), the `torch` entry, and
 * what a file written by {@linkcode toTorchCheckpoint} kept.
 * @throws One line naming `source`: not the reference's layout, names or shapes that are not
 * a model's, an optimizer state that does not fit it.
 *
 * @example
 * ```ts
 * import { fromTorchCheckpoint } from "./torch_checkpoint.ts";
 * import { parseTorchCheckpoint } from "../io/torch_pt.ts";
 * const path = new URL("../../tests/fixtures/torch/bst_bf16.pt", import.meta.url);
 * const file = fromTorchCheckpoint(parseTorchCheckpoint(await Deno.readFile(path)), "bst.pt");
 * console.log(file.metadata.step, file.tensors.get("encoder.token_embedding.weight")!.dtype);
 * // 300 BF16
 * ```
 */
export function fromTorchCheckpoint(value: PyValue, source: string): SafetensorsFile {
  const fail = failer(source);
  const top = asDict(value, "the saved object", fail);
  const kind = top.has("encoder") && top.has("text_head") ? "bst" : top.has("model") ? "gpt" : null;
  if (kind === null) {
    const keys = [...top.keys()].slice(0, 8).map(String).join(", ");
    fail(
      `it has neither "encoder" and "text_head" (a BST) nor "model" (a GPT) at the top, as ` +
        `microsoft/BST's save_checkpoint writes (its keys: ${keys || "none"})`,
    );
  }
  const tensors = new Map<string, SafeTensor>();
  for (const module of MODULES[kind!]) {
    const sd = asDict(top.get(module)!, `"${module}"`, fail);
    for (const [key, t] of sd) {
      if (typeof key !== "string") fail(`"${module}" has a key ${describePy(key)}`);
      const name = `${module}.${plainName(key as string)}`;
      if (!(t instanceof TorchTensor)) fail(`"${module}.${key}" is ${describePy(t)}, not a tensor`);
      if (tensors.has(name)) {
        fail(`two tensors are named "${name}" once wrapper prefixes are removed`);
      }
      tensors.set(name, t as TorchTensor);
    }
  }
  const shape = modelShapeOf(new Map([...tensors].map(([n, t]) => [n, t.shape])), source);
  const metadata: Record<string, string> = {};
  const kept = top.get(TORCH_METADATA_KEY);
  if (kept !== undefined) {
    for (const [k, v] of asDict(kept, `"${TORCH_METADATA_KEY}"`, fail)) {
      if (typeof k !== "string" || typeof v !== "string") {
        fail(`"${TORCH_METADATA_KEY}" holds ${describePy(k)}: ${describePy(v)}, not strings`);
      }
      metadata[k as string] = v as string;
    }
  }
  metadata.model = kind!;
  const steps = top.get("training_steps");
  if (steps !== undefined) {
    if (typeof steps !== "bigint" || steps < 0n) {
      fail(`"training_steps" is ${describePy(steps)}, expected a non-negative int`);
    }
    metadata.step = String(steps);
  }
  const opt = top.get("optimizer");
  if (opt !== undefined && opt !== null) {
    const { m, v, info } = readOptimizer(asDict(opt, `"optimizer"`, fail), shape, fail);
    if (steps !== undefined && info.step > Number(steps)) {
      fail(`the optimizer has taken ${info.step} steps, more than training_steps ${steps}`);
    }
    tensors.set("optimizer.exp_avg", fromFloat32(m, [m.length]));
    tensors.set("optimizer.exp_avg_sq", fromFloat32(v, [v.length]));
    metadata[TORCH_OPTIMIZER_KEY] = JSON.stringify(info);
  }
  return { tensors, metadata };
}

/** The flat moments of an AdamW state dict, checked against the model's parameter list. */
function readOptimizer(
  opt: PyDict,
  shape: ModelShape,
  fail: (why: string) => never,
): { m: Float32Array; v: Float32Array; info: TorchOptimizerInfo } {
  const order = referenceOrder(shape.specs);
  const n = order.names.length;
  const groupsV = opt.get("param_groups");
  if (!Array.isArray(groupsV)) {
    fail(`"optimizer" has param_groups ${describePy(groupsV ?? null)}, expected a list`);
  }
  const groups = (groupsV as PyValue[]).map((g, i) => asDict(g, `param group ${i}`, fail));
  const counts = groups.map((g) => {
    const p = g.get("params");
    return Array.isArray(p) ? p.length : -1;
  });
  const want = `2 groups: the ${order.decayed} tensors with weight decay, then the ` +
    `${n - order.decayed} without (microsoft/BST's configure_optimizers)`;
  if (groups.length !== 2 || counts[0] !== order.decayed || counts[1] !== n - order.decayed) {
    fail(
      `the optimizer has ${groups.length} param groups of [${counts}] parameters, expected ${want}`,
    );
  }
  const ids = groups.flatMap((g) => g.get("params") as PyValue[]);
  ids.forEach((id, i) => {
    if (id !== BigInt(i)) {
      fail(`optimizer parameter ${i} has id ${describePy(id)}, expected ${i} (the saved order)`);
    }
  });
  const infoGroups = groups.map((g) => {
    const h: Record<string, unknown> = {};
    for (const [k, x] of g) {
      if (k === "params") continue;
      try {
        h[String(k)] = pyToJson(x);
      } catch (e) {
        fail(`param group "${String(k)}": ${(e as Error).message}`);
      }
    }
    return h;
  });
  const table = flatParamTable(shape.specs);
  const m = new Float32Array(table.size);
  const v = new Float32Array(table.size);
  const state = asDict(opt.get("state") ?? new PyDict(), `the optimizer's "state"`, fail);
  const info: TorchOptimizerInfo = {
    step: 0,
    stepType: "F32",
    momentDtype: "F32",
    groups: infoGroups,
  };
  if (state.size === 0) return { m, v, info }; // no step taken yet: zero moments
  if (state.size !== n) {
    fail(`the optimizer state has entries for ${state.size} of its ${n} parameters`);
  }
  const dtypes = new Set<SafetensorsDtype>();
  order.names.forEach((name, i) => {
    const what = `optimizer state ${i} (${name})`;
    const s = asDict(state.get(BigInt(i)) ?? null, what, fail);
    const step = readStep(s.get("step") ?? null, `${what} step`, fail);
    if (i === 0) [info.step, info.stepType] = [step.step, step.type];
    else if (step.step !== info.step) {
      fail(
        `${what} has step ${step.step}, parameter 0 has ${info.step}: AdamW steps them together`,
      );
    }
    const entry = table.get(name);
    for (const [key, flat] of [["exp_avg", m], ["exp_avg_sq", v]] as const) {
      const t = s.get(key);
      if (!(t instanceof TorchTensor)) fail(`${what} has no tensor "${key}"`);
      const tt = t as TorchTensor;
      if (tt.shape.length !== entry.shape.length || tt.shape.some((d, j) => d !== entry.shape[j])) {
        fail(
          `${what} "${key}" has shape [${tt.shape.join(", ")}], the parameter has ` +
            `[${entry.shape.join(", ")}]`,
        );
      }
      if (tt.dtype !== "F32" && tt.dtype !== "F16" && tt.dtype !== "BF16") {
        fail(`${what} "${key}" is ${tt.dtype}, expected F32, F16 or BF16`);
      }
      dtypes.add(tt.dtype);
      flat.set(toFloat32(tt, `${what} ${key}`), entry.offset);
    }
  });
  if (dtypes.size > 1) fail(`the optimizer's moments mix dtypes ${[...dtypes].join(", ")}`);
  info.momentDtype = [...dtypes][0] as TorchOptimizerInfo["momentDtype"];
  return { m, v, info };
}

/**
 * A checkpoint's contents from file bytes: a `.pt` file (zip or legacy magic bytes) through
 * {@linkcode fromTorchCheckpoint}, anything else as safetensors.
 *
 * @param bytes The whole file.
 * @param source The file, for errors.
 * @returns Tensors and metadata in this project's naming.
 * @throws One line naming `source`.
 *
 * @example
 * ```ts
 * import { parseCheckpoint } from "./torch_checkpoint.ts";
 * const bytes = await Deno.readFile(new URL("../../tests/fixtures/torch/gpt_compiled.pt", import.meta.url));
 * const { tensors, metadata } = parseCheckpoint(bytes, "gpt_compiled.pt");
 * console.log(metadata.model, metadata.step, tensors.has("model.lm_head.weight")); // gpt 3 true
 * ```
 */
export function parseCheckpoint(bytes: Uint8Array, source: string): SafetensorsFile {
  return isTorchCheckpoint(bytes)
    ? fromTorchCheckpoint(parseTorchCheckpoint(bytes, source), source)
    : parseSafetensors(bytes, source);
}

/**
 * The object to `torch.save` for this project's checkpoint contents, laid out as the
 * reference's `save_checkpoint` writes it (see the module description).
 *
 * @param file Model tensors, optionally the flat moments, and metadata (`step`, `torch`).
 * @param source The checkpoint, for errors.
 * @param settings The optimizer groups' hyper-parameters when the metadata has no `torch`
 * entry (a checkpoint written by this project). Without either, a checkpoint without moments
 * is written with `"optimizer": None` (the reference loads it for inference only); one with
 * moments is an error.
 * @returns The object for `serializeTorchCheckpoint`.
 * @throws One line naming `source`.
 *
 * @example
 * ```ts
 * import { fromTorchCheckpoint, toTorchCheckpoint } from "./torch_checkpoint.ts";
 * import { parseTorchCheckpoint } from "../io/torch_pt.ts";
 * import type { PyDict } from "../io/pickle.ts";
 * const path = new URL("../../tests/fixtures/torch/gpt_compiled.pt", import.meta.url);
 * const file = fromTorchCheckpoint(parseTorchCheckpoint(await Deno.readFile(path)), "gpt.pt");
 * const back = toTorchCheckpoint(file, "gpt.pt") as PyDict;
 * console.log([...back.keys()]); // [ "model", "optimizer", "training_steps", "bst_webgpu" ]
 * ```
 */
export function toTorchCheckpoint(
  file: SafetensorsFile,
  source: string,
  settings?: TorchOptimizerSettings,
): PyValue {
  const fail = (why: string): never => {
    throw new Error(`Cannot convert checkpoint "${source}": ${clip(why)}`);
  };
  const model = new Map<string, SafeTensor>();
  for (const [name, t] of file.tensors) {
    if (name === "optimizer.exp_avg" || name === "optimizer.exp_avg_sq") continue;
    if (name.startsWith("optimizer.")) fail(`tensor "${name}" is not an AdamW moment`);
    model.set(name, t);
  }
  const shape = modelShapeOf(new Map([...model].map(([n, t]) => [n, t.shape])), source);
  const top = new PyDict();
  for (const module of MODULES[shape.kind]) {
    const sd = new PyOrderedDict();
    for (const s of shape.specs) {
      if (!s.name.startsWith(`${module}.`)) continue;
      const t = model.get(s.name)!;
      sd.set(s.name.slice(module.length + 1), new TorchTensor(t.dtype, [...t.shape], t.data));
    }
    top.set(module, sd);
  }
  const step = file.metadata.step === undefined ? 0n : BigInt(file.metadata.step);
  top.set("optimizer", writeOptimizer(file, shape, step, settings, fail));
  top.set("training_steps", step);
  const kept = new PyDict();
  for (const [k, v] of Object.entries(file.metadata)) {
    if (k !== TORCH_OPTIMIZER_KEY) kept.set(k, v);
  }
  top.set(TORCH_METADATA_KEY, kept);
  return top;
}

function writeOptimizer(
  file: SafetensorsFile,
  shape: ModelShape,
  step: bigint,
  settings: TorchOptimizerSettings | undefined,
  fail: (why: string) => never,
): PyValue {
  const mT = file.tensors.get("optimizer.exp_avg");
  const vT = file.tensors.get("optimizer.exp_avg_sq");
  const order = referenceOrder(shape.specs);
  const stored = file.metadata[TORCH_OPTIMIZER_KEY];
  let info: TorchOptimizerInfo;
  if (stored === undefined && !settings && !mT) return null; // weights only: for inference
  if (stored !== undefined) {
    try {
      info = JSON.parse(stored);
    } catch {
      return fail(`metadata "${TORCH_OPTIMIZER_KEY}" is not JSON`);
    }
  } else {
    if (!settings) {
      return fail(
        "the optimizer's settings (learning rate, betas, weight decay) are unknown: the " +
          "checkpoint has no config in its metadata; pass --config",
      );
    }
    const group = (weightDecay: number) => ({
      lr: settings.lr,
      betas: { tuple: [settings.beta1, settings.beta2] },
      eps: settings.eps ?? 1e-8,
      weight_decay: weightDecay,
      amsgrad: false,
      foreach: null,
      maximize: false,
      capturable: false,
      differentiable: false,
      fused: null,
    });
    info = {
      step: Number(step),
      stepType: "F32",
      momentDtype: "F32",
      groups: [group(settings.weightDecay), group(0)],
    };
  }
  const groups = info.groups.map((g, i) => {
    const d = new PyDict();
    for (const [k, x] of Object.entries(g as Record<string, unknown>)) d.set(k, jsonToPy(x));
    const ids = i === 0 ? order.names.slice(0, order.decayed) : order.names.slice(order.decayed);
    const first = i === 0 ? 0 : order.decayed;
    d.set("params", ids.map((_, j) => BigInt(first + j)));
    return d;
  });
  const state = new PyDict();
  if (mT && vT && info.step > 0) {
    const table = flatParamTable(shape.specs);
    for (const t of [mT, vT]) {
      if (t.dtype !== "F32" || t.shape.length !== 1 || t.shape[0] !== table.size) {
        fail(`the AdamW moments are ${t.dtype} [${t.shape}], expected F32 [${table.size}]`);
      }
    }
    const m = toFloat32(mT, "optimizer.exp_avg");
    const v = toFloat32(vT, "optimizer.exp_avg_sq");
    order.names.forEach((name, i) => {
      const e = table.get(name);
      const moment = (flat: Float32Array) =>
        new TorchTensor(
          info.momentDtype,
          [...e.shape],
          fromFloat32(flat.subarray(e.offset, e.offset + e.numel), e.shape, info.momentDtype)
            .data,
        );
      state.set(
        BigInt(i),
        new PyDict([
          ["step", stepValue(info)],
          ["exp_avg", moment(m)],
          ["exp_avg_sq", moment(v)],
        ]),
      );
    });
  }
  return new PyDict([["state", state], ["param_groups", groups]]);
}

/** `state[i]["step"]` as the file had it (a float32 scalar tensor for this project's own). */
function stepValue(info: TorchOptimizerInfo): PyValue {
  if (info.stepType === "int") return BigInt(info.step);
  if (info.stepType === "float") return info.step;
  if (info.stepType === "I64") {
    return new TorchTensor(
      "I64",
      [],
      new Uint8Array(new BigInt64Array([BigInt(info.step)]).buffer),
    );
  }
  if (info.stepType === "F64") {
    return new TorchTensor("F64", [], new Uint8Array(new Float64Array([info.step]).buffer));
  }
  const dtype = info.stepType === "F16" || info.stepType === "BF16" ? info.stepType : "F32";
  return new TorchTensor(dtype, [], fromFloat32(new Float32Array([info.step]), [], dtype).data);
}

/**
 * The optimizer settings a run config gives the written `param_groups`: its betas and weight
 * decay, and the learning rate of the last step taken (`step` steps done; the reference sets
 * a group's `lr` before each step), or the configured rate before any step.
 *
 * @example
 * ```ts
 * import { torchOptimizerSettings } from "./torch_checkpoint.ts";
 * import type { Config } from "../config/schema.ts";
 * const config = {
 *   optimizer: { learning_rate: 1e-3, beta1: 0.9, beta2: 0.95, weight_decay: 0.1 },
 *   lr_scheduler: { decay_lr: false, warmup_iters: 0, lr_decay_iters: 10, min_lr: 1e-4 },
 * } as unknown as Config;
 * console.log(torchOptimizerSettings(config, 5).lr); // 0.001
 * ```
 */
export function torchOptimizerSettings(config: Config, step: number): TorchOptimizerSettings {
  const o = config.optimizer;
  const s = config.lr_scheduler;
  return {
    lr: learningRate(Math.max(0, step - 1), {
      learningRate: o.learning_rate,
      decayLr: s.decay_lr,
      warmupIters: s.warmup_iters,
      lrDecayIters: s.lr_decay_iters,
      minLr: s.min_lr,
    }),
    beta1: o.beta1,
    beta2: o.beta2,
    weightDecay: o.weight_decay,
  };
}

/**
 * Checks a checkpoint's model against a run config where the config alone decides (the
 * vocabulary comes from the data, checked when the weights are loaded): the kind
 * (`use_bst`), the width, the layers and the biases.
 *
 * @param shape What {@linkcode modelShapeOf} read off the tensors.
 * @param config The run config.
 * @param source The checkpoint, for the error.
 * @throws One line naming `source`, the tensor and the config key that disagree.
 *
 * @example
 * ```ts
 * import { checkModelConfig, modelShapeOf } from "./torch_checkpoint.ts";
 * import { gptParamSpecs } from "../models/gpt.ts";
 * import type { Config } from "../config/schema.ts";
 * const specs = gptParamSpecs({
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   mode: "next_token", fimTokenId: -1,
 * });
 * const shape = modelShapeOf(new Map(specs.map((s) => [s.name, s.shape])), "x.pt");
 * const config = { use_bst: false, model: { n_embd: 64, n_layer: 1, bias: false } } as Config;
 * try {
 *   checkModelConfig(shape, config, "x.pt");
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // Cannot load checkpoint "x.pt": tensor "model.token_embedding.weight" is 32 wide but the config's model.n_embd is 64
 * }
 * ```
 */
export function checkModelConfig(shape: ModelShape, config: Config, source: string): void {
  const fail = failer(source);
  const m = config.model;
  const emb = shape.specs[0].name;
  if ((shape.kind === "bst") !== config.use_bst) {
    fail(
      `it holds a ${shape.kind === "bst" ? "BST" : "GPT"} but the config says ` +
        `use_bst: ${config.use_bst}`,
    );
  }
  if (shape.nEmbd !== m.n_embd) {
    fail(`tensor "${emb}" is ${shape.nEmbd} wide but the config's model.n_embd is ${m.n_embd}`);
  }
  if (shape.nLayer !== m.n_layer) {
    fail(
      `it has ${shape.nLayer} blocks per stack (up to "${
        shape.specs.find((s) => s.name.includes(`.blocks.${shape.nLayer - 1}.`))?.name
      }") but the config's model.n_layer is ${m.n_layer}`,
    );
  }
  if (shape.bias !== m.bias) {
    fail(
      `its norms ${shape.bias ? "have" : "have no"} bias tensors but the config's model.bias is ` +
        `${m.bias}`,
    );
  }
}
