/**
 * Start-up and failure handling of one `mpirun` rank of `deno task train`: MPI
 * initialisation, one GPU per local rank, the same-adapter warning, and `MPI_Abort` when a
 * rank fails so that the whole job ends at once instead of waiting in a collective.
 *
 * Environment: `OMPI_COMM_WORLD_SIZE`, `_RANK`, `_LOCAL_RANK`, `_LOCAL_SIZE` (set by
 * `mpirun`), `BST_MPI_LIBRARY` (the library path), `BST_MPI_TIMEOUT` (seconds a collective
 * may wait for the other ranks, default {@linkcode DEFAULT_MPI_TIMEOUT_S}), `BST_RANK_GPUS`
 * (one device per local rank, see `selectRankGpu` in `src/train/distributed.ts`).
 *
 * @module
 */

import { getGpu, type Gpu } from "../gpu/device.ts";
import {
  type MpiPlacement,
  type RankAdapter,
  sameAdapterWarnings,
  selectRankGpu,
} from "../train/distributed.ts";
import { Mpi } from "./mpi.ts";

/** Default seconds a collective waits for the other ranks before the job is aborted. */
export const DEFAULT_MPI_TIMEOUT_S = 900;

/** One started rank: its MPI handle and its GPU. */
export interface Rank {
  mpi: Mpi;
  gpu: Gpu;
}

function timeoutFromEnv(): number {
  const text = Deno.env.get("BST_MPI_TIMEOUT");
  if (text === undefined) return DEFAULT_MPI_TIMEOUT_S;
  const n = Number(text);
  if (!(n > 0)) {
    throw new Error(`BST_MPI_TIMEOUT must be a positive number of seconds, got "${text}"`);
  }
  return n;
}

/**
 * Initialises MPI for a process `mpirun` placed, selects this rank's GPU (before the adapter
 * is requested), and warns on rank 0 when local ranks got the same adapter.
 *
 * @param placement from `mpiPlacement()`.
 * @returns the MPI handle and the GPU.
 * @throws Error when MPI's view of the job differs from `mpirun`'s variables, or on any
 * start-up failure (the caller aborts the job, see {@linkcode abortJob}).
 */
export async function startRank(placement: MpiPlacement): Promise<Rank> {
  const mpi = Mpi.init({ timeoutSeconds: timeoutFromEnv() });
  try {
    if (mpi.size !== placement.size || mpi.rank !== placement.rank) {
      throw new Error(
        `MPI reports rank ${mpi.rank} of ${mpi.size} but mpirun set rank ${placement.rank} of ` +
          `${placement.size}: is "${mpi.path}" the library of the mpirun that started the job?`,
      );
    }
    const selection = selectRankGpu(placement.localRank);
    const gpu = await getGpu({ log: mpi.rank === 0 });
    const info = gpu.info;
    const mine: RankAdapter = {
      rank: mpi.rank,
      host: mpi.host,
      adapter: [info.description, info.vendor, info.architecture].filter((s) => s).join(" / "),
      selection,
    };
    const all = (await mpi.allgather(new TextEncoder().encode(JSON.stringify(mine))))
      .map((b) => JSON.parse(new TextDecoder().decode(b)) as RankAdapter);
    if (mpi.rank === 0) {
      console.error(`MPI: ${mpi.size} ranks (${mpi.path})`);
      for (const line of sameAdapterWarnings(all)) console.error(line);
    }
    return { mpi, gpu };
  } catch (e) {
    abortJob(mpi, e);
  }
}

/**
 * Prints `error` as this rank's one-line failure (`error: rank R of N: …`) and ends the whole
 * job with `MPI_Abort` (exit status 2 for usage errors, else 1). Does not return.
 *
 * @param mpi the rank's MPI handle.
 * @param error what failed.
 * @param report formats the error into lines and an exit code (default: the message).
 */
export function abortJob(
  mpi: Mpi,
  error: unknown,
  report: (e: unknown) => { lines: string[]; code: number } = (e) => ({
    lines: [`error: ${e instanceof Error ? e.message : String(e)}`],
    code: 1,
  }),
): never {
  const { lines, code } = report(error);
  for (const line of lines) {
    console.error(line.replace(/^(error|hint): /, `$1: rank ${mpi.rank} of ${mpi.size}: `));
  }
  mpi.abort(code);
}
