/**
 * Parameters and gradients of a model in one flat GPU buffer each, laid out by a
 * {@linkcode ParamTable} built from the model's ordered (PyTorch name, shape) list. Tensors are
 * grouped by (module, weight decay) so the optimizer and per-module gradient norms work on a
 * few contiguous ranges; names, shapes and checkpoint entries still come from the one list.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { planFill } from "../gpu/elementwise.ts";
import { createLossScaleState } from "../gpu/loss_scale.ts";
import { checkMatmulPrecision, type MatmulPrecision } from "../gpu/matmul.ts";
import type { Op } from "../gpu/kernel.ts";
import { createFlatTensor, readTensor, Tensor, writeTensor } from "../gpu/tensor.ts";
import { initFlatParameters } from "../core/init.ts";
import {
  buildParamTable,
  paramsFromSafetensors,
  paramsToSafetensors,
  type ParamTable,
} from "../core/param_table.ts";
import type { SafeTensor } from "../io/safetensors.ts";
import type { BlockParams } from "../nn/block.ts";
import type { StackParams } from "../nn/encoder.ts";
import type { ParamGroup } from "../nn/layer.ts";
import type { ParamSpec } from "./param_specs.ts";

/**
 * Numeric precision of a model's plans (`trainer.precision`, `bf16-mixed` mapped to
 * `16-mixed`): `32-true` all f32; `16-mixed` the Linear layers' matmuls with f16 inputs (f32
 * storage, f32 totals) and the loss gradient seeded with a dynamic loss scale, everything else
 * (norms, softmax, cross-entropy, attention, embeddings, parameters, optimizer) f32.
 */
export type ModelPrecision = "32-true" | "16-mixed";

/**
 * The flat layout of a model's parameter list: tensors grouped by module (in first-appearance
 * order), weight-decayed before not decayed, list order within a group — the layout of the
 * parameters, gradients and AdamW moments (and of a checkpoint's `optimizer.exp_avg`).
 *
 * @example
 * ```ts
 * import { flatParamTable } from "./flat_params.ts";
 * import { gptParamSpecs } from "./gpt.ts";
 * const specs = gptParamSpecs({
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   mode: "next_token", fimTokenId: -1,
 * });
 * console.log(flatParamTable(specs).entries[1].name); // model.transformer.blocks.0.attn.c_attn.weight
 * ```
 */
export function flatParamTable(specs: readonly ParamSpec[]): ParamTable<ParamSpec> {
  const modules = [...new Set(specs.map((s) => s.module))];
  const order = (s: ParamSpec) => 2 * modules.indexOf(s.module) + (s.decay ? 0 : 1);
  const sorted = specs.map((s, i) => ({ s, i }))
    .sort((a, b) => order(a.s) - order(b.s) || a.i - b.i)
    .map((x) => x.s);
  return buildParamTable(sorted);
}

/** Flat parameter and gradient buffers with views by PyTorch name. */
export class FlatParams {
  /** Flat layout (PyTorch names, shapes, decay flags, modules). */
  readonly table: ParamTable<ParamSpec>;
  /** All parameters, flat (table.size). */
  readonly params: Tensor;
  /** All gradients, flat, same layout. */
  readonly grads: Tensor;
  #cache = new Map<string, Promise<unknown>>();
  #precision: ModelPrecision = "32-true";
  #lossScale?: Tensor;

  constructor(readonly gpu: Gpu, specs: ParamSpec[], readonly label: string) {
    this.table = flatParamTable(specs);
    // Bound only through per-tensor views and binding-sized ranges (see ranges()).
    this.params = createFlatTensor(gpu, this.table.size, `${label}.params`);
    this.grads = createFlatTensor(gpu, this.table.size, `${label}.grads`);
  }

  /** The precision of this model's plans (set once, at creation). */
  get precision(): ModelPrecision {
    return this.#precision;
  }

  /** Precision of the Linear layers' matmuls: "f16" under 16-mixed, else "f32". */
  get matmulPrecision(): MatmulPrecision {
    return this.#precision === "16-mixed" ? "f16" : "f32";
  }

  /**
   * 16-mixed: the loss scaler's state (`src/gpu/loss_scale.ts`) that seeds the loss gradient
   * and that the optimizer unscales by; undefined in 32-true.
   */
  get lossScale(): Tensor | undefined {
    return this.#lossScale;
  }

  /**
   * Sets the precision before anything is planned (the models' `create` does).
   *
   * @throws Error when 16-mixed is asked for on an adapter without `shader-f16`.
   */
  protected setPrecision(precision: ModelPrecision): void {
    if (precision !== "32-true" && precision !== "16-mixed") {
      throw new Error(`Unknown precision "${precision}": expected 32-true or 16-mixed`);
    }
    checkMatmulPrecision(
      this.gpu,
      precision === "16-mixed" ? "f16" : "f32",
      "trainer.precision=16-mixed",
    );
    this.#precision = precision;
    this.#lossScale = precision === "16-mixed"
      ? createLossScaleState(this.gpu, this.label)
      : undefined;
  }

  /** Initialises the parameters from `seed`: N(0, 0.02) weights, unit norms, zero biases. */
  async initialise(seed: number): Promise<void> {
    this.setParameters(initFlatParameters(this.table, seed));
    await this.gpu.queue.onSubmittedWorkDone();
  }

  /** The parameter tensor `name` as a view into the flat buffer. */
  param(name: string): Tensor {
    const e = this.table.get(name);
    return new Tensor(this.params.buffer, e.shape, "f32", `${this.label}.${name}`, e.offset * 4);
  }

  /** The gradient of parameter `name` as a view into the flat gradient buffer. */
  grad(name: string): Tensor {
    const e = this.table.get(name);
    return new Tensor(
      this.grads.buffer,
      e.shape,
      "f32",
      `${this.label}.grad.${name}`,
      e.offset * 4,
    );
  }

  /** Weight and (if present) bias of `prefix` with their gradients. */
  group(prefix: string): ParamGroup {
    const g: ParamGroup = { w: this.param(`${prefix}.weight`), dw: this.grad(`${prefix}.weight`) };
    if (this.table.has(`${prefix}.bias`)) {
      g.b = this.param(`${prefix}.bias`);
      g.db = this.grad(`${prefix}.bias`);
    }
    return g;
  }

  /**
   * Parameter views of the transformer stack under `prefix` (`nLayer` blocks and the final
   * norm), the names `ParamListBuilder.stack` lists.
   */
  stackParams(prefix: string, nLayer: number): StackParams {
    const block = (l: number): BlockParams => {
      const p = `${prefix}.blocks.${l}`;
      return {
        ln1: this.group(`${p}.ln_1`),
        attn: this.group(`${p}.attn.c_attn`),
        proj: this.group(`${p}.attn.c_proj`),
        ln2: this.group(`${p}.ln_2`),
        gateUp: this.group(`${p}.mlp.up.gate_up`),
        down: this.group(`${p}.mlp.down`),
      };
    };
    return {
      blocks: Array.from({ length: nLayer }, (_, l) => block(l)),
      norm: this.group(`${prefix}.norm`),
    };
  }

  /**
   * `create()` once per `key` (plans are made once and reused); a plan whose creation failed
   * is forgotten so that a later call tries again.
   */
  protected cached<T>(key: string, create: () => Promise<T>): Promise<T> {
    let p = this.#cache.get(key) as Promise<T> | undefined;
    if (!p) {
      p = create();
      this.#cache.set(key, p);
      p.catch(() => this.#cache.delete(key));
    }
    return p;
  }

  /** Overwrites all parameters from a flat array in {@linkcode FlatParams.table} layout. */
  setParameters(flat: Float32Array): void {
    writeTensor(this.gpu, this.params, flat);
  }

  /** Reads all parameters back (flat, table layout). */
  getParameters(): Promise<Float32Array> {
    return readTensor(this.gpu, this.params);
  }

  /** Reads all gradients back (flat, table layout). */
  getGradients(): Promise<Float32Array> {
    return readTensor(this.gpu, this.grads);
  }

  /** The parameters as safetensors entries under their PyTorch names and layouts. */
  async toSafetensors(): Promise<Map<string, SafeTensor>> {
    return paramsToSafetensors(this.table, await this.getParameters());
  }

  /**
   * Loads parameters from safetensors entries (PyTorch names and shapes; F32, F16 or BF16).
   * Entries for which `ignore` returns true (e.g. `optimizer.…`) are skipped; any missing,
   * unexpected or mis-shaped parameter is an error naming `source`.
   */
  loadSafetensors(
    tensors: Map<string, SafeTensor>,
    source: string,
    ignore: (name: string) => boolean = (n) => n.startsWith("optimizer."),
  ): void {
    this.setParameters(paramsFromSafetensors(this.table, tensors, source, { ignore }));
  }

  /** Ops that zero the gradients, one fill per binding-sized range. */
  async planZeroGrads(): Promise<Op[]> {
    const ops: Op[] = [];
    for (const r of this.ranges(this.grads, () => "all")) {
      ops.push(await planFill(this.gpu, r.view, 0));
    }
    return ops;
  }

  /**
   * Splits a flat buffer (params, grads or optimizer state) into views of consecutive tensors
   * with the same `key`, each within the adapter's storage binding limit.
   */
  ranges(flatTensor: Tensor, key: (s: ParamSpec) => string): { key: string; view: Tensor }[] {
    const maxElems = Math.floor(this.gpu.limits.maxStorageBufferBindingSize / 4);
    const out: { key: string; view: Tensor }[] = [];
    let start = 0;
    let end = 0;
    let current: string | undefined;
    const flush = () => {
      if (current === undefined || end === start) return;
      out.push({
        key: current,
        view: new Tensor(
          flatTensor.buffer,
          [end - start],
          "f32",
          `${flatTensor.label}[${start}:${end}]`,
          flatTensor.offset + start * 4,
        ),
      });
    };
    for (const e of this.table.entries) {
      const k = key(e.spec);
      const eEnd = e.offset + e.numel;
      if (current !== k || eEnd - start > maxElems) {
        flush();
        start = e.offset;
        current = k;
      }
      end = eEnd;
    }
    flush();
    return out;
  }
}
