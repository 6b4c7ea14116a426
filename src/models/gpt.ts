/**
 * The GPT baseline of microsoft/BST (`model_gpt.py`): the BST's forward encoder alone —
 * token embedding, L pre-norm blocks with RoPE on document-relative positions and the
 * document-causal mask, final norm — plus `lm_head` C→V. Loss: mean cross-entropy of
 * predicting `row[1:]` from `row[:-1]`; with `gpt_mode: fim`, targets outside the reference's
 * FIM loss mask are ignored. Parameter names start with `model.` (PyTorch layouts).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { IGNORE_INDEX, planCrossEntropy, planWeightedSum } from "../gpu/cross_entropy.ts";
import { type Op, run } from "../gpu/kernel.ts";
import { createTensor, readTensor, type Tensor, writeTensor } from "../gpu/tensor.ts";
import { type BlockShape, createBlockScratch } from "../nn/block.ts";
import { planLinear } from "../nn/linear.ts";
import { sequence } from "../nn/layer.ts";
import { planTrunk, TrunkInputs } from "../nn/trunk.ts";
import { DecodeStack } from "../nn/decode_stack.ts";
import { planLinearForward } from "../gpu/matmul.ts";
import type { SafeTensor } from "../io/safetensors.ts";
import { ParamListBuilder, type ParamSpec, swigluHidden } from "./param_specs.ts";
import { FlatParams, type ModelPrecision } from "./flat_params.ts";

/** GPT hyper-parameters (the reference's `GPTConfig`). */
export interface GptConfig {
  vocabSize: number;
  eosTokenId: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  bias: boolean;
  /** `fim`: loss only inside the FIM mask; needs `fimTokenId`. */
  mode: "next_token" | "fim";
  /** The `<|fim|>` token id in FIM mode (−1 otherwise). */
  fimTokenId: number;
}

/**
 * The GPT's parameters in PyTorch `named_parameters()` order.
 *
 * @example
 * ```ts
 * import { gptParamSpecs } from "./gpt.ts";
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   mode: "next_token" as const, fimTokenId: -1,
 * };
 * console.log(gptParamSpecs(cfg).map((s) => s.name).slice(0, 2));
 * // [ "model.token_embedding.weight", "model.transformer.blocks.0.ln_1.weight" ]
 * ```
 */
export function gptParamSpecs(cfg: GptConfig): ParamSpec[] {
  const b = new ParamListBuilder(cfg.bias);
  b.add("model.token_embedding.weight", [cfg.vocabSize, cfg.nEmbd], "model");
  b.stack("model.transformer", cfg.nLayer, cfg.nEmbd, "model");
  b.add("model.lm_head.weight", [cfg.vocabSize, cfg.nEmbd], "model");
  return b.specs;
}

/**
 * The reference's `_get_fim_loss_mask_fast` for targets (rows, n): treats each row as a slice
 * of alternating `<|fim|>` … EOS spans; loss only from a FIM token (exclusive) to the next EOS
 * (inclusive), FIM tokens never, and the row's first EOS never.
 *
 * @returns (rows, n) 1 where the target counts.
 *
 * @example EOS = 1, `<|fim|>` = 9: loss from the FIM token (exclusive) to the next EOS
 * ```ts
 * import { fimLossMask } from "./gpt.ts";
 * // targets of the row [EOS, s, s, FIM, p, p, EOS] (inputs row[:-1], targets row[1:])
 * console.log([...fimLossMask([5, 6, 9, 3, 4, 1], 1, 6, 1, 9)]); // [ 0, 0, 0, 1, 1, 1 ]
 * ```
 */
export function fimLossMask(
  targets: ArrayLike<number>,
  rows: number,
  n: number,
  eos: number,
  fim: number,
): Uint8Array {
  const mask = new Uint8Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let eosTotal = 0;
    let fimTotal = 0;
    for (let i = 0; i < n; i++) {
      if (targets[r * n + i] === eos) eosTotal++;
      if (targets[r * n + i] === fim) fimTotal++;
    }
    let eosCum = 0;
    let fimCum = 0;
    for (let i = 0; i < n; i++) {
      const t = targets[r * n + i];
      const isEos = t === eos;
      const isFim = t === fim;
      if (isEos) eosCum++;
      if (isFim) fimCum++;
      // reverse cumsum including the element itself: x + total − cumsum(x)
      const eosRev = (isEos ? 1 : 0) + eosTotal - eosCum;
      const fimRev = (isFim ? 1 : 0) + fimTotal - fimCum;
      let m = eosCum - fimCum <= 0 && eosRev - fimRev >= 0;
      if (isFim) m = false;
      if (isEos) m = true;
      if (isEos && eosCum === 1) m = false;
      mask[r * n + i] = m ? 1 : 0;
    }
  }
  return mask;
}

/** The GPT's incremental decoder: its stack with a K/V cache and `lm_head` on one state per row. */
export interface GptDecoder {
  stack: DecodeStack;
  /** (rows, C) states the head reads. */
  last: Tensor;
  /** (rows, V) next-token logits. */
  logits: Tensor;
  /** `lm_head`: last → logits. */
  head: Op;
}

/** A planned GPT for batches of (rows, seqLen) input tokens (targets are the next tokens). */
export class GptPlan {
  readonly n: number;
  /** Token ids, forward positions, document ids and embedding lists. */
  readonly inputs: TrunkInputs;
  logits!: Tensor; // (N, V), dlogits in place after the loss
  losses!: Tensor; // (N)
  targets!: Tensor; // (N) i32, IGNORE_INDEX ignored
  weights!: Tensor; // (N)
  lossOut!: Tensor; // (1)
  /** Forward to logits. */
  forward: Op[] = [];
  /** Weighted CE (logits → dlogits in place) and its sum into lossOut. */
  loss: Op[] = [];
  /** Backward from dlogits: lm_head, stack, embedding. */
  backward: Op[] = [];

  constructor(
    readonly model: GPT,
    readonly rows: number,
    readonly seqLen: number,
    readonly label: string,
  ) {
    const cfg = model.config;
    this.n = rows * seqLen;
    this.inputs = new TrunkInputs(
      model.gpu,
      label,
      rows,
      seqLen,
      cfg.vocabSize,
      cfg.eosTokenId,
      false,
    );
  }

  /** Writes input tokens (rows·seqLen), positions, document ids and embedding lists. */
  setTokens(tokens: Int32Array): void {
    this.inputs.setTokens(tokens);
  }

  /** Writes targets (IGNORE_INDEX: no loss) and their loss weights. */
  setTargets(targets: Int32Array, weights: Float32Array): void {
    writeTensor(this.model.gpu, this.targets, targets);
    writeTensor(this.model.gpu, this.weights, weights);
  }
}

/**
 * The GPT baseline: parameters in one flat buffer and plans over them.
 *
 * @example Logits of one row
 * ```ts
 * import { getGpu, GPT } from "../../mod.ts";
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   mode: "next_token" as const, fimTokenId: -1,
 * };
 * const gpt = await GPT.create(await getGpu(), cfg, { seed: 1 });
 * const logits = await gpt.logits(new Int32Array([7, 1, 2, 3]), 1, 4); // (1, 4, V)
 * console.log(logits.length); // 32
 * ```
 */
export class GPT extends FlatParams {
  readonly hidden: number;

  private constructor(gpu: Gpu, readonly config: GptConfig, label: string) {
    if (
      config.mode === "fim" && !(config.fimTokenId >= 0 && config.fimTokenId < config.vocabSize)
    ) {
      throw new Error(
        `FIM mode needs a fim token id inside the vocabulary, got ${config.fimTokenId}`,
      );
    }
    super(gpu, gptParamSpecs(config), label);
    this.hidden = swigluHidden(config.nEmbd);
  }

  /** Creates a GPT initialised from `seed` (N(0, 0.02) weights, unit norms, zero biases). */
  static async create(
    gpu: Gpu,
    config: GptConfig,
    options: { seed?: number; label?: string; precision?: ModelPrecision } = {},
  ): Promise<GPT> {
    const m = new GPT(gpu, config, options.label ?? "gpt");
    m.setPrecision(options.precision ?? "32-true");
    await m.initialise(options.seed ?? 1337);
    return m;
  }

  /** Loads parameters from safetensors entries; by default only names `model.…` are read. */
  override loadSafetensors(
    tensors: Map<string, SafeTensor>,
    source: string,
    ignore: (name: string) => boolean = (n) => !n.startsWith("model."),
  ): void {
    super.loadSafetensors(tensors, source, ignore);
  }

  /** The model planned for (rows, seqLen) inputs (cached). */
  plan(rows: number, seqLen: number): Promise<GptPlan> {
    return this.cached(`plan${rows}x${seqLen}`, () => this.#createPlan(rows, seqLen));
  }

  async #createPlan(rows: number, seqLen: number): Promise<GptPlan> {
    const gpu = this.gpu;
    const cfg = this.config;
    const C = cfg.nEmbd;
    const V = cfg.vocabSize;
    const l = `${this.label}.plan${rows}x${seqLen}`;
    const g = new GptPlan(this, rows, seqLen, l);
    const N = g.n;
    g.logits = createTensor(gpu, [N, V], `${l}.logits`);
    g.losses = createTensor(gpu, [N], `${l}.losses`);
    g.targets = createTensor(gpu, [N], `${l}.targets`, "i32");
    g.weights = createTensor(gpu, [N], `${l}.weights`);
    g.lossOut = createTensor(gpu, [1], `${l}.loss`);
    const out = createTensor(gpu, [N, C], `${l}.out`); // (N, C) after the final norm
    const dout = createTensor(gpu, [N, C], `${l}.dout`);
    const shape: BlockShape = {
      rows,
      seqLen,
      nEmbd: C,
      nHead: cfg.nHead,
      hidden: this.hidden,
      norm: cfg.bias ? "layer" : "rms",
      precision: this.matmulPrecision,
    };
    const scratch = createBlockScratch(gpu, shape, `${l}.scratch`, [[N, C, V]]); // + lm_head
    const trunk = await planTrunk(
      gpu,
      l,
      shape,
      g.inputs,
      {
        table: this.param("model.token_embedding.weight"),
        dtable: this.grad("model.token_embedding.weight"),
      },
      [{
        name: "transformer",
        direction: "forward",
        params: this.stackParams("model.transformer", cfg.nLayer),
        out,
        dout,
      }],
      scratch,
    );
    const lmHead = await planLinear(gpu, {
      x: out,
      y: g.logits,
      w: this.param("model.lm_head.weight"),
      dw: this.grad("model.lm_head.weight"),
      dy: g.logits,
      dx: dout,
      scratch: scratch.splitK,
    }, { precision: this.matmulPrecision });
    const all = sequence([trunk, lmHead]);
    g.forward = all.forward;
    g.backward = all.backward;
    g.loss = [
      ...await planCrossEntropy(gpu, g.logits, g.losses, g.targets, g.weights, this.lossScale),
      ...await planWeightedSum(gpu, g.lossOut, 0, g.losses, g.weights),
    ];
    return g;
  }

  /**
   * Targets and weights of the reference's `compute_loss` for a batch (rows, T): inputs are
   * `row[:-1]`, targets `row[1:]` (FIM-masked in FIM mode), weights 1/(count·accum) on the
   * counted targets — `F.cross_entropy`'s mean over non-ignored targets.
   */
  lossTargets(batch: Int32Array, rows: number, T: number, accum = 1): {
    inputs: Int32Array;
    targets: Int32Array;
    weights: Float32Array;
  } {
    const n = T - 1;
    const inputs = new Int32Array(rows * n);
    const targets = new Int32Array(rows * n);
    for (let r = 0; r < rows; r++) {
      inputs.set(batch.subarray(r * T, r * T + n), r * n);
      targets.set(batch.subarray(r * T + 1, (r + 1) * T), r * n);
    }
    if (this.config.mode === "fim") {
      const mask = fimLossMask(targets, rows, n, this.config.eosTokenId, this.config.fimTokenId);
      for (let i = 0; i < targets.length; i++) if (!mask[i]) targets[i] = IGNORE_INDEX;
    }
    const counted = targets.reduce((c, t) => c + (t === IGNORE_INDEX ? 0 : 1), 0);
    const weights = new Float32Array(targets.length);
    if (counted > 0) {
      for (let i = 0; i < targets.length; i++) {
        if (targets[i] !== IGNORE_INDEX) weights[i] = 1 / (counted * accum);
      }
    }
    return { inputs, targets, weights };
  }

  /** Ops of one training micro-batch (rows, T): forward, loss, backward. */
  async planMicroStep(
    batch: Int32Array,
    rows: number,
    T: number,
    accum = 1,
  ): Promise<{ plan: GptPlan; ops: Op[] }> {
    const plan = await this.plan(rows, T - 1);
    const { inputs, targets, weights } = this.lossTargets(batch, rows, T, accum);
    plan.setTokens(inputs);
    plan.setTargets(targets, weights);
    return { plan, ops: [...plan.forward, ...plan.loss, ...plan.backward] };
  }

  /**
   * The stack decoded incrementally with a K/V cache over `rows` rows of at most `capacity`
   * tokens (appended), with `lm_head` over one state per row: `head` computes `logits`
   * (rows, V) from `last` (rows, C). Cached per shape; callers share it, so each sets its
   * length first.
   */
  decoder(rows: number, capacity: number): Promise<GptDecoder> {
    return this.cached(`decoder${rows}x${capacity}`, async () => {
      const cfg = this.config;
      const l = `${this.label}.decoder${rows}x${capacity}`;
      const stack = await DecodeStack.create(
        this.gpu,
        l,
        {
          rows,
          capacity,
          nEmbd: cfg.nEmbd,
          nHead: cfg.nHead,
          hidden: this.hidden,
          norm: cfg.bias ? "layer" : "rms",
          vocabSize: cfg.vocabSize,
          eosTokenId: cfg.eosTokenId,
        },
        this.stackParams("model.transformer", cfg.nLayer),
        this.param("model.token_embedding.weight"),
        "forward",
      );
      const last = createTensor(this.gpu, [rows, cfg.nEmbd], `${l}.last`); // (rows, C)
      const logits = createTensor(this.gpu, [rows, cfg.vocabSize], `${l}.logits`); // (rows, V)
      const head = await planLinearForward(this.gpu, {
        out: logits,
        x: last,
        w: this.param("model.lm_head.weight"),
      });
      return { stack, last, logits, head };
    });
  }

  /** Logits (rows, seqLen, V) of a batch of inputs. */
  async logits(tokens: Int32Array, rows: number, seqLen: number): Promise<Float32Array> {
    const plan = await this.plan(rows, seqLen);
    plan.setTokens(tokens);
    await run(this.gpu, plan.forward);
    return await readTensor(this.gpu, plan.logits);
  }
}
