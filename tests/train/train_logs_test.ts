import assert from "node:assert/strict";
import type { Config } from "../../src/config/schema.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { CheckpointManager, checkpointPolicy, claimRunDir } from "../../src/train/checkpoints.ts";
import { validRowPairs } from "../../src/models/bst_pairs.ts";
import { bstConfigFor } from "../../src/models/from_config.ts";
import { CURVES_SVG } from "../../src/train/curves.ts";
import { createRun, train, type TrainData } from "../../src/train/trainer.ts";
import { tinyConfig as sharedConfig, tinyData as tinyDataOf, tinyRows } from "./_tiny_data.ts";

function tinyData(n: number): TrainData {
  return tinyDataOf(n, 8);
}

function tinyConfig(outDir: string, extra: string[] = []): Promise<Config> {
  return sharedConfig(outDir, [
    "trainer.val_batches=-1",
    "trainer.log_interval=10",
    "optimizer.grad_clip=1.0",
    ...extra,
  ]);
}

const opts = { progress: false, handleInterrupt: false };

async function rows(dir: string): Promise<Record<string, number>[]> {
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("train() logs train_loss averaged over log_interval, grad_norm and pair statistics in one row per step", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = tinyData(48);
    await train(await tinyConfig(dir, ["trainer.log_interval=1"]), data, { ...opts, runName: "a" });
    await train(await tinyConfig(dir, ["trainer.log_interval=3"]), data, { ...opts, runName: "b" });
    const a = await rows(`${dir}/a`);
    const b = await rows(`${dir}/b`);
    assert.deepEqual(a.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(b.map((r) => r.step), [3, 6]);
    const columns = [
      "step",
      "epoch",
      "avg_sampled_pairs",
      "avg_valid_pairs",
      "grad_norm",
      "lr",
      "path_accuracy",
      "train_loss",
      "val_loss",
      "val_loss_next_token",
      "val_loss_prev_token",
    ];
    assert.deepEqual(Object.keys(b[0]), columns);
    assert.deepEqual(Object.keys(a[2]), columns);
    assert.ok(!("val_loss" in a[0]));
    for (const [i, row] of b.entries()) {
      const window = a.slice(3 * i, 3 * i + 3).map((r) => r.train_loss);
      const mean = window.reduce((s, v) => s + v, 0) / 3;
      assert.ok(Math.abs(row.train_loss - mean) < 1e-12 * mean, `${row.train_loss} vs ${mean}`);
      assert.notEqual(row.train_loss, a[3 * i + 2].train_loss);
      // Figures of the log step itself, identical to the every-step run's.
      for (const k of ["grad_norm", "avg_valid_pairs", "avg_sampled_pairs", "val_loss", "lr"]) {
        assert.equal(row[k], a[3 * i + 2][k], k);
      }
      assert.ok(row.grad_norm > 0);
    }
    // Every row has the same layout, so the running averages are one row's count (no
    // subsampling: sampled = valid).
    const config = await tinyConfig(dir);
    const perRow =
      validRowPairs(tinyRows(48).subarray(8 * 8, 9 * 8), bstConfigFor(config, data)).tF.length;
    assert.ok(perRow > 0);
    assert.equal(b[0].avg_valid_pairs, perRow);
    assert.equal(b[0].avg_sampled_pairs, perRow);
    const svg = await Deno.readTextFile(`${dir}/b/${CURVES_SVG}`);
    for (const k of ["train_loss", "val_loss_prev_token", "path accuracy"]) {
      assert.ok(svg.includes(k), k);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() without clipping logs no grad_norm, the GPT no pair statistics; runs are named by date and time", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = await tinyConfig(dir, [
      "use_bst=false",
      "optimizer.grad_clip=null",
      "trainer.train_batches=2",
      "trainer.log_interval=1",
    ]);
    await train(config, tinyData(48), opts);
    const [name] = [...Deno.readDirSync(dir)].filter((e) => e.isDirectory).map((e) => e.name);
    assert.match(name, /^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(-\d+)?$/);
    const r = await rows(`${dir}/${name}`);
    assert.deepEqual(Object.keys(r[1]), [
      "step",
      "epoch",
      "lr",
      "path_accuracy",
      "train_loss",
      "val_loss",
      "val_loss_next_token",
    ]);
    assert.ok((await Deno.stat(`${dir}/${name}/${CURVES_SVG}`)).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("claimRunDir() adds -2, -3 when the name is taken and never reuses a directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const base = "2026-11-27_07-31-12";
    const names = await Promise.all([1, 2, 3].map(() => claimRunDir(`${dir}/out`, base)));
    assert.deepEqual(names.toSorted(), [base, `${base}-2`, `${base}-3`]);
    await Deno.writeTextFile(`${dir}/file`, "");
    await assert.rejects(() => claimRunDir(`${dir}/file`, base), /Cannot create ".*file"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TrainRun.step() resumed between two log steps logs the uninterrupted run's averaged loss", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gpu = await getGpu();
    const data = tinyData(48);
    const config = await tinyConfig(dir, ["trainer.log_interval=3"]);
    const whole = await createRun(gpu, config, data);
    const logged: (number | null)[] = [];
    for (let s = 0; s < 6; s++) {
      const r = await whole.step(s, s % 3 === 2);
      logged.push(r.figures ? (await r.figures()).loss : null);
    }
    assert.equal(logged.filter((l) => l !== null).length, 2);

    const first = await createRun(gpu, config, data);
    for (let s = 0; s < 4; s++) await first.step(s, s % 3 === 2);
    const c = await first.checkpoint(4);
    const ckpt = new CheckpointManager(dir, "r", checkpointPolicy(config.trainer));
    const saved = await ckpt.saveRecovery(4, c.tensors, c.metadata);
    const resumed = await createRun(gpu, config, data);
    assert.equal(await resumed.restore(saved.path), 4);
    await resumed.step(4, false);
    const last = await resumed.step(5, true);
    assert.equal((await last.figures!()).loss, logged[5]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
