import assert from "node:assert/strict";
import { join } from "node:path";
import type { Config } from "../../src/config/schema.ts";
import {
  fromFloat32,
  readSafetensors,
  serializeSafetensors,
  toFloat32,
} from "../../src/io/safetensors.ts";
import { train, type TrainOptions } from "../../src/train/trainer.ts";
import { tinyConfig as sharedConfig, tinyData } from "./_tiny_data.ts";
import { symlink } from "../_symlink.ts";

/** Rows of 8 tokens: 3 "edges", "=", the edges reversed, EOS (as in trainer_test.ts). */

function tinyConfig(outDir: string, extra: string[] = []): Promise<Config> {
  return sharedConfig(outDir, [
    "data.gradient_accum_steps=1",
    "trainer.train_batches=2",
    "trainer.val_interval=2",
    ...extra,
  ]);
}

const QUIET: TrainOptions = { progress: false, handleInterrupt: false };

/** Options whose `gpu` getter fails the test: proves that an error came before GPU start. */
function noGpu(): TrainOptions {
  return {
    ...QUIET,
    get gpu(): never {
      throw new Error("the GPU was requested");
    },
  };
}

Deno.test("train() reports an unwritable or escaping out_dir before the GPU starts", async () => {
  const config = await tinyConfig("/var/bst_webgpu_no_such_dir/out");
  await assert.rejects(train(config, tinyData(20), noGpu()), (e: Error) => {
    assert.equal(
      e.message,
      `trainer.out_dir "/var/bst_webgpu_no_such_dir/out" is not writable: the task's ` +
        `permissions do not allow writing there`,
    );
    return true;
  });
  const dir = await Deno.makeTempDir();
  const elsewhere = await Deno.makeTempDir();
  try {
    // The out_dir is the user's explicit path: a link beneath it must not lead out.
    await Deno.mkdir(join(dir, "out"));
    await symlink(elsewhere, join(dir, "out", "link"));
    const cwd = Deno.cwd();
    Deno.chdir(dir);
    try {
      const linked = await tinyConfig("out/link");
      await assert.rejects(
        train(linked, tinyData(20), noGpu()),
        /^Error: trainer\.out_dir "out\/link" leads outside "out" through a symbolic link/,
      );
    } finally {
      Deno.chdir(cwd);
    }
    // A run directory that is a link is refused once its name is known.
    await symlink(elsewhere, join(dir, "run1"));
    await assert.rejects(
      train(await tinyConfig(dir), tinyData(20), { ...QUIET, runName: "run1" }),
      /^Error: Run directory ".*run1" leads outside ".*" through a symbolic link/,
    );
    assert.deepEqual([...Deno.readDirSync(elsewhere)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});

Deno.test("train() that fails to open its run releases the run lock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "r"));
    await Deno.writeTextFile(join(dir, "r", "metrics.jsonl"), "{}\n");
    const config = await tinyConfig(dir);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        train(config, tinyData(20), { ...QUIET, runName: "r" }),
        /^Error: Cannot start metrics in ".*metrics\.jsonl": the file already exists/,
      );
    }
    assert.deepEqual([...Deno.readDirSync(join(dir, "r"))].map((e) => e.name), ["metrics.jsonl"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() resumes after a crash: leftovers removed, NaN checkpoints refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = tinyData(40);
    await train(await tinyConfig(dir), data, { ...QUIET, runName: "r" });
    const ckpt = join(dir, "r", "ckpt_iter_2.safetensors");
    const good = await Deno.readFile(ckpt);

    // What a kill -9 leaves: a half-written checkpoint and run.json saying "running".
    const old = new Date(Date.now() - 3_600_000);
    const tmp = join(dir, "r", "ckpt_iter_4.safetensors.tmp-999999-0badc0de");
    await Deno.writeFile(tmp, good.subarray(0, 100));
    await Deno.utime(tmp, old, old);
    const manifestPath = join(dir, "r", "run.json");
    const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
    await Deno.writeTextFile(manifestPath, JSON.stringify({ ...manifest, status: "running" }));
    await Deno.utime(manifestPath, old, old);

    // A NaN weight in the checkpoint: refused, naming the file and tensor.
    const file = await readSafetensors(ckpt);
    const [name, t] = [...file.tensors].find(([n]) => !n.startsWith("optimizer."))!;
    const values = toFloat32(t, name);
    values[0] = NaN;
    file.tensors.set(name, fromFloat32(values, t.shape));
    await Deno.writeFile(ckpt, serializeSafetensors(file.tensors, file.metadata));
    const resume = await tinyConfig(dir, ["trainer.init_from=resume", "trainer.train_batches=4"]);
    await assert.rejects(train(resume, data, QUIET), (e: Error) => {
      assert.equal(
        e.message,
        `Cannot load checkpoint "${ckpt}": tensor "${name}" holds NaN at element 0 (a diverged ` +
          `run?); pass --allow-non-finite (allowNonFinite) to load it anyway`,
      );
      return true;
    });
    // The start already cleaned up: temp file gone, the dead run marked interrupted.
    await assert.rejects(Deno.stat(tmp), Deno.errors.NotFound);
    assert.equal(JSON.parse(await Deno.readTextFile(manifestPath)).status, "interrupted");

    // Opting in loads it; the NaN then shows up as a NaN loss, stopped by the loss guard.
    await assert.rejects(
      train(resume, data, { ...QUIET, allowNonFinite: true }),
      /^NonFiniteError: Loss became NaN at step 3/,
    );

    // Restored, the checkpoint resumes normally.
    await Deno.writeFile(ckpt, good);
    const r = await train(resume, data, QUIET);
    assert.equal(r.steps, 4);
    assert.equal(JSON.parse(await Deno.readTextFile(manifestPath)).status, "completed");
    const left = [...Deno.readDirSync(join(dir, "r"))].map((e) => e.name);
    assert.ok(!left.some((n) => n.includes(".tmp-") || n.endsWith(".lock")), left.join(" "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
