import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanLeftovers, openRunDir, RunLock } from "../../src/train/leftovers.ts";
import { symlink } from "../_symlink.ts";

const OLD = new Date(Date.now() - 3_600_000);

async function write(path: string, text: string, old = true): Promise<void> {
  await Deno.writeTextFile(path, text);
  if (old) await Deno.utime(path, OLD, OLD);
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** A child process that holds a RunLock on `runDir` until its stdin closes. */
async function lockHolder(runDir: string): Promise<{ pid: number; stop: () => Promise<void> }> {
  const module = new URL("../../src/train/leftovers.ts", import.meta.url).href;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { RunLock } from "${module}";
       const lock = await RunLock.acquire(${JSON.stringify(runDir)});
       console.log("locked");
       for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
       await lock.release();`,
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.equal((await reader.read()).value?.trim(), "locked");
  return {
    pid: child.pid,
    stop: async () => {
      await child.stdin.close();
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}

Deno.test("cleanLeftovers() removes dead processes' temporary files and reports them", async () => {
  const out = await Deno.makeTempDir();
  try {
    const run = join(out, "run1");
    await Deno.mkdir(run);
    await write(join(run, "ckpt_iter_3.safetensors.tmp-999999-0a1b2c3d"), "x".repeat(1000));
    await write(join(out, "latest_ckpt.tmp-999999-ff"), "pointer");
    await write(join(run, "ckpt_iter_3.safetensors"), "kept");
    // Ours, too new, or not our pattern: kept.
    await write(join(run, `run.json.tmp-${Deno.pid}-01`), "ours");
    await write(join(run, "metrics.csv.tmp-999998-02"), "new", false);
    await write(join(run, "notes.tmp-x-01"), "other");
    const lines: string[] = [];
    const report = await cleanLeftovers(out, { log: (l) => lines.push(l) });
    assert.deepEqual(report.removed.map((r) => r.bytes).sort((a, b) => a - b), [7, 1000]);
    assert.deepEqual(await names(out), ["run1"]);
    assert.deepEqual(await names(run), [
      "ckpt_iter_3.safetensors",
      "metrics.csv.tmp-999998-02",
      "notes.tmp-x-01",
      `run.json.tmp-${Deno.pid}-01`,
    ]);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^Removed 2 temporary files \(1007 B\) left by interrupted writes: /);
    // Nothing left: nothing reported; a missing out_dir is fine.
    assert.deepEqual(await cleanLeftovers(out, { log: (l) => lines.push(l) }), {
      removed: [],
      interrupted: [],
    });
    assert.equal(lines.length, 1);
    await cleanLeftovers(join(out, "missing"), { log: null });
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("cleanLeftovers() marks a running run.json interrupted when its process is gone", async () => {
  const out = await Deno.makeTempDir();
  try {
    const manifest = { manifest_version: 1, run_name: "run1", status: "running", result: null };
    for (const name of ["run1", "run2", "run3"]) {
      await Deno.mkdir(join(out, name));
      const status = name === "run3" ? "completed" : "running";
      await write(join(out, name, "run.json"), JSON.stringify({ ...manifest, status }));
    }
    // run2's process is alive (another process holds its lock), and so is its temp file.
    const holder = await lockHolder(join(out, "run2"));
    try {
      await write(join(out, "run2", `ckpt.tmp-${holder.pid}-aa`), "in progress");
      await write(join(out, `latest_ckpt.tmp-${holder.pid}-bb`), "in progress");
      // run1 was killed: its lock file is left, unheld.
      await write(join(out, "run1", "run.123456.lock"), "");
      const lines: string[] = [];
      const report = await cleanLeftovers(out, { log: (l) => lines.push(l) });
      assert.deepEqual(report.interrupted, [join(out, "run1")]);
      assert.deepEqual(report.removed, []);
      const run1 = JSON.parse(await Deno.readTextFile(join(out, "run1", "run.json")));
      assert.equal(run1.status, "interrupted");
      assert.match(run1.result.error, /ended without finishing the run/);
      assert.deepEqual(await names(join(out, "run1")), ["run.json"]);
      const run2 = JSON.parse(await Deno.readTextFile(join(out, "run2", "run.json")));
      assert.equal(run2.status, "running");
      assert.ok((await names(join(out, "run2"))).includes(`ckpt.tmp-${holder.pid}-aa`));
      assert.ok((await names(out)).includes(`latest_ckpt.tmp-${holder.pid}-bb`));
      assert.deepEqual(lines, [
        `Marked run run1 as interrupted in ${join(out, "run1", "run.json")}: its process is gone`,
      ]);
      await assert.rejects(
        RunLock.acquire(join(out, "run2")),
        new RegExp(`^Error: Run directory ".*run2" is in use by process ${holder.pid}`),
      );
    } finally {
      await holder.stop();
    }
    // Once the holder is gone, run2 is interrupted too.
    assert.deepEqual((await cleanLeftovers(out, { log: null })).interrupted, [join(out, "run2")]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("RunLock.acquire() holds the run until release() and leaves no lock file", async () => {
  const out = await Deno.makeTempDir();
  try {
    const lock = await openRunDir(out, join(out, "run1"));
    assert.deepEqual(await names(join(out, "run1")), [`run.${Deno.pid}.lock`]);
    await assert.rejects(RunLock.acquire(join(out, "run1")), /is in use by this process/);
    await lock.release();
    await lock.release();
    assert.deepEqual(await names(join(out, "run1")), []);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("openRunDir() refuses a run directory or metrics file that links outside out_dir", async () => {
  const out = await Deno.makeTempDir();
  const elsewhere = await Deno.makeTempDir();
  try {
    await symlink(elsewhere, join(out, "run1"));
    await assert.rejects(
      openRunDir(out, join(out, "run1")),
      new RegExp(`^Error: Run directory ".*run1" leads outside ".*" through a symbolic link`),
    );
    await Deno.mkdir(join(out, "run2"));
    await symlink(join(elsewhere, "stolen.csv"), join(out, "run2", "metrics.csv"));
    await assert.rejects(
      openRunDir(out, join(out, "run2")),
      /^Error: Metrics file ".*metrics\.csv" leads outside ".*run2" through a symbolic link \(to ".*stolen\.csv"\)$/,
    );
    assert.deepEqual(await names(elsewhere), []);
  } finally {
    await Deno.remove(out, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});
