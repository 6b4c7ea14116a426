/**
 * `deno task adapter`: prints the WebGPU adapter this machine gives Deno, as one JSON object,
 * and exits 1 with one line saying how to get one when there is none.
 *
 * Permissions: none beyond reading `XDG_RUNTIME_DIR`/`DENO_WEBGPU_BACKEND` (Mesa, wgpu).
 *
 * @module
 */

import { getGpu } from "../src/gpu/device.ts";
import { parseCli, runMain } from "./_cli.ts";

parseCli({
  usage: "deno task adapter",
  about: `Prints the WebGPU adapter (description, vendor, fallback flag, granted limits) as JSON.
Exits 1 when no adapter is available. Set DENO_WEBGPU_BACKEND=vulkan or gl to pick a backend.`,
  flags: {},
});
await runMain(async () => {
  const gpu = await getGpu();
  console.log(JSON.stringify(gpu.info));
});
