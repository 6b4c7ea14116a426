import assert from "node:assert/strict";
import { numpyPermutation } from "../../src/data/mt19937.ts";
import {
  loadStarGraph,
  parseStarGraph,
  StarGraphBatches,
  type StarGraphDataset,
  starGraphModelSizes,
  trainBatchRows,
} from "../../src/data/stargraph.ts";
import { trainTestSplitIndices } from "../../src/data/split.ts";

const fixturePath = new URL("../fixtures/graph_2_5_sample_20.txt", import.meta.url).pathname;

/** A file under a fresh temp dir with `text`; removes the dir after `fn`. */
async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bst_stargraph_" });
  try {
    const path = `${dir}/graph.txt`;
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadStarGraph() derives vocab, block size and context length like update_config", async () => {
  const ds = await loadStarGraph(fixturePath, 50);
  assert.equal(ds.rows, 20);
  // G(2,5): 8 edges = 16 nodes + 7 "|", "/", source, goal, "=", 5 path nodes, EOS
  assert.deepEqual(starGraphModelSizes(ds), { vocab_size: 56, context_length: 26, block_size: 33 });
  assert.equal(ds.eosTokenId, 54);
  const lines = (await Deno.readTextFile(fixturePath)).trimEnd().split("\n");
  for (let r = 0; r < ds.rows; r++) {
    const row = ds.tokens.subarray(r * 33, (r + 1) * 33);
    assert.equal(row[26], 51, `"=" at the context length in row ${r}`);
    assert.equal(row[32], 54, `EOS last in row ${r}`);
    assert.deepEqual([...row], ds.tokenizer.tokenize(lines[r]));
    assert.equal(ds.tokenizer.decode(row), lines[r]);
  }
});

Deno.test("loadStarGraph() gives the same rows for any chunk size (lines across chunks)", async () => {
  const whole = await loadStarGraph(fixturePath, 50);
  for (const chunkBytes of [1, 7, 64, 1000]) {
    const ds = await loadStarGraph(fixturePath, 50, { chunkBytes });
    assert.deepEqual(ds.tokens, whole.tokens, `chunkBytes ${chunkBytes}`);
  }
  const bytes = await Deno.readFile(fixturePath);
  assert.deepEqual(parseStarGraph(bytes, 50, "bytes").tokens, whole.tokens);
});

Deno.test("parseStarGraph() strips whitespace and reads a last line without a newline", () => {
  const ds = parseStarGraph(" 1,2|1,3/1,2=1,2\r\n4,5|4,6/4,6=4,6\t", 10, "x");
  assert.equal(ds.rows, 2);
  assert.deepEqual([...ds.tokens.subarray(12)], [4, 5, 10, 4, 6, 12, 4, 6, 11, 4, 6, 14]);
});

Deno.test("malformed star-graph data gives one-line errors naming the file and line", async () => {
  const ok = "1,2|1,3/1,2=1,2";
  const cases: [string, string][] = [
    [`${ok}\n1,2|1,3/1,2=1,2,3\n`, `line 2 has 13 tokens with EOS, but line 1 has 12`],
    [`${ok}\n${ok}\n1,2|1,x/1,2=1,2\n`, `line 3: unknown symbol "x" at column 7`],
    [`${ok}\n1,2|1,49/1,2=1,2\n`, `line 2: node id 49 at column 7 is not below max_nodes 10`],
    [`${ok}\n1,2|1,03/1,2=1,2\n`, `line 2: node id 03 at column 7 has a leading zero`],
    [`${ok}\n\n${ok}\n`, `line 2 is empty`],
    [`${ok}\n${ok}\n\n`, `line 3 is empty`],
    [`1,2|1,3/1,2,1,2\n`, `line 1 has no "=" between the graph and the path`],
    [`${ok}\n1,2|1,3/1=2,1,2\n`, `line 2 has no "=" at token 9, where line 1 has it`],
    ["", "is empty"],
    ["  \n", "line 1 is empty"],
  ];
  for (const [text, why] of cases) {
    const msg = `Star-graph data file "f.txt" ${why}`;
    assert.throws(() => parseStarGraph(text, 10, "f.txt"), (e: Error) => e.message === msg);
    await withFile(text, async (path) => {
      await assert.rejects(
        () => loadStarGraph(path, 10, { chunkBytes: 5 }),
        (e: Error) => e.message === msg.replace('"f.txt"', `"${path}"`),
      );
    });
  }
});

Deno.test("loadStarGraph() names a missing file or a directory", async () => {
  await assert.rejects(
    () => loadStarGraph("/nonexistent/graph.txt", 50),
    (e: Error) => e.message === `Star-graph data file "/nonexistent/graph.txt" not found`,
  );
  const dir = await Deno.makeTempDir({ prefix: "bst_stargraph_" });
  try {
    await assert.rejects(() => loadStarGraph(dir, 50), new RegExp(`"${dir}" is a directory`));
  } finally {
    await Deno.remove(dir);
  }
});

/** n one-token-per-node lines "i,i+1/i,i+1=i,i+1": row r starts with token r. */
function numbered(n: number): StarGraphDataset {
  const lines = Array.from({ length: n }, (_, i) => `${i},${i + 1}/${i},${i + 1}=${i},${i + 1}`);
  return parseStarGraph(lines.join("\n") + "\n", n + 1, "numbered");
}

/** First token of each row of a batch: the dataset row index (see numbered()). */
function rowIds(b: { tokens: Int32Array; rows: number }, T: number): number[] {
  return Array.from({ length: b.rows }, (_, i) => b.tokens[i * T]);
}

Deno.test("StarGraphBatches splits as the reference and covers each epoch once, in a fresh order", () => {
  const ds = numbered(20);
  const T = ds.blockSize;
  const b = new StarGraphBatches(ds, { batchSize: 4, seed: 1337 });
  const split = trainTestSplitIndices(20);
  assert.deepEqual(b.trainIndices, split.train);
  assert.deepEqual(b.valIndices, split.test);
  assert.equal(b.batchesPerEpoch, 4); // 18 rows: 4 batches of 4, 2 rows dropped
  const epoch0 = [0, 1, 2, 3].flatMap((s) => rowIds(b.trainBatch(s), T));
  const epoch1 = [4, 5, 6, 7].flatMap((s) => rowIds(b.trainBatch(s), T));
  assert.equal(new Set(epoch0).size, 16);
  assert.ok(epoch0.every((r) => split.train.includes(r)));
  assert.notDeepEqual(epoch0, epoch1);
  // Epoch e's order is numpy.random.RandomState([seed, e]).permutation(n_train).
  const perm0 = numpyPermutation(18, [1337, 0]);
  assert.deepEqual(epoch0, [...perm0.subarray(0, 16)].map((p) => split.train[p]));
  assert.equal(b.trainBatch(5).epoch, 1);
  // A different seed, a different order; the same seed, the same order.
  const other = new StarGraphBatches(ds, { batchSize: 4, seed: 1 });
  assert.notDeepEqual(rowIds(other.trainBatch(0), T), rowIds(b.trainBatch(0), T));
  assert.deepEqual(
    rowIds(new StarGraphBatches(ds, { batchSize: 4, seed: 1337 }).trainBatch(0), T),
    rowIds(b.trainBatch(0), T),
  );
});

Deno.test("StarGraphBatches.train(from) fast-forwards to the same batches as iterating", () => {
  const ds = numbered(50);
  const b = new StarGraphBatches(ds, { batchSize: 8, seed: 7 });
  const it = b.train();
  const first: Int32Array[] = [];
  for (let i = 0; i < 13; i++) first.push(it.next().value!.tokens);
  const resumed = b.train(9);
  for (let s = 9; s < 13; s++) {
    const batch = resumed.next().value!;
    assert.equal(batch.index, s);
    assert.deepEqual(batch.tokens, first[s]);
  }
  assert.deepEqual(b.trainBatch(11).tokens, first[11]);
  const out = new Int32Array(8 * ds.blockSize);
  assert.equal(b.trainBatch(3, out).tokens, out);
  assert.deepEqual(out, first[3]);
});

Deno.test("StarGraphBatches validation batches are in split order, last partial one dropped", () => {
  const ds = numbered(50); // 5 validation rows
  const T = ds.blockSize;
  const val = trainTestSplitIndices(50).test;
  const b = new StarGraphBatches(ds, { batchSize: 2 });
  assert.equal(b.valBatchCount, 2);
  assert.deepEqual([...b.val()].flatMap((x) => rowIds(x, T)), [...val.subarray(0, 4)]);
  assert.equal([...b.val(1)].length, 1);
  const all = new StarGraphBatches(ds, { batchSize: 2, dropLastVal: false });
  assert.equal(all.valBatchCount, 3);
  assert.deepEqual([...all.val()].flatMap((x) => rowIds(x, T)), [...val]);
  assert.throws(() => b.valBatch(2), /Validation batch 2 is out of range 0..1/);
});

Deno.test("trainBatchRows() rejects a batch larger than the split and bad seeds", () => {
  assert.throws(
    () => trainBatchRows(3, 4, 1, 0),
    /^Error: The training split has 3 rows, fewer than one batch of 4$/,
  );
  assert.throws(() => trainBatchRows(10, 4, -1, 0), /Data seed must be an integer in \[0, 2\^32\)/);
  assert.throws(() => trainBatchRows(10, 0, 1, 0), /Batch size must be a positive integer/);
  assert.throws(
    () => new StarGraphBatches(numbered(20), { batchSize: 19 }),
    /fewer than one batch/,
  );
});
