import assert from "node:assert/strict";
import { PairSampler } from "../../src/models/bst_pairs.ts";
import { buildPairBatch } from "../../src/models/bst_pairs.ts";
import {
  floatHash,
  mpiPlacement,
  rankMicroBatch,
  sameAdapterWarnings,
  selectRankGpu,
  slicePairRows,
} from "../../src/train/distributed.ts";

Deno.test("rankMicroBatch() names the ranks and accumulation steps when rows do not divide", () => {
  assert.equal(rankMicroBatch(64, 4, 2), 8);
  assert.throws(
    () => rankMicroBatch(12, 4, 2),
    /^Error: data.effective_batch_size 12 is not divisible by 4 ranks × data.gradient_accum_steps 2/,
  );
});

Deno.test("slicePairRows() of every rank's rows puts back the whole micro-batch's pairs", () => {
  const cfg = {
    eosTokenId: 9,
    blockSize: 6,
    contextLength: 1,
    pairMinimumGap: 1,
    pairMaximumGap: -1,
    pairSubsampleRate: 0.5,
    singleGapPredictionMode: "eos" as const,
  };
  const T = 6;
  const rows = 4;
  const tokens = new Int32Array(rows * T).map((_, i) => (i * 7) % 10);
  const all = buildPairBatch(tokens, rows, T, new PairSampler(cfg, 3), { pairBatchSize: 3 });
  const parts = [0, 1].map((r) => slicePairRows(all, r * 2, 2, T));
  assert.equal(parts[0].count + parts[1].count, all.count);
  assert.deepEqual([...parts[0].fIndex, ...parts[1].fIndex.map((i) => i + 2 * T)], [
    ...all.fIndex,
  ]);
  assert.deepEqual([...parts[0].bIndex, ...parts[1].bIndex.map((i) => i + 2 * T)], [
    ...all.bIndex,
  ]);
  assert.deepEqual([...parts[0].weight, ...parts[1].weight], [...all.weight]);
  assert.deepEqual([...parts[1].nextTarget], [...all.nextTarget.subarray(parts[0].count)]);
  assert.deepEqual(parts[1].rowOffsets[0], 0);
  assert.equal(parts[1].rowOffsets[2], parts[1].count);
  assert.throws(() => slicePairRows(all, 3, 2, T), /^Error: Rows 3…4 are outside a batch of 4/);
});

Deno.test("floatHash() is a 64-bit FNV-1a that tells one flipped bit apart", () => {
  const a = new Float32Array(1000).map((_, i) => Math.sin(i));
  const b = a.slice();
  new Uint32Array(b.buffer)[517] ^= 1;
  assert.match(floatHash(a), /^[0-9a-f]{16}$/);
  assert.equal(floatHash(a), floatHash(a.slice()));
  assert.notEqual(floatHash(a), floatHash(b));
  // FNV-1a 64 of no data is its offset basis
  assert.equal(floatHash(new Float32Array(0)), "cbf29ce484222325");
  // one word: (basis ^ w) × prime mod 2^64, computed with BigInt
  const w = new Uint32Array(new Float32Array([1.5]).buffer)[0];
  const want = ((0xcbf29ce484222325n ^ BigInt(w)) * 0x100000001b3n) & 0xffffffffffffffffn;
  assert.equal(floatHash(new Float32Array([1.5])), want.toString(16).padStart(16, "0"));
});

Deno.test("mpiPlacement() reads Open MPI's variables and rejects a malformed one", () => {
  assert.equal(mpiPlacement(() => undefined), null);
  const env: Record<string, string> = { OMPI_COMM_WORLD_SIZE: "4", OMPI_COMM_WORLD_RANK: "x" };
  assert.throws(
    () => mpiPlacement((k) => env[k]),
    /^Error: OMPI_COMM_WORLD_RANK must be a non-negative integer, got "x"/,
  );
});

Deno.test("selectRankGpu() sets one device per local rank and needs an entry for each", () => {
  const vars = new Map([["BST_RANK_GPUS", "10de:2330, 10de:2331"]]);
  const env = { get: (k: string) => vars.get(k), set: (k: string, v: string) => vars.set(k, v) };
  assert.equal(selectRankGpu(1, env), "MESA_VK_DEVICE_SELECT=10de:2331");
  assert.equal(vars.get("DRI_PRIME"), undefined);
  assert.throws(() => selectRankGpu(2, env), /^Error: BST_RANK_GPUS lists 2 GPUs but local rank 2/);
  assert.equal(selectRankGpu(0, { get: () => undefined, set: () => {} }), null);
});

Deno.test("sameAdapterWarnings() warns only about ranks on one host with one adapter", () => {
  const base = { adapter: "NVIDIA H100", selection: null };
  assert.deepEqual(
    sameAdapterWarnings([
      { rank: 0, host: "a", ...base },
      { rank: 1, host: "b", ...base },
      { rank: 2, host: "a", ...base, selection: "DRI_PRIME=pci-0000_65_00_0" },
    ]),
    [],
  );
  const w = sameAdapterWarnings([
    { rank: 0, host: "a", ...base },
    { rank: 1, host: "a", ...base },
  ]);
  assert.equal(w.length, 1);
  assert.match(w[0], /^warning: ranks 0, 1 on a share the adapter "NVIDIA H100"/);
});
