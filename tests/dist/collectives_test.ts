import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { finish, MPI_LIBRARY, mpirun } from "./_mpirun.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("Mpi allreduceSum(), allgather() and barrier() combine 2 ranks under mpirun", async () => {
  const out = await finish(
    mpirun([
      Deno.execPath(),
      "run",
      `--allow-read=${root}`,
      "--allow-env",
      `--allow-ffi=${MPI_LIBRARY}`,
      "tests/dist/_collectives.ts",
    ], { cwd: root, env: { BST_MPI_LIBRARY: MPI_LIBRARY, NO_COLOR: "1" } }).spawn(),
  );
  assert.equal(out.code, 0, out.stderr);
  const ranks = out.stdout.trim().split("\n").map((l) => JSON.parse(l));
  ranks.sort((a, b) => a.rank - b.rank);
  assert.deepEqual(ranks.map((r) => r.rank), [0, 1]);
  for (const r of ranks) {
    assert.equal(r.size, 2);
    assert.ok(r.host);
    assert.deepEqual(r.f32, [2, 30, -2]);
    assert.deepEqual(r.f64, [3e-12, 1]);
    assert.deepEqual(r.gathered, ["r", "rr"]);
  }
});

/** loadMpiLibrary(`path`)'s message in a process without FFI permission. */
async function loadWithoutFfi(path?: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${root}`,
      "--allow-env",
      "tests/dist/_load_library.ts",
      ...(path ? [path] : []),
    ],
    cwd: root,
    env: { NO_COLOR: "1" },
    clearEnv: true,
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("loadMpiLibrary() refuses a BST_MPI_LIBRARY path outside the FFI permissions", async () => {
  assert.match(
    await loadWithoutFfi("/nowhere/libmpi.so.40"),
    /^BST_MPI_LIBRARY "\/nowhere\/libmpi.so.40" is not in this task's FFI permissions/,
  );
});

Deno.test("loadMpiLibrary() says how to grant FFI when no library path is allowed", async () => {
  assert.match(await loadWithoutFfi(), /^This process may not load Open MPI's library/);
});
