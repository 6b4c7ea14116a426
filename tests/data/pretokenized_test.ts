import assert from "node:assert/strict";
import { numpyPermutation } from "../../src/data/mt19937.ts";
import {
  openPretokenizedData,
  PretokenizedDataset,
  type PretokenizedFileEntry,
  PretokenizedTrainBatches,
  type PretokenizedTrainState,
  pretokenizedValidationBatches,
  READ_AHEAD_BYTES,
  resolveDataFiles,
} from "../../src/data/pretokenized.ts";
import { pretokenizeSplit } from "../../src/data/pretokenize.ts";
import { textFileSource } from "../../src/data/tinystories_sources.ts";
import { type NpyArray, readNpy, writeNpy } from "../../src/io/npy.ts";

async function withDir(f: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "pretokenized_" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Token file `name` holding `n` tokens: file f's token t is f·1000 + t (distinct everywhere). */
async function tokenFile(dir: string, name: string, f: number, n: number): Promise<number[]> {
  const values = Array.from({ length: n }, (_, t) => f * 1000 + t);
  await writeNpy(`${dir}/${name}`, Uint16Array.from(values));
  return values;
}

/**
 * The reference's rows, all in memory: LMDataset rows (⌊n / T⌋ slices) of each file, then
 * WeightedConcatDataset: ⌈rows · w⌉ per file, index j → row j mod rows.
 */
function referenceRows(files: { tokens: number[]; weight: number }[], T: number): number[][] {
  const out: number[][] = [];
  for (const { tokens, weight } of files) {
    const rows = Math.floor(tokens.length / T);
    const effective = Math.ceil(rows * weight);
    for (let j = 0; j < effective; j++) {
      const r = j % rows;
      out.push(tokens.slice(r * T, r * T + T));
    }
  }
  return out;
}

function split(batch: Int32Array, T: number): number[][] {
  return Array.from({ length: batch.length / T }, (_, r) => [...batch.subarray(r * T, r * T + T)]);
}

Deno.test("PretokenizedDataset rows match WeightedConcatDataset for weights 2, 0.5, 0 and mixed lists of several files", async () => {
  await withDir(async (dir) => {
    const T = 8;
    const a = await tokenFile(dir, "a.npy", 1, 43); // 5 rows, 3 tokens dropped
    const b = await tokenFile(dir, "b.npy", 2, 40); // 5 rows
    const c = await tokenFile(dir, "c.npy", 3, 7); // 0 rows
    const cases: [PretokenizedFileEntry[], { tokens: number[]; weight: number }[]][] = [
      [["a.npy"], [{ tokens: a, weight: 1 }]],
      [[["a.npy", 2]], [{ tokens: a, weight: 2 }]],
      [[["a.npy", 0.5]], [{ tokens: a, weight: 0.5 }]], // ⌈2.5⌉ = 3 rows
      [[["a.npy", 1.3], "b.npy", ["c.npy", 4], ["b.npy", 0]], [
        { tokens: a, weight: 1.3 },
        { tokens: b, weight: 1 },
        { tokens: c, weight: 4 },
        { tokens: b, weight: 0 },
      ]],
      [[["b.npy", 0.5], ["a.npy", 2.5], "b.npy"], [
        { tokens: b, weight: 0.5 },
        { tokens: a, weight: 2.5 },
        { tokens: b, weight: 1 },
      ]],
    ];
    for (const [entries, files] of cases) {
      const want = referenceRows(files, T);
      const ds = await PretokenizedDataset.open(dir, entries, T);
      try {
        assert.equal(ds.length, want.length, JSON.stringify(entries));
        const all = Array.from({ length: ds.length }, (_, i) => i);
        assert.deepEqual(split(await ds.readRows(all), T), want, JSON.stringify(entries));
        // Reversed and one at a time: the same rows.
        const reversed = split(await ds.readRows(all.toReversed()), T);
        assert.deepEqual(reversed, want.toReversed());
        for (let i = 0; i < ds.length; i++) {
          assert.deepEqual([...await ds.readRows([i])], want[i]);
        }
      } finally {
        ds.close();
      }
    }
    const ds = await PretokenizedDataset.open(dir, [["a.npy", 0.5], "b.npy", ["c.npy", 2]], T);
    assert.deepEqual(ds.describe(), [
      `${dir}/a.npy: 5 samples, 3 effective samples (weight=0.5)`,
      `${dir}/b.npy: 5 samples, 5 effective samples (weight=1)`,
      `${dir}/c.npy: 0 samples, 0 effective samples (weight=2)`,
    ]);
    assert.deepEqual(ds.locate(3), { file: 1, row: 0 });
    assert.throws(() => ds.locate(8), /Row 8 is out of range for a dataset of 8 rows/);
    ds.close();
  });
});

Deno.test("PretokenizedDataset reads big files right in any order (read-ahead cache and random rows)", async () => {
  await withDir(async (dir) => {
    const T = 100;
    // 3 read-ahead chunks and a bit: sequential reads cross chunk boundaries mid-row.
    const n = Math.floor(3.3 * READ_AHEAD_BYTES / 2);
    const values = Array.from({ length: n }, (_, i) => (i * 7919) % 65536);
    await writeNpy(`${dir}/big.npy`, Uint16Array.from(values));
    const ds = await PretokenizedDataset.open(dir, [["big.npy", 1.5]], T);
    const want = referenceRows([{ tokens: values, weight: 1.5 }], T);
    try {
      const got: number[][] = [];
      for await (const batch of pretokenizedValidationBatches(ds, 7)) got.push(...split(batch, T));
      assert.equal(got.length, Math.floor(want.length / 7) * 7);
      assert.deepEqual(got, want.slice(0, got.length));
      let seed = 12345;
      for (let k = 0; k < 50; k++) {
        const idx = Array.from({ length: 5 }, () => {
          seed = (seed * 1103515245 + 12345) % 2147483648;
          return seed % ds.length;
        });
        assert.deepEqual(split(await ds.readRows(idx), T), idx.map((i) => want[i]));
      }
    } finally {
      ds.close();
    }
  });
});

Deno.test("PretokenizedDataset reads uint8, int32 and int64 token files", async () => {
  await withDir(async (dir) => {
    const arrays: [string, NpyArray][] = [
      ["u1.npy", Uint8Array.from([1, 2, 3, 4, 255, 6])],
      ["i4.npy", Int32Array.from([1, 2, 3, 4, 100000, 6])],
      ["i8.npy", BigInt64Array.from([1n, 2n, 3n, 4n, 70000n, 6n])],
    ];
    for (const [name, data] of arrays) {
      await writeNpy(`${dir}/${name}`, data);
      const ds = await PretokenizedDataset.open(dir, [name], 2);
      assert.deepEqual([...await ds.readRows([2, 0])], [Number(data[4]), 6, 1, 2], name);
      ds.close();
    }
    await writeNpy(`${dir}/big.npy`, BigInt64Array.from([1n, 2n ** 40n]));
    const ds = await PretokenizedDataset.open(dir, ["big.npy"], 2);
    await assert.rejects(
      ds.readRows([0]),
      /big\.npy.*token id 1099511627776 does not fit in int32/,
    );
    ds.close();
  });
});

Deno.test("PretokenizedDataset.open() names the entry or file at fault", async () => {
  await withDir(async (dir) => {
    await tokenFile(dir, "a.npy", 1, 10);
    await writeNpy(`${dir}/m.npy`, new Int32Array(6), { shape: [2, 3] });
    await writeNpy(`${dir}/f.npy`, new Float32Array(6));
    const open = (entries: unknown[]) =>
      PretokenizedDataset.open(dir, entries as PretokenizedFileEntry[], 2, "data.x");
    await assert.rejects(open([]), /^Error: data\.x lists no files/);
    await assert.rejects(open([["a.npy", -1]]), /^Error: data\.x: bad entry \["a\.npy",-1\]/);
    await assert.rejects(open([["a.npy", 1, 2]]), /bad entry/);
    await assert.rejects(open([3]), /bad entry 3/);
    await assert.rejects(open(["missing.npy"]), /Cannot read ".*\/missing\.npy"/);
    await assert.rejects(open(["m.npy"]), /m\.npy.*expected a 1-d array/);
    await assert.rejects(
      open(["f.npy"]),
      /Cannot use ".*f\.npy" as token ids: its dtype is float32/,
    );
    await assert.rejects(PretokenizedDataset.open(dir, ["a.npy"], 0), /Block size must/);
    assert.deepEqual(resolveDataFiles("", ["x/a.npy"], "l"), [{ path: "x/a.npy", weight: 1 }]);
  });
});

Deno.test("PretokenizedTrainBatches walks each epoch's numpy permutation, drops the last partial batch, and resumes exactly", async () => {
  await withDir(async (dir) => {
    const T = 4;
    const a = await tokenFile(dir, "a.npy", 1, 30); // 7 rows
    const b = await tokenFile(dir, "b.npy", 2, 12); // 3 rows
    const entries: PretokenizedFileEntry[] = [["a.npy", 0.5], ["b.npy", 2]]; // 4 + 6 rows
    const want = referenceRows([{ tokens: a, weight: 0.5 }, { tokens: b, weight: 2 }], T);
    const ds = await PretokenizedDataset.open(dir, entries, T);
    try {
      assert.equal(ds.length, 10);
      const opts = { batchSize: 3, seed: 1337 };
      const batches = new PretokenizedTrainBatches(ds, opts);
      assert.equal(batches.batchesPerEpoch, 3);
      const seen: number[][][] = [];
      const states: PretokenizedTrainState[] = [];
      for (let k = 0; k < 8; k++) {
        states.push(batches.state);
        seen.push(split(await batches.next(), T));
      }
      for (const epoch of [0, 1]) {
        const perm = numpyPermutation(10, [1337, epoch]);
        const rows = [...perm.subarray(0, 9)].map((i) => want[i]);
        assert.deepEqual(seen.slice(3 * epoch, 3 * epoch + 3).flat(), rows, `epoch ${epoch}`);
      }
      assert.notDeepEqual(seen.slice(0, 3), seen.slice(3, 6));
      assert.equal(batches.epoch, 2);
      assert.deepEqual(batches.state, { epoch: 2, batch: 2, batches: 8 });
      // Resume from every saved state (mid-epoch and at an epoch's end) through JSON.
      for (let k = 0; k < 8; k++) {
        const resumed = new PretokenizedTrainBatches(
          ds,
          opts,
          JSON.parse(JSON.stringify(states[k])),
        );
        for (let j = k; j < 8; j++) assert.deepEqual(split(await resumed.next(), T), seen[j]);
      }
      // Another seed, another order; the same seed, the same order.
      const other = new PretokenizedTrainBatches(ds, { batchSize: 3, seed: 7 });
      assert.notDeepEqual(split(await other.next(), T), seen[0]);
      assert.throws(
        () => new PretokenizedTrainBatches(ds, { batchSize: 11, seed: 1 }),
        /The pretokenized training data \(10 rows of 4 tokens\) do not fill one batch of 11 rows/,
      );
      assert.throws(
        () => new PretokenizedTrainBatches(ds, opts, { epoch: 0, batch: 9, batches: 0 }),
        /Bad pretokenized data position/,
      );
    } finally {
      ds.close();
    }
  });
});

Deno.test("pretokenizedValidationBatches() yields the rows in order, the same each time, the last partial batch dropped", async () => {
  await withDir(async (dir) => {
    const T = 3;
    const a = await tokenFile(dir, "a.npy", 1, 20); // 6 rows
    const b = await tokenFile(dir, "b.npy", 2, 9); // 3 rows
    const { train, val } = await openPretokenizedData({
      dataPath: dir,
      train: ["a.npy"],
      val: ["a.npy", ["b.npy", 0.5]],
      blockSize: T,
    });
    try {
      const want = referenceRows([{ tokens: a, weight: 1 }, { tokens: b, weight: 0.5 }], T);
      assert.equal(val.length, 8);
      for (let pass = 0; pass < 2; pass++) {
        const got: number[][][] = [];
        for await (const batch of pretokenizedValidationBatches(val, 3)) got.push(split(batch, T));
        assert.deepEqual(got, [want.slice(0, 3), want.slice(3, 6)]);
      }
      assert.equal(train.length, 6);
    } finally {
      train.close();
      val.close();
    }
    await assert.rejects(
      openPretokenizedData({ dataPath: dir, train: ["a.npy"], val: ["nope.npy"], blockSize: T }),
      /nope\.npy/,
    );
  });
});

Deno.test("PretokenizedDataset trains from the shards pretokenizeSplit() writes: rows are the documents cut in blocks", async () => {
  await withDir(async (dir) => {
    const sample = new URL("../fixtures/tinystories/stories_40.txt", import.meta.url).pathname;
    const tokenizerJson = await Deno.readTextFile(
      new URL("../../src/tokenizers/tinystories_tokenizer.json", import.meta.url),
    );
    const r = await pretokenizeSplit({
      split: "train",
      source: textFileSource(sample),
      sourceInfo: [],
      tokenizerJson,
      eosId: 1,
      outputDir: dir,
      prefix: "tinystories2",
      shardTokens: 4000,
      workers: 0,
    });
    const names = r.record.shards.map((s) => s.file);
    assert.equal(names.length, 3);
    const T = 64;
    const ds = await PretokenizedDataset.open(dir, names, T);
    try {
      const rows = r.record.shards.reduce((n, s) => n + Math.floor(s.tokens / T), 0);
      assert.equal(ds.length, rows);
      const shard0 = (await readNpy(`${dir}/${names[0]}`)).data as Uint16Array;
      const shard1 = (await readNpy(`${dir}/${names[1]}`)).data as Uint16Array;
      const first = await ds.readRows([0]);
      assert.equal(first[0], 1); // the first story's EOS
      assert.deepEqual([...first], [...shard0.subarray(0, T)]);
      // Row 62 is the first of shard 1 (4000 tokens = 62 rows of 64, 32 dropped).
      assert.deepEqual([...await ds.readRows([62])], [...shard1.subarray(0, T)]);
    } finally {
      ds.close();
    }
  });
});
