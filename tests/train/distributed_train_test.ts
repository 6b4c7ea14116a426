// The data-parallel trainer with 2 ranks inside one process (an in-process collective, see
// _local_group.ts): the mpirun tests in tests/dist/ run the same code over Open MPI.
import assert from "node:assert/strict";
import type { Config } from "../../src/config/schema.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { readTensor, Tensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { allreduceTensor } from "../../src/train/distributed.ts";
import { train, type TrainData } from "../../src/train/trainer.ts";
import { tinyConfig as sharedConfig, tinyData } from "./_tiny_data.ts";
import { localGroup } from "./_local_group.ts";

function tinyData72(): TrainData {
  return tinyData(72, 8);
}

function tinyConfig(outDir: string, extra: string[] = []): Promise<Config> {
  return sharedConfig(outDir, [
    "data.effective_batch_size=8",
    "trainer.train_batches=4",
    "trainer.val_interval=2",
    ...extra,
  ]);
}

const opts = { progress: false, handleInterrupt: false };

async function metrics(path: string): Promise<Record<string, number>[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
}

for (const model of ["bst", "gpt"]) {
  Deno.test(`train() on 2 ranks of a collective matches one process (${model})`, async () => {
    const dir = await Deno.makeTempDir();
    const data = tinyData72();
    const extra = model === "gpt" ? ["use_bst=false"] : [];
    const one = await train(await tinyConfig(dir, extra), data, { ...opts, runName: "one" });
    const config = await tinyConfig(dir, extra);
    const [r0, r1] = await Promise.all(
      localGroup(2).map((collective) =>
        train(config, data, { ...opts, runName: "two", collective })
      ),
    );
    assert.deepEqual({ ...r1, seconds: 0 }, { ...r0, seconds: 0 }, "every rank gets the result");
    for (const k of ["val_loss", "val_loss_next_token", "path_accuracy"] as const) {
      assert.ok(Math.abs(r0[k]! - one[k]!) < 1e-5, `${k}: ${r0[k]} vs ${one[k]}`);
    }
    const want = await metrics(`${dir}/one/metrics.jsonl`);
    const got = await metrics(`${dir}/two/metrics.jsonl`);
    assert.equal(got.length, want.length);
    got.forEach((m, i) => {
      assert.equal(m.step, want[i].step);
      if (m.train_loss !== undefined) {
        assert.ok(Math.abs(m.train_loss - want[i].train_loss) < 1e-5, `step ${m.step}`);
      }
    });
    const runs = [...Deno.readDirSync(dir)].filter((e) => e.isDirectory).map((e) => e.name);
    assert.deepEqual(runs.sort(), ["one", "two"]);
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("train() on 2 ranks stops with an error when the replicas diverge", async () => {
  const dir = await Deno.makeTempDir();
  const data = tinyData72();
  const group = localGroup(2);
  // rank 1 initialises from another seed: same reduced gradients, different parameters
  const configs = [await tinyConfig(dir), await tinyConfig(dir, ["seed=7"])];
  const results = await Promise.allSettled(
    group.map((collective, r) => train(configs[r], data, { ...opts, runName: "bad", collective })),
  );
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.match(
      String((r as PromiseRejectedResult).reason),
      /Ranks diverged at step 2: the parameters of rank 1 differ from rank 0's/,
    );
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train() on 2 ranks names the ranks when the batch does not divide over them", async () => {
  const dir = await Deno.makeTempDir();
  const config = await tinyConfig(dir, ["data.effective_batch_size=6"]);
  await assert.rejects(
    train(config, tinyData72(), { ...opts, collective: localGroup(2)[0] }),
    /data.effective_batch_size 6 is not divisible by 2 ranks × data.gradient_accum_steps 2/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("allreduceTensor() sums a GPU view over the ranks in buckets of 5 floats", async () => {
  const gpu = await getGpu();
  const n = 37;
  const flats = [0, 1].map((r) =>
    uploadTensor(gpu, new Float32Array(n + 6).map((_, i) => (r + 1) * i), [n + 6], `flat${r}`)
  );
  // a view that starts 3 floats in and ends 3 floats before the end
  const views = flats.map((f) => new Tensor(f.buffer, [n], "f32", `${f.label}.view`, 12));
  const group = localGroup(2);
  await Promise.all(group.map((c, r) => allreduceTensor(gpu, views[r], c, 5)));
  for (let r = 0; r < 2; r++) {
    const got = await readTensor(gpu, flats[r]);
    // inside the view: the sum (1 + 2)·i; outside: this rank's own values
    const want = got.map((_, i) => (i >= 3 && i < n + 3 ? 3 * i : (r + 1) * i));
    assert.deepEqual([...got], [...want]);
  }
});
