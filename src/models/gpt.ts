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
import { planCrossEntropy, planWeightedSum } from "../gpu/cross_entropy.ts";
import { buildCsr } from "../gpu/index_lists.ts";
import type { CsrTensors } from "../gpu/gather.ts";
import { type Op, run } from "../gpu/kernel.ts";
import { createTensor, readTensor, type Tensor, writeTensor } from "../gpu/tensor.ts";
import { type BlockParams, type BlockShape, createBlockScratch } from "../nn/block.ts";
import { planEmbeddingLayer } from "../nn/embedding.ts";
import { planStack } from "../nn/encoder.ts";
import { planLinear } from "../nn/linear.ts";
import { sequence } from "../nn/layer.ts";
import type { SafeTensor } from "../train/safetensors.ts";
import { type ParamSpec, swigluHidden } from "./bst_config.ts";
import { FlatParams } from "./flat_params.ts";
import { documentLayout } from "./positions.ts";

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

/** The GPT's parameters in PyTorch `named_parameters()` order. */
export function gptParamSpecs(cfg: GptConfig): ParamSpec[] {
  const C = cfg.nEmbd;
  const hidden = swigluHidden(C);
  const specs: ParamSpec[] = [];
  const add = (name: string, shape: number[], init?: ParamSpec["init"]) =>
    specs.push({
      name,
      shape,
      decay: shape.length >= 2,
      module: "model",
      init: init ?? (shape.length >= 2 ? "normal" : "zeros"),
    });
  const norm = (p: string) => {
    add(`${p}.weight`, [C], "ones");
    if (cfg.bias) add(`${p}.bias`, [C], "zeros");
  };
  const linear = (p: string, out: number, inp: number) => {
    add(`${p}.weight`, [out, inp]);
    if (cfg.bias) add(`${p}.bias`, [out]);
  };
  add("model.token_embedding.weight", [cfg.vocabSize, C]);
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `model.transformer.blocks.${l}`;
    norm(`${p}.ln_1`);
    linear(`${p}.attn.c_attn`, 3 * C, C);
    linear(`${p}.attn.c_proj`, C, C);
    norm(`${p}.ln_2`);
    linear(`${p}.mlp.up.gate_up`, 2 * hidden, C);
    linear(`${p}.mlp.down`, C, hidden);
  }
  norm("model.transformer.norm");
  add("model.lm_head.weight", [cfg.vocabSize, C]);
  return specs;
}

/**
 * The reference's `_get_fim_loss_mask_fast` for targets (rows, n): treats each row as a slice
 * of alternating `<|fim|>` … EOS spans; loss only from a FIM token (exclusive) to the next EOS
 * (inclusive), FIM tokens never, and the row's first EOS never.
 *
 * @returns (rows, n) 1 where the target counts.
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

/** A planned GPT for batches of (rows, seqLen) input tokens (targets are the next tokens). */
export class GptPlan {
  readonly n: number;
  tokens!: Tensor;
  pos!: Tensor;
  doc!: Tensor;
  embCsr!: CsrTensors;
  logits!: Tensor; // (N, V), dlogits in place after the loss
  losses!: Tensor; // (N)
  targets!: Tensor; // (N) i32, −100 ignored
  weights!: Tensor; // (N)
  lossOut!: Tensor; // (1)
  /** Forward to logits. */
  forward: Op[] = [];
  /** Weighted CE (logits → dlogits in place) and its sum into lossOut. */
  loss: Op[] = [];
  /** Backward from dlogits: lm_head, stack, embedding. */
  backward: Op[] = [];

  constructor(readonly model: GPT, readonly rows: number, readonly seqLen: number) {
    this.n = rows * seqLen;
  }

  /** Writes input tokens (rows·seqLen), positions, document ids and embedding lists. */
  setTokens(tokens: Int32Array): void {
    const cfg = this.model.config;
    if (tokens.length !== this.n) {
      throw new Error(`Expected ${this.rows}×${this.seqLen} tokens, got ${tokens.length}`);
    }
    for (let i = 0; i < tokens.length; i++) {
      if (!(tokens[i] >= 0 && tokens[i] < cfg.vocabSize)) {
        throw new Error(`Token ${tokens[i]} at ${i} is outside the vocabulary of ${cfg.vocabSize}`);
      }
    }
    const gpu = this.model.gpu;
    const layout = documentLayout(tokens, this.rows, this.seqLen, cfg.eosTokenId);
    writeTensor(gpu, this.tokens, tokens);
    writeTensor(gpu, this.pos, layout.posF);
    writeTensor(gpu, this.doc, layout.docF);
    const csr = buildCsr(tokens, cfg.vocabSize);
    writeTensor(gpu, this.embCsr.offsets, csr.offsets);
    writeTensor(gpu, this.embCsr.items, csr.items);
  }

  /** Writes targets (−100 ignored) and their loss weights. */
  setTargets(targets: Int32Array, weights: Float32Array): void {
    writeTensor(this.model.gpu, this.targets, targets);
    writeTensor(this.model.gpu, this.weights, weights);
  }
}

/** The GPT baseline: parameters in one flat buffer and plans over them. */
export class GPT extends FlatParams {
  readonly hidden: number;
  #plans = new Map<string, Promise<GptPlan>>();

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
    options: { seed?: number; label?: string } = {},
  ): Promise<GPT> {
    const m = new GPT(gpu, config, options.label ?? "gpt");
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

  private blockParams(l: number): BlockParams {
    const p = `model.transformer.blocks.${l}`;
    return {
      ln1: this.group(`${p}.ln_1`),
      attn: this.group(`${p}.attn.c_attn`),
      proj: this.group(`${p}.attn.c_proj`),
      ln2: this.group(`${p}.ln_2`),
      gateUp: this.group(`${p}.mlp.up.gate_up`),
      down: this.group(`${p}.mlp.down`),
    };
  }

  /** The model planned for (rows, seqLen) inputs (cached). */
  plan(rows: number, seqLen: number): Promise<GptPlan> {
    const key = `${rows}x${seqLen}`;
    let p = this.#plans.get(key);
    if (!p) {
      p = this.#createPlan(rows, seqLen);
      this.#plans.set(key, p);
      p.catch(() => this.#plans.delete(key));
    }
    return p;
  }

  async #createPlan(rows: number, seqLen: number): Promise<GptPlan> {
    const gpu = this.gpu;
    const cfg = this.config;
    const C = cfg.nEmbd;
    const V = cfg.vocabSize;
    const g = new GptPlan(this, rows, seqLen);
    const N = g.n;
    const l = `${this.label}.plan${rows}x${seqLen}`;
    g.tokens = createTensor(gpu, [N], `${l}.tokens`, "i32");
    g.pos = createTensor(gpu, [N], `${l}.pos`, "i32");
    g.doc = createTensor(gpu, [rows, seqLen], `${l}.doc`, "i32");
    g.embCsr = {
      offsets: createTensor(gpu, [V + 1], `${l}.emb_csr.offsets`, "i32"),
      items: createTensor(gpu, [N], `${l}.emb_csr.items`, "i32"),
    };
    g.logits = createTensor(gpu, [N, V], `${l}.logits`);
    g.losses = createTensor(gpu, [N], `${l}.losses`);
    g.targets = createTensor(gpu, [N], `${l}.targets`, "i32");
    g.weights = createTensor(gpu, [N], `${l}.weights`);
    g.lossOut = createTensor(gpu, [1], `${l}.loss`);
    const emb = createTensor(gpu, [N, C], `${l}.emb`); // (N, C)
    const out = createTensor(gpu, [N, C], `${l}.out`); // (N, C) after the final norm
    const dout = createTensor(gpu, [N, C], `${l}.dout`);
    const dres = createTensor(gpu, [N, C], `${l}.dres`);
    const shape: BlockShape = {
      rows,
      seqLen,
      nEmbd: C,
      nHead: cfg.nHead,
      hidden: this.hidden,
      norm: cfg.bias ? "layer" : "rms",
    };
    const scratch = createBlockScratch(gpu, shape, `${l}.scratch`);
    const embedding = await planEmbeddingLayer(gpu, {
      tokens: g.tokens,
      table: this.param("model.token_embedding.weight"),
      dtable: this.grad("model.token_embedding.weight"),
      out: emb,
      dout: dres,
      csr: g.embCsr,
    });
    const normName = "model.transformer.norm";
    const stack = await planStack(
      gpu,
      `${l}.transformer`,
      shape,
      {
        blocks: Array.from({ length: cfg.nLayer }, (_, i) => this.blockParams(i)),
        norm: this.group(normName),
      },
      { emb, out, dout, dres, pos: g.pos, doc: g.doc, direction: "forward" },
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
    });
    const all = sequence([embedding, stack, lmHead]);
    g.forward = all.forward;
    g.backward = all.backward;
    g.loss = [
      ...await planCrossEntropy(gpu, g.logits, g.losses, g.targets, g.weights),
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
      for (let i = 0; i < targets.length; i++) if (!mask[i]) targets[i] = -100;
    }
    const counted = targets.reduce((c, t) => c + (t === -100 ? 0 : 1), 0);
    const weights = new Float32Array(targets.length);
    if (counted > 0) {
      for (let i = 0; i < targets.length; i++) {
        if (targets[i] !== -100) weights[i] = 1 / (counted * accum);
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

  /** Logits (rows, seqLen, V) of a batch of inputs. */
  async logits(tokens: Int32Array, rows: number, seqLen: number): Promise<Float32Array> {
    const plan = await this.plan(rows, seqLen);
    plan.setTokens(tokens);
    await run(this.gpu, plan.forward);
    return await readTensor(this.gpu, plan.logits);
  }
}
