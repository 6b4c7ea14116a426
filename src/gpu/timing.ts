/**
 * GPU timing without per-dispatch waits.
 *
 * Every wait for the GPU from Deno costs at least ~10 ms whatever the work (Deno's WebGPU polls
 * the device, then sleeps 10 ms before it looks again), so timing one dispatch by submitting it
 * and awaiting `onSubmittedWorkDone` measures that sleep, not the kernel. Here:
 *
 * - where the device has `timestamp-query`, the GPU writes timestamps around compute passes and
 *   all of them are read back with one wait ({@linkcode timeOps}, {@linkcode profileOps});
 * - elsewhere, the work is repeated inside ONE submission until it dominates the wait, and the
 *   wall time is divided by the repeat count ({@linkcode timeOps} only).
 *
 * @module
 */

import type { Gpu } from "./device.ts";
import { encodeDispatches, encodeUploads, type Op, run } from "./kernel.ts";

/** How a figure was measured. */
export type TimingMethod = "timestamp" | "wall";

/** Result of {@linkcode timeOps}. */
export interface OpsTiming {
  /** Time of one run of the ops, in ms (the median over repeats). */
  ms: number;
  /** GPU timestamps, or wall time of one submission divided by its repeat count. */
  method: TimingMethod;
}

/** Whether the device was created with the `timestamp-query` feature. */
export function hasTimestamps(gpu: Gpu): boolean {
  return gpu.info.features.includes("timestamp-query");
}

/** Largest query count of one query set (WebGPU's limit). */
const MAX_QUERIES = 4096;

/** Reads `count` timestamps (ns, as numbers) written by `encodeWith` in one submission. */
async function withTimestamps(
  gpu: Gpu,
  count: number,
  encodeWith: (
    encoder: GPUCommandEncoder,
    slot: (i: number) => GPUComputePassTimestampWrites,
  ) => void,
): Promise<number[]> {
  const sets: GPUQuerySet[] = [];
  for (let n = 0; n < count; n += MAX_QUERIES) {
    sets.push(
      gpu.device.createQuerySet({
        label: "bst.timing",
        type: "timestamp",
        count: Math.min(MAX_QUERIES, count - n),
      }),
    );
  }
  const bytes = count * 8;
  const resolve = gpu.device.createBuffer({
    label: "bst.timing.resolve",
    size: bytes,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const read = gpu.device.createBuffer({
    label: "bst.timing.read",
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    const encoder = gpu.device.createCommandEncoder({ label: "bst.timing" });
    // Slot i is the pair of queries 2i (beginning of pass) and 2i + 1 (end of pass); MAX_QUERIES
    // is even, so a pair never straddles two sets.
    encodeWith(encoder, (i) => ({
      querySet: sets[Math.floor((2 * i) / MAX_QUERIES)],
      beginningOfPassWriteIndex: (2 * i) % MAX_QUERIES,
      endOfPassWriteIndex: (2 * i) % MAX_QUERIES + 1,
    }));
    sets.forEach((set, s) => {
      encoder.resolveQuerySet(set, 0, set.count, resolve, s * MAX_QUERIES * 8);
    });
    encoder.copyBufferToBuffer(resolve, 0, read, 0, bytes);
    gpu.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const ns = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    return Array.from(ns, (v) => Number(v));
  } finally {
    for (const s of sets) s.destroy();
    resolve.destroy();
    read.destroy();
  }
}

/** An empty compute pass: carries a timestamp without changing the work. */
function markPass(encoder: GPUCommandEncoder, writes: GPUComputePassTimestampWrites): void {
  encoder.beginComputePass({ timestampWrites: writes }).end();
}

/**
 * Times `ops` run back to back: after one warm-up run, `samples` measurements of `inner`
 * consecutive runs each, all in one submission; returns the median time of one run.
 *
 * With `timestamp-query`, each sample is bracketed by GPU timestamps (empty passes before and
 * after), so no host wait is inside the figure. Without it, each sample is its own submission
 * of `inner` runs, timed on the host: pass an `inner` large enough that the work dominates the
 * ~10 ms a wait costs.
 *
 * @param gpu the shared GPU.
 * @param ops the planned work (dispatches and copies), encoded as {@linkcode run} would.
 * @param options `samples` (default 5), `inner` runs per sample (default 1), and `method` to
 *   force wall-clock timing even where timestamps exist.
 * @returns the median ms of one run and how it was measured.
 *
 * @example Time a planned matmul (needs a WebGPU adapter)
 * ```ts ignore
 * const { ms, method } = await timeOps(gpu, [await planLinearForward(gpu, { out, x, w })]);
 * ```
 */
export async function timeOps(
  gpu: Gpu,
  ops: readonly Op[],
  options: { samples?: number; inner?: number; method?: TimingMethod } = {},
): Promise<OpsTiming> {
  const samples = Math.max(1, options.samples ?? 5);
  const inner = Math.max(1, options.inner ?? 1);
  const method = options.method ?? (hasTimestamps(gpu) ? "timestamp" : "wall");
  await run(gpu, ops, "bst.timing.warmup");
  const times: number[] = [];
  if (method === "timestamp") {
    const ns = await withTimestamps(gpu, 4 * samples, (encoder, slot) => {
      for (let s = 0; s < samples; s++) {
        markPass(encoder, slot(2 * s));
        for (let r = 0; r < inner; r++) encodeDispatches(encoder, ops);
        markPass(encoder, slot(2 * s + 1));
      }
    });
    // Sample s runs from the end of mark 2s (query 4s + 1) to the start of mark 2s + 1 (4s + 2).
    for (let s = 0; s < samples; s++) times.push((ns[4 * s + 2] - ns[4 * s + 1]) / 1e6 / inner);
  } else {
    for (let s = 0; s < samples; s++) {
      const encoder = gpu.device.createCommandEncoder({ label: "bst.timing" });
      for (let r = 0; r < inner; r++) encodeDispatches(encoder, ops);
      const t0 = performance.now();
      gpu.queue.submit([encoder.finish()]);
      await gpu.queue.onSubmittedWorkDone();
      times.push((performance.now() - t0) / inner);
    }
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], method };
}

/**
 * GPU time of each op of `ops`, each dispatch in its own compute pass between timestamps, all
 * in one submission after one warm-up run. Copies get `NaN` (WebGPU timestamps only bracket
 * passes). Needs `timestamp-query`.
 *
 * Passes add a little per-dispatch overhead, so the sum can exceed {@linkcode timeOps}'s figure
 * for the same ops; the shares are what matters.
 *
 * @param gpu the shared GPU.
 * @param ops the planned work.
 * @returns ms per op, in order.
 * @throws Error when the device has no `timestamp-query`.
 *
 * @example Per-kernel times of a training step (needs a WebGPU adapter with timestamps)
 * ```ts ignore
 * const ms = await profileOps(gpu, stepOps);
 * ```
 */
export async function profileOps(gpu: Gpu, ops: readonly Op[]): Promise<number[]> {
  if (!hasTimestamps(gpu)) {
    throw new Error(
      `Cannot profile per dispatch on "${gpu.info.description}": the adapter has no ` +
        `timestamp-query feature`,
    );
  }
  await run(gpu, ops, "bst.timing.warmup");
  const slots: number[] = [];
  const ns = await withTimestamps(
    gpu,
    2 * ops.filter((op) => !("copy" in op)).length,
    (encoder, slot) => {
      let n = 0;
      for (const op of ops) {
        if ("copy" in op) {
          encodeDispatches(encoder, [op]);
          slots.push(-1);
          continue;
        }
        if (op.uploads) encodeUploads(encoder, op.uploads);
        const pass = encoder.beginComputePass({ timestampWrites: slot(n) });
        pass.setPipeline(op.pipeline);
        pass.setBindGroup(0, op.bindGroup);
        pass.dispatchWorkgroups(op.workgroups[0], op.workgroups[1], op.workgroups[2]);
        pass.end();
        slots.push(n++);
      }
    },
  );
  return slots.map((s) => s < 0 ? NaN : (ns[2 * s + 1] - ns[2 * s]) / 1e6);
}
