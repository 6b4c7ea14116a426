/**
 * bst-webgpu: the Belief State Transformer (Hu et al., ICLR 2025) on WebGPU with hand-written
 * WGSL kernels, for Deno. It reproduces microsoft/BST: the same model, losses and data, with
 * checkpoints under PyTorch's parameter names.
 *
 * This module graph is npm-free and uses relative imports only, so it can be imported from a
 * URL. WGSL kernels arrive as text imports: no read permission is needed.
 *
 * @example Train one step of a tiny BST (needs a WebGPU adapter)
 * ```ts ignore
 * import {
 *   AdamW, BST, buildPairBatch, getGpu, PairSampler, run, trainingPairList,
 * } from "./mod.ts";
 * const gpu = await getGpu({ log: true });
 * const config = {
 *   vocabSize: 12, eosTokenId: 11, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 8,
 *   bias: false, contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1,
 *   pairSubsampleRate: 1, singleGapPredictionMode: "eos" as const,
 * };
 * const model = await BST.create(gpu, config, { seed: 1337 });
 * const tokens = new Int32Array([1, 2, 3, 11, 4, 5, 6, 11]); // one row of T = 8
 * const enc = await model.encoders(1, 8);
 * const pairs = buildPairBatch(tokens, 1, 8, new PairSampler(config, 0), { pairBatchSize: 64 });
 * const head = model.pairHead(enc, pairs.count, true);
 * const opt = await AdamW.create(model, { beta1: 0.9, beta2: 0.95, weightDecay: 0.1, gradClip: 1 });
 * const step = await model.planMicroStep(enc, head, tokens, trainingPairList(pairs));
 * opt.setStep(3e-4, 1);
 * await run(gpu, [...await model.planZeroGrads(), ...step, ...opt.ops]);
 * console.log("loss", await head.readLoss(), "grad norm", (await opt.gradNorm()).total);
 * ```
 *
 * @module
 */

// GPU runtime: the shared device, tensors, and running planned ops.
export { getGpu, type Gpu } from "./src/gpu/device.ts";
export { type Op, run } from "./src/gpu/kernel.ts";
export { readTensor, type Tensor, uploadTensor } from "./src/gpu/tensor.ts";

// Models: the BST, the GPT baseline, their parameter lists and configs.
export { BST, type BstCreateOptions, type PairList, trainingPairList } from "./src/models/bst.ts";
export { type BstConfig, bstParamSpecs } from "./src/models/bst_config.ts";
export { fimLossMask, GPT, type GptConfig, gptParamSpecs } from "./src/models/gpt.ts";
export {
  bstConfigFor,
  createModel,
  type DataSizes,
  gptConfigFor,
} from "./src/models/from_config.ts";
export { type ParamSpec, swigluHidden } from "./src/models/param_specs.ts";
export { buildPairBatch, type PairBatch, PairSampler } from "./src/models/bst_pairs.ts";
export { documentLayout } from "./src/nn/positions.ts";

// Training pieces: the optimizer, the LR schedule, the config schema (YAML loading lives in
// src/config/load.ts, outside this npm-free graph).
export { AdamW, type AdamWConfig } from "./src/train/optimizer.ts";
export { learningRate } from "./src/train/lr_schedule.ts";
export { type Config, ConfigError, validateConfig } from "./src/config/schema.ts";
export { dotlistToTree, mergeConfig } from "./src/config/merge.ts";

// Checkpoints: safetensors with PyTorch names, and microsoft/BST's .pt files both ways (read
// without running pickle code; from bytes, so a browser can use them too).
export {
  fromFloat32,
  parseSafetensors,
  readSafetensors,
  type SafeTensor,
  type SafetensorsFile,
  serializeSafetensors,
  toFloat32,
  writeSafetensorsAtomic,
} from "./src/io/safetensors.ts";
export {
  isTorchCheckpoint,
  parseTorchCheckpoint,
  serializeTorchCheckpoint,
  TorchTensor,
} from "./src/io/torch_pt.ts";
export {
  fromTorchCheckpoint,
  parseCheckpoint,
  type TorchOptimizerSettings,
  toTorchCheckpoint,
} from "./src/train/torch_checkpoint.ts";

// Sampling.
export { BstSampler, type Generation, type SamplingOptions } from "./src/inference/bst_sampling.ts";
export { SAMPLING_MODES, type SamplingMode } from "./src/core/sampling_modes.ts";
export { gptPromptAndGoal, greedyDecode } from "./src/inference/greedy.ts";

// Data: the star graph (byte-identical to the reference), the reference's split and RNGs.
export { trainTestSplitIndices } from "./src/data/split.ts";
export {
  loadStarGraph,
  parseStarGraph,
  type StarGraphDataset,
  starGraphModelSizes,
} from "./src/data/stargraph.ts";
export { generateStarGraphFile, starGraphLine } from "./src/data/stargraph_generate.ts";
export { StarGraphTokenizer } from "./src/tokenizers/stargraph.ts";
export { type DecodeOptions, HfTokenizer } from "./src/tokenizers/hf_bpe.ts";
export { TINYSTORIES_EOS_ID, tinyStoriesTokenizer } from "./src/tokenizers/tinystories.ts";
export { numpyPermutation, PyRandom } from "./src/data/mt19937.ts";

// Conformance against the PyTorch fixtures.
export { type Check, conformance } from "./src/conformance/conformance.ts";
