/**
 * Training data for a config: the star-graph file (generated when missing, if its name says
 * how) tokenized into rows, split as the reference does, with the sizes the model derives
 * from the data (`update_config`: vocab size, block size, context length).
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import { DATA_ROOTS, resolveContained } from "../io/safe_paths.ts";
import { generateStarGraphFile, parseStarGraphFileName } from "../data/stargraph_generate.ts";
import { loadStarGraph } from "../data/stargraph.ts";
import { trainTestSplitIndices } from "../data/split.ts";
import type { TrainData } from "./trainer.ts";

/** Options of {@linkcode loadTrainData}. */
export interface LoadTrainDataOptions {
  /** Generate a missing star-graph file named `graph_{paths}_{length}_sample_{n}.txt`. */
  generate?: boolean;
  /** Progress messages (default: stderr). */
  log?: (line: string) => void;
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Loads (and if needed generates) the data a config names. */
export async function loadTrainData(
  config: Config,
  options: LoadTrainDataOptions = {},
): Promise<TrainData> {
  const log = options.log ?? ((l: string) => console.error(l));
  const d = config.data;
  if (d.dataset !== "stargraph") {
    throw new Error(
      `data.dataset "${d.dataset}" is not supported by deno task train yet (only "stargraph")`,
    );
  }
  const path = d.stargraph_data_path;
  if (!path) throw new Error("data.stargraph_data_path is empty");
  await resolveContained(path, { roots: DATA_ROOTS, key: "data.stargraph_data_path" });
  if (!(await exists(path))) {
    const spec = parseStarGraphFileName(path);
    if (!options.generate || spec === null) {
      throw new Error(
        `Star-graph data file "${path}" not found; make it with deno task prepare:stargraph`,
      );
    }
    log(
      `Generating ${path} (${spec.numSamples} samples, ${spec.numPaths} paths of length ` +
        `${spec.pathLength}, ${d.stargraph_max_nodes} nodes)`,
    );
    await generateStarGraphFile({ ...spec, maxNodes: d.stargraph_max_nodes, path });
  }
  const ds = await loadStarGraph(path, d.stargraph_max_nodes);
  const T = ds.blockSize;
  const { train, test } = trainTestSplitIndices(ds.rows);
  const take = (idx: Int32Array) => {
    const out = new Int32Array(idx.length * T);
    idx.forEach((r, i) => out.set(ds.tokens.subarray(r * T, (r + 1) * T), i * T));
    return out;
  };
  const prefixLen = ds.contextLength + 1; // tokens through "="; the path follows, then EOS
  return {
    seqLen: T,
    vocabSize: ds.vocabSize,
    eosTokenId: ds.eosTokenId,
    contextLength: ds.contextLength,
    train: take(train),
    val: take(test),
    pathTask: { prefixLen, pathLen: T - prefixLen - 1 },
    decode: (ids) => ds.tokenizer.decode(ids),
  };
}
