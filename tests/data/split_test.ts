import assert from "node:assert/strict";
import { trainTestSplitIndices } from "../../src/data/split.ts";

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The permutation back from the split: test rows first, then train rows. */
function permutation(s: { train: Int32Array; test: Int32Array }): Int32Array {
  const p = new Int32Array(s.test.length + s.train.length);
  p.set(s.test);
  p.set(s.train, s.test.length);
  return p;
}

Deno.test("trainTestSplitIndices(20) is the reference's split (fixtures table)", async () => {
  const s = trainTestSplitIndices(20);
  assert.deepEqual([...s.test], [0, 17]);
  assert.deepEqual([...s.train].slice(0, 10), [15, 1, 8, 5, 11, 3, 18, 16, 13, 2]);
  assert.equal(s.train.length, 18);
  const p = permutation(s);
  assert.equal(
    await sha256(new Uint8Array(p.buffer)),
    "88f974ef8d853bea595311d2cf52bbdf5dc2b3b2062788827a8283a32c7c4a14",
  );
});

Deno.test("trainTestSplitIndices(5000) is the reference's split (fixtures table)", async () => {
  const s = trainTestSplitIndices(5000);
  assert.equal(s.test.length, 500);
  assert.equal(s.train.length, 4500);
  const p = permutation(s);
  assert.deepEqual(
    [...p.subarray(0, 12)],
    [1501, 2586, 2653, 1055, 705, 106, 589, 2468, 2413, 1600, 2464, 228],
  );
  assert.equal(
    await sha256(new Uint8Array(p.buffer)),
    "426828d064257038bfda6aca8b396f1dc248d97aa8c8208d3a9ee715ff4d62c9",
  );
  assert.equal(new Set(p).size, 5000);
});

Deno.test("trainTestSplitIndices() takes ceil(testSize·n) test rows and other seeds", () => {
  assert.equal(trainTestSplitIndices(21).test.length, 3); // ceil(2.1)
  assert.equal(trainTestSplitIndices(10, { testSize: 0.25 }).test.length, 3);
  const a = trainTestSplitIndices(50, { seed: 7 });
  const b = trainTestSplitIndices(50);
  assert.notDeepEqual([...a.test], [...b.test]);
  assert.deepEqual(trainTestSplitIndices(0), { train: new Int32Array(0), test: new Int32Array(0) });
});

Deno.test("trainTestSplitIndices() rejects a bad size or fraction", () => {
  assert.throws(() => trainTestSplitIndices(-1), /Row count must be a non-negative integer/);
  assert.throws(() => trainTestSplitIndices(10, { testSize: 1 }), /testSize must be in \(0, 1\)/);
  assert.throws(() => trainTestSplitIndices(10, { seed: -3 }), /Seed must be an integer/);
});
