/**
 * Incremental decoding through one encoder stack with a K/V cache: each step runs only the new
 * tokens through the token embedding and every block (norm, qkv projection, RoPE at the new
 * tokens' document-relative positions, attention of the new queries over all cached keys and
 * values of their row, MLP) and the final norm, and stores the new keys and values in per-layer
 * cache tensors. The states it gives are the full encoder's at the same positions, up to f32
 * rounding (the sums run in another order).
 *
 * Both directions grow at one end without changing any earlier state:
 * - forward (causal): tokens are appended at the back; a token's position counts from the last
 *   EOS at or before it, and it attends keys from that EOS (or the row start) to itself;
 * - backward (anti-causal): tokens are prepended at the front; a token's position counts to the
 *   first EOS at or after it, and it attends keys from itself to that EOS (or the row end).
 *
 * So both are the same computation in "cache order" u (forward: u = index from the front;
 * backward: u = distance from the back): with a(u) the last EOS at cache order ≤ u (−1 if none),
 * position = u − a(u) and the visible keys are cache orders max(a(u), 0) … u — the positions
 * and document masks of `positions.ts`. Forward caches keep token u in cache row u of its row;
 * backward ones in row capacity − 1 − u, so a row's keys stay in sequence order.
 *
 * Rows are decoded together and have one common length. Steps of `count` tokens run in chunks
 * of powers of two (at most {@linkcode DECODE_MAX_WIDTH} tokens per row), each planned once.
 *
 * @module
 */

import { planDecodeAttention, planKvAppend } from "../gpu/attention_decode.ts";
import type { Gpu } from "../gpu/device.ts";
import { planCopy } from "../gpu/elementwise.ts";
import { planEmbeddingForward } from "../gpu/embedding.ts";
import { type Op, submit } from "../gpu/kernel.ts";
import { planLinearForward } from "../gpu/matmul.ts";
import { planNormForward } from "../gpu/norm.ts";
import { planRope } from "../gpu/rope.ts";
import { planSwigluForward } from "../gpu/swiglu.ts";
import { createTensor, type Tensor, writeTensor } from "../gpu/tensor.ts";
import type { NormKind } from "./norm.ts";
import type { StackParams } from "./encoder.ts";
import type { Direction } from "./trunk.ts";

/** Most new tokens per row one planned step takes. */
export const DECODE_MAX_WIDTH = 64;

/** Geometry of a decoding stack. */
export interface DecodeShape {
  /** Sequences decoded together. */
  rows: number;
  /** Most tokens a row can hold. */
  capacity: number;
  nEmbd: number;
  nHead: number;
  hidden: number;
  norm: NormKind;
  vocabSize: number;
  eosTokenId: number;
}

/** Tensors and ops of one step width W (M = rows·W new tokens). */
interface StepPlan {
  width: number;
  /** (M) i32 new token ids, row-major (row, cache order). */
  tokens: Tensor;
  /** (M) i32 RoPE positions. */
  pos: Tensor;
  /** (M) i32 cache row of each new token. */
  dst: Tensor;
  /** (M, 2) i32 [lo, hi) cache rows each new query sees. */
  span: Tensor;
  /** (M, C) states after the final norm. */
  out: Tensor;
  ops: Op[];
}

/**
 * One encoder stack (forward or backward) decoded incrementally over `rows` rows.
 *
 * @example Greedy-style growth of one row (needs a WebGPU adapter)
 * ```ts ignore
 * const stack = await DecodeStack.create(gpu, "dec", shape, params, table, "forward");
 * const step = await stack.extend(new Int32Array([7, 4, 5]), 3); // the prompt
 * await run(gpu, step.ops); // step.out row W − 1: the state of token 5
 * ```
 */
export class DecodeStack {
  /** Per layer: (rows·capacity, C) RoPE'd keys and values. */
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  #steps = new Map<number, Promise<StepPlan>>();
  /** Tokens of each row in cache order (rows, capacity). */
  #hist: Int32Array;
  /** Last EOS at cache order ≤ u, per row and u (−1: none). */
  #anchor: Int32Array;
  #length = 0;

  private constructor(
    readonly gpu: Gpu,
    readonly label: string,
    readonly shape: DecodeShape,
    readonly params: StackParams,
    readonly table: Tensor,
    readonly direction: Direction,
  ) {
    const { rows, capacity, nEmbd } = shape;
    for (let l = 0; l < params.blocks.length; l++) {
      this.k.push(createTensor(gpu, [rows * capacity, nEmbd], `${label}.blocks.${l}.k_cache`));
      this.v.push(createTensor(gpu, [rows * capacity, nEmbd], `${label}.blocks.${l}.v_cache`));
    }
    this.#hist = new Int32Array(rows * capacity);
    this.#anchor = new Int32Array(rows * capacity);
  }

  /**
   * Allocates the caches of a stack.
   *
   * @param params the stack's blocks and final norm.
   * @param table (V, C) token embedding table.
   * @param direction `"forward"`: tokens are appended; `"backward"`: prepended.
   */
  static create(
    gpu: Gpu,
    label: string,
    shape: DecodeShape,
    params: StackParams,
    table: Tensor,
    direction: Direction,
  ): Promise<DecodeStack> {
    const { rows, capacity } = shape;
    if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(capacity) && capacity >= 1)) {
      throw new Error(`Cannot plan a decoding stack of ${rows} rows and capacity ${capacity}`);
    }
    return Promise.resolve(new DecodeStack(gpu, label, shape, params, table, direction));
  }

  /** Tokens per row decoded so far. */
  get length(): number {
    return this.#length;
  }

  /** Row `r`'s tokens in cache order (forward: sequence order; backward: last token first). */
  tokens(r: number): Int32Array {
    const T = this.shape.capacity;
    return this.#hist.slice(r * T, r * T + this.#length);
  }

  /** Keeps the first `n` tokens of each row in cache order (the rest are recomputed later). */
  truncate(n: number): void {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.#length)) {
      throw new Error(`Cannot truncate a decoding stack of length ${this.#length} to ${n}`);
    }
    this.#length = n;
  }

  /** Cache row of cache order u in row r. */
  #slot(r: number, u: number): number {
    const T = this.shape.capacity;
    return r * T + (this.direction === "forward" ? u : T - 1 - u);
  }

  /**
   * Adds `count` tokens to every row: `tokens` is (rows, count) in sequence order (forward:
   * appended after the row; backward: prepended before it). Submits every chunk but the last and
   * returns the last one's ops (its inputs are written: run them before the next call) with
   * its output, (rows·width, C) in (row, cache order): row r·width + width − 1 holds the state
   * of the token added last in cache order (forward: the new last token; backward: the new
   * first token).
   */
  async extend(
    tokens: Int32Array,
    count: number,
  ): Promise<{ ops: Op[]; out: Tensor; width: number }> {
    const { rows, capacity, vocabSize } = this.shape;
    if (!(Number.isInteger(count) && count >= 1) || tokens.length !== rows * count) {
      throw new Error(`Expected ${rows}×${count} new tokens (count ≥ 1), got ${tokens.length}`);
    }
    if (this.#length + count > capacity) {
      throw new Error(
        `Cannot add ${count} tokens to a decoding stack holding ${this.#length} of ${capacity}`,
      );
    }
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (!(Number.isInteger(t) && t >= 0 && t < vocabSize)) {
        throw new Error(`Token ${t} is outside the vocabulary of ${vocabSize}`);
      }
    }
    // In cache order: forward keeps the given order; backward reverses it.
    const ordered = new Int32Array(tokens.length);
    for (let r = 0; r < rows; r++) {
      for (let s = 0; s < count; s++) {
        const from = this.direction === "forward" ? s : count - 1 - s;
        ordered[r * count + s] = tokens[r * count + from];
      }
    }
    let done = 0;
    for (;;) {
      let width = DECODE_MAX_WIDTH;
      while (width > count - done) width /= 2;
      const step = await this.#step(width);
      this.#write(step, ordered, count, done);
      done += width;
      if (done === count) return { ops: step.ops, out: step.out, width };
      // No wait: the next chunk's input writes queue behind this submission.
      submit(this.gpu, step.ops);
    }
  }

  /** Writes the inputs of one chunk (cache orders length … length + W − 1) and advances. */
  #write(step: StepPlan, ordered: Int32Array, count: number, from: number): void {
    const { rows, capacity, eosTokenId } = this.shape;
    const W = step.width;
    const M = rows * W;
    const tok = new Int32Array(M);
    const pos = new Int32Array(M);
    const dst = new Int32Array(M);
    const span = new Int32Array(2 * M);
    const L = this.#length;
    for (let r = 0; r < rows; r++) {
      for (let w = 0; w < W; w++) {
        const u = L + w;
        const t = ordered[r * count + from + w];
        const h = r * capacity + u;
        this.#hist[h] = t;
        const prev = u > 0 ? this.#anchor[h - 1] : -1;
        const a = t === eosTokenId ? u : prev;
        this.#anchor[h] = a;
        const m = r * W + w;
        tok[m] = t;
        pos[m] = u - a;
        dst[m] = this.#slot(r, u);
        const first = this.#slot(r, Math.max(a, 0));
        span[2 * m] = Math.min(first, dst[m]);
        span[2 * m + 1] = Math.max(first, dst[m]) + 1;
      }
    }
    writeTensor(this.gpu, step.tokens, tok);
    writeTensor(this.gpu, step.pos, pos);
    writeTensor(this.gpu, step.dst, dst);
    writeTensor(this.gpu, step.span, span);
    this.#length = L + W;
  }

  #step(width: number): Promise<StepPlan> {
    let p = this.#steps.get(width);
    if (!p) {
      p = this.#plan(width);
      this.#steps.set(width, p);
      p.catch(() => this.#steps.delete(width));
    }
    return p;
  }

  /**
   * Plans one step of width W over M = rows·W new tokens: embedding, then per block
   * `x_mid = x + c_proj(attn(rope(c_attn(norm1(x)))))`, `x = x_mid + down(swiglu(gate_up(
   * norm2(x_mid))))`, with the new keys and values appended to the block's cache right after
   * RoPE; then the final norm into `out`.
   */
  async #plan(W: number): Promise<StepPlan> {
    const gpu = this.gpu;
    const { rows, capacity, nEmbd: C, nHead, hidden, norm } = this.shape;
    const M = rows * W;
    const l = `${this.label}.w${W}`;
    const act = (name: string, width: number) => createTensor(gpu, [M, width], `${l}.${name}`);
    const s: StepPlan = {
      width: W,
      tokens: createTensor(gpu, [M], `${l}.tokens`, "i32"),
      pos: createTensor(gpu, [M], `${l}.pos`, "i32"),
      dst: createTensor(gpu, [M], `${l}.dst`, "i32"),
      span: createTensor(gpu, [M, 2], `${l}.span`, "i32"),
      out: act("out", C), // (M, C)
      ops: [],
    };
    const x = act("x", C); // (M, C) residual stream
    const ln = act("ln", C); // (M, C) norm output
    const stats = act("stats", 2); // (M, 2)
    const qkv = act("qkv", 3 * C); // (M, 3C) after RoPE
    const att = act("att", C); // (M, C) heads merged
    const xMid = act("x_mid", C); // (M, C)
    const gu = act("gate_up", 2 * hidden); // (M, 2·hidden)
    const sw = act("swiglu", hidden); // (M, hidden)
    const ops: Op[] = [await planEmbeddingForward(gpu, x, s.tokens, this.table)];
    const linear = (out: Tensor, input: Tensor, p: { w: Tensor; b?: Tensor }, acc: boolean) =>
      planLinearForward(gpu, { out, x: input, w: p.w, bias: p.b, accumulate: acc });
    for (let i = 0; i < this.params.blocks.length; i++) {
      const p = this.params.blocks[i];
      ops.push(
        await planNormForward(gpu, norm, { y: ln, stats, x, w: p.ln1.w, b: p.ln1.b }),
        await linear(qkv, ln, p.attn, false),
        await planRope(gpu, qkv, s.pos, nHead, capacity + 1, false),
        ...await planKvAppend(gpu, this.k[i], this.v[i], qkv, s.dst, nHead),
        ...await planDecodeAttention(gpu, att, qkv, this.k[i], this.v[i], s.span, nHead),
        await planCopy(gpu, xMid, x),
        await linear(xMid, att, p.proj, true),
        await planNormForward(gpu, norm, { y: ln, stats, x: xMid, w: p.ln2.w, b: p.ln2.b }),
        await linear(gu, ln, p.gateUp, false),
        await planSwigluForward(gpu, sw, gu),
        await planCopy(gpu, x, xMid),
        await linear(x, sw, p.down, true),
      );
    }
    const fin = this.params.norm;
    ops.push(await planNormForward(gpu, norm, { y: s.out, stats, x, w: fin.w, b: fin.b }));
    s.ops = ops;
    return s;
  }
}
