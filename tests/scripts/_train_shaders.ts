/**
 * Test helper: runs what `deno task train` runs (the default config, then the key=value
 * arguments) and prints, as one JSON line, every shader module the run compiled: kernel names,
 * variant, hash and code. `wgsl_test.ts` checks that `deno task wgsl --all` writes each of them.
 *
 * @module
 */

import { loadConfig } from "../../src/config/load.ts";
import { compiledShaders } from "../../src/gpu/kernel.ts";
import { loadTrainData } from "../../src/train/data.ts";
import { train } from "../../src/train/trainer.ts";

const config = await loadConfig({ configFile: "config/stargraph_cpu.yaml", overrides: Deno.args });
await train(config, await loadTrainData(config, { generate: true }), {
  progress: false,
  handleInterrupt: false,
});
console.log(JSON.stringify(compiledShaders()));
