/**
 * `deno task conformance FILE...`: checks this implementation against PyTorch reference
 * fixtures. Prints one JSON object per check, then a summary line; exits 0 only when every
 * check passes (tolerance atol 1e-4 + rtol 1e-3).
 *
 * Also runs when imported by URL (everything it imports is npm-free):
 * `deno run --allow-import=HOST --allow-read=FILE https://HOST/scripts/conformance.ts FILE`.
 *
 * Permissions: read of the files named on the command line.
 *
 * @module
 */

import { getGpu } from "../src/gpu/device.ts";
import { type Check, conformance } from "../src/conformance/conformance.ts";
import { readSafetensors } from "../src/io/safetensors.ts";
import { parseCli, runMain } from "./_cli.ts";

const { positionals } = parseCli({
  usage: "deno task conformance FILE.safetensors [FILE...]",
  about: `Runs every check a PyTorch reference fixture describes (encoder outputs, text-head logits,
evaluation losses, training loss, gradients, grad norm, AdamW update, ...) and prints one
JSON object per check and a summary. Exit code 0 only when all checks pass.`,
  flags: {},
  positionals: { name: "FILE", min: 1, file: true },
});

await runMain(async () => {
  const gpu = await getGpu();
  const all: Check[] = [];
  for (const path of positionals) {
    let checks: Check[];
    try {
      const file = await readSafetensors(path);
      checks = await conformance(gpu, file, path.split("/").at(-1)!);
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
