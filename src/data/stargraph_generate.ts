/**
 * The star-graph generator of microsoft/BST (`data/stargraph/prepare.py`), byte-identical for
 * any arguments: for sample x it seeds CPython's MT19937 with x, shuffles the node ids, pops
 * the source and the paths' nodes from the end, shuffles the edge list, and writes
 * `a,b|c,d|…/source,goal=source,…,goal`.
 *
 * @module
 */

import { PyRandom } from "./mt19937.ts";

/** Arguments of the generator (the reference's flags). */
export interface StarGraphSpec {
  numSamples: number;
  numPaths: number;
  pathLength: number;
  maxNodes: number;
}

/** Checks the arguments and throws one line naming the first impossible one. */
export function validateStarGraphSpec(s: StarGraphSpec): void {
  const flags: [string, number][] = [
    ["num_samples", s.numSamples],
    ["num_paths", s.numPaths],
    ["path_length", s.pathLength],
    ["max_nodes", s.maxNodes],
  ];
  for (const [k, v] of flags) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new Error(`${k} must be a positive integer, got ${v}`);
    }
  }
  if (s.pathLength < 2) throw new Error(`path_length must be at least 2, got ${s.pathLength}`);
  const needed = s.numPaths * (s.pathLength - 1) + 1;
  if (needed > s.maxNodes) {
    throw new Error(
      `A star graph with ${s.numPaths} paths of length ${s.pathLength} needs ` +
        `num_paths*(path_length-1)+1 = ${needed} nodes, more than max_nodes ${s.maxNodes}`,
    );
  }
}

/** The file name the reference writes: `graph_{paths}_{length}_sample_{n}.txt`. */
export function starGraphFileName(
  s: Pick<StarGraphSpec, "numPaths" | "pathLength" | "numSamples">,
) {
  return `graph_${s.numPaths}_${s.pathLength}_sample_${s.numSamples}.txt`;
}

/** Reads `graph_{paths}_{length}_sample_{n}.txt` back into its numbers (null otherwise). */
export function parseStarGraphFileName(
  path: string,
): Pick<StarGraphSpec, "numPaths" | "pathLength" | "numSamples"> | null {
  const m = path.split("/").at(-1)!.match(/^graph_(\d+)_(\d+)_sample_(\d+)\.txt$/);
  if (!m) return null;
  return { numPaths: Number(m[1]), pathLength: Number(m[2]), numSamples: Number(m[3]) };
}

/** Reusable buffers of {@linkcode starGraphLine} (one per generator). */
export class StarGraphScratch {
  readonly nodes: Int32Array;
  readonly from: Int32Array;
  readonly to: Int32Array;
  readonly order: Int32Array;
  readonly path: Int32Array;
  /** Decimal strings of 0..maxNodes−1. */
  readonly names: string[];

  constructor(readonly spec: StarGraphSpec) {
    const edges = spec.numPaths * (spec.pathLength - 1);
    this.nodes = new Int32Array(spec.maxNodes);
    this.from = new Int32Array(edges);
    this.to = new Int32Array(edges);
    this.order = new Int32Array(edges);
    this.path = new Int32Array(spec.pathLength);
    this.names = Array.from({ length: spec.maxNodes }, (_, i) => String(i));
  }
}

/**
 * One sample's line (without the newline), exactly as the reference writes it: seed x,
 * shuffle the node ids, pop the source and each path's nodes from the end, shuffle the edge
 * list (here: a list of edge indices, which sees the same swaps), then format.
 */
export function starGraphLine(
  x: number,
  s: StarGraphSpec,
  rng = new PyRandom(),
  scratch = new StarGraphScratch(s),
): string {
  rng.seed(x);
  const { nodes, from, to, order, path, names } = scratch;
  for (let i = 0; i < s.maxNodes; i++) nodes[i] = i;
  rng.shuffle(nodes);
  let top = s.maxNodes;
  const source = nodes[--top];
  let e = 0;
  path[0] = source;
  for (let p = 0; p < s.numPaths; p++) {
    let old = source;
    for (let i = 0; i < s.pathLength - 1; i++) {
      const next = nodes[--top];
      from[e] = old;
      to[e] = next;
      order[e] = e;
      e++;
      old = next;
      if (p === 0) path[i + 1] = old;
    }
  }
  rng.shuffle(order);
  let line = "";
  for (let k = 0; k < e; k++) {
    if (k > 0) line += "|";
    line += names[from[order[k]]] + "," + names[to[order[k]]];
  }
  line += "/" + names[source] + "," + names[path[s.pathLength - 1]] + "=";
  for (let i = 0; i < s.pathLength; i++) line += (i > 0 ? "," : "") + names[path[i]];
  return line;
}

/** Options of {@linkcode generateStarGraphFile}. */
export interface GenerateOptions extends StarGraphSpec {
  /** Output file (written to a temporary file beside it, then renamed). */
  path: string;
  /** Called with the number of samples written so far, about every 1%. */
  onProgress?: (done: number) => void;
}

/**
 * Writes the reference's star-graph file. The file appears only when complete (temporary
 * file + rename); on failure the temporary file is removed.
 */
export async function generateStarGraphFile(o: GenerateOptions): Promise<void> {
  validateStarGraphSpec(o);
  const dir = o.path.includes("/") ? o.path.slice(0, o.path.lastIndexOf("/")) : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${o.path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  const rng = new PyRandom();
  const scratch = new StarGraphScratch(o);
  try {
    const every = Math.max(1, Math.floor(o.numSamples / 100));
    let chunk: string[] = [];
    let size = 0;
    const flush = async () => {
      const bytes = enc.encode(chunk.join(""));
      let done = 0;
      while (done < bytes.length) done += await file.write(bytes.subarray(done));
      chunk = [];
      size = 0;
    };
    for (let x = 0; x < o.numSamples; x++) {
      const line = starGraphLine(x, o, rng, scratch) + "\n";
      chunk.push(line);
      size += line.length;
      if (size > 1 << 20) await flush();
      if (o.onProgress && ((x + 1) % every === 0 || x + 1 === o.numSamples)) o.onProgress(x + 1);
    }
    await flush();
    file.close();
    await Deno.rename(tmp, o.path);
  } catch (e) {
    try {
      file.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write star-graph file "${o.path}": ${(e as Error).message}`, {
      cause: e,
    });
  }
}
