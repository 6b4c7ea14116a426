// Run by collectives_test.ts under `mpirun -np 2`: each rank exercises the Open MPI
// bindings and prints one JSON line with what it got.
import { Mpi } from "../../src/dist/mpi.ts";

const mpi = Mpi.init({ timeoutSeconds: 60 });
const f32 = new Float32Array([mpi.rank + 0.5, 10 * (mpi.rank + 1), -1]);
await mpi.allreduceSum(f32);
const f64 = new Float64Array([1e-12 * (mpi.rank + 1), mpi.rank]);
await mpi.allreduceSum(f64);
const gathered = await mpi.allgather(new TextEncoder().encode("r".repeat(mpi.rank + 1)));
await mpi.barrier();
console.log(JSON.stringify({
  rank: mpi.rank,
  size: mpi.size,
  host: mpi.host.length > 0,
  f32: [...f32],
  f64: [...f64],
  gathered: gathered.map((b) => new TextDecoder().decode(b)),
}));
mpi.finalize();
