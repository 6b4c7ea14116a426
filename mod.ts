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

export * from "./src/gpu/device.ts";
export * from "./src/gpu/tensor.ts";
export * from "./src/gpu/kernel.ts";
export * from "./src/gpu/index_lists.ts";
export * from "./src/gpu/elementwise.ts";
export * from "./src/train/safetensors.ts";
export * from "./src/train/param_table.ts";
export * from "./src/train/optimizer.ts";
export * from "./src/train/lr_schedule.ts";
export * from "./src/config/schema.ts";
export * from "./src/config/merge.ts";
export * from "./src/models/bst_config.ts";
export * from "./src/models/bst.ts";
export * from "./src/models/bst_pairs.ts";
export * from "./src/models/bst_eval_pairs.ts";
export * from "./src/models/positions.ts";
export * from "./src/models/conformance.ts";
export * from "./src/models/gpt.ts";
export * from "./src/models/flat_params.ts";
export {
  BstSampler,
  type Generation,
  SAMPLING_MODES,
  type SamplingOptions,
} from "./src/inference/bst_sampling.ts";
export * from "./src/inference/greedy.ts";
export * from "./src/data/split.ts";
export * from "./src/data/stargraph.ts";
export * from "./src/data/stargraph_generate.ts";
export * from "./src/tokenizers/stargraph.ts";
export * from "./src/tokenizers/hf_bpe.ts";
export * from "./src/tokenizers/tinystories.ts";
