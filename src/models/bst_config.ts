/**
 * BST model configuration and its parameter list: ONE ordered list of (PyTorch name, shape,
 * weight decay, module) that both the flat parameter buffer and the safetensors checkpoint
 * names come from. Order and names follow PyTorch's `named_parameters()` of
 * microsoft/BST `TransformerEncoder` and `TextHead`.
 *
 * @module
 */

import { ParamListBuilder, type ParamSpec, swigluHidden } from "./param_specs.ts";

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
 *
 * @example
 * ```ts
 * import { bstParamSpecs } from "./bst_config.ts";
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1, pairSubsampleRate: 1,
 *   singleGapPredictionMode: "eos" as const,
 * };
 * const specs = bstParamSpecs(cfg);
 * console.log(specs[0].name, specs.at(-1)!.name);
 * // encoder.token_embedding.weight text_head.lm_head.weight
 * ```
 */
export function bstParamSpecs(cfg: BstConfig): ParamSpec[] {
  const C = cfg.nEmbd;
  const b = new ParamListBuilder(cfg.bias);
  b.add("encoder.token_embedding.weight", [cfg.vocabSize, C], "encoder");
  b.stack("encoder.transformer_f", cfg.nLayer, C, "encoder");
  b.stack("encoder.transformer_b", cfg.nLayer, C, "encoder");
  const headHidden = swigluHidden(2 * C);
  b.linear("text_head.mlp.0.gate_up", 2 * headHidden, 2 * C, "text_head");
  b.linear("text_head.mlp.2", 2 * C, headHidden, "text_head");
  b.norm("text_head.norm", 2 * C, "text_head");
  b.add("text_head.lm_head.weight", [cfg.vocabSize, C], "text_head");
  return b.specs;
}
