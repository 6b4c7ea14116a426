/**
 * `deno task prepare:stargraph`: writes the reference's star-graph file
 * `{data_dir}/graph_{num_paths}_{path_length}_sample_{num_samples}.txt`, byte-identical to
 * microsoft/BST `data/stargraph/prepare.py` with the same flags and defaults.
 *
 * Permissions (`-P=prepare`): write `./data` only, read `./src/data` (the generator's worker
 * threads; without it one thread, same bytes). For another `--data_dir`, run
 * `deno run --allow-read=src/data --allow-write=DIR scripts/prepare_stargraph.ts --data_dir DIR`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DATA_ROOTS, resolveContained } from "../src/io/safe_paths.ts";
import {
  generateStarGraphFile,
  starGraphFileName,
  type StarGraphSpec,
  validateStarGraphSpec,
} from "../src/data/stargraph_generate.ts";

const USAGE = `Usage: deno task prepare:stargraph [flags]

Generates star-graph path-finding data exactly as microsoft/BST's prepare.py does.

  --num_samples N   samples to generate (default 8000000)
  --num_paths N     paths from the source (default 5)
  --path_length N   nodes on each path, the source included (default 5)
  --max_nodes N     node ids 0..N-1 (default 50)
  --data_dir DIR    output directory (default data/stargraph)
  --quiet           no progress bar
  -h, --help        this text

Writes DIR/graph_{num_paths}_{path_length}_sample_{num_samples}.txt (temporary file, then
rename) and prints its path on stdout; the progress bar goes to stderr. Needs
num_paths*(path_length-1)+1 <= max_nodes. The task may write under ./data only; for
another directory run
  deno run --allow-read=src/data --allow-write=DIR scripts/prepare_stargraph.ts --data_dir DIR`;

let values;
try {
  values = parseArgs({
    options: {
      help: { type: "boolean", short: "h" },
      quiet: { type: "boolean" },
      num_samples: { type: "string", default: "8000000" },
      num_paths: { type: "string", default: "5" },
      path_length: { type: "string", default: "5" },
      max_nodes: { type: "string", default: "50" },
      data_dir: { type: "string", default: "data/stargraph" },
    },
  }).values;
} catch (e) {
  // parseArgs explains some mistakes over several lines: keep the first, point to --help.
  const first = (e as Error).message.split("\n")[0].replace(/\.$/, "");
  console.error(`error: ${first} (see --help)`);
  Deno.exit(2);
}
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const int = (name: string, text: string): number => {
  if (!/^\d+$/.test(text)) {
    console.error(`error: --${name} must be a positive integer, got "${text}"`);
    Deno.exit(2);
  }
  return Number(text);
};
const spec: StarGraphSpec = {
  numSamples: int("num_samples", values.num_samples),
  numPaths: int("num_paths", values.num_paths),
  pathLength: int("path_length", values.path_length),
  maxNodes: int("max_nodes", values.max_nodes),
};
try {
  validateStarGraphSpec(spec);
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(2);
}
const path = `${values.data_dir.replace(/\/+$/, "")}/${starGraphFileName(spec)}`;
const started = performance.now();
const enc = new TextEncoder();
let drawn = false;
const bar = (done: number) => {
  drawn = true;
  const width = 40;
  const filled = Math.round((done / spec.numSamples) * width);
  const secs = (performance.now() - started) / 1000;
  const line = `\r|${"█".repeat(filled)}${" ".repeat(width - filled)}| ` +
    `${((done / spec.numSamples) * 100).toFixed(1)}% ${done}/${spec.numSamples} ${
      secs.toFixed(1)
    }s`;
  Deno.stderr.writeSync(enc.encode(line));
};
try {
  await resolveContained(path, { roots: DATA_ROOTS, key: "--data_dir" });
  await generateStarGraphFile({ ...spec, path, onProgress: values.quiet ? undefined : bar });
} catch (e) {
  if (drawn) Deno.stderr.writeSync(enc.encode("\n"));
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
}
if (drawn) Deno.stderr.writeSync(enc.encode("\n"));
console.log(path);
