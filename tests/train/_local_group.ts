// An in-process Collective: `size` ranks that are concurrent async tasks of one process, for
// testing the data-parallel trainer without mpirun. The k-th call of every rank joins round k;
// sums are taken in rank order.
import type { Collective } from "../../src/train/distributed.ts";

interface Round {
  parts: unknown[];
  arrived: number;
  done: PromiseWithResolvers<unknown[]>;
}

/** `size` collectives that talk to each other. */
export function localGroup(size: number): Collective[] {
  const rounds: Round[] = [];
  const join = (rank: number, call: number, part: unknown): Promise<unknown[]> => {
    rounds[call] ??= { parts: new Array(size), arrived: 0, done: Promise.withResolvers() };
    const round = rounds[call];
    round.parts[rank] = part;
    if (++round.arrived === size) round.done.resolve(round.parts);
    return round.done.promise;
  };
  return Array.from({ length: size }, (_, rank) => {
    let calls = 0;
    return {
      rank,
      size,
      host: "local",
      async allreduceSum(data: Float32Array | Float64Array) {
        const parts = (await join(rank, calls++, data.slice())) as (typeof data)[];
        for (let i = 0; i < data.length; i++) {
          let s = 0;
          for (const p of parts) s += p[i];
          data[i] = s;
        }
      },
      async allgather(bytes: Uint8Array) {
        return (await join(rank, calls++, bytes.slice())) as Uint8Array[];
      },
      async barrier() {
        await join(rank, calls++, null);
      },
      finalize() {},
    };
  });
}
