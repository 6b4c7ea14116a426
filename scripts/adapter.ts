/**
 * `deno task adapter`: prints the WebGPU adapter this machine gives Deno, as one JSON object,
 * and exits 1 with one line saying how to get one when there is none.
 *
 * Permissions: none beyond reading `XDG_RUNTIME_DIR`/`DENO_WEBGPU_BACKEND` (Mesa, wgpu).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { getGpu } from "../src/gpu/device.ts";

const { values } = parseArgs({ options: { help: { type: "boolean", short: "h" } } });
if (values.help) {
  console.log(`Usage: deno task adapter

Prints the WebGPU adapter (description, vendor, fallback flag, granted limits) as JSON.
Exits 1 when no adapter is available. Set DENO_WEBGPU_BACKEND=vulkan or gl to pick a backend.`);
  Deno.exit(0);
}
try {
  const gpu = await getGpu();
  console.log(JSON.stringify(gpu.info));
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
}
