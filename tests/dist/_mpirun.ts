// Helpers of the tests that start `mpirun` (Open MPI): the command, and the library path.

import { MPI_LIBRARY_CANDIDATES } from "../../src/dist/mpi.ts";

/** Open MPI's library on this machine: BST_MPI_LIBRARY, else the first standard path found. */
export const MPI_LIBRARY: string = Deno.env.get("BST_MPI_LIBRARY") ??
  MPI_LIBRARY_CANDIDATES.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  }) ?? MPI_LIBRARY_CANDIDATES[0];

/**
 * `mpirun` with 2 ranks on this machine (`--oversubscribe`: more ranks than cores are fine;
 * `--allow-run-as-root`: CI containers run as root), `extra` flags before the command.
 */
export function mpirun(args: string[], options: Deno.CommandOptions = {}, extra: string[] = []) {
  return new Deno.Command("mpirun", {
    args: ["--allow-run-as-root", "--oversubscribe", "-np", "2", ...extra, ...args],
    stdout: "piped",
    stderr: "piped",
    ...options,
  });
}

/** The decoded output of a finished command. */
export async function finish(child: Deno.ChildProcess) {
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
