import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkpointFileName,
  CheckpointManager,
  type CheckpointPolicy,
  checkpointPolicy,
  KIND_KEY,
  LATEST_POINTER,
  loadCheckpoint,
  newRunName,
  parseCheckpointFileName,
  RECOVERY_POINTER,
  recoveryFileName,
  resolveResume,
  STATE_KEY,
  STEP_KEY,
} from "../../src/train/checkpoints.ts";
import { fromFloat32, toFloat32 } from "../../src/io/safetensors.ts";

const POLICY: CheckpointPolicy = {
  saveLast: true,
  saveBest: true,
  alwaysSave: false,
  recoveryEvery: -1,
  keepSteps: [],
};

function tensors(v: number) {
  return new Map([
    ["encoder.wte.weight", fromFloat32(new Float32Array([v, v + 1, v + 2, v + 3]), [2, 2])],
    ["optimizer.encoder.wte.weight.exp_avg", fromFloat32(new Float32Array(4).fill(v), [2, 2])],
  ]);
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) =>
    (parseCheckpointFileName(a)?.step ?? 0) - (parseCheckpointFileName(b)?.step ?? 0) ||
    a.localeCompare(b)
  );
}

/** Steps and val losses fed through a manager; returns the files left in the run dir. */
async function simulate(
  policy: Partial<CheckpointPolicy>,
  losses: [step: number, loss: number][],
): Promise<string[]> {
  const out = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  try {
    const m = new CheckpointManager(out, "run1", { ...POLICY, ...policy });
    for (const [step, loss] of losses) await m.saveValidation(step, loss, tensors(step));
    return await files(m.runDir);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

const f = checkpointFileName;

Deno.test("checkpointFileName() and recoveryFileName() round-trip through parseCheckpointFileName()", () => {
  assert.equal(f(0), "ckpt_iter_0.safetensors");
  assert.equal(recoveryFileName(2500), "recovery_ckpt_iter_2500.safetensors");
  assert.deepEqual(parseCheckpointFileName("out/r/ckpt_iter_2000.safetensors"), {
    kind: "validation",
    step: 2000,
  });
  assert.deepEqual(parseCheckpointFileName(recoveryFileName(7)), { kind: "recovery", step: 7 });
  // the reference's names (core_train.py), so a reference run resumes
  assert.deepEqual(parseCheckpointFileName("out/run1.5/ckpt_iter_300_loss_1.0625.pt"), {
    kind: "validation",
    step: 300,
  });
  assert.deepEqual(parseCheckpointFileName("recovery_ckpt_iter_40.pt"), {
    kind: "recovery",
    step: 40,
  });
  for (
    const bad of [
      "ckpt_iter_01.safetensors",
      "ckpt_iter_1.pt",
      "ckpt_iter_.safetensors",
      "recovery_ckpt_iter_4_loss_1.pt",
      "ckpt_iter_1_loss_.pt",
      "x",
    ]
  ) {
    assert.equal(parseCheckpointFileName(bad), null, bad);
  }
  assert.throws(() => f(-1), /non-negative integer/);
  assert.throws(() => f(1.5), /non-negative integer/);
  assert.equal(newRunName(1718000000123), "2024-06-10_06-13-20");
});

Deno.test("checkpointPolicy() maps the trainer keys", () => {
  assert.deepEqual(
    checkpointPolicy({
      save_last_checkpoint: false,
      save_best_checkpoint: true,
      always_save_checkpoint: true,
      save_recovery_checkpoint: 250,
      keep_checkpoint_steps: [1000],
    }),
    { saveLast: false, saveBest: true, alwaysSave: true, recoveryEvery: 250, keepSteps: [1000] },
  );
});

Deno.test("CheckpointManager keeps last and best (reference defaults)", async () => {
  // best at 200; 300 and 400 worse: keeps best (200) and last (400)
  assert.deepEqual(await simulate({}, [[100, 3], [200, 1], [300, 2], [400, 2.5]]), [
    f(200),
    f(400),
  ]);
  // monotone improvement: last == best, one file
  assert.deepEqual(await simulate({}, [[100, 3], [200, 2], [300, 1]]), [f(300)]);
  // the best becomes also the latest after being only the best
  assert.deepEqual(await simulate({}, [[100, 1], [200, 2], [300, 0.5]]), [f(300)]);
  // equal loss is not a new best
  assert.deepEqual(await simulate({}, [[100, 1], [200, 1]]), [f(100), f(200)]);
});

Deno.test("CheckpointManager with only save_last or only save_best", async () => {
  assert.deepEqual(await simulate({ saveBest: false }, [[100, 3], [200, 1], [300, 2]]), [f(300)]);
  assert.deepEqual(await simulate({ saveLast: false }, [[100, 3], [200, 1], [300, 2]]), [f(200)]);
  assert.deepEqual(await simulate({ saveLast: false, saveBest: false }, [[100, 3], [200, 1]]), []);
});

Deno.test("CheckpointManager keep_checkpoint_steps and always_save_checkpoint", async () => {
  assert.deepEqual(
    await simulate({ keepSteps: [200] }, [[100, 3], [200, 2.5], [300, 2], [400, 1]]),
    [f(200), f(400)],
  );
  // a keep step saves even when neither last nor best would
  assert.deepEqual(
    await simulate({ saveLast: false, keepSteps: [300] }, [[100, 1], [200, 2], [300, 3]]),
    [f(100), f(300)],
  );
  assert.deepEqual(
    await simulate({ alwaysSave: true }, [[100, 3], [200, 1], [300, 2]]),
    [f(100), f(200), f(300)],
  );
});

Deno.test("CheckpointManager writes pointers, metadata and round-trips content", async () => {
  const out = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  try {
    const m = new CheckpointManager(out, "run1", { ...POLICY, recoveryEvery: 50 });
    assert.equal(m.lastWritten, null);
    const r = await m.saveValidation(100, 2.5, tensors(1), { step: "100", rng: "[1,2]" });
    assert.equal(r.path, join(out, "run1", f(100)));
    assert.equal(r.isNewBest, true);
    assert.equal(await Deno.readTextFile(join(out, LATEST_POINTER)), r.path);
    assert.equal(m.lastWritten, r.path);

    const { tensors: t, metadata } = await loadCheckpoint(r.path!);
    assert.deepEqual([...toFloat32(t.get("encoder.wte.weight")!)], [1, 2, 3, 4]);
    assert.equal(t.size, 2);
    assert.equal(metadata.step, "100");
    assert.equal(metadata.rng, "[1,2]");
    assert.equal(metadata[KIND_KEY], "validation");
    assert.equal(metadata[STEP_KEY], "100");
    assert.equal(JSON.parse(metadata[STATE_KEY]).latest, f(100));

    assert.equal(m.isRecoveryStep(100), true);
    assert.equal(m.isRecoveryStep(120), false);
    const a = await m.saveRecovery(150, tensors(2));
    assert.deepEqual(a.removed, []);
    const b = await m.saveRecovery(200, tensors(3));
    assert.deepEqual(b.removed, [a.path]);
    assert.equal(await Deno.readTextFile(join(out, RECOVERY_POINTER)), b.path);
    assert.equal(m.lastWritten, b.path);
    assert.deepEqual(await files(m.runDir), [f(100), recoveryFileName(200)]);
    // nothing left behind by the atomic writes
    assert.deepEqual((await files(out)).sort(), [LATEST_POINTER, RECOVERY_POINTER, "run1"].sort());

    await assert.rejects(
      () => m.saveValidation(300, NaN, tensors(0)),
      /^Error: Cannot save a checkpoint at step 300: the validation loss is NaN$/,
    );
    await assert.rejects(
      () => m.saveRecovery(300, tensors(0), { "checkpoint.kind": "x" }),
      /metadata key "checkpoint.kind" is reserved/,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("resolveResume() prefers the newer of recovery and latest, tie to recovery", async () => {
  const out = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  try {
    await assert.rejects(
      () => resolveResume(out),
      (e: Error) =>
        e.message === `Cannot resume from "${out}": neither ${join(out, RECOVERY_POINTER)} nor ` +
            `${join(out, LATEST_POINTER)} exists (no checkpoint was written there)`,
    );
    const m = new CheckpointManager(out, "run1", POLICY);
    await m.saveValidation(100, 2, tensors(1));
    let r = await resolveResume(out);
    assert.deepEqual(r, {
      path: join(out, "run1", f(100)),
      step: 100,
      kind: "validation",
      pointer: join(out, LATEST_POINTER),
      runDir: join(out, "run1"),
      runName: "run1",
    });
    await m.saveRecovery(150, tensors(1));
    r = await resolveResume(out);
    assert.equal(r.kind, "recovery");
    assert.equal(r.step, 150);
    await m.saveValidation(200, 1, tensors(1));
    r = await resolveResume(out);
    assert.equal(r.kind, "validation");
    assert.equal(r.step, 200);
    await m.saveRecovery(200, tensors(1));
    r = await resolveResume(out);
    assert.equal(r.kind, "recovery");
    assert.equal(r.path, join(out, "run1", recoveryFileName(200)));

    // A newer run's pointer wins over an older run's higher step.
    const m2 = new CheckpointManager(out, "run2", POLICY);
    await new Promise((res) => setTimeout(res, 20));
    await m2.saveValidation(10, 5, tensors(1));
    r = await resolveResume(out);
    assert.equal(r.runName, "run2");
    assert.equal(r.step, 10);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("resolveResume() finds the run when out_dir was moved", async () => {
  const root = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  try {
    const m = new CheckpointManager(join(root, "a"), "run1", POLICY);
    await m.saveValidation(100, 2, tensors(1));
    await Deno.rename(join(root, "a"), join(root, "b"));
    const r = await resolveResume(join(root, "b"));
    assert.equal(r.path, join(root, "b", "run1", f(100)));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("resolveResume() errors name the pointer", async () => {
  const out = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  try {
    const pointer = join(out, RECOVERY_POINTER);
    await Deno.writeTextFile(pointer, "\n");
    await assert.rejects(
      () => resolveResume(out),
      (e: Error) => e.message === `Cannot resume from "${pointer}": the pointer file is empty`,
    );
    await Deno.writeTextFile(pointer, join(out, "run1", "model_5.bin"));
    await assert.rejects(() => resolveResume(out), /is not a checkpoint file/);
    const missing = join(out, "run1", recoveryFileName(5));
    await Deno.writeTextFile(pointer, missing);
    await assert.rejects(
      () => resolveResume(out),
      (e: Error) =>
        e.message ===
          `Cannot resume from "${pointer}": it names "${missing}", which does not exist`,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("loadCheckpoint() reports truncated and non-safetensors files by name", async () => {
  const out = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  try {
    const m = new CheckpointManager(out, "run1", POLICY);
    const { path } = await m.saveValidation(100, 2, tensors(1));
    const bytes = await Deno.readFile(path!);
    const cut = join(out, "cut.safetensors");
    await Deno.writeFile(cut, bytes.subarray(0, bytes.length - 3));
    await assert.rejects(() => loadCheckpoint(cut), (e: Error) => e.message.includes(cut));
    const text = join(out, "text.safetensors");
    await Deno.writeTextFile(text, "not a checkpoint at all");
    await assert.rejects(() => loadCheckpoint(text), (e: Error) => e.message.includes(text));
    await assert.rejects(
      () => loadCheckpoint(join(out, "none.safetensors")),
      /Cannot read checkpoint ".*none.safetensors": file not found/,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("CheckpointManager.resume() continues the bookkeeping like an uninterrupted run", async () => {
  const policy = { ...POLICY, recoveryEvery: 150, keepSteps: [200] };
  const losses: Record<number, number> = { 100: 3, 200: 2.5, 300: 1, 400: 2, 500: 1.5, 600: 0.5 };
  // Steps 1..600: validation every 100 (before the step runs), recovery every 150 (after).
  async function run(out: string, stopAfterRecoveryAt: number | null): Promise<void> {
    let m = new CheckpointManager(out, "run1", policy);
    let start = 0;
    if (stopAfterRecoveryAt !== null) {
      for (let step = 0; step <= stopAfterRecoveryAt; step++) {
        if (step > 0 && step % 100 === 0) await m.saveValidation(step, losses[step], tensors(step));
        if (step > 0 && m.isRecoveryStep(step)) await m.saveRecovery(step, tensors(step));
      }
      const r = await resolveResume(out);
      const { metadata } = await loadCheckpoint(r.path);
      m = CheckpointManager.resume(out, r.runName, policy, metadata, r.path);
      start = r.step;
    }
    for (let step = start; step <= 600; step++) {
      if (step > 0 && step % 100 === 0) await m.saveValidation(step, losses[step], tensors(step));
      if (step > start && m.isRecoveryStep(step)) await m.saveRecovery(step, tensors(step));
    }
  }
  const a = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  const b = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  const c = await Deno.makeTempDir({ prefix: "bst_ckpt_" });
  try {
    await run(a, null);
    await run(b, 450); // resumes from recovery 450
    await run(c, 300); // recovery 300 ties validation 300: resumes from recovery
    const expected = [f(200), f(600), recoveryFileName(600)];
    assert.deepEqual(await files(join(a, "run1")), expected);
    assert.deepEqual(await files(join(b, "run1")), expected);
    assert.deepEqual(await files(join(c, "run1")), expected);
    for (const dir of [a, b, c]) {
      const got = await Deno.readFile(join(dir, "run1", f(600)));
      assert.deepEqual(got, await Deno.readFile(join(a, "run1", f(600))));
    }
  } finally {
    for (const d of [a, b, c]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("CheckpointManager.resume() rejects malformed state and accepts none", () => {
  const fresh = CheckpointManager.resume("out", "run1", POLICY, {});
  assert.equal(fresh.bestValLoss, null);
  assert.throws(
    () => CheckpointManager.resume("out", "run1", POLICY, { [STATE_KEY]: "{" }, "x.safetensors"),
    /^Error: Cannot read checkpoint state of "x.safetensors": checkpoint.state is not JSON/,
  );
  assert.throws(
    () =>
      CheckpointManager.resume("out", "run1", POLICY, {
        [STATE_KEY]: JSON.stringify({
          latest: "../x",
          best: null,
          bestValLoss: null,
          recovery: null,
          keep: [],
          last: null,
        }),
      }),
    /checkpoint.state.latest is not a file name or null/,
  );
  assert.throws(() => new CheckpointManager("out", "a/b", POLICY), /plain directory name/);
});
