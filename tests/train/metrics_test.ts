import assert from "node:assert/strict";
import { join } from "node:path";
import { METRICS_CSV, METRICS_JSONL, MetricsLogger } from "../../src/train/metrics.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bst_metrics_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const read = (dir: string, name: string) => Deno.readTextFile(join(dir, name));

/** The rows an uninterrupted run logs: train rows every 10 steps, val_loss every 20. */
function rowsUpTo(last: number) {
  const rows = [];
  for (let step = 10; step <= last; step += 10) {
    const row: Record<string, number> = { step, epoch: Math.floor(step / 25), lr: 3e-4 * step };
    row.train_loss = 3 - step / 100;
    if (step % 20 === 0) row.val_loss = 2.9 - step / 100;
    rows.push(row as { step: number; epoch: number });
  }
  return rows;
}

Deno.test("MetricsLogger writes step, epoch, then sorted columns, widening the header", async () => {
  await withDir(async (dir) => {
    const m = await MetricsLogger.open(dir);
    assert.equal(await read(dir, METRICS_CSV), "step,epoch\n");
    await m.log({ step: 10, epoch: 0, train_loss: 2.5, lr: 0.0003 });
    assert.equal(await read(dir, METRICS_CSV), "step,epoch,lr,train_loss\n10,0,0.0003,2.5\n");
    await m.log({ step: 20, epoch: 0, train_loss: 2.25, lr: 0.0003, val_loss: 2.4 });
    await m.log({ step: 30, epoch: 1, train_loss: NaN, lr: 1e-7, note: 'a,"b"' });
    assert.equal(
      await read(dir, METRICS_CSV),
      "step,epoch,lr,note,train_loss,val_loss\n" +
        "10,0,0.0003,,2.5,\n" +
        "20,0,0.0003,,2.25,2.4\n" +
        '30,1,1e-7,"a,""b""",NaN,\n',
    );
    assert.equal(
      await read(dir, METRICS_JSONL),
      '{"step":10,"epoch":0,"lr":0.0003,"train_loss":2.5}\n' +
        '{"step":20,"epoch":0,"lr":0.0003,"train_loss":2.25,"val_loss":2.4}\n' +
        '{"step":30,"epoch":1,"lr":1e-7,"note":"a,\\"b\\"","train_loss":"NaN"}\n',
    );
    assert.deepEqual(m.columns, ["step", "epoch", "lr", "note", "train_loss", "val_loss"]);
    // only temp-free output
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), [METRICS_CSV, METRICS_JSONL]);
  });
});

Deno.test("MetricsLogger.open() refuses a fresh run over existing metrics", async () => {
  await withDir(async (dir) => {
    const m = await MetricsLogger.open(dir);
    await m.log({ step: 1, epoch: 0, lr: 1 });
    await assert.rejects(
      () => MetricsLogger.open(dir),
      (e: Error) =>
        e.message === `Cannot start metrics in "${join(dir, METRICS_JSONL)}": the file already ` +
            `exists (a fresh run needs a new run directory)`,
    );
  });
});

Deno.test("MetricsLogger.log() rejects a bad step or value", async () => {
  await withDir(async (dir) => {
    const m = await MetricsLogger.open(dir);
    await assert.rejects(() => m.log({ step: -1, epoch: 0 }), /"step" must be a non-negative/);
    await assert.rejects(() => m.log({ step: 1, epoch: 0.5 }), /"epoch" must be a non-negative/);
    await assert.rejects(
      () => m.log({ step: 1, epoch: 0, x: {} as unknown as number }),
      /Metrics value "x" must be a number, string or boolean/,
    );
  });
});

Deno.test("MetricsLogger resumed with dropFromStep equals an uninterrupted run", async () => {
  await withDir(async (whole) => {
    await withDir(async (resumed) => {
      const a = await MetricsLogger.open(whole);
      for (const r of rowsUpTo(100)) await a.log(r);

      // Interrupted after step 70 (with a cut-off last line), resumed from a checkpoint at
      // step 50: rows 50..70 are redone.
      const b = await MetricsLogger.open(resumed);
      for (const r of rowsUpTo(70)) await b.log(r);
      await Deno.writeTextFile(join(resumed, METRICS_JSONL), '{"step":80,"ep', { append: true });
      const c = await MetricsLogger.open(resumed, { dropFromStep: 50 });
      assert.deepEqual(c.rows.map((r) => r.step), [10, 20, 30, 40]);
      for (const r of rowsUpTo(100).filter((r) => r.step >= 50)) await c.log(r);

      assert.equal(await read(resumed, METRICS_CSV), await read(whole, METRICS_CSV));
      assert.equal(await read(resumed, METRICS_JSONL), await read(whole, METRICS_JSONL));
    });
  });
});

Deno.test("MetricsLogger resume narrows the header to the kept rows", async () => {
  await withDir(async (dir) => {
    const m = await MetricsLogger.open(dir);
    await m.log({ step: 10, epoch: 0, lr: 1 });
    await m.log({ step: 20, epoch: 0, lr: 1, val_loss: 2 });
    const r = await MetricsLogger.open(dir, { dropFromStep: 20 });
    assert.deepEqual(r.columns, ["step", "epoch", "lr"]);
    assert.equal(await read(dir, METRICS_CSV), "step,epoch,lr\n10,0,1\n");
  });
});

Deno.test("MetricsLogger resume reports a malformed line by file and number", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, METRICS_JSONL), '{"step":1,"epoch":0}\n[1]\n');
    await assert.rejects(
      () => MetricsLogger.open(dir, { dropFromStep: 5 }),
      (e: Error) =>
        e.message === `Cannot resume metrics from "${join(dir, METRICS_JSONL)}": line 2 is not ` +
            `a metrics row with an integer step and epoch`,
    );
  });
});
