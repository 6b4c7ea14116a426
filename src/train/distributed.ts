/**
 * Data-parallel training: what the trainer needs of a communicator ({@linkcode Collective},
 * implemented over Open MPI by `src/dist/mpi.ts`), and the rules that make N ranks train
 * exactly what one process trains with the same global batch.
 *
 * - **Rows.** An optimizer step takes `effective_batch_size` rows (the same rows as a single
 *   process, from (seed, step)) in `gradient_accum_steps` global micro-batches; rank r takes
 *   the r-th of `world` equal slices of each, so a rank's micro-batch is
 *   `effective_batch_size / world / gradient_accum_steps` rows ({@linkcode rankMicroBatch}).
 * - **Loss weights.** Targets and weights are computed on the whole global micro-batch and the
 *   rank keeps its rows' share ({@linkcode slicePairRows}), so each rank's gradient is already
 *   its part of the single-process gradient: summing the flat gradient buffers over the ranks
 *   (`MPI_Allreduce`; read back, reduce, upload in buckets that overlap, see
 *   {@linkcode allreduceTensor}) gives that gradient, with no extra scaling,
 *   and the BST's pair sampler sees every row on every rank, so its state stays identical.
 * - **Optimizer.** Every rank applies the same AdamW step to the same gradient, so the
 *   replicas stay equal; at each validation they compare a parameter hash
 *   ({@linkcode checkReplicas}) and stop with an error if they diverged.
 * - **Output.** Rank 0 alone writes logs, checkpoints, curves and the final JSON line.
 *
 * One GPU per rank: Deno's WebGPU takes the first adapter the Vulkan loader lists, so each
 * rank must be shown a different GPU. {@linkcode selectRankGpu} sets Mesa's device-select
 * layer (`MESA_VK_DEVICE_SELECT`, or `DRI_PRIME` for a `pci-…` bus id) from the
 * `BST_RANK_GPUS` list before the adapter is requested, and {@linkcode sameAdapterWarnings}
 * names local ranks that still got the same adapter.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { readTensor, Tensor, writeTensor } from "../gpu/tensor.ts";
import type { PairBatch } from "../models/bst_pairs.ts";

/** The collectives a data-parallel run uses; every rank calls them in the same order. */
export interface Collective {
  /** This process's rank, 0 … size−1. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  /** The host the rank runs on (ranks on the same host share its GPUs). */
  readonly host: string;
  /** Sums `data` over the ranks, in place. */
  allreduceSum(data: Float32Array | Float64Array): Promise<void>;
  /** Every rank's `bytes`, in rank order. */
  allgather(bytes: Uint8Array): Promise<Uint8Array[]>;
  /** Waits for every rank (`timeoutSeconds`: how long at most; default the communicator's). */
  barrier(timeoutSeconds?: number): Promise<void>;
  /** Ends MPI cleanly (before a normal exit). */
  finalize(): void;
}

/** Where `mpirun` placed this process (Open MPI's `OMPI_COMM_WORLD_*` variables). */
export interface MpiPlacement {
  size: number;
  rank: number;
  localRank: number;
  localSize: number;
}

const PLACEMENT_VARS = {
  size: "OMPI_COMM_WORLD_SIZE",
  rank: "OMPI_COMM_WORLD_RANK",
  localRank: "OMPI_COMM_WORLD_LOCAL_RANK",
  localSize: "OMPI_COMM_WORLD_LOCAL_SIZE",
} as const;

/**
 * This process's placement when Open MPI's `mpirun` started it, else null (also when the
 * variables may not be read: nothing changes without `mpirun`).
 *
 * @param env reads a variable (default: `Deno.env`, only where permission is granted).
 * @returns the placement, or null outside `mpirun`.
 * @throws Error when a variable is set but is not a valid integer.
 *
 * @example
 * ```ts
 * import { mpiPlacement } from "./distributed.ts";
 * const env: Record<string, string> = {
 *   OMPI_COMM_WORLD_SIZE: "2", OMPI_COMM_WORLD_RANK: "1",
 *   OMPI_COMM_WORLD_LOCAL_RANK: "1", OMPI_COMM_WORLD_LOCAL_SIZE: "2",
 * };
 * console.log(mpiPlacement((k) => env[k])); // { size: 2, rank: 1, localRank: 1, localSize: 2 }
 * console.log(mpiPlacement(() => undefined)); // null
 * ```
 */
export function mpiPlacement(
  env: (name: string) => string | undefined = grantedEnv,
): MpiPlacement | null {
  if (env(PLACEMENT_VARS.size) === undefined) return null;
  const out = {} as MpiPlacement;
  for (const [key, name] of Object.entries(PLACEMENT_VARS) as [keyof MpiPlacement, string][]) {
    const text = env(name) ?? (key === "localRank" || key === "rank" ? "0" : "1");
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
      throw new Error(`${name} must be a non-negative integer, got "${text}"`);
    }
    out[key] = n;
  }
  return out;
}

function grantedEnv(name: string): string | undefined {
  const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
  return state === "granted" ? Deno.env.get(name) : undefined;
}

/**
 * Rows per rank and micro-batch: `effective / world / accum`, which must divide exactly.
 *
 * @example
 * ```ts
 * import { rankMicroBatch } from "./distributed.ts";
 * console.log(rankMicroBatch(64, 2, 2)); // 16
 * ```
 */
export function rankMicroBatch(effective: number, world: number, accum: number): number {
  if (effective % (world * accum) !== 0) {
    throw new Error(
      `data.effective_batch_size ${effective} is not divisible by ${world} ranks × ` +
        `data.gradient_accum_steps ${accum}: each rank needs the same number of rows`,
    );
  }
  return effective / world / accum;
}

/**
 * Rows `first … first+count−1` of a micro-batch's pairs, with row indices rebased so that
 * `first` becomes row 0 (the encoder sees only those rows). Weights are kept: they were
 * computed for the whole micro-batch.
 *
 * @param pairs pairs of the whole (global) micro-batch.
 * @param first first row kept.
 * @param count rows kept.
 * @param seqLen row length T.
 * @returns the pairs of the kept rows.
 *
 * @example
 * ```ts
 * import { slicePairRows } from "./distributed.ts";
 * const pairs = {
 *   count: 3, fIndex: new Int32Array([0, 4, 5]), bIndex: new Int32Array([2, 6, 7]),
 *   nextTarget: new Int32Array([1, 2, 3]), prevTarget: new Int32Array([4, 5, 6]),
 *   weight: new Float32Array([0.5, 0.25, 0.25]), rowOffsets: new Int32Array([0, 1, 3]),
 * };
 * const mine = slicePairRows(pairs, 1, 1, 4); // row 1 of 2 rows of T = 4
 * console.log(mine.count, [...mine.fIndex], [...mine.bIndex]); // 2 [ 0, 1 ] [ 2, 3 ]
 * ```
 */
export function slicePairRows(
  pairs: PairBatch,
  first: number,
  count: number,
  seqLen: number,
): PairBatch {
  const rows = pairs.rowOffsets.length - 1;
  if (first < 0 || count < 0 || first + count > rows) {
    throw new Error(`Rows ${first}…${first + count - 1} are outside a batch of ${rows} rows`);
  }
  const a = pairs.rowOffsets[first];
  const b = pairs.rowOffsets[first + count];
  const shift = first * seqLen;
  return {
    count: b - a,
    fIndex: pairs.fIndex.slice(a, b).map((i) => i - shift),
    bIndex: pairs.bIndex.slice(a, b).map((i) => i - shift),
    nextTarget: pairs.nextTarget.slice(a, b),
    prevTarget: pairs.prevTarget.slice(a, b),
    weight: pairs.weight.slice(a, b),
    rowOffsets: pairs.rowOffsets.slice(first, first + count + 1).map((o) => o - a),
  };
}

/**
 * A 64-bit FNV-1a hash of the bytes of a float array, as 16 hex digits (exact equality of
 * the replicas, not a checksum against tampering).
 *
 * @example
 * ```ts
 * import { floatHash } from "./distributed.ts";
 * console.log(floatHash(new Float32Array([1, 2])) === floatHash(new Float32Array([1, 2]))); // true
 * console.log(floatHash(new Float32Array([1, 2])) === floatHash(new Float32Array([2, 1]))); // false
 * ```
 */
export function floatHash(data: Float32Array): string {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
  // FNV-1a over 32-bit words, in two 32-bit halves (hi, lo) of the 64-bit state
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < words.length; i++) {
    lo = (lo ^ words[i]) >>> 0;
    // state × 0x100000001b3 = state × 0x1b3 + (state << 40)
    const loMul = lo * 0x1b3;
    const carry = Math.floor(loMul / 0x100000000);
    const newHi = (Math.imul(hi, 0x1b3) + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = loMul >>> 0;
    hi = newHi;
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/**
 * Compares the ranks' parameter hashes; throws one line naming the ranks that differ from
 * rank 0 (same on every rank, so all stop together).
 *
 * @param c the communicator.
 * @param params this rank's parameters (flat).
 * @param step the step, for the message.
 */
export async function checkReplicas(
  c: Collective,
  params: Float32Array,
  step: number,
): Promise<void> {
  const mine = new TextEncoder().encode(floatHash(params));
  const all = (await c.allgather(mine)).map((b) => new TextDecoder().decode(b));
  const differ = all.flatMap((h, r) => (h === all[0] ? [] : [r]));
  if (differ.length > 0) {
    throw new Error(
      `Ranks diverged at step ${step}: the parameters of rank ${differ.join(", ")} differ ` +
        `from rank 0's (hash ${all[0]} vs ${all[differ[0]]})`,
    );
  }
}

/** Floats per all-reduce bucket of {@linkcode allreduceTensor} (64 MB). */
export const GRADIENT_BUCKET_FLOATS = 1 << 24;

/**
 * Sums an f32 GPU tensor over the ranks in place: read back, `allreduceSum`, upload, in
 * buckets of `bucketFloats`, the read-back of bucket i+1 overlapping the reduction of bucket i
 * (which runs off the event loop). Every rank must call it with the same tensor size.
 *
 * @param gpu the device.
 * @param tensor the tensor (e.g. the flat gradient buffer); its new values are queued writes.
 * @param c the communicator.
 * @param bucketFloats floats per bucket (default {@linkcode GRADIENT_BUCKET_FLOATS}).
 */
export async function allreduceTensor(
  gpu: Gpu,
  tensor: Tensor,
  c: Collective,
  bucketFloats: number = GRADIENT_BUCKET_FLOATS,
): Promise<void> {
  const buckets: Tensor[] = [];
  for (let start = 0; start < tensor.numel; start += bucketFloats) {
    const n = Math.min(bucketFloats, tensor.numel - start);
    buckets.push(
      new Tensor(tensor.buffer, [n], "f32", `${tensor.label}.bucket`, tensor.offset + start * 4),
    );
  }
  let next = buckets.length > 0 ? readTensor(gpu, buckets[0]) : null;
  for (let i = 0; i < buckets.length; i++) {
    const host = await next!;
    next = i + 1 < buckets.length ? readTensor(gpu, buckets[i + 1]) : null;
    await c.allreduceSum(host);
    writeTensor(gpu, buckets[i], host);
  }
}

/** True on every rank when any rank passes true (an interrupt seen by one stops all). */
export async function anyRank(c: Collective, flag: boolean): Promise<boolean> {
  const v = new Float64Array([flag ? 1 : 0]);
  await c.allreduceSum(v);
  return v[0] > 0;
}

/** The variables {@linkcode selectRankGpu} reads and sets (the train task's env list). */
export const GPU_SELECT_VARS = [
  "BST_RANK_GPUS",
  "MESA_VK_DEVICE_SELECT",
  "MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE",
  "DRI_PRIME",
] as const;

/**
 * Shows this rank one GPU: entry `localRank` of `BST_RANK_GPUS` (comma-separated, one per
 * local rank; list the machine's devices with `MESA_VK_DEVICE_SELECT=list vulkaninfo`) goes to
 * Mesa's Vulkan device-select layer — a `vendor:device` id pair (`10de:2330`) as
 * `MESA_VK_DEVICE_SELECT`, a PCI bus id (`pci-0000_17_00_0`, for identical GPUs) as
 * `DRI_PRIME` — with `MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE=1` so that only that device
 * is listed. Must run before the first `requestAdapter()` (the loader reads the variables
 * when Deno creates its Vulkan instance). Needs the layer (Debian: `mesa-vulkan-drivers`).
 *
 * @param localRank this rank's index on its host.
 * @param env variable access (default `Deno.env`).
 * @returns the selection made, or null when `BST_RANK_GPUS` is unset.
 * @throws Error when the list has fewer entries than needed.
 *
 * @example
 * ```ts
 * import { selectRankGpu } from "./distributed.ts";
 * const env = new Map([["BST_RANK_GPUS", "pci-0000_17_00_0,pci-0000_65_00_0"]]);
 * const access = { get: (k: string) => env.get(k), set: (k: string, v: string) => env.set(k, v) };
 * console.log(selectRankGpu(1, access)); // DRI_PRIME=pci-0000_65_00_0
 * console.log(env.get("MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE")); // 1
 * ```
 */
export function selectRankGpu(
  localRank: number,
  env: { get(name: string): string | undefined; set(name: string, value: string): void } = Deno.env,
): string | null {
  const list = env.get("BST_RANK_GPUS");
  if (!list) return null;
  const entries = list.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  const entry = entries[localRank];
  if (entry === undefined) {
    throw new Error(
      `BST_RANK_GPUS lists ${entries.length} GPUs but local rank ${localRank} needs entry ` +
        `${localRank + 1}: give one entry per rank on each host`,
    );
  }
  const name = entry.startsWith("pci-") ? "DRI_PRIME" : "MESA_VK_DEVICE_SELECT";
  env.set(name, entry);
  env.set("MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE", "1");
  return `${name}=${entry}`;
}

/** What a rank reports about the adapter it got, for {@linkcode sameAdapterWarnings}. */
export interface RankAdapter {
  rank: number;
  host: string;
  /** The adapter's description (vendor and architecture appended). */
  adapter: string;
  /** The device selection applied ({@linkcode selectRankGpu}), or null. */
  selection: string | null;
}

/**
 * Warnings for ranks on one host that got the same adapter with the same (or no) device
 * selection: they share one GPU, which works but runs them one after the other.
 *
 * @example
 * ```ts
 * import { sameAdapterWarnings } from "./distributed.ts";
 * const a = { host: "n1", adapter: "H100", selection: null };
 * console.log(sameAdapterWarnings([{ rank: 0, ...a }, { rank: 1, ...a }]).length); // 1
 * ```
 */
export function sameAdapterWarnings(ranks: RankAdapter[]): string[] {
  const groups = new Map<string, number[]>();
  for (const r of ranks) {
    const key = JSON.stringify([r.host, r.adapter, r.selection]);
    groups.set(key, [...(groups.get(key) ?? []), r.rank]);
  }
  const out: string[] = [];
  for (const [key, members] of groups) {
    if (members.length < 2) continue;
    const [host, adapter] = JSON.parse(key) as [string, string];
    out.push(
      `warning: ranks ${members.join(", ")} on ${host} share the adapter "${adapter}" ` +
        `(one GPU for several ranks runs them in turn); set BST_RANK_GPUS to one device per ` +
        `local rank (see docs/multi-gpu.md)`,
    );
  }
  return out;
}
