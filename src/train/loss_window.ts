/**
 * The training loss averaged over the steps between two log lines, as the reference logs it
 * (`core_train.py` sums each step's loss into a device tensor and logs
 * `running_train_loss.item() / log_interval`), without reading the GPU back at every step.
 *
 * Each micro-batch's loss slots (the BST text head writes one slot per pair chunk, the GPT
 * one) are copied into a small GPU log buffer by a buffer copy planned into the step. At a
 * log step the buffer is read back once and its values are added, one by one in order, to a
 * float64 sum; the logged loss is that sum over the number of steps. When the buffer is full
 * it is read back early (one extra wait) into the same sum, so memory stays bounded whatever
 * `log_interval` is, and the result does not depend on where the reads fall.
 *
 * A training step does not wait for the log: at a log step {@linkcode LossWindow.takeInto}
 * plans a copy of its values into a host-readable {@linkcode Readback} within the step's own
 * submission, and the mean is computed (same values, same order) when the host reads that,
 * after the next step has been queued.
 *
 * The window's sum and step count go into checkpoints ({@linkcode LossWindow.state}), so a
 * run resumed between two log steps logs the same average as an uninterrupted one.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { BufferCopy } from "../gpu/kernel.ts";
import type { Readback } from "../gpu/readback.ts";
import { createTensor, readTensor, Tensor } from "../gpu/tensor.ts";

/** What a checkpoint keeps of a {@linkcode LossWindow}: the float64 sum and its steps. */
export interface LossWindowState {
  /** Sum of the losses of the steps since the last log. */
  sum: number;
  /** Steps since the last log. */
  steps: number;
}

/**
 * Default capacity of the GPU log buffer, in f32 loss slots (64 KiB): room for the slots of
 * thousands of micro-batches, so that early reads (waits) are rare whatever `log_interval` is.
 */
export const LOSS_WINDOW_SLOTS = 16384;

/**
 * The running training loss of a run, accumulated on the GPU between log steps.
 *
 * @example
 * ```ts ignore
 * // One step of two micro-batches, then the logged figure.
 * import { LossWindow } from "./loss_window.ts";
 * const window = new LossWindow(gpu, "bst");
 * for (const micro of microBatches) {
 *   await run(gpu, [...micro.ops, await window.record(micro.lossSlots, micro.slotCount)]);
 * }
 * window.endStep();
 * const trainLoss = await window.take(); // mean step loss since the last take
 * ```
 */
export class LossWindow {
  readonly #gpu: Gpu;
  readonly #log: Tensor; // (capacity) copied loss slots, the first #cursor in use
  #cursor = 0;
  #sum = 0;
  #steps = 0;

  /**
   * @param gpu The GPU of the run.
   * @param label Prefix of the log buffer's label.
   * @param capacity Loss slots the buffer holds before an early read (default
   * {@linkcode LOSS_WINDOW_SLOTS}).
   */
  constructor(gpu: Gpu, label: string, capacity: number = LOSS_WINDOW_SLOTS) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new Error(`Loss window capacity must be a positive integer, got ${capacity}`);
    }
    this.#gpu = gpu;
    this.#log = createTensor(gpu, [capacity], `${label}.train_loss_log`);
  }

  /** Loss slots the GPU log holds. */
  get capacity(): number {
    return this.#log.numel;
  }

  /** Steps recorded since the last {@linkcode LossWindow.take}. */
  get steps(): number {
    return this.#steps;
  }

  /**
   * The copy of the first `count` f32 values of `slots` into the log; submit it after the ops
   * that write them. Reads the log back first when it has no room left.
   *
   * @param slots A loss tensor (f32), e.g. the text head's per-chunk loss slots.
   * @param count How many of its leading values this micro-batch wrote (≥ 1).
   * @returns The copy op.
   */
  async record(slots: Tensor, count: number): Promise<BufferCopy> {
    if (!Number.isSafeInteger(count) || count < 1 || count > slots.numel) {
      throw new Error(`Cannot record ${count} loss slots of "${slots.label}" (${slots.numel})`);
    }
    if (count > this.#log.numel) {
      throw new Error(
        `Cannot record ${count} loss slots in a window of ${this.#log.numel} slots`,
      );
    }
    if (this.#cursor + count > this.#log.numel) await this.#drain();
    const op: BufferCopy = {
      label: `${this.#log.label}.record`,
      copy: {
        src: slots.buffer,
        srcOffset: slots.offset,
        dst: this.#log.buffer,
        dstOffset: this.#log.offset + this.#cursor * 4,
        size: count * 4,
      },
    };
    this.#cursor += count;
    return op;
  }

  /** Marks the end of an optimizer step (its micro-batches are recorded). */
  endStep(): void {
    this.#steps++;
  }

  /**
   * The mean step loss since the last take (NaN when no step was recorded), and a fresh
   * window. Waits for submitted work.
   */
  async take(): Promise<number> {
    await this.#drain();
    const mean = this.#steps === 0 ? NaN : this.#sum / this.#steps;
    this.#sum = 0;
    this.#steps = 0;
    return mean;
  }

  /**
   * Like {@linkcode LossWindow.take} without waiting: plans the copy of the log's values into
   * `into` (submit `op` after the ops that recorded them; no copy when they were all read
   * early) and starts a fresh window. After `into.read()`, `mean()` is the mean step loss —
   * the same float64 sum, in the same order, as `take()` computes. `into` needs room for
   * {@linkcode LossWindow.pendingSlots} values.
   */
  takeInto(into: Readback): { op: BufferCopy | null; mean: () => number } {
    let sum = this.#sum;
    let read = false;
    const steps = this.#steps;
    const used = new Tensor(this.#log.buffer, [this.#cursor], "f32", this.#log.label);
    const op = into.copy(used, 0, this.#cursor, (values) => {
      for (const v of values) sum += v;
      read = true;
    });
    this.#cursor = 0;
    this.#sum = 0;
    this.#steps = 0;
    const mean = () => {
      if (!read) throw new Error("LossWindow.takeInto(): the readback has not been read yet");
      return steps === 0 ? NaN : sum / steps;
    };
    return { op, mean };
  }

  /** Loss slots recorded on the GPU and not yet read (what `takeInto` copies). */
  get pendingSlots(): number {
    return this.#cursor;
  }

  /** The window's state for a checkpoint (reads the log back). */
  async state(): Promise<LossWindowState> {
    await this.#drain();
    return { sum: this.#sum, steps: this.#steps };
  }

  /** Continues from a checkpoint's state (the log must be empty: a fresh run). */
  restore(state: LossWindowState): void {
    if (this.#cursor !== 0) throw new Error("Cannot restore a loss window that holds losses");
    if (typeof state.sum !== "number" || !Number.isSafeInteger(state.steps) || state.steps < 0) {
      throw new Error(`Loss window state must be {sum, steps}, got ${JSON.stringify(state)}`);
    }
    this.#sum = state.sum;
    this.#steps = state.steps;
  }

  /** Adds the log's values to the sum in order and empties it. */
  async #drain(): Promise<void> {
    if (this.#cursor === 0) return;
    const used = new Tensor(this.#log.buffer, [this.#cursor], "f32", this.#log.label);
    const values = await readTensor(this.#gpu, used);
    for (const v of values) this.#sum += v;
    this.#cursor = 0;
  }
}
