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
  /** `--num_samples`: lines to write; sample x is drawn after `random.seed(x)`. */
  numSamples: number;
  /** `--num_paths`: paths leaving the source. */
  numPaths: number;
  /** `--path_length`: nodes on each path, the source included. */
  pathLength: number;
  /** `--max_nodes`: node ids are 0..maxNodes−1. */
  maxNodes: number;
}

/**
 * Checks the arguments and throws one line naming the first impossible one: every number
 * must be a positive integer, and the graph's num_paths·(path_length−1)+1 nodes must fit in
 * max_nodes. (A path length of 1 is allowed, as in the reference: `/s,s=s`. Zero samples
 * are refused: the reference would write an empty file, which no dataset accepts.)
 *
 * @example
 * ```ts
 * import { validateStarGraphSpec } from "./stargraph_generate.ts";
 * validateStarGraphSpec({ numSamples: 10, numPaths: 5, pathLength: 5, maxNodes: 50 }); // ok
 * try {
 *   validateStarGraphSpec({ numSamples: 10, numPaths: 13, pathLength: 5, maxNodes: 50 });
 * } catch (e) {
 *   console.log((e as Error).message); // "A star graph with 13 paths … needs … 53 nodes, …"
 * }
 * ```
 */
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
  const needed = s.numPaths * (s.pathLength - 1) + 1;
  if (needed > s.maxNodes) {
    throw new Error(
      `A star graph with ${s.numPaths} paths of length ${s.pathLength} needs ` +
        `num_paths*(path_length-1)+1 = ${needed} nodes, more than max_nodes ${s.maxNodes}`,
    );
  }
}

/**
 * The file name the reference writes: `graph_{paths}_{length}_sample_{n}.txt`.
 *
 * @example
 * ```ts
 * import { starGraphFileName } from "./stargraph_generate.ts";
 * console.log(starGraphFileName({ numPaths: 5, pathLength: 5, numSamples: 8000000 }));
 * // graph_5_5_sample_8000000.txt
 * ```
 */
export function starGraphFileName(
  s: Pick<StarGraphSpec, "numPaths" | "pathLength" | "numSamples">,
): string {
  return `graph_${s.numPaths}_${s.pathLength}_sample_${s.numSamples}.txt`;
}

/**
 * Reads `graph_{paths}_{length}_sample_{n}.txt` (any directory) back into its numbers; null
 * for any other name.
 *
 * @example
 * ```ts
 * import { parseStarGraphFileName } from "./stargraph_generate.ts";
 * console.log(parseStarGraphFileName("data/stargraph/graph_2_5_sample_20.txt"));
 * // { numPaths: 2, pathLength: 5, numSamples: 20 }
 * ```
 */
export function parseStarGraphFileName(
  path: string,
): Pick<StarGraphSpec, "numPaths" | "pathLength" | "numSamples"> | null {
  const m = path.split("/").at(-1)!.match(/^graph_(\d+)_(\d+)_sample_(\d+)\.txt$/);
  if (!m) return null;
  return { numPaths: Number(m[1]), pathLength: Number(m[2]), numSamples: Number(m[3]) };
}

/**
 * Reusable buffers of {@linkcode starGraphLine} and {@linkcode writeStarGraphLine} (one per
 * generator, so the hot loop allocates nothing).
 *
 * @example
 * ```ts
 * import { StarGraphScratch } from "./stargraph_generate.ts";
 * const scratch = new StarGraphScratch({ numSamples: 1, numPaths: 2, pathLength: 5, maxNodes: 50 });
 * console.log(scratch.from.length); // 8 edges
 * ```
 */
export class StarGraphScratch {
  readonly nodes: Int32Array;
  readonly from: Int32Array;
  readonly to: Int32Array;
  readonly order: Int32Array;
  readonly path: Int32Array;
  /** Decimal strings of 0..maxNodes−1. */
  readonly names: string[];
  /** ASCII bytes of the same names. */
  readonly nameBytes: Uint8Array[];

  /** Buffers for samples of `spec` (the spec is checked first). */
  constructor(readonly spec: StarGraphSpec) {
    validateStarGraphSpec(spec);
    const edges = spec.numPaths * (spec.pathLength - 1);
    this.nodes = new Int32Array(spec.maxNodes);
    this.from = new Int32Array(edges);
    this.to = new Int32Array(edges);
    this.order = new Int32Array(edges);
    this.path = new Int32Array(spec.pathLength);
    this.names = Array.from({ length: spec.maxNodes }, (_, i) => String(i));
    const enc = new TextEncoder();
    this.nameBytes = this.names.map((n) => enc.encode(n));
  }
}

/**
 * Draws sample x into `scratch` exactly as the reference does: seed x, shuffle the node ids,
 * pop the source and each path's nodes from the end, shuffle the edge list (here: a list of
 * edge indices, which sees the same swaps). Returns the number of edges.
 */
function drawSample(x: number, s: StarGraphSpec, rng: PyRandom, scratch: StarGraphScratch): number {
  rng.seed(x);
  const { nodes, from, to, order, path } = scratch;
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
  return e;
}

/**
 * One sample's line (without the newline), exactly as the reference writes it:
 * `a,b|c,d|…/source,goal=source,…,goal`.
 *
 * @param x the sample index (the reference's `random.seed(x)`).
 * @param s the generator's arguments.
 * @param rng a generator to reuse (re-seeded here).
 * @param scratch buffers to reuse, made for `s`.
 *
 * @example
 * ```ts
 * import { starGraphLine } from "./stargraph_generate.ts";
 * const spec = { numSamples: 1, numPaths: 2, pathLength: 5, maxNodes: 50 };
 * console.log(starGraphLine(0, spec)); // the first line of graph_2_5_sample_N.txt
 * ```
 */
export function starGraphLine(
  x: number,
  s: StarGraphSpec,
  rng: PyRandom = new PyRandom(),
  scratch: StarGraphScratch = new StarGraphScratch(s),
): string {
  const e = drawSample(x, s, rng, scratch);
  const { from, to, order, path, names } = scratch;
  let line = "";
  for (let k = 0; k < e; k++) {
    if (k > 0) line += "|";
    line += names[from[order[k]]] + "," + names[to[order[k]]];
  }
  line += "/" + names[path[0]] + "," + names[path[s.pathLength - 1]] + "=";
  for (let i = 0; i < s.pathLength; i++) line += (i > 0 ? "," : "") + names[path[i]];
  return line;
}

const PIPE = 0x7c, COMMA = 0x2c, SLASH = 0x2f, EQUALS = 0x3d, NEWLINE = 0x0a;

/** Upper bound of one line's bytes (with its newline) for `s`. */
function maxLineBytes(s: StarGraphSpec): number {
  const digits = String(s.maxNodes - 1).length;
  const edges = s.numPaths * (s.pathLength - 1);
  return edges * (2 * digits + 2) + (2 + s.pathLength) * (digits + 1) + 4;
}

/**
 * Writes sample x's line and a newline as ASCII into `out` at `pos` (no strings: the hot
 * path of the generator); returns the position after the newline. `out` must have room for
 * the longest possible line.
 *
 * @example
 * ```ts
 * import { PyRandom } from "./mt19937.ts";
 * import { StarGraphScratch, writeStarGraphLine } from "./stargraph_generate.ts";
 * const spec = { numSamples: 1, numPaths: 2, pathLength: 5, maxNodes: 50 };
 * const out = new Uint8Array(256);
 * const end = writeStarGraphLine(0, spec, new PyRandom(), new StarGraphScratch(spec), out, 0);
 * console.log(new TextDecoder().decode(out.subarray(0, end)));
 * ```
 */
export function writeStarGraphLine(
  x: number,
  s: StarGraphSpec,
  rng: PyRandom,
  scratch: StarGraphScratch,
  out: Uint8Array,
  pos: number,
): number {
  const e = drawSample(x, s, rng, scratch);
  const { from, to, order, path, nameBytes } = scratch;
  const put = (b: Uint8Array) => {
    out.set(b, pos);
    pos += b.length;
  };
  for (let k = 0; k < e; k++) {
    if (k > 0) out[pos++] = PIPE;
    put(nameBytes[from[order[k]]]);
    out[pos++] = COMMA;
    put(nameBytes[to[order[k]]]);
  }
  out[pos++] = SLASH;
  put(nameBytes[path[0]]);
  out[pos++] = COMMA;
  put(nameBytes[path[s.pathLength - 1]]);
  out[pos++] = EQUALS;
  for (let i = 0; i < s.pathLength; i++) {
    if (i > 0) out[pos++] = COMMA;
    put(nameBytes[path[i]]);
  }
  out[pos++] = NEWLINE;
  return pos;
}

/**
 * The bytes of samples [start, end): their lines, each ending in a newline — the slice of the
 * reference's file for those samples.
 *
 * @example
 * ```ts
 * import { starGraphBytes } from "./stargraph_generate.ts";
 * const spec = { numSamples: 20, numPaths: 2, pathLength: 5, maxNodes: 50 };
 * const bytes = starGraphBytes(spec, 0, 20); // all of graph_2_5_sample_20.txt
 * console.log(bytes.length); // 1280
 * ```
 */
export function starGraphBytes(
  s: StarGraphSpec,
  start: number,
  end: number,
  rng: PyRandom = new PyRandom(),
  scratch: StarGraphScratch = new StarGraphScratch(s),
): Uint8Array {
  const out = new Uint8Array((end - start) * maxLineBytes(s));
  let pos = 0;
  for (let x = start; x < end; x++) pos = writeStarGraphLine(x, s, rng, scratch, out, pos);
  return out.subarray(0, pos);
}

/** Options of {@linkcode generateStarGraphFile}. */
export interface GenerateOptions extends StarGraphSpec {
  /** Output file (written to a temporary file beside it, then renamed). */
  path: string;
  /** Called with the number of samples written so far, after each chunk. */
  onProgress?: (done: number) => void;
  /**
   * Worker threads formatting samples (default: the number of CPUs, at most 4; 0: none).
   * Workers are used only when read access to this module's directory is granted; without
   * it the samples are formatted on this thread (same bytes, slower).
   */
  workers?: number;
}

/**
 * Whether a worker can load `url` without a permission prompt or failure: a local module
 * needs read access to its directory (the worker's own imports live there too).
 */
function workerAllowed(url: URL): boolean {
  if (url.protocol !== "file:") return false;
  const dir = decodeURIComponent(new URL(".", url).pathname);
  return Deno.permissions.querySync({ name: "read", path: dir }).state === "granted";
}

function defaultWorkers(): number {
  return Math.min(4, navigator.hardwareConcurrency ?? 1);
}

/** Samples per work item handed to a worker. */
const CHUNK = 50_000;

/**
 * Formats samples [start, end) into UTF-8 bytes with `workers` Web Workers (in order), or on
 * this thread when `workers` is 0 or Workers are unavailable. Yields chunks in sample order.
 */
async function* sampleChunks(
  spec: StarGraphSpec,
  workers: number,
): AsyncGenerator<{ bytes: Uint8Array; end: number }> {
  const n = spec.numSamples;
  const ranges: [number, number][] = [];
  for (let s = 0; s < n; s += CHUNK) ranges.push([s, Math.min(n, s + CHUNK)]);
  const url = new URL("./_stargraph_worker.ts", import.meta.url);
  let pool: Worker[] = [];
  if (workerAllowed(url)) {
    try {
      pool = Array.from(
        { length: Math.min(workers, ranges.length) },
        () => new Worker(url, { type: "module" }),
      );
    } catch {
      pool = [];
    }
  }
  if (pool.length === 0) {
    const rng = new PyRandom();
    const scratch = new StarGraphScratch(spec);
    for (const [start, end] of ranges) {
      yield { bytes: starGraphBytes(spec, start, end, rng, scratch), end };
    }
    return;
  }
  const pending = new Map<
    number,
    { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }
  >();
  const results: Promise<Uint8Array>[] = [];
  for (const w of pool) {
    w.onmessage = (e: MessageEvent<{ id: number; bytes?: Uint8Array; error?: string }>) => {
      const p = pending.get(e.data.id)!;
      pending.delete(e.data.id);
      if (e.data.error !== undefined) p.reject(new Error(e.data.error));
      else p.resolve(e.data.bytes!);
    };
    w.onerror = (e) => {
      e.preventDefault();
      for (const p of pending.values()) p.reject(new Error(e.message));
      pending.clear();
    };
  }
  let next = 0;
  const submit = () => {
    if (next >= ranges.length) return;
    const id = next++;
    const [start, end] = ranges[id];
    results[id] = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    pool[id % pool.length].postMessage({ id, spec, start, end });
  };
  try {
    // Keep two items per worker in flight.
    for (let i = 0; i < 2 * pool.length; i++) submit();
    for (let id = 0; id < ranges.length; id++) {
      const bytes = await results[id];
      submit();
      yield { bytes, end: ranges[id][1] };
    }
  } finally {
    for (const w of pool) w.terminate();
  }
}

/**
 * Writes the reference's star-graph file, streaming chunks of samples in order. The file
 * appears only when complete (temporary file `{path}.tmp-{pid}` + rename); on failure the
 * temporary file is removed.
 *
 * Requires write access to the file's directory (created if missing), and read access to
 * this module's directory for the worker threads (without it: one thread, same bytes).
 *
 * @throws One line naming the file when it cannot be written, or the impossible argument.
 *
 * @example
 * ```ts ignore
 * import { generateStarGraphFile } from "./stargraph_generate.ts";
 * await generateStarGraphFile({
 *   numSamples: 5000, numPaths: 2, pathLength: 5, maxNodes: 50,
 *   path: "data/stargraph/graph_2_5_sample_5000.txt",
 *   onProgress: (done) => console.error(done),
 * });
 * ```
 */
export async function generateStarGraphFile(o: GenerateOptions): Promise<void> {
  validateStarGraphSpec(o);
  const dir = o.path.includes("/") ? o.path.slice(0, o.path.lastIndexOf("/")) || "/" : ".";
  const tmp = `${o.path}.tmp-${Deno.pid}`;
  const fail = (e: unknown): Error =>
    new Error(`Cannot write star-graph file "${o.path}": ${(e as Error).message}`, { cause: e });
  let file: Deno.FsFile;
  try {
    await Deno.mkdir(dir, { recursive: true });
    file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  } catch (e) {
    throw fail(e);
  }
  try {
    const spec: StarGraphSpec = {
      numSamples: o.numSamples,
      numPaths: o.numPaths,
      pathLength: o.pathLength,
      maxNodes: o.maxNodes,
    };
    for await (const { bytes, end } of sampleChunks(spec, o.workers ?? defaultWorkers())) {
      let done = 0;
      while (done < bytes.length) done += await file.write(bytes.subarray(done));
      o.onProgress?.(end);
    }
    file.close();
    await Deno.rename(tmp, o.path);
  } catch (e) {
    try {
      file.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw fail(e);
  }
}
