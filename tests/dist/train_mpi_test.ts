// `deno task train` under `mpirun -np 2` on this machine (CPU adapter): the same run as one
// process, resume, a killed rank, Ctrl-C. Tiny model, few steps: the machine has 2 cores.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { finish, MPI_LIBRARY, mpirun } from "./_mpirun.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const ENV = [
  "XDG_RUNTIME_DIR",
  "DENO_WEBGPU_BACKEND",
  "OMPI_COMM_WORLD_SIZE",
  "OMPI_COMM_WORLD_RANK",
  "OMPI_COMM_WORLD_LOCAL_RANK",
  "OMPI_COMM_WORLD_LOCAL_SIZE",
  "BST_MPI_LIBRARY",
  "BST_MPI_TIMEOUT",
  "BST_RANK_GPUS",
  "MESA_VK_DEVICE_SELECT",
  "MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE",
  "DRI_PRIME",
];

/** `deno run scripts/train.ts` with the train task's kind of permissions, for `dir`. */
function trainArgs(dir: string, out: string, extra: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    `--allow-read=${root},${dir}`,
    `--allow-write=${dir}`,
    `--allow-env=${ENV.join(",")}`,
    `--allow-ffi=${MPI_LIBRARY}`,
    "scripts/train.ts",
    `data.stargraph_data_path=${dir}/data/graph_2_3_sample_300.txt`,
    `trainer.out_dir=${dir}/${out}`,
    "model.n_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "data.effective_batch_size=8",
    "data.gradient_accum_steps=2",
    "trainer.val_interval=2",
    "trainer.log_interval=1",
    "trainer.val_batches=1",
    ...extra,
  ];
}

const env = () => ({
  XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
  BST_MPI_LIBRARY: MPI_LIBRARY,
  NO_COLOR: "1",
});

function single(dir: string, out: string, extra: string[]) {
  const [exe, ...args] = trainArgs(dir, out, extra);
  return new Deno.Command(exe, { args, cwd: root, env: env(), stdout: "piped", stderr: "piped" });
}

function ranks2(dir: string, out: string, extra: string[], mpiFlags: string[] = []) {
  return mpirun(trainArgs(dir, out, extra), { cwd: root, env: env() }, mpiFlags);
}

/** train_loss by step from the run's metrics.jsonl. */
async function trainLosses(outDir: string): Promise<Map<number, number>> {
  const runs = [];
  for await (const e of Deno.readDir(outDir)) if (e.isDirectory) runs.push(e.name);
  assert.equal(runs.length, 1, `one run directory in ${outDir}, found ${runs}`);
  const lines = (await Deno.readTextFile(`${outDir}/${runs[0]}/metrics.jsonl`)).trim().split("\n");
  const losses = new Map<number, number>();
  for (const l of lines.map((l) => JSON.parse(l))) {
    if (l.train_loss !== undefined) losses.set(l.step, l.train_loss);
  }
  return losses;
}

function finalLine(stdout: string): Record<string, number> {
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 1, `one stdout line, got:\n${stdout}`);
  return JSON.parse(lines[0]);
}

function assertClose(a: number, b: number, what: string) {
  assert.ok(Math.abs(a - b) <= 1e-4, `${what}: ${a} vs ${b}`);
}

/** Reads `stream` until `pattern` matches the text so far (or it ends); returns the text. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pattern: RegExp,
  text = "",
): Promise<string> {
  const dec = new TextDecoder();
  while (!pattern.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value);
  }
  return text;
}

Deno.test("train under mpirun -np 2 matches one process per step, writes one run, and resumes", async () => {
  const dir = await Deno.makeTempDir();
  const one = await finish(single(dir, "one", ["trainer.train_batches=3"]).spawn());
  assert.equal(one.code, 0, one.stderr);
  const want = finalLine(one.stdout);
  const wantLoss = await trainLosses(`${dir}/one`);

  const two = await finish(ranks2(dir, "two", ["trainer.train_batches=2"]).spawn());
  assert.equal(two.code, 0, two.stderr);
  assert.equal(finalLine(two.stdout).steps, 2);
  assert.match(two.stderr, /MPI: 2 ranks/);
  assert.match(two.stderr, /warning: ranks 0, 1 on .* share the adapter/);
  let got = await trainLosses(`${dir}/two`);
  assert.deepEqual([...got.keys()], [1, 2]);
  for (const [step, loss] of got) assertClose(loss, wantLoss.get(step)!, `step ${step} loss`);

  const resumed = await finish(
    ranks2(dir, "two", ["trainer.train_batches=3", "trainer.init_from=resume"]).spawn(),
  );
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(resumed.stderr.match(/Resuming from .*ckpt_iter_2\.safetensors/g)?.length, 1);
  const final = finalLine(resumed.stdout);
  got = await trainLosses(`${dir}/two`);
  assert.deepEqual([...got.keys()], [1, 2, 3]);
  assertClose(got.get(3)!, wantLoss.get(3)!, "step 3 loss");
  assert.equal(final.steps, 3);
  for (const k of ["val_loss", "val_loss_next_token", "val_loss_prev_token", "path_accuracy"]) {
    assertClose(final[k], want[k], k);
  }
  await Deno.remove(dir, { recursive: true });
});

/** The pids of the ranks of the job whose command line mentions `marker` (not mpirun's). */
async function rankPids(marker: string, mpirunPid: number): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-f", `scripts/train.ts .*${marker}`] })
    .output();
  return new TextDecoder().decode(out.stdout).trim().split("\n").map(Number)
    .filter((pid) => pid > 0 && pid !== mpirunPid);
}

Deno.test("train under mpirun ends with an error when a rank is killed", async () => {
  const dir = await Deno.makeTempDir();
  const child = ranks2(dir, "out", ["trainer.train_batches=500", "trainer.val_interval=1000"])
    .spawn();
  const reader = child.stderr.getReader();
  let err = await readUntil(reader, /step 1\/500/);
  const pids = await rankPids(dir, child.pid);
  assert.equal(pids.length, 2, `2 ranks, found ${pids}:\n${err}`);
  const pid = Math.max(...pids);
  const killed = performance.now();
  Deno.kill(pid, "SIGKILL");
  err = await readUntil(reader, /$^/, err); // to the end
  const status = await child.status;
  const seconds = (performance.now() - killed) / 1000;
  const out = new TextDecoder().decode(await new Response(child.stdout).arrayBuffer());
  assert.notEqual(status.code, 0, err);
  assert.ok(seconds < 60, `the job took ${seconds} s to end`);
  assert.equal(out.trim(), "", "no final JSON line");
  assert.match(err, /rank \d .*exited on signal 9 \(Killed\)/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train under mpirun writes rank 0's recovery checkpoint on Ctrl-C", async () => {
  const dir = await Deno.makeTempDir();
  // On SIGINT mpirun waits odls_base_sigkill_timeout seconds (default 1), sends the ranks
  // SIGTERM, and SIGKILL as long again later: 5 s leave rank 0 time to finish its step.
  const child = ranks2(dir, "out", ["trainer.train_batches=500", "trainer.val_interval=1000"], [
    "--mca",
    "odls_base_sigkill_timeout",
    "5",
  ]).spawn();
  const reader = child.stderr.getReader();
  let err = await readUntil(reader, /step 1\/500/);
  child.kill("SIGINT");
  err = await readUntil(reader, /$^/, err);
  const status = await child.status;
  await child.stdout.cancel();
  assert.notEqual(status.code, 0, err);
  const m = err.match(/Interrupted: wrote (\S*recovery_ckpt_iter_(\d+)\.safetensors)/);
  assert.ok(m, err);
  assert.ok((await Deno.stat(m[1])).size > 0);
  assert.equal(err.match(/Interrupted: wrote/g)?.length, 1, "rank 0 alone writes");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train under mpirun aborts the job with one line per rank when the batch does not divide", async () => {
  const dir = await Deno.makeTempDir();
  const out = await finish(ranks2(dir, "out", ["data.effective_batch_size=6"]).spawn());
  assert.equal(out.code, 1, out.stderr);
  assert.match(
    out.stderr,
    /error: rank [01] of 2: data.effective_batch_size 6 is not divisible by 2 ranks × data.gradient_accum_steps 2/,
  );
  // Open MPI's own "MPI_ABORT was invoked" notice is not asserted: on a loaded machine its
  // help-message aggregation sometimes fails ("ORTE_ERROR_LOG: Data unpack would read past end
  // of buffer") while the job still ends with the ranks' lines and exit code 1.
  assert.equal(out.stdout.trim(), "");
  await Deno.remove(dir, { recursive: true });
});
