// Run by collectives_test.ts without FFI permission: prints loadMpiLibrary()'s error line.
import { loadMpiLibrary } from "../../src/dist/mpi.ts";

try {
  loadMpiLibrary(Deno.args[0]);
  console.log("loaded");
} catch (e) {
  console.log((e as Error).message);
}
