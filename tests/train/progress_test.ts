import assert from "node:assert/strict";
import {
  formatDuration,
  formatLr,
  formatRate,
  ProgressLine,
  type ProgressOptions,
} from "../../src/train/progress.ts";

Deno.test("formatDuration() picks units and pads", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [0.4, "0s"],
    [42, "42s"],
    [59.6, "1m 00s"],
    [1501, "25m 01s"],
    [3600, "1h 00m 00s"],
    [11229, "3h 07m 09s"],
    [86400 * 2 + 4 * 3600 + 5 * 60 + 7, "2d 04h 05m"],
    [NaN, "?"],
    [Infinity, "?"],
    [-1, "?"],
  ];
  for (const [s, want] of cases) assert.equal(formatDuration(s), want, `formatDuration(${s})`);
});

Deno.test("formatRate() keeps about three digits and SI suffixes", () => {
  const cases: [number, string][] = [
    [0, "0.00"],
    [0.05, "0.05"],
    [3.214, "3.21"],
    [9.999, "10.0"],
    [32.14, "32.1"],
    [99.96, "100"],
    [321.4, "321"],
    [999.6, "1.0k"],
    [1234, "1.2k"],
    [12345, "12.3k"],
    [123456, "123k"],
    [99999, "100k"],
    [4.5e6, "4.5M"],
    [2e9, "2.0G"],
    [NaN, "-"],
    [-1, "-"],
  ];
  for (const [v, want] of cases) assert.equal(formatRate(v), want, `formatRate(${v})`);
  assert.equal(formatLr(1e-4), "1.00e-4");
  assert.equal(formatLr(0.0003), "3.00e-4");
  assert.equal(formatLr(0), "0");
  assert.equal(formatLr(2), "2.00e0");
});

/** ANSI "clear to end of line". */
const CLEAR = "\x1b[K";

function line(opts: Partial<ProgressOptions>) {
  const out: string[] = [];
  let t = 0;
  const p = new ProgressLine({
    totalSteps: 5000,
    tokensPerStep: 400,
    logInterval: 10,
    isTerminal: false,
    write: (s) => out.push(s),
    now: () => t,
    ...opts,
  });
  return { p, out, tick: (ms: number) => (t += ms) };
}

Deno.test("ProgressLine prints one line per log_interval without a terminal", () => {
  const { p, out, tick } = line({});
  for (let step = 1; step <= 20; step++) {
    p.update({ step, epoch: 0, loss: 2.85123, lr: 1e-4 });
    tick(1000 / 3.21 * 1); // 3.21 steps/s
  }
  p.finish();
  assert.equal(out.length, 2);
  assert.match(
    out[0],
    /^step 10\/5000 \| epoch 0 \| loss 2\.8512 \| lr 1\.00e-4 \| 3\.21 steps\/s/,
  );
  assert.equal(
    out[1],
    "step 20/5000 | epoch 0 | loss 2.8512 | lr 1.00e-4 | 3.21 steps/s | 1.3k tok/s | ETA 25m 51s\n",
  );
});

Deno.test("ProgressLine shows '-' before rates and loss are known", () => {
  const { p } = line({});
  assert.equal(
    p.format({ step: 0, epoch: 0, loss: null, lr: 0 }),
    "step 0/5000 | epoch 0 | loss - | lr 0 | - steps/s | - tok/s | ETA ?",
  );
});

Deno.test("ProgressLine redraws in place on a terminal, throttled, and ends with a newline", () => {
  const { p, out, tick } = line({ isTerminal: true, totalSteps: 10, minRedrawMs: 100 });
  for (let step = 1; step <= 10; step++) {
    p.update({ step, epoch: 0, loss: 1, lr: 1e-3 });
    tick(40);
  }
  // drawn at t=0, 120, 240, 360 (steps 1, 4, 7, 10), and step 10 always
  assert.equal(out.length, 4);
  for (const s of out) {
    assert.match(s, /^\rstep \d+\/10 \|/);
    assert.ok(s.endsWith(CLEAR), JSON.stringify(s));
  }
  assert.match(out[3], /^\rstep 10\/10 /);
  p.message("validation: val_loss 1.2");
  assert.ok(out[4].startsWith(`\r${CLEAR}validation: val_loss 1.2\nstep 10/10 `), out[4]);
  p.finish();
  assert.ok(out[5].startsWith("\rstep 10/10 ") && out[5].endsWith(`${CLEAR}\n`), out[5]);
  p.finish();
  assert.equal(out.length, 6);
});

Deno.test("ProgressLine.message() prints plain lines without a terminal", () => {
  const { p, out } = line({});
  p.message("hello");
  assert.deepEqual(out, ["hello\n"]);
});
