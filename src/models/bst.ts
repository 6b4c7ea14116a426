/**
 * The Belief State Transformer on WebGPU (Hu et al., ICLR 2025; reference: microsoft/BST
 * `model_bst.py`). Reading order, top to bottom:
 *
 * 1. **Parameters**: one flat f32 buffer (and one for gradients) laid out by a
 *    {@linkcode ParamTable} built from {@linkcode bstParamSpecs} — the same ordered list that
 *    names the safetensors entries (PyTorch names and layouts).
 * 2. **Encoders** ({@linkcode EncoderPlan}): the shared token embedding, the forward stack
 *    (`transformer_f`, causal document mask, forward positions) and the backward stack
 *    (`transformer_b`, anti-causal mask, backward positions), each L blocks and a final norm.
 *    Encoder outputs get one spare row at index N = rows·T for the lone-EOS state that the
 *    evaluation loss and the samplers pair with.
 * 3. **Text head** ({@linkcode PairHead}): chunks of (forward state, backward state) pairs →
 *    concat → residual SwiGLU MLP → norm → shared `lm_head` on both halves → weighted
 *    cross-entropy whose weights carry the reference's chunk-mean-per-row, mean-over-rows loss.
 * 4. **Backward**: every chunk accumulates into dL/dF and dL/dB; then one backward pass through
 *    both encoders (the reference's detach-and-accumulate scheme).
 *
 * The pair lists, weights, positions and document ids are built on the CPU from the token ids
 * (which the CPU has anyway); a training step never reads activations back.
 *
 * @module
 */

import { IGNORE_INDEX } from "../gpu/cross_entropy.ts";
import type { Gpu } from "../gpu/device.ts";
import { planFill } from "../gpu/elementwise.ts";
import { buildCsr } from "../gpu/index_lists.ts";
import type { CsrTensors } from "../gpu/gather.ts";
import { type Op, planCopyRows, run, submit } from "../gpu/kernel.ts";
import { Readback } from "../gpu/readback.ts";
import { createTensor, readTensor, roundUp, type Tensor, writeTensor } from "../gpu/tensor.ts";
import { type BlockShape, createBlockScratch } from "../nn/block.ts";
import type { NormKind } from "../nn/norm.ts";
import {
  createTextHeadActivations,
  planTextHead,
  type TextHeadActivations,
  type TextHeadParams,
  type TextHeadShape,
} from "../nn/text_head.ts";
import { type Direction, planTrunk, TrunkInputs, type TrunkStack } from "../nn/trunk.ts";
import { DecodeStack } from "../nn/decode_stack.ts";
import type { SafeTensor } from "../io/safetensors.ts";
import { FlatParams, type ModelPrecision } from "./flat_params.ts";
import { type BstConfig, bstParamSpecs, validateBstConfig } from "./bst_config.ts";
import { swigluHidden } from "./param_specs.ts";
import type { PairBatch } from "./bst_pairs.ts";
import { buildEvalPairs, type EvalPairs } from "./bst_eval_pairs.ts";

/** Options of {@linkcode BST.create}. */
export interface BstCreateOptions {
  /** Seed of the N(0, 0.02) initialisation (default 1337). */
  seed?: number;
  /** Label prefix of GPU objects (default "bst"). */
  label?: string;
  /** Numeric precision (default "32-true"; "16-mixed" needs `shader-f16`). */
  precision?: ModelPrecision;
}

/** A list of pairs for the text head (flat over the batch), e.g. from `buildPairBatch`. */
export interface PairList {
  /** Number of pairs. */
  count: number;
  /** (count) rows of the forward-state table (b·T + t_f, or N for the lone EOS state). */
  fIndex: Int32Array;
  /** (count) rows of the backward-state table. */
  bIndex: Int32Array;
  /** (count) next-token targets (−100: no next-token loss for this pair). */
  nextTarget: Int32Array;
  /** (count) previous-token targets (−100: none). */
  prevTarget: Int32Array;
  /** (count) weight of each pair's next-token CE. */
  nextWeight: Float32Array;
  /** (count) weight of each pair's previous-token CE. */
  prevWeight: Float32Array;
}

/** Chunks one {@linkcode PairHead} can run per pair list (one loss slot each). */
const MAX_CHUNKS = 4096;

/** Default budget for one text-head chunk's activations (bytes). */
const TEXT_HEAD_BUDGET = 512 * 1024 * 1024;

/**
 * The Belief State Transformer: parameters on the GPU and plans over them.
 *
 * @example The evaluation loss of one row
 * ```ts
 * import { BST, getGpu } from "../../mod.ts";
 * const gpu = await getGpu();
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1, pairSubsampleRate: 1,
 *   singleGapPredictionMode: "eos" as const,
 * };
 * const model = await BST.create(gpu, cfg, { seed: 1 });
 * const { next, prev } = await model.evaluationLoss(new Int32Array([1, 2, 3, 7]), 1, 4);
 * console.log(next[0] > 0 && prev[0] > 0); // true (about ln 8 at initialisation)
 * ```
 */
export class BST extends FlatParams {
  /** Hidden width of the encoder MLPs. */
  readonly hidden: number;
  /** Hidden width of the text-head MLP. */
  readonly headHidden: number;
  readonly norm: NormKind;
  #evalHeads = new Map<EncoderPlan, PairHead>();

  private constructor(gpu: Gpu, readonly config: BstConfig, label: string) {
    validateBstConfig(config);
    super(gpu, bstParamSpecs(config), label);
    this.hidden = swigluHidden(config.nEmbd);
    this.headHidden = swigluHidden(2 * config.nEmbd);
    this.norm = config.bias ? "layer" : "rms";
  }

  /**
   * Creates a BST with parameters initialised from `seed` (N(0, 0.02) weights, unit norm
   * weights, zero biases).
   */
  static async create(gpu: Gpu, config: BstConfig, options: BstCreateOptions = {}): Promise<BST> {
    const model = new BST(gpu, config, options.label ?? "bst");
    model.setPrecision(options.precision ?? "32-true");
    await model.initialise(options.seed ?? 1337);
    return model;
  }

  /**
   * Loads parameters from safetensors entries under PyTorch names (`encoder.…`,
   * `text_head.…`); by default every other entry (e.g. `optimizer.…`) is ignored.
   */
  override loadSafetensors(
    tensors: Map<string, SafeTensor>,
    source: string,
    ignore: (name: string) => boolean = (n) =>
      !(n.startsWith("encoder.") || n.startsWith("text_head.")),
  ): void {
    super.loadSafetensors(tensors, source, ignore);
  }

  /** Parameter/gradient views of the text head. */
  headParams(): TextHeadParams {
    return {
      gateUp: this.group("text_head.mlp.0.gate_up"),
      down: this.group("text_head.mlp.2"),
      norm: this.group("text_head.norm"),
      lmHead: {
        w: this.param("text_head.lm_head.weight"),
        dw: this.grad("text_head.lm_head.weight"),
      },
    };
  }

  /**
   * The encoders planned for batches of `rows` rows of `seqLen` tokens (cached). With
   * `withBackward` false (inference) the plan has no backward ops: no backward kernel is
   * compiled or bound. Training and the validation that shares its plan keep the default.
   */
  encoders(rows: number, seqLen: number, withBackward = true): Promise<EncoderPlan> {
    const key = `encoders${rows}x${seqLen}${withBackward ? "" : "_fwd"}`;
    return this.cached(key, () => EncoderPlan.create(this, rows, seqLen, withBackward));
  }

  /**
   * One encoder decoded incrementally with a K/V cache over `rows` rows of at most `capacity`
   * tokens (cached per shape; callers share it, so each sets its length first): `"forward"` is
   * `transformer_f` with tokens appended, `"backward"` is `transformer_b` with tokens prepended
   * (a fixed goal grown towards its front).
   */
  decoder(direction: Direction, rows: number, capacity: number): Promise<DecodeStack> {
    const dir = direction === "forward" ? "f" : "b";
    const cfg = this.config;
    return this.cached(`decoder_${dir}${rows}x${capacity}`, () =>
      DecodeStack.create(
        this.gpu,
        `${this.label}.decoder_${dir}${rows}x${capacity}`,
        {
          rows,
          capacity,
          nEmbd: cfg.nEmbd,
          nHead: cfg.nHead,
          hidden: this.hidden,
          norm: this.norm,
          vocabSize: cfg.vocabSize,
          eosTokenId: cfg.eosTokenId,
        },
        this.stackParams(`encoder.transformer_${dir}`, cfg.nLayer),
        this.param("encoder.token_embedding.weight"),
        direction,
      ));
  }

  /**
   * A text head over the states of `enc` with chunks of at most `maxPairs` pairs (rounded to
   * 64; also capped by the adapter's binding limit and a memory budget). With `tight` the chunk
   * is rounded only as far as its tensor views need (1 pair when C is a multiple of 64): for
   * the few pairs of a decoding step, which then do not pay for 64.
   */
  pairHead(enc: StateTables, maxPairs: number, withBackward: boolean, tight = false): PairHead {
    return new PairHead(this, enc, maxPairs, withBackward, tight);
  }

  /**
   * Ops of one training micro-batch: zero dL/d(outputs), both encoders forward, every text-head
   * chunk (forward, weighted loss, backward), then one backward pass through both encoders.
   * Parameter gradients accumulate (zero them with {@linkcode BST.planZeroGrads} per step).
   * `head` must be planned over `enc` with backward.
   */
  async planMicroStep(
    enc: EncoderPlan,
    head: PairHead,
    tokens: Int32Array,
    pairs: PairList,
  ): Promise<Op[]> {
    if (!enc.withBackward) throw new Error(`${enc.label} was planned without backward`);
    enc.setTokens(tokens);
    const chunks = await head.setPairs(pairs);
    return [...enc.zeroDout, ...enc.forward, ...chunks, ...enc.backward];
  }

  /**
   * The reference's `evaluation_loss` with no prefix/suffix: per row, the mean
   * next-token CE pairing each forward state (an EOS state first) with the lone-EOS backward
   * state, and the mirrored previous-token CE. Reads losses back (one wait; not for use inside
   * a step).
   *
   * @param tokens (rows, seqLen) token ids.
   * @returns per-row next- and previous-token losses.
   */
  async evaluationLoss(
    tokens: Int32Array,
    rows: number,
    seqLen: number,
  ): Promise<{ next: Float64Array; prev: Float64Array }> {
    const rb = new Readback(this.gpu, `${this.label}.eval`, Math.max(1, 2 * rows * seqLen));
    let out: { next: Float64Array; prev: Float64Array } | undefined;
    try {
      submit(this.gpu, await this.planEvaluationLoss(tokens, rows, seqLen, rb, (r) => out = r));
      await rb.read();
    } finally {
      rb.destroy();
    }
    return out!;
  }

  /**
   * {@linkcode BST.evaluationLoss} without waiting: writes the inputs (of the cached
   * `encoders(rows, seqLen)` plan), returns the ops of one submission — both encoders, then
   * each text-head chunk followed by the copy of its losses into `into` — and hands the per-row
   * losses to `use` when `into` is read. `into` needs room for 2·rows·seqLen values (reserve
   * them first); submit the ops before writing that plan's inputs again.
   */
  async planEvaluationLoss(
    tokens: Int32Array,
    rows: number,
    seqLen: number,
    into: Readback,
    use: (losses: { next: Float64Array; prev: Float64Array }) => void,
  ): Promise<Op[]> {
    const eos = await this.encoders(1, 1, false); // the lone EOS: never trained
    eos.setTokens(new Int32Array([this.config.eosTokenId]));
    const enc = await this.encoders(rows, seqLen);
    enc.setTokens(tokens);
    const ops: Op[] = [...eos.forward, ...enc.forward, ...enc.copyEosStates(eos)];
    const list = evaluationPairList(buildEvalPairs(tokens, rows, seqLen));
    const head = this.#evalHeads.get(enc) ?? this.pairHead(enc, list.count, false);
    this.#evalHeads.set(enc, head);
    const chunks = await head.setPairChunks(list);
    const next = new Float64Array(rows);
    const prev = new Float64Array(rows);
    const N = rows * seqLen; // pairs 0…N−1 score next tokens, N…2N−1 previous tokens
    const P = head.cap;
    const losses = head.acts.losses; // (2P) [next CE; prev CE] of the chunk just run
    for (let k = 0; k < chunks.length; k++) {
      ops.push(...chunks[k]);
      // pairs k·P + p, p in [0, nextEnd) are next-token ones, [prevStart, prevEnd) previous
      const nextEnd = Math.max(0, Math.min(P, N - k * P));
      const prevStart = Math.min(P, Math.max(0, N - k * P));
      const prevEnd = Math.max(prevStart, Math.min(P, list.count - k * P));
      const copyNext = into.copy(losses, 0, nextEnd, (v) => {
        for (let p = 0; p < v.length; p++) next[Math.floor((k * P + p) / seqLen)] += v[p] / seqLen;
      });
      const copyPrev = into.copy(losses, P + prevStart, prevEnd - prevStart, (v) => {
        for (let i = 0; i < v.length; i++) {
          const g = k * P + prevStart + i;
          prev[Math.floor((g - N) / seqLen)] += v[i] / seqLen;
        }
      });
      for (const c of [copyNext, copyPrev]) if (c) ops.push(c);
    }
    into.after(() => use({ next, prev }));
    return ops;
  }
}

/**
 * Tables of forward and backward states a {@linkcode PairHead} reads (and, for training, the
 * gradients it scatters into): an {@linkcode EncoderPlan}'s outputs, or {@linkcode StateSlots}.
 */
export interface StateTables {
  /** (Nf, C) forward states. */
  outF: Tensor;
  /** (Nb, C) backward states. */
  outB: Tensor;
  /** dL/d(outF), dL/d(outB) (used only by heads planned with backward). */
  doutF: Tensor;
  doutB: Tensor;
}

/**
 * A few rows of forward and backward states filled by copies from encoder plans, so states
 * of different sequences (a prefix's last forward state, a goal's first backward state) can be
 * paired by one text head — what the samplers need.
 */
export class StateSlots implements StateTables {
  readonly outF: Tensor;
  readonly outB: Tensor;
  readonly doutF: Tensor;
  readonly doutB: Tensor;

  constructor(readonly model: BST, readonly rows: number) {
    const C = model.config.nEmbd;
    const l = `${model.label}.slots${rows}`;
    this.outF = createTensor(model.gpu, [rows, C], `${l}.f`);
    this.outB = createTensor(model.gpu, [rows, C], `${l}.b`);
    this.doutF = this.outF;
    this.doutB = this.outB;
  }

  /** Op copying forward state `row` of `enc` into slot `slot`. */
  copyForward(enc: EncoderPlan, row: number, slot: number): Op {
    return planCopyRows(enc.outF, row, this.outF, slot, 1, this.model.config.nEmbd);
  }

  /** Op copying backward state `row` of `enc` into slot `slot`. */
  copyBackward(enc: EncoderPlan, row: number, slot: number): Op {
    return planCopyRows(enc.outB, row, this.outB, slot, 1, this.model.config.nEmbd);
  }
}

/**
 * Both encoders planned for a fixed (rows, seqLen): the trunk (shared embedding, forward and
 * backward stacks) with its token inputs, outputs, and forward and backward op lists.
 */
export class EncoderPlan implements StateTables {
  /** rows·seqLen. */
  readonly n: number;
  /** Token ids, positions, document ids and embedding lists of both directions. */
  readonly inputs: TrunkInputs;
  /** (N + 1, C) encoder outputs; row N is free for the lone-EOS state. */
  readonly outF: Tensor;
  readonly outB: Tensor;
  /** (N + 1, C) gradients of the outputs (accumulated by the text head). */
  readonly doutF: Tensor;
  readonly doutB: Tensor;
  /** Forward ops: embedding, forward stack, backward stack. */
  forward: Op[] = [];
  /**
   * Backward ops: both stacks in reverse, each followed by the embedding backward (empty in a
   * plan made without backward, see `withBackward`).
   */
  backward: Op[] = [];
  /** Ops zeroing doutF and doutB. */
  zeroDout: Op[] = [];

  private constructor(
    readonly model: BST,
    readonly rows: number,
    readonly seqLen: number,
    readonly label: string,
    /** Whether the backward was planned (false: forward only, for inference). */
    readonly withBackward: boolean,
  ) {
    const gpu = model.gpu;
    const cfg = model.config;
    const C = cfg.nEmbd;
    const N = rows * seqLen;
    this.n = N;
    this.inputs = new TrunkInputs(gpu, label, rows, seqLen, cfg.vocabSize, cfg.eosTokenId, true);
    this.outF = createTensor(gpu, [N + 1, C], `${label}.out_f`);
    this.outB = createTensor(gpu, [N + 1, C], `${label}.out_b`);
    this.doutF = createTensor(gpu, [N + 1, C], `${label}.dout_f`);
    this.doutB = createTensor(gpu, [N + 1, C], `${label}.dout_b`);
  }

  /** Plans both encoders for (rows, seqLen), with their backward unless `withBackward` is false. */
  static async create(
    model: BST,
    rows: number,
    seqLen: number,
    withBackward = true,
  ): Promise<EncoderPlan> {
    const gpu = model.gpu;
    const cfg = model.config;
    const label = `${model.label}.enc${rows}x${seqLen}${withBackward ? "" : "_fwd"}`;
    const e = new EncoderPlan(model, rows, seqLen, label, withBackward);
    const N = e.n;
    const shape: BlockShape = {
      rows,
      seqLen,
      nEmbd: cfg.nEmbd,
      nHead: cfg.nHead,
      hidden: model.hidden,
      norm: model.norm,
      precision: model.matmulPrecision,
      forwardOnly: !withBackward,
    };
    const stack = (dir: "f" | "b"): TrunkStack => ({
      name: `transformer_${dir}`,
      direction: dir === "f" ? "forward" : "backward",
      params: model.stackParams(`encoder.transformer_${dir}`, cfg.nLayer),
      out: (dir === "f" ? e.outF : e.outB).rows(0, N),
      dout: (dir === "f" ? e.doutF : e.doutB).rows(0, N),
    });
    const trunk = await planTrunk(
      gpu,
      e.label,
      shape,
      e.inputs,
      {
        table: model.param("encoder.token_embedding.weight"),
        dtable: model.grad("encoder.token_embedding.weight"),
      },
      [stack("f"), stack("b")],
      createBlockScratch(gpu, shape, `${e.label}.scratch`),
    );
    e.forward = trunk.forward;
    e.backward = trunk.backward;
    if (withBackward) {
      e.zeroDout = [await planFill(gpu, e.doutF, 0), await planFill(gpu, e.doutB, 0)];
    }
    return e;
  }

  /**
   * Writes a batch of token rows (rows·seqLen ids) with its positions, document ids and
   * embedding scatter lists. Throws on a token outside the vocabulary.
   */
  setTokens(tokens: Int32Array): void {
    this.inputs.setTokens(tokens);
  }

  /** Ops copying the lone-EOS states (row 0 of `eos`, a 1×1 plan) into row N. */
  copyEosStates(eos: EncoderPlan): Op[] {
    const C = this.model.config.nEmbd;
    return [
      planCopyRows(eos.outF, 0, this.outF, this.n, 1, C),
      planCopyRows(eos.outB, 0, this.outB, this.n, 1, C),
    ];
  }
}

/** Per-chunk index, target and weight buffers of a {@linkcode PairHead}. */
interface ChunkBuffers {
  ia: Tensor;
  ib: Tensor;
  targets: Tensor;
  weights: Tensor;
  csrA?: CsrTensors;
  csrB?: CsrTensors;
  ops: Op[];
}

/**
 * The text head over an encoder plan's states, in chunks of at most {@linkcode PairHead.cap}
 * pairs. Plans for chunk k are made on first use and reused; a short last chunk is padded
 * with index −1, target −100 and weight 0.
 */
export class PairHead {
  /** Pair capacity of one chunk (a multiple of 64; of less for a tight head). */
  readonly cap: number;
  readonly shape: TextHeadShape;
  readonly acts: TextHeadActivations;
  /** Loss slots, one per chunk: chunk k writes Σ weight·CE of its pairs to slot k. */
  lossOut: Tensor;
  #chunks: Promise<ChunkBuffers>[] = [];
  #used = 0;
  #logitsOps?: Promise<Op[]>;

  constructor(
    readonly model: BST,
    readonly enc: StateTables,
    maxPairs: number,
    readonly withBackward: boolean,
    tight = false,
  ) {
    const cfg = model.config;
    const C = cfg.nEmbd;
    const H = model.headHidden;
    const V = cfg.vocabSize;
    const widest = Math.max(2 * H, 2 * C, 2 * V);
    const byBinding = Math.floor(model.gpu.limits.maxStorageBufferBindingSize / (4 * 2 * widest));
    const perPair = 4 * (2 * C * 6 + 2 * H * 2 + H * 2 + 2 * V + 2 * C * 2);
    const byBudget = Math.floor(TEXT_HEAD_BUDGET / perPair);
    // The previous-token half of the stacked (2P, C) head input is a view at byte offset 4·P·C,
    // which storage bindings need 256-aligned: P a multiple of 64 / gcd(C, 64).
    let g = 64;
    for (let a = C; a % 2 === 0 && g > 1; a /= 2) g /= 2;
    const unit = tight ? g : 64;
    const cap = Math.min(roundUp(Math.max(1, maxPairs), unit), byBinding, byBudget);
    this.cap = Math.max(unit, Math.floor(cap / unit) * unit);
    this.shape = {
      pairs: this.cap,
      nEmbd: C,
      hidden: H,
      vocab: V,
      norm: model.norm,
      precision: model.matmulPrecision,
    };
    this.acts = createTextHeadActivations(model.gpu, this.shape, `${model.label}.head${this.cap}`);
    this.lossOut = createTensor(model.gpu, [MAX_CHUNKS], `${model.label}.head${this.cap}.loss`);
  }

  /** Number of chunks used by the last {@linkcode PairHead.setPairs}. */
  get chunksUsed(): number {
    return this.#used;
  }

  private chunk(k: number): Promise<ChunkBuffers> {
    this.#chunks[k] ??= this.planChunk(k);
    return this.#chunks[k];
  }

  private async planChunk(k: number): Promise<ChunkBuffers> {
    const gpu = this.model.gpu;
    const P = this.cap;
    const l = `${this.model.label}.head${P}.chunk${k}`;
    if (k >= this.lossOut.numel) {
      throw new Error(`Too many text-head chunks (${k + 1}) for ${this.lossOut.numel} loss slots`);
    }
    const c: ChunkBuffers = {
      ia: createTensor(gpu, [P], `${l}.ia`, "i32"),
      ib: createTensor(gpu, [P], `${l}.ib`, "i32"),
      targets: createTensor(gpu, [2 * P], `${l}.targets`, "i32"),
      weights: createTensor(gpu, [2 * P], `${l}.weights`),
      ops: [],
    };
    if (this.withBackward) {
      const nf = this.enc.outF.shape[0];
      const nb = this.enc.outB.shape[0];
      c.csrA = {
        offsets: createTensor(gpu, [nf + 1], `${l}.csr_a.offsets`, "i32"),
        items: createTensor(gpu, [P], `${l}.csr_a.items`, "i32"),
      };
      c.csrB = {
        offsets: createTensor(gpu, [nb + 1], `${l}.csr_b.offsets`, "i32"),
        items: createTensor(gpu, [P], `${l}.csr_b.items`, "i32"),
      };
    }
    const plan = await planTextHead(gpu, l, this.shape, this.model.headParams(), this.acts, c, {
      F: this.enc.outF,
      B: this.enc.outB,
      dF: this.withBackward ? this.enc.doutF : undefined,
      dB: this.withBackward ? this.enc.doutB : undefined,
      lossOut: this.lossOut,
      lossSlot: k,
      lossScale: this.withBackward ? this.model.lossScale : undefined,
    });
    // Without backward (validation, evaluation) only the forward and the loss run: the
    // backward would still accumulate the head's parameter gradients, wasted work.
    c.ops = this.withBackward ? [...plan.forward, ...plan.backward] : plan.forward;
    return c;
  }

  /**
   * Writes a pair list into chunk buffers (planning new chunks as needed) and returns the ops
   * of all chunks in order: each chunk's forward, loss and (with backward) its backward.
   */
  async setPairs(pairs: PairList): Promise<Op[]> {
    return (await this.setPairChunks(pairs)).flat();
  }

  /** Like {@linkcode PairHead.setPairs}, with the ops of each chunk separately. */
  async setPairChunks(pairs: PairList): Promise<Op[][]> {
    const P = this.cap;
    const n = Math.max(1, Math.ceil(pairs.count / P));
    const ops: Op[][] = [];
    const gpu = this.model.gpu;
    for (let k = 0; k < n; k++) {
      const c = await this.chunk(k);
      const start = k * P;
      const end = Math.min(pairs.count, start + P);
      const ia = new Int32Array(P).fill(-1);
      const ib = new Int32Array(P).fill(-1);
      const targets = new Int32Array(2 * P).fill(IGNORE_INDEX);
      const weights = new Float32Array(2 * P);
      ia.set(pairs.fIndex.subarray(start, end));
      ib.set(pairs.bIndex.subarray(start, end));
      targets.set(pairs.nextTarget.subarray(start, end));
      targets.set(pairs.prevTarget.subarray(start, end), P);
      weights.set(pairs.nextWeight.subarray(start, end));
      weights.set(pairs.prevWeight.subarray(start, end), P);
      writeTensor(gpu, c.ia, ia);
      writeTensor(gpu, c.ib, ib);
      writeTensor(gpu, c.targets, targets);
      writeTensor(gpu, c.weights, weights);
      if (c.csrA && c.csrB) {
        const a = buildCsr(ia, c.csrA.offsets.numel - 1);
        const b = buildCsr(ib, c.csrB.offsets.numel - 1);
        writeTensor(gpu, c.csrA.offsets, a.offsets);
        writeTensor(gpu, c.csrA.items, padTo(a.items, P));
        writeTensor(gpu, c.csrB.offsets, b.offsets);
        writeTensor(gpu, c.csrB.items, padTo(b.items, P));
      }
      ops.push(c.ops);
    }
    this.#used = n;
    return ops;
  }

  /** Reads the per-chunk loss slots back and returns their sum (the weighted loss). */
  async readLoss(): Promise<number> {
    const slots = await readTensor(this.model.gpu, this.lossOut);
    let sum = 0;
    for (let k = 0; k < this.#used; k++) sum += slots[k];
    return sum;
  }

  /**
   * Runs only the head's forward for pairs that fit one chunk and returns the logits
   * (count, 2, V): index 0 next-token, 1 previous-token (the reference's TextHead output).
   */
  async logits(pairs: PairList): Promise<Float32Array> {
    await run(this.model.gpu, await this.logitsOps(pairs));
    return await this.readLogits(pairs.count);
  }

  /**
   * Writes the indices of pairs that fit one chunk and returns the head's forward ops (no
   * loss), to be submitted with other work; {@linkcode PairHead.readLogits} reads the result.
   */
  async logitsOps(pairs: PairList): Promise<Op[]> {
    if (pairs.count > this.cap) {
      throw new Error(`Cannot compute logits for ${pairs.count} pairs in one chunk of ${this.cap}`);
    }
    const gpu = this.model.gpu;
    const c = await this.chunk(0);
    const ia = new Int32Array(this.cap).fill(-1);
    const ib = new Int32Array(this.cap).fill(-1);
    ia.set(pairs.fIndex.subarray(0, pairs.count));
    ib.set(pairs.bIndex.subarray(0, pairs.count));
    writeTensor(gpu, c.ia, ia);
    writeTensor(gpu, c.ib, ib);
    // Forward without the loss, planned once per head.
    this.#logitsOps ??= planTextHead(
      gpu,
      `${this.model.label}.head${this.cap}.logits`,
      this.shape,
      this.model.headParams(),
      this.acts,
      c,
      { F: this.enc.outF, B: this.enc.outB },
    ).then((plan) => plan.forward);
    return await this.#logitsOps;
  }

  /** Reads the logits (count, 2, V) of the first `count` pairs of the last logits ops run. */
  async readLogits(count: number): Promise<Float32Array> {
    const all = await readTensor(this.model.gpu, this.acts.logits); // (2P, V)
    const V = this.shape.vocab;
    const out = new Float32Array(count * 2 * V);
    for (let p = 0; p < count; p++) {
      out.set(all.subarray(p * V, (p + 1) * V), (2 * p) * V);
      out.set(all.subarray((this.cap + p) * V, (this.cap + p + 1) * V), (2 * p + 1) * V);
    }
    return out;
  }
}

function padTo(a: Int32Array, n: number): Int32Array {
  if (a.length === n) return a;
  const out = new Int32Array(n);
  out.set(a);
  return out;
}

/**
 * The text-head pair list of a training micro-batch (both heads share each pair's weight).
 *
 * @example
 * ```ts
 * import { buildPairBatch, PairSampler, trainingPairList } from "../../mod.ts";
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1, pairSubsampleRate: 1,
 *   singleGapPredictionMode: "eos" as const,
 * };
 * const batch = buildPairBatch(new Int32Array([1, 2, 3, 7]), 1, 4, new PairSampler(cfg, 0), {
 *   pairBatchSize: 64,
 * });
 * const list = trainingPairList(batch);
 * console.log(list.count === batch.count, list.nextWeight === list.prevWeight); // true true
 * ```
 */
export function trainingPairList(b: PairBatch): PairList {
  return {
    count: b.count,
    fIndex: b.fIndex,
    bIndex: b.bIndex,
    nextTarget: b.nextTarget,
    prevTarget: b.prevTarget,
    nextWeight: b.weight,
    prevWeight: b.weight,
  };
}

/**
 * The evaluation loss as one pair list: the next-token entries (previous-token target −100)
 * then the previous-token entries (next-token target −100), each 2·B·T long in total.
 */
export function evaluationPairList(e: EvalPairs): PairList {
  const n = e.next.fIndex.length;
  const ignore = new Int32Array(n).fill(IGNORE_INDEX);
  const zero = new Float32Array(n);
  const cat = <T extends Int32Array | Float32Array>(a: T, b: T): T => {
    const out = new (a.constructor as { new (n: number): T })(2 * n);
    out.set(a);
    out.set(b, n);
    return out;
  };
  return {
    count: 2 * n,
    fIndex: cat(e.next.fIndex, e.prev.fIndex),
    bIndex: cat(e.next.bIndex, e.prev.bIndex),
    nextTarget: cat(e.next.target, ignore),
    prevTarget: cat(ignore, e.prev.target),
    nextWeight: cat(e.next.weight, zero),
    prevWeight: cat(zero, e.prev.weight),
  };
}
