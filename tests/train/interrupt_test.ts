import assert from "node:assert/strict";
import { join } from "node:path";
import { INTERRUPT_EXIT_CODE, INTERRUPT_NOTICE } from "../../src/train/interrupt.ts";

const CHILD = new URL("../fixtures/interrupt_child.ts", import.meta.url);

/** Reads the child's stdout until a line equal to `want`. */
async function waitForLine(
  reader: ReadableStreamDefaultReader<string>,
  want: string,
): Promise<void> {
  let buffered = "";
  while (!buffered.split("\n").includes(want)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Child ended before printing "${want}"`);
    buffered += value;
  }
}

function spawn(mode: string, file: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", `--allow-write=${file}`, CHILD.pathname, mode, file],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  return { child, reader, stderr };
}

Deno.test("installInterrupt() first SIGINT: the child writes its checkpoint and exits 130", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_interrupt_" });
  try {
    const file = join(dir, "recovery.txt");
    const { child, reader, stderr } = spawn("graceful", file);
    await waitForLine(reader, "ready");
    child.kill("SIGINT");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    assert.equal(status.code, INTERRUPT_EXIT_CODE);
    assert.equal(status.signal, null);
    assert.match(await Deno.readTextFile(file), /^recovery at step \d+$/);
    assert.equal(await stderr, INTERRUPT_NOTICE + "\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("installInterrupt() second SIGINT exits 130 at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_interrupt_" });
  try {
    const file = join(dir, "flag.txt");
    const { child, reader, stderr } = spawn("stuck", file);
    await waitForLine(reader, "ready");
    child.kill("SIGINT");
    await waitForLine(reader, "requested");
    child.kill("SIGINT");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    assert.equal(status.code, INTERRUPT_EXIT_CODE);
    assert.equal(await Deno.readTextFile(file), "requested");
    assert.equal(status.signal, null);
    assert.equal(await stderr, INTERRUPT_NOTICE + "\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("installInterrupt() dispose() restores the default: SIGINT kills the process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_interrupt_" });
  try {
    const file = join(dir, "never.txt");
    const { child, reader, stderr } = spawn("disposed", file);
    await waitForLine(reader, "ready");
    child.kill("SIGINT");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    assert.equal(status.signal, "SIGINT");
    assert.equal(await stderr, "");
    await assert.rejects(() => Deno.stat(file), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
