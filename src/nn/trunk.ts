/**
 * The transformer trunk shared by the BST's encoders and the GPT: the token embedding, then
 * one or more stacks (L pre-norm blocks and a final norm, `encoder.ts`) that all read the same
 * embedding output. The BST plans two stacks over one embedding — `transformer_f` (causal
 * document mask, forward positions) and `transformer_b` (anti-causal document mask, backward
 * positions); the GPT plans `transformer` (forward) alone.
 *
 * Positions and masks are document-relative (`positions.ts`): an EOS starts a new document and
 * resets the position to 0, and a token attends only to tokens of its own document.
 *
 * Backward walks the stacks in reverse; each leaves dL/d(embedding output) in the shared
 * residual-gradient tensor, and the embedding backward runs after each one (the table
 * gradient accumulates every stack's share).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { CsrTensors } from "../gpu/gather.ts";
import { buildCsr } from "../gpu/index_lists.ts";
import { createTensor, type Tensor, writeTensor } from "../gpu/tensor.ts";
import type { BlockScratch, BlockShape } from "./block.ts";
import { planEmbeddingLayer } from "./embedding.ts";
import { planStack, type StackParams } from "./encoder.ts";
import type { LayerPlan } from "./layer.ts";
import { documentLayout } from "./positions.ts";

/** Direction of a stack: forward (causal) or backward (anti-causal). */
export type Direction = "forward" | "backward";

/**
 * Throws one line naming the first token id outside [0, vocabSize), by row and position.
 *
 * @param tokens (rows, seqLen) token ids.
 *
 * @example
 * ```ts
 * import { checkTokens } from "./trunk.ts";
 * checkTokens([1, 2, 3, 0], 4, 2); // fine
 * try {
 *   checkTokens([1, 2, 3, 4], 4, 2);
 * } catch (e) {
 *   console.log((e as Error).message); // Token 4 at row 1, position 1 is outside the vocabulary of 4
 * }
 * ```
 */
export function checkTokens(tokens: ArrayLike<number>, vocabSize: number, seqLen: number): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(Number.isInteger(t) && t >= 0 && t < vocabSize)) {
      throw new Error(
        `Token ${t} at row ${Math.floor(i / seqLen)}, position ${i % seqLen} ` +
          `is outside the vocabulary of ${vocabSize}`,
      );
    }
  }
}

/**
 * The token-side inputs of a trunk planned for (rows, seqLen): token ids, positions and
 * document ids of each direction, and the embedding's scatter lists. {@linkcode setTokens}
 * fills them all from the ids.
 */
export class TrunkInputs {
  /** rows·seqLen. */
  readonly n: number;
  /** (N) i32 token ids. */
  readonly tokens: Tensor;
  /** (N) i32 forward positions. */
  readonly posF: Tensor;
  /** (rows, seqLen) i32 forward document ids. */
  readonly docF: Tensor;
  /** (N) i32 backward positions (only with a backward direction). */
  readonly posB?: Tensor;
  /** (rows, seqLen) i32 backward document ids (only with a backward direction). */
  readonly docB?: Tensor;
  /** Embedding scatter lists (V + 1 offsets, N items). */
  readonly embCsr: CsrTensors;

  constructor(
    readonly gpu: Gpu,
    label: string,
    readonly rows: number,
    readonly seqLen: number,
    readonly vocabSize: number,
    readonly eosTokenId: number,
    withBackward: boolean,
  ) {
    const N = rows * seqLen;
    this.n = N;
    this.tokens = createTensor(gpu, [N], `${label}.tokens`, "i32");
    this.posF = createTensor(gpu, [N], `${label}.pos_f`, "i32");
    this.docF = createTensor(gpu, [rows, seqLen], `${label}.doc_f`, "i32");
    if (withBackward) {
      this.posB = createTensor(gpu, [N], `${label}.pos_b`, "i32");
      this.docB = createTensor(gpu, [rows, seqLen], `${label}.doc_b`, "i32");
    }
    this.embCsr = {
      offsets: createTensor(gpu, [vocabSize + 1], `${label}.emb_csr.offsets`, "i32"),
      items: createTensor(gpu, [N], `${label}.emb_csr.items`, "i32"),
    };
  }

  /** Positions of `direction`. */
  pos(direction: Direction): Tensor {
    return direction === "forward" ? this.posF : this.#need(this.posB);
  }

  /** Document ids of `direction`. */
  doc(direction: Direction): Tensor {
    return direction === "forward" ? this.docF : this.#need(this.docB);
  }

  #need(t: Tensor | undefined): Tensor {
    if (!t) throw new Error("These trunk inputs were planned without a backward direction");
    return t;
  }

  /**
   * Writes a batch of token rows (rows·seqLen ids) with its positions, document ids and
   * embedding scatter lists. Throws on a wrong length or a token outside the vocabulary.
   */
  setTokens(tokens: Int32Array): void {
    if (tokens.length !== this.n) {
      throw new Error(
        `Expected ${this.rows}×${this.seqLen} = ${this.n} tokens, got ${tokens.length}`,
      );
    }
    checkTokens(tokens, this.vocabSize, this.seqLen);
    const gpu = this.gpu;
    const layout = documentLayout(tokens, this.rows, this.seqLen, this.eosTokenId);
    writeTensor(gpu, this.tokens, tokens);
    writeTensor(gpu, this.posF, layout.posF);
    writeTensor(gpu, this.docF, layout.docF);
    if (this.posB && this.docB) {
      writeTensor(gpu, this.posB, layout.posB);
      writeTensor(gpu, this.docB, layout.docB);
    }
    const csr = buildCsr(tokens, this.vocabSize);
    writeTensor(gpu, this.embCsr.offsets, csr.offsets);
    writeTensor(gpu, this.embCsr.items, csr.items);
  }
}

/** One stack of a trunk and where its output goes. */
export interface TrunkStack {
  /** Label suffix, e.g. `transformer_f`. */
  name: string;
  direction: Direction;
  params: StackParams;
  /** (N, C) output after the final norm. */
  out: Tensor;
  /** (N, C) dL/d(out), read by backward. */
  dout: Tensor;
}

/**
 * Plans the trunk: the embedding of `inputs.tokens` (table (V, C) and its gradient), then
 * every stack over the embedding output.
 *
 * @returns forward: embedding, then the stacks in order; backward: the stacks in reverse, each
 * followed by the embedding backward (empty with `shape.forwardOnly`).
 */
export async function planTrunk(
  gpu: Gpu,
  label: string,
  shape: BlockShape,
  inputs: TrunkInputs,
  embedding: { table: Tensor; dtable: Tensor },
  stacks: readonly TrunkStack[],
  scratch: BlockScratch,
): Promise<LayerPlan> {
  const N = inputs.n;
  const C = shape.nEmbd;
  const emb = createTensor(gpu, [N, C], `${label}.emb`); // (N, C) shared by every stack
  const dres = createTensor(gpu, [N, C], `${label}.dres`); // (N, C) residual gradient
  const embed = await planEmbeddingLayer(gpu, {
    tokens: inputs.tokens,
    table: embedding.table,
    dtable: embedding.dtable,
    out: emb,
    dout: dres,
    csr: inputs.embCsr,
  }, !shape.forwardOnly);
  const plans: LayerPlan[] = [];
  for (const s of stacks) {
    plans.push(
      await planStack(gpu, `${label}.${s.name}`, shape, s.params, {
        emb,
        out: s.out,
        dout: s.dout,
        dres,
        pos: inputs.pos(s.direction),
        doc: inputs.doc(s.direction),
        direction: s.direction,
      }, scratch),
    );
  }
  return {
    forward: [...embed.forward, ...plans.flatMap((p) => p.forward)],
    backward: plans.toReversed().flatMap((p) => [...p.backward, ...embed.backward]),
  };
}
