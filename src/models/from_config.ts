/**
 * Model hyper-parameters from a run config and the sizes its data derives (the reference's
 * `update_config`: vocabulary, EOS id, block size, context length), and a model built from
 * them — the one place training, evaluation and sampling turn a config into a BST or a GPT.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { Gpu } from "../gpu/device.ts";
import { BST } from "./bst.ts";
import type { BstConfig } from "./bst_config.ts";
import type { ModelPrecision } from "./flat_params.ts";
import { GPT, type GptConfig } from "./gpt.ts";

/** What a model takes from its data. */
export interface DataSizes {
  /** Row length T (block size). */
  seqLen: number;
  vocabSize: number;
  eosTokenId: number;
  /** First forward position that forms BST pairs (star graph: the prefix length). */
  contextLength: number;
  /** The `<|fim|>` token id, when the data has one (GPT FIM mode needs it). */
  fimTokenId?: number;
}

/** What the BST and the GPT configs share: sizes from the data and the `model.*` shape. */
function trunkSizes(config: Config, data: DataSizes) {
  const m = config.model;
  return {
    vocabSize: data.vocabSize,
    eosTokenId: data.eosTokenId,
    nLayer: m.n_layer,
    nHead: m.n_head,
    nEmbd: m.n_embd,
    blockSize: data.seqLen,
    bias: m.bias,
  };
}

function checkNoDropout(config: Config): void {
  if (config.model.dropout !== 0) {
    throw new Error(
      `model.dropout must be 0: dropout is not implemented (got ${config.model.dropout})`,
    );
  }
}

/**
 * The BST config of a run config and its data.
 *
 * @example
 * ```ts
 * import { bstConfigFor } from "./from_config.ts";
 * import type { Config } from "../config/schema.ts";
 * const model = {
 *   n_layer: 2, n_head: 4, n_embd: 32, bias: false, dropout: 0, bst_pair_minimum_gap: 1,
 *   bst_pair_maximum_gap: -1, bst_pair_subsample_rate: 1, bst_single_gap_prediction_mode: "eos",
 * };
 * const config = { model } as unknown as Config; // normally from loadConfig()
 * const sizes = { seqLen: 16, vocabSize: 23, eosTokenId: 22, contextLength: 0 };
 * console.log(bstConfigFor(config, sizes).blockSize); // 16
 * ```
 */
export function bstConfigFor(config: Config, data: DataSizes): BstConfig {
  checkNoDropout(config);
  const m = config.model;
  return {
    ...trunkSizes(config, data),
    contextLength: data.contextLength,
    pairMinimumGap: m.bst_pair_minimum_gap,
    pairMaximumGap: m.bst_pair_maximum_gap,
    pairSubsampleRate: m.bst_pair_subsample_rate,
    singleGapPredictionMode: m.bst_single_gap_prediction_mode,
  };
}

/**
 * The GPT config of a run config and its data (`model.gpt_mode`).
 *
 * @example FIM mode needs a `<|fim|>` token in the data
 * ```ts
 * import { gptConfigFor } from "./from_config.ts";
 * import type { Config } from "../config/schema.ts";
 * const model = { n_layer: 2, n_head: 4, n_embd: 32, bias: false, dropout: 0, gpt_mode: "fim" };
 * const config = { model } as unknown as Config; // normally from loadConfig()
 * const sizes = { seqLen: 256, vocabSize: 1001, eosTokenId: 1, contextLength: 0, fimTokenId: 1000 };
 * console.log(gptConfigFor(config, sizes).fimTokenId); // 1000
 * ```
 */
export function gptConfigFor(config: Config, data: DataSizes): GptConfig {
  checkNoDropout(config);
  const m = config.model;
  if (m.gpt_mode === "fim" && data.fimTokenId === undefined) {
    throw new Error("model.gpt_mode fim needs a <|fim|> token, which this data does not have");
  }
  return {
    ...trunkSizes(config, data),
    mode: m.gpt_mode,
    fimTokenId: m.gpt_mode === "fim" ? data.fimTokenId! : -1,
  };
}

/**
 * The model precision of `trainer.precision`: `bf16-mixed` runs as `16-mixed` (WGSL has no
 * bf16; the trainer says so on stderr).
 *
 * @example
 * ```ts
 * import { modelPrecision } from "./from_config.ts";
 * import type { Config } from "../config/schema.ts";
 * const config = { trainer: { precision: "bf16-mixed" } } as unknown as Config;
 * console.log(modelPrecision(config)); // 16-mixed
 * ```
 */
export function modelPrecision(config: Config): ModelPrecision {
  return config.trainer.precision === "32-true" ? "32-true" : "16-mixed";
}

/**
 * The model a config names (`use_bst`: BST, else the GPT baseline), initialised from
 * `config.seed`; load a checkpoint's weights with `loadSafetensors`.
 *
 * @example
 * ```ts
 * import { createModel, getGpu, GPT } from "../../mod.ts";
 * import type { Config } from "../config/schema.ts";
 * const model = { n_layer: 1, n_head: 2, n_embd: 32, bias: false, dropout: 0, gpt_mode: "next_token" };
 * const config = { seed: 1, use_bst: false, model } as unknown as Config; // normally loadConfig()
 * const sizes = { seqLen: 8, vocabSize: 10, eosTokenId: 9, contextLength: 0 };
 * const gpt = await createModel(await getGpu(), config, sizes);
 * console.log(gpt instanceof GPT); // true
 * ```
 */
export function createModel(gpu: Gpu, config: Config, data: DataSizes): Promise<BST | GPT> {
  return config.use_bst
    ? BST.create(gpu, bstConfigFor(config, data), options(config))
    : GPT.create(gpu, gptConfigFor(config, data), options(config));
}

function options(config: Config): { seed: number; precision: ModelPrecision } {
  // Configs built by hand (and checkpoints written before the key existed) may lack it.
  return {
    seed: config.seed,
    precision: config.trainer?.precision ? modelPrecision(config) : "32-true",
  };
}
