import assert from "node:assert/strict";
import { join } from "node:path";
import { MANIFEST_FILE, RunManifest, sha256File } from "../../src/train/manifest.ts";

Deno.test("sha256File() hashes a file and gives null when unreadable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_manifest_" });
  try {
    const p = join(dir, "x.txt");
    await Deno.writeTextFile(p, "abc");
    assert.equal(
      await sha256File(p),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.equal(await sha256File(join(dir, "missing.lock")), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunManifest.start() writes run.json and finish() updates it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_manifest_" });
  try {
    const lock = join(dir, "deno.lock");
    await Deno.writeTextFile(lock, "abc");
    const runDir = join(dir, "run1");
    const m = await RunManifest.start(runDir, {
      runName: "run1",
      config: { seed: 1337, trainer: { train_batches: 10 } },
      seed: 1337,
      adapter: { vendor: "mesa", isFallbackAdapter: true },
      lockfile: lock,
      command: { main_module: "file:///x/scripts/train.ts", args: ["-c", "a.yaml"] },
      startTime: new Date("2025-01-02T03:04:05.000Z"),
    });
    const path = join(runDir, MANIFEST_FILE);
    assert.equal(m.path, path);
    const started = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(started, {
      manifest_version: 1,
      run_name: "run1",
      status: "running",
      start_time: "2025-01-02T03:04:05.000Z",
      end_time: null,
      seed: 1337,
      config: { seed: 1337, trainer: { train_batches: 10 } },
      adapter: { vendor: "mesa", isFallbackAdapter: true },
      deno: { ...Deno.version },
      lockfile: {
        path: lock,
        sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      },
      command: { main_module: "file:///x/scripts/train.ts", args: ["-c", "a.yaml"] },
      resumed_from: null,
      final_step: null,
      result: null,
    });
    await m.finish({
      status: "interrupted",
      finalStep: 7,
      result: { last_checkpoint: "out/run1/recovery_ckpt_iter_7.safetensors" },
      endTime: new Date("2025-01-02T04:00:00.000Z"),
    });
    const ended = JSON.parse(await Deno.readTextFile(path));
    assert.equal(ended.status, "interrupted");
    assert.equal(ended.end_time, "2025-01-02T04:00:00.000Z");
    assert.equal(ended.final_step, 7);
    assert.deepEqual(ended.result, {
      last_checkpoint: "out/run1/recovery_ckpt_iter_7.safetensors",
    });
    assert.equal(ended.start_time, started.start_time);
    assert.deepEqual(m.data, ended);
    const names = [];
    for await (const e of Deno.readDir(runDir)) names.push(e.name);
    assert.deepEqual(names, [MANIFEST_FILE]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunManifest.start() defaults: lockfile hash null when missing, command from Deno", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_manifest_" });
  try {
    const m = await RunManifest.start(dir, {
      runName: "r",
      config: {},
      seed: 1,
      adapter: null,
      lockfile: join(dir, "none.lock"),
      resumedFrom: "out/run0/ckpt_iter_5.safetensors",
    });
    assert.equal(m.data.lockfile.sha256, null);
    assert.equal(m.data.command.main_module, Deno.mainModule);
    assert.deepEqual(m.data.command.args, Deno.args);
    assert.equal(m.data.resumed_from, "out/run0/ckpt_iter_5.safetensors");
    assert.ok(!Number.isNaN(Date.parse(m.data.start_time)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunManifest.start() rejects a config that is not JSON, naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_manifest_" });
  try {
    await assert.rejects(
      () => RunManifest.start(dir, { runName: "r", config: { n: 1n }, seed: 1, adapter: null }),
      (e: Error) => e.message.startsWith(`Cannot write "${join(dir, MANIFEST_FILE)}": `),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
