/**
 * BST model configuration and its parameter list: ONE ordered list of (PyTorch name, shape,
 * weight decay, module) that both the flat parameter buffer and the safetensors checkpoint
 * names come from. Order and names follow PyTorch's `named_parameters()` of
 * microsoft/BST `TransformerEncoder` and `TextHead`.
 *
 * @module
 */

/** The model hyper-parameters of a BST (the reference's `BSTConfig`). */
export interface BstConfig {
  /** Vocabulary size V. */
  vocabSize: number;
  /** EOS token id (< V). */
  eosTokenId: number;
  /** Layers per encoder L. */
  nLayer: number;
  /** Attention heads H. */
  nHead: number;
  /** Width C (divisible by H; C/H even for RoPE). */
  nEmbd: number;
  /** Maximum row length T. */
  blockSize: number;
  /** true: LayerNorm and Linear biases; false: RMSNorm, no biases. */
  bias: boolean;
  /** First forward position that forms pairs. */
  contextLength: number;
  /** Smallest gap t_b − t_f of a training pair. */
  pairMinimumGap: number;
  /** Gaps are < this; ≤ 0 means T. */
  pairMaximumGap: number;
  /** Fraction of pairs kept (EOS pairs always kept); 1 keeps all. */
  pairSubsampleRate: number;
  /** `eos`: gap-1 pairs predict EOS for both heads; `next_token`: normal targets. */
  singleGapPredictionMode: "eos" | "next_token";
}

/** One parameter tensor of the model. */
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

/** Hidden width of a SwiGLU MLP on input width `c`: 128·round((8c/3)/128), Python rounding. */
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

/** Checks a BST config and throws one line naming the first bad field. */
export function validateBstConfig(cfg: BstConfig): void {
  const positive: (keyof BstConfig)[] = ["vocabSize", "nLayer", "nHead", "nEmbd", "blockSize"];
  for (const k of positive) {
    const v = cfg[k] as number;
    if (!Number.isInteger(v) || v <= 0) {
      throw new Error(`Model config ${k} must be a positive integer, got ${v}`);
    }
  }
  if (cfg.nEmbd % cfg.nHead !== 0) {
    throw new Error(`Model n_embd ${cfg.nEmbd} is not divisible by n_head ${cfg.nHead}`);
  }
  if ((cfg.nEmbd / cfg.nHead) % 2 !== 0) {
    throw new Error(`Model head dimension ${cfg.nEmbd / cfg.nHead} must be even for RoPE`);
  }
  if (!Number.isInteger(cfg.eosTokenId) || cfg.eosTokenId < 0 || cfg.eosTokenId >= cfg.vocabSize) {
    throw new Error(`EOS token id ${cfg.eosTokenId} is outside the vocabulary of ${cfg.vocabSize}`);
  }
  if (swigluHidden(cfg.nEmbd) === 0) {
    throw new Error(`Model n_embd ${cfg.nEmbd} is too small: its MLP hidden width rounds to 0`);
  }
  if (cfg.pairSubsampleRate < 0 || cfg.pairSubsampleRate > 1) {
    throw new Error(`bst_pair_subsample_rate must be in [0, 1], got ${cfg.pairSubsampleRate}`);
  }
  const maxGap = cfg.pairMaximumGap <= 0 ? cfg.blockSize : cfg.pairMaximumGap;
  if (maxGap < cfg.pairMinimumGap) {
    throw new Error(
      `bst_pair_maximum_gap ${cfg.pairMaximumGap} is smaller than bst_pair_minimum_gap ` +
        `${cfg.pairMinimumGap}`,
    );
  }
}

/**
 * The BST's parameters in PyTorch `named_parameters()` order: encoder (embedding, forward
 * blocks, forward norm, backward blocks, backward norm), then text head.
 */
export function bstParamSpecs(cfg: BstConfig): ParamSpec[] {
  const C = cfg.nEmbd;
  const specs: ParamSpec[] = [];
  const add = (
    name: string,
    shape: number[],
    module: ParamSpec["module"],
    init?: ParamSpec["init"],
  ) => {
    specs.push({
      name,
      shape,
      decay: shape.length >= 2,
      module,
      init: init ?? (shape.length >= 2 ? "normal" : "zeros"),
    });
  };
  const norm = (prefix: string, width: number, module: ParamSpec["module"]) => {
    add(`${prefix}.weight`, [width], module, "ones");
    if (cfg.bias) add(`${prefix}.bias`, [width], module, "zeros");
  };
  const linear = (prefix: string, out: number, inp: number, module: ParamSpec["module"]) => {
    add(`${prefix}.weight`, [out, inp], module);
    if (cfg.bias) add(`${prefix}.bias`, [out], module);
  };
  add("encoder.token_embedding.weight", [cfg.vocabSize, C], "encoder");
  const hidden = swigluHidden(C);
  for (const dir of ["f", "b"]) {
    for (let l = 0; l < cfg.nLayer; l++) {
      const p = `encoder.transformer_${dir}.blocks.${l}`;
      norm(`${p}.ln_1`, C, "encoder");
      linear(`${p}.attn.c_attn`, 3 * C, C, "encoder");
      linear(`${p}.attn.c_proj`, C, C, "encoder");
      norm(`${p}.ln_2`, C, "encoder");
      linear(`${p}.mlp.up.gate_up`, 2 * hidden, C, "encoder");
      linear(`${p}.mlp.down`, C, hidden, "encoder");
    }
    norm(`encoder.transformer_${dir}.norm`, C, "encoder");
  }
  const headHidden = swigluHidden(2 * C);
  linear("text_head.mlp.0.gate_up", 2 * headHidden, 2 * C, "text_head");
  linear("text_head.mlp.2", 2 * C, headHidden, "text_head");
  norm("text_head.norm", 2 * C, "text_head");
  add("text_head.lm_head.weight", [cfg.vocabSize, C], "text_head");
  return specs;
}

/** Parameter count of a BST. */
export function bstParamCount(cfg: BstConfig): number {
  return bstParamSpecs(cfg).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}
