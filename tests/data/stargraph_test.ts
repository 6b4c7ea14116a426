import assert from "node:assert/strict";
import { numpyPermutation, PyRandom } from "../../src/data/mt19937.ts";
import { trainTestSplitIndices } from "../../src/data/split.ts";
import { loadStarGraph, parseStarGraph } from "../../src/data/stargraph.ts";
import {
  generateStarGraphFile,
  parseStarGraphFileName,
  starGraphLine,
  validateStarGraphSpec,
} from "../../src/data/stargraph_generate.ts";
import { StarGraphTokenizer } from "../../src/tokenizers/stargraph.ts";

const fixtureUrl = new URL("../fixtures/graph_2_5_sample_20.txt", import.meta.url);

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("PyRandom matches CPython's random for seeds, getrandbits, _randbelow, shuffle", () => {
  // Values printed by CPython 3.11: random.Random(0).getrandbits(32) × 3, and so on.
  const r = new PyRandom(0);
  assert.deepEqual([r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)], [
    3626764237,
    1654615998,
    3255389356,
  ]);
  const big = new PyRandom(12345678901234); // two 32-bit key words
  assert.deepEqual([big.getrandbits(32), big.randbelow(50)], [107551873, 35]);
  const l = Array.from({ length: 10 }, (_, i) => i);
  new PyRandom(3).shuffle(l);
  assert.deepEqual(l, [1, 5, 6, 0, 9, 4, 7, 2, 8, 3]);
});

Deno.test("the generator reproduces the reference's 20-sample file byte for byte", async () => {
  const want = await Deno.readTextFile(fixtureUrl);
  const spec = { numSamples: 20, numPaths: 2, pathLength: 5, maxNodes: 50 };
  const lines = Array.from({ length: 20 }, (_, x) => starGraphLine(x, spec) + "\n").join("");
  assert.equal(lines, want);
});

Deno.test("generateStarGraphFile() matches the reference's sha256 for 5000 samples", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/graph_2_5_sample_5000.txt`;
  let last = 0;
  await generateStarGraphFile({
    numSamples: 5000,
    numPaths: 2,
    pathLength: 5,
    maxNodes: 50,
    path,
    onProgress: (n) => (last = n),
  });
  assert.equal(last, 5000);
  assert.equal(
    await sha256(await Deno.readFile(path)),
    "60a711d41001d6cbb9f0f1af6a784229d0cc5656969088a82ae63c6e8f3eb2ec",
  );
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["graph_2_5_sample_5000.txt"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("validateStarGraphSpec() rejects impossible arguments with one line", () => {
  assert.throws(
    () => validateStarGraphSpec({ numSamples: 1, numPaths: 13, pathLength: 5, maxNodes: 50 }),
    /needs num_paths\*\(path_length-1\)\+1 = 53 nodes, more than max_nodes 50/,
  );
  assert.throws(
    () => validateStarGraphSpec({ numSamples: 0, numPaths: 2, pathLength: 5, maxNodes: 50 }),
    /num_samples must be a positive integer, got 0/,
  );
  assert.deepEqual(parseStarGraphFileName("data/x/graph_5_5_sample_8000000.txt"), {
    numPaths: 5,
    pathLength: 5,
    numSamples: 8000000,
  });
  assert.equal(parseStarGraphFileName("data/graph.txt"), null);
});

Deno.test("trainTestSplitIndices() reproduces numpy's RandomState(42).permutation", async () => {
  const s20 = trainTestSplitIndices(20);
  assert.deepEqual([...s20.test], [0, 17]);
  assert.deepEqual([...s20.train].slice(0, 10), [15, 1, 8, 5, 11, 3, 18, 16, 13, 2]);
  const p20 = numpyPermutation(20, 42);
  assert.equal(
    await sha256(new Uint8Array(p20.buffer)),
    "88f974ef8d853bea595311d2cf52bbdf5dc2b3b2062788827a8283a32c7c4a14",
  );
  const p5000 = numpyPermutation(5000, 42);
  assert.deepEqual(
    [...p5000.subarray(0, 12)],
    [1501, 2586, 2653, 1055, 705, 106, 589, 2468, 2413, 1600, 2464, 228],
  );
  assert.equal(
    await sha256(new Uint8Array(p5000.buffer)),
    "426828d064257038bfda6aca8b396f1dc248d97aa8c8208d3a9ee715ff4d62c9",
  );
  const s5000 = trainTestSplitIndices(5000);
  assert.equal(s5000.test.length, 500);
  assert.deepEqual(s5000.train[0], p5000[500]);
});

Deno.test("StarGraphTokenizer encodes, appends EOS and decodes like the reference", () => {
  const tok = new StarGraphTokenizer(50);
  const line = "12,15|13,1/12,8=12,13,1,8";
  const ids = tok.tokenize(line);
  assert.deepEqual(ids, [12, 15, 50, 13, 1, 52, 12, 8, 51, 12, 13, 1, 8, 54]);
  assert.equal(tok.vocabSize, 56);
  assert.equal(tok.decode(ids), line);
  assert.throws(() => tok.encode("1,2#3", "x"), /x: unknown symbol "#" at column 4/);
  assert.throws(() => tok.encode("1,50", "x"), /x: node id 50 is not below max_nodes 50/);
});

Deno.test("loadStarGraph() derives block size, context length and vocab like update_config", async () => {
  const ds = await loadStarGraph(fixtureUrl.pathname, 50);
  assert.equal(ds.rows, 20);
  assert.equal(ds.blockSize, 33); // G(2,5): 26 prefix tokens, "=", 5 path tokens, EOS
  assert.equal(ds.contextLength, 26);
  assert.equal(ds.vocabSize, 56);
  assert.equal(ds.tokens[32], ds.eosTokenId);
  assert.equal(ds.tokens[26], 51); // "=" at the context length
});

Deno.test("malformed star-graph files give one-line errors with the line number", async () => {
  const ok = "1,2|1,3/1,2=1,2";
  assert.throws(
    () => parseStarGraph(`${ok}\n1,2|1,3/1,2=1,2,3\n`, 50, "f.txt"),
    /^Error: "f\.txt" line 2: 13 tokens, but line 1 has 12$/,
  );
  assert.throws(
    () => parseStarGraph(`${ok}\n${ok}\n1,2|1,x/1,2=1,2\n`, 50, "f.txt"),
    /"f\.txt" line 3: unknown symbol "x"/,
  );
  assert.throws(
    () => parseStarGraph(`${ok}\n1,2|1,99/1,2=1,2\n`, 50, "f.txt"),
    /"f\.txt" line 2: node id 99/,
  );
  assert.throws(() => parseStarGraph("", 50, "f.txt"), /"f\.txt" is empty/);
  await assert.rejects(() => loadStarGraph("/nonexistent/graph.txt", 50), /not found/);
});
