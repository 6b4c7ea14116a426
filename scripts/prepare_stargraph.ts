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

import { DATA_ROOTS, resolveContained } from "../src/io/safe_paths.ts";
import {
  generateStarGraphFile,
  starGraphFileName,
  type StarGraphSpec,
  validateStarGraphSpec,
} from "../src/data/stargraph_generate.ts";
import { parseCli } from "./_cli.ts";

const { values } = parseCli({
  usage: "deno task prepare:stargraph [flags]",
  about: "Generates star-graph path-finding data exactly as microsoft/BST's prepare.py does.",
  flags: {
    num_samples: {
      type: "integer",
      min: 1,
      default: 8000000,
      help: "samples to generate (default 8000000)",
    },
    num_paths: { type: "integer", min: 1, default: 5, help: "paths from the source (default 5)" },
    path_length: {
      type: "integer",
      min: 1,
      default: 5,
      help: "nodes on each path, the source included (default 5)",
    },
    max_nodes: { type: "integer", min: 1, default: 50, help: "node ids 0..N-1 (default 50)" },
    data_dir: {
      type: "string",
      arg: "DIR",
      default: "data/stargraph",
      help: "output directory (default data/stargraph)",
    },
    quiet: { type: "boolean", help: "no progress bar" },
  },
  notes: `Writes DIR/graph_{num_paths}_{path_length}_sample_{num_samples}.txt (temporary file, then
rename) and prints its path on stdout; the progress bar goes to stderr. Needs
num_paths*(path_length-1)+1 <= max_nodes. The task may write under ./data only; for
another directory run
  deno run --allow-read=src/data --allow-write=DIR scripts/prepare_stargraph.ts --data_dir DIR`,
});
const spec: StarGraphSpec = {
  numSamples: values.num_samples,
  numPaths: values.num_paths,
  pathLength: values.path_length,
  maxNodes: values.max_nodes,
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
