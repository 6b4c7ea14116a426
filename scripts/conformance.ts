/**
 * `deno task conformance FILE...`: checks this implementation against PyTorch reference
 * fixtures. Prints one JSON object per check, then a summary line; exits 0 only when every
 * check passes (tolerance atol 1e-4 + rtol 1e-3; with `--precision 16-mixed` the model runs
 * its Linear layers on f16 inputs and the tolerance is 2e-2 + 2e-2).
 *
 * Also runs when imported by URL (everything it imports is npm-free):
 * `deno run --allow-import=HOST --allow-read=FILE https://HOST/scripts/conformance.ts FILE`.
 *
 * Permissions: read of the files named on the command line.
 *
 * @module
 */

import { getGpu } from "../src/gpu/device.ts";
import { type Check, conformance, F16_TOLERANCE } from "../src/conformance/conformance.ts";
import type { ModelPrecision } from "../src/models/flat_params.ts";
import { readSafetensors } from "../src/io/safetensors.ts";
import { parseCli, runMain } from "./_cli.ts";

const { positionals, values } = parseCli({
  usage: "deno task conformance [--precision 32-true|16-mixed] FILE.safetensors [FILE...]",
  about: `Runs every check a PyTorch reference fixture describes (encoder outputs, text-head logits,
evaluation losses, training loss, gradients, grad norm, AdamW update, ...) and prints one
JSON object per check and a summary. Exit code 0 only when all checks pass.`,
  flags: {
    precision: {
      type: "string",
      arg: "P",
      choices: ["32-true", "16-mixed"],
      default: "32-true",
      help: `precision of the model under test (16-mixed: f16 Linear inputs, needs shader-f16, ` +
        `tolerance ${F16_TOLERANCE.atol} + ${F16_TOLERANCE.rtol}·|want|)`,
    },
  },
  positionals: { name: "FILE", min: 1, file: true },
});

await runMain(async () => {
  const gpu = await getGpu();
  const all: Check[] = [];
  for (const path of positionals) {
    let checks: Check[];
    try {
      const file = await readSafetensors(path);
      checks = await conformance(gpu, file, path.split("/").at(-1)!, {
        precision: values.precision as ModelPrecision,
      });
    } catch (e) {
      checks = [{
        fixture: path,
        name: "load",
        max_abs_err: null,
        max_rel_err: null,
        ok: false,
        error: (e as Error).message,
      }];
    }
    for (const c of checks) console.log(JSON.stringify(c));
    all.push(...checks);
  }
  const failed = all.filter((c) => !c.ok);
  console.log(
    `conformance: ${all.length - failed.length} passed, ${failed.length} failed` +
      (failed.length ? ` (${[...new Set(failed.map((c) => c.fixture))].join(", ")})` : ""),
  );
  return failed.length === 0 ? 0 : 1;
});
