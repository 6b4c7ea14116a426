import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GENERATION_KEYS, readInferOutput } from "../_util.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Runs `deno task train` in `root` with a tiny star graph under `dir`. */
function trainCommand(dir: string, extra: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${root},${dir}`,
      `--allow-write=${dir}`,
      "--allow-env=XDG_RUNTIME_DIR,DENO_WEBGPU_BACKEND",
      "scripts/train.ts",
      `data.stargraph_data_path=${dir}/data/graph_2_3_sample_300.txt`,
      `trainer.out_dir=${dir}/out`,
      "model.n_layer=1",
      "model.n_embd=32",
      "model.n_head=2",
      "data.effective_batch_size=8",
      "trainer.val_interval=3",
      "trainer.log_interval=1",
      "trainer.val_batches=1",
      ...extra,
    ],
    cwd: root,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
}

async function finish(child: Deno.ChildProcess) {
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function latest(dir: string): Promise<Uint8Array> {
  const path = (await Deno.readTextFile(`${dir}/out/latest_ckpt`)).trim();
  return await Deno.readFile(path);
}

Deno.test("train: Ctrl-C writes a recovery checkpoint, exits 130, and resuming ends where an uninterrupted run ends", async () => {
  const dir = await Deno.makeTempDir();
  const steps = "trainer.train_batches=9";
  const full = await finish(trainCommand(`${dir}/a`, [steps]).spawn());
  assert.equal(full.code, 0, full.stderr);
  const final = JSON.parse(full.stdout.trim().split("\n").at(-1)!);
  assert.equal(final.steps, 9);
  assert.ok(final.val_loss > 0 && final.path_accuracy >= 0);

  const child = trainCommand(`${dir}/b`, [steps, "trainer.log_interval=1"]).spawn();
  // Interrupt once the first steps have been logged.
  const reader = child.stderr.getReader();
  let err = "";
  while (!/step [2-9]\/9/.test(err)) {
    const { value, done } = await reader.read();
    if (done) break;
    err += new TextDecoder().decode(value);
  }
  child.kill("SIGINT");
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    err += new TextDecoder().decode(value);
  }
  const status = await child.status;
  await child.stdout.cancel();
  assert.equal(status.code, 130, err);
  assert.match(err, /Interrupted: wrote .*recovery_ckpt_iter_\d+\.safetensors/);

  const resumed = await finish(
    trainCommand(`${dir}/b`, [steps, "trainer.init_from=resume"]).spawn(),
  );
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /Resuming from .*ckpt_iter_\d+\.safetensors/);
  const again = JSON.parse(resumed.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual({ ...again, seconds: 0 }, { ...final, seconds: 0 });
  // The config (out_dir included) is stored in the checkpoint, so compare everything else.
  const [a, b] = [await latest(`${dir}/a`), await latest(`${dir}/b`)];
  const strip = (bytes: Uint8Array) => {
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    delete header.__metadata__.config;
    delete header.__metadata__["checkpoint.state"];
    return { header, data: bytes.subarray(8 + n) };
  };
  assert.deepEqual(strip(b), strip(a));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: a diverging loss stops with one line and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const r = await finish(
    trainCommand(dir, [
      "trainer.train_batches=12",
      "optimizer.learning_rate=1e30",
      "optimizer.grad_clip=null",
    ]).spawn(),
  );
  assert.equal(r.code, 1);
  const last = r.stderr.trim().split("\n").at(-1)!;
  assert.match(last, /^error: Loss became (NaN|Infinity|-Infinity) at step \d+: stopping; /);
  const named = last.match(/the last good checkpoint is (\S+\.safetensors)/);
  if (named) assert.ok((await Deno.stat(named[1])).isFile);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: bad input gives one line and exit 1 (unknown key, wrong type, missing data)", async () => {
  const dir = await Deno.makeTempDir();
  for (
    const [args, pattern] of [
      [["model.n_embed=3"], /Unknown config key "model\.n_embed"/],
      [["model.n_layer=two"], /"model\.n_layer" must be an integer/],
      [[`data.stargraph_data_path=${dir}/none.txt`], /none\.txt" not found/],
    ] as [string[], RegExp][]
  ) {
    const r = await finish(trainCommand(dir, args).spawn());
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("error:"));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], pattern);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("infer: every sampling mode writes valid JSON lines from a trained checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const trained = await finish(trainCommand(dir, ["trainer.train_batches=3"]).spawn());
  assert.equal(trained.code, 0, trained.stderr);
  const ckpt = (await Deno.readTextFile(`${dir}/out/latest_ckpt`)).trim();
  const output = `${dir}/samples.jsonl`;
  for (
    const mode of [
      "AR",
      "reverse_AR",
      "beam",
      "reverse_beam",
      "goal_cond_plan",
      "reverse_goal_cond_plan",
    ]
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-read=${root},${dir}`,
        `--allow-write=${dir}`,
        "--allow-env=XDG_RUNTIME_DIR,DENO_WEBGPU_BACKEND",
        "scripts/infer.ts",
        "--checkpoint_path",
        ckpt,
        "--sampling_mode",
        mode,
        "--num_samples",
        "2",
        "--rollout_count",
        "3",
        "--top_k",
        "2",
        "--output_path",
        output,
      ],
      cwd: root,
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  }
  // Each run after the first appends the reference's separator line before its records.
  const { sessions, records: lines } = await readInferOutput(output);
  assert.equal(sessions, 5);
  assert.equal(lines.length, 12);
  for (const l of lines) assert.deepEqual(Object.keys(l), GENERATION_KEYS);
  assert.deepEqual(lines.filter((_, i) => i % 2 === 0).map((l) => l.sampling_method), [
    "autoregressive",
    "reverse_autoregressive",
    "beamsearch",
    "reverse_beamsearch",
    "goal_cond_plan",
    "reverse_goal_cond_plan",
  ]);
  for (const l of lines.slice(4)) assert.ok(l.top_n.length >= 1 && typeof l.score === "number");
  await Deno.remove(dir, { recursive: true });
});
