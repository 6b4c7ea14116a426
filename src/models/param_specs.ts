/**
 * Parameter lists: the ONE ordered list of (PyTorch name, shape, weight decay, module,
 * initialisation) a model's flat parameter buffer and its safetensors names both come from,
 * and the builder the BST and the GPT write their lists with. A transformer stack
 * (`transformer`, `transformer_f`, `transformer_b`) has the same entries in both models.
 *
 * @module
 */

/** One parameter tensor of a model. */
export interface ParamSpec {
  /** PyTorch state-dict name, e.g. `encoder.transformer_f.blocks.0.attn.c_attn.weight`. */
  name: string;
  /** PyTorch shape (`Linear.weight` is (out, in)). */
  shape: number[];
  /** AdamW weight decay applies (tensors with ≥ 2 dimensions). */
  decay: boolean;
  /**
   * Which module's gradient norm it belongs to (per-module clipping): the BST's `encoder` and
   * `text_head`, or the GPT's single `model`.
   */
  module: "encoder" | "text_head" | "model";
  /** Initialisation: N(0, 0.02), ones (norm weights) or zeros (biases). */
  init: "normal" | "ones" | "zeros";
}

/**
 * Hidden width of a SwiGLU MLP on input width `c`: 128·round((8c/3)/128), Python rounding.
 *
 * @example
 * ```ts
 * import { swigluHidden } from "./param_specs.ts";
 * console.log(swigluHidden(768), swigluHidden(2 * 768)); // 2048 4096
 * ```
 */
export function swigluHidden(c: number): number {
  return 128 * roundHalfEven((8 * c / 3) / 128);
}

/** Python's `round()`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Builds a parameter list in order. Weights with ≥ 2 dimensions decay and start N(0, 0.02);
 * norm weights start at 1; biases at 0 and exist only when `bias` is true.
 */
export class ParamListBuilder {
  readonly specs: ParamSpec[] = [];

  constructor(readonly bias: boolean) {}

  /** Appends one tensor. */
  add(name: string, shape: number[], module: ParamSpec["module"], init?: ParamSpec["init"]): void {
    this.specs.push({
      name,
      shape,
      decay: shape.length >= 2,
      module,
      init: init ?? (shape.length >= 2 ? "normal" : "zeros"),
    });
  }

  /** A norm of `width` features: `weight` (and `bias`). */
  norm(prefix: string, width: number, module: ParamSpec["module"]): void {
    this.add(`${prefix}.weight`, [width], module, "ones");
    if (this.bias) this.add(`${prefix}.bias`, [width], module, "zeros");
  }

  /** A Linear `inp` → `out`: `weight` (out, in) (and `bias` (out)). */
  linear(prefix: string, out: number, inp: number, module: ParamSpec["module"]): void {
    this.add(`${prefix}.weight`, [out, inp], module);
    if (this.bias) this.add(`${prefix}.bias`, [out], module);
  }

  /**
   * One transformer stack of width `c`: `nLayer` blocks (`ln_1`, `attn.c_attn`, `attn.c_proj`,
   * `ln_2`, `mlp.up.gate_up`, `mlp.down`) then the final `norm`, under `prefix`.
   */
  stack(prefix: string, nLayer: number, c: number, module: ParamSpec["module"]): void {
    const hidden = swigluHidden(c);
    for (let l = 0; l < nLayer; l++) {
      const p = `${prefix}.blocks.${l}`;
      this.norm(`${p}.ln_1`, c, module);
      this.linear(`${p}.attn.c_attn`, 3 * c, c, module);
      this.linear(`${p}.attn.c_proj`, c, c, module);
      this.norm(`${p}.ln_2`, c, module);
      this.linear(`${p}.mlp.up.gate_up`, 2 * hidden, c, module);
      this.linear(`${p}.mlp.down`, c, hidden, module);
    }
    this.norm(`${prefix}.norm`, c, module);
  }
}
