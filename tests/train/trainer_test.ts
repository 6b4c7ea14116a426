import assert from "node:assert/strict";
import { readSafetensors } from "../../src/io/safetensors.ts";
import { stepRows, train } from "../../src/train/trainer.ts";
import { tinyConfig, tinyData } from "./_tiny_data.ts";

async function ckptBytes(dir: string, run: string, step: number): Promise<Uint8Array> {
  return await Deno.readFile(`${dir}/${run}/ckpt_iter_${step}.safetensors`);
}

Deno.test("stepRows() covers an epoch without repeats and reshuffles the next", () => {
  const seen = new Set<number>();
  for (let s = 0; s < 5; s++) for (const r of stepRows(20, 4, 1, s).rows) seen.add(r);
  assert.equal(seen.size, 20);
  assert.equal(stepRows(20, 4, 1, 5).epoch, 1);
  assert.notDeepEqual(stepRows(20, 4, 1, 0).rows, stepRows(20, 4, 1, 5).rows);
  assert.deepEqual(stepRows(20, 4, 1, 2).rows, stepRows(20, 4, 1, 2).rows);
  assert.throws(() => stepRows(3, 4, 1, 0), /fewer than one batch/);
});

Deno.test("train() twice gives identical metrics and checkpoint bytes; 3 + resume 3 equals 6", async () => {
  const dir = await Deno.makeTempDir();
  const data = tinyData(60);
  const opts = { progress: false, handleInterrupt: false };
  // One out_dir for all runs: the config (out_dir included) is part of the checkpoint.
  const a = await train(await tinyConfig(dir), data, { ...opts, runName: "a" });
  const b = await train(await tinyConfig(dir), data, { ...opts, runName: "b" });
  assert.equal(a.steps, 6);
  assert.deepEqual({ ...a, seconds: 0 }, { ...b, seconds: 0 });
  assert.deepEqual(await ckptBytes(dir, "a", 6), await ckptBytes(dir, "b", 6));

  // "c" stops after 3 steps; resuming follows the pointers to it and runs steps 4..6.
  const config = await tinyConfig(dir);
  await train({ ...config, trainer: { ...config.trainer, train_batches: 3 } }, data, {
    ...opts,
    runName: "c",
  });
  const c = await train(await tinyConfig(dir, ["trainer.init_from=resume"]), data, opts);
  assert.equal(c.steps, 6);
  assert.deepEqual({ ...c, seconds: 0 }, { ...a, seconds: 0 });
  assert.deepEqual(await ckptBytes(dir, "c", 6), await ckptBytes(dir, "a", 6));
  const metricsA = await Deno.readTextFile(`${dir}/a/metrics.jsonl`);
  const metricsC = await Deno.readTextFile(`${dir}/c/metrics.jsonl`);
  assert.equal(metricsC, metricsA);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train() runs the GPT baseline with use_bst=false (no previous-token loss)", async () => {
  const dir = await Deno.makeTempDir();
  const r = await train(
    await tinyConfig(dir, ["use_bst=false", "trainer.train_batches=3"]),
    tinyData(60),
    {
      progress: false,
      handleInterrupt: false,
      runName: "gpt",
    },
  );
  assert.equal(r.steps, 3);
  assert.equal(r.val_loss_prev_token, null);
  assert.equal(r.val_loss, r.val_loss_next_token);
  assert.ok(r.val_loss > 0 && r.path_accuracy !== null && r.path_accuracy >= 0);
  const ckpt = await readSafetensors(`${dir}/gpt/ckpt_iter_3.safetensors`);
  assert.equal(ckpt.metadata.model, "gpt");
  assert.ok(ckpt.tensors.has("model.transformer.blocks.0.attn.c_attn.weight"));
  assert.ok(ckpt.tensors.has("optimizer.exp_avg"));
  await Deno.remove(dir, { recursive: true });
});
