/**
 * `mpirun -np N deno task bench:allreduce`: the time of one `MPI_Allreduce` (sum) of a flat
 * fp32 gradient buffer over the ranks — by default 104M floats (416 MB), the paper star-graph
 * BST (`config/bst_stargraph_defaults.yaml`: 6 layers, 768 wide) — in calls of `--bucket`
 * floats as training makes them (default 16M floats, 64 MB), as one JSON object on rank 0's
 * stdout: the median and fastest of `--repeats` timed passes over the buffer after one
 * warm-up, and the algorithm bandwidth (buffer bytes / time). Each pass starts after a
 * barrier; the sum is checked.
 *
 * Permissions (`-P=bench_allreduce`): env (`OMPI_COMM_WORLD_*`, `BST_MPI_LIBRARY`,
 * `BST_MPI_TIMEOUT`), FFI for Open MPI's library.
 *
 * @module
 */

import { Mpi } from "../src/dist/mpi.ts";
import { GRADIENT_BUCKET_FLOATS, mpiPlacement } from "../src/train/distributed.ts";
import { parseCli, runMain } from "./_cli.ts";

const { values } = parseCli({
  usage: "deno task bench:allreduce [--floats N] [--bucket N] [--repeats N] (under mpirun -np N)",
  about: `Times MPI_Allreduce (sum) of one fp32 buffer over the mpirun ranks, as data-parallel
training does with the flat gradient buffer every step. Prints one JSON object on rank 0's stdout.`,
  flags: {
    floats: {
      type: "integer",
      min: 1,
      default: 104_000_000,
      help: "buffer length (default 104000000: the paper model's 104M parameters)",
    },
    bucket: {
      type: "integer",
      min: 1,
      default: GRADIENT_BUCKET_FLOATS,
      help: `floats per MPI_Allreduce call (default ${GRADIENT_BUCKET_FLOATS}, as training)`,
    },
    repeats: { type: "integer", min: 1, default: 5, help: "timed passes (default 5)" },
  },
});

await runMain(async () => {
  if (!mpiPlacement()) {
    throw new Error(
      "bench:allreduce needs ranks to reduce over: run it as mpirun -np 2 deno task bench:allreduce",
    );
  }
  const mpi = Mpi.init();
  const n = values.floats;
  const data = new Float32Array(n);
  const times: number[] = [];
  for (let i = 0; i <= values.repeats; i++) {
    data.fill(mpi.rank + 1);
    await mpi.barrier();
    const t0 = performance.now();
    for (let start = 0; start < n; start += values.bucket) {
      await mpi.allreduceSum(data.subarray(start, Math.min(n, start + values.bucket)));
    }
    if (i > 0) times.push(performance.now() - t0); // the first call is the warm-up
  }
  const want = (mpi.size * (mpi.size + 1)) / 2;
  if (data[0] !== want || data[n - 1] !== want) {
    throw new Error(`MPI_Allreduce gave ${data[0]}, expected ${want}`);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const hosts = new Set(
    (await mpi.allgather(new TextEncoder().encode(mpi.host))).map((b) =>
      new TextDecoder().decode(b)
    ),
  );
  if (mpi.rank === 0) {
    console.log(JSON.stringify({
      ranks: mpi.size,
      hosts: hosts.size,
      floats: n,
      bucket_floats: Math.min(n, values.bucket),
      megabytes: Number((n * 4 / 1e6).toFixed(1)),
      ms_median: Number(median.toFixed(1)),
      ms_min: Number(times[0].toFixed(1)),
      algbw_gb_per_s: Number((n * 4 / 1e6 / median).toFixed(2)),
      library: mpi.path,
    }));
  }
  mpi.finalize();
});
