import assert from "node:assert/strict";
import { type AdamWStep, planAdamW, planSumSquares } from "../../src/gpu/adamw.ts";
import { reductionRuns, REDUCTIONS } from "./_reductions.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { createTensor, readTensor, uploadTensor, writeTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray } from "../_util.ts";

const f = Math.fround;

for (const reduction of REDUCTIONS) {
  for (const n of [1, 7, 37, 4096, 4097, 70001]) {
    Deno.test(`planSumSquares() matches float64 at n=${n} [${reduction} reductions]`, async () => {
      if (!await reductionRuns(reduction)) return;
      const gpu = await getGpu();
      const x = randomArray(n, n);
      const norms = uploadTensor(gpu, new Float32Array([5, -1, 7]), [3], `test.sumsq.${n}.norms`);
      const tx = uploadTensor(gpu, x, [n], `test.sumsq.${n}.x`);
      await run(gpu, await planSumSquares(gpu, norms, 1, tx, false, reduction));
      const want = x.reduce((s, v) => s + v * v, 0);
      assertClose(await readTensor(gpu, norms), [5, want, 7], `sumsq n=${n}`, 1e-6, 1e-5);
    });
  }
}

Deno.test("planSumSquares() accumulates ranges of a flat buffer into one slot, bit-reproducibly", async () => {
  const gpu = await getGpu();
  const x = randomArray(64 + 37 + 27 + 4097, 3);
  const flat = uploadTensor(gpu, x, [x.length], "test.sumsq.flat");
  const norms = createTensor(gpu, [2], "test.sumsq.acc.norms");
  // Two ranges of slot 0 (the second adds), one of slot 1; views at 256-byte offsets.
  const ops = [
    ...await planSumSquares(gpu, norms, 0, flat.rows(0, 37)),
    ...await planSumSquares(gpu, norms, 0, flat.rows(128, 4097), true),
    ...await planSumSquares(gpu, norms, 1, flat.rows(64, 27)),
  ];
  const sq = (a: number, b: number) => x.subarray(a, b).reduce((s, v) => s + v * v, 0);
  await run(gpu, ops);
  const first = await readTensor(gpu, norms);
  assertClose(first, [sq(0, 37) + sq(128, 128 + 4097), sq(64, 91)], "sumsq ranges", 1e-6, 1e-5);
  await run(gpu, ops); // the first range overwrites: same result, bit for bit
  assert.deepEqual(await readTensor(gpu, norms), first);
  await assert.rejects(planSumSquares(gpu, norms, 2, flat), /slot 2 is outside/);
});

/**
 * PyTorch's single-tensor AdamW (torch.optim.AdamW, foreach=False) with clip_grad_norm_'s
 * in-place scaling, emulated in float32: every tensor op rounds to f32; Python-float scalars
 * are computed in float64 and rounded once.
 */
function adamwRef(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  grad: Float32Array,
  normSq: number,
  s: AdamWStep,
): void {
  let coef = 1;
  if (s.maxNorm !== null && s.maxNorm > 0) {
    const total = f(Math.sqrt(normSq)); // total_norm (f32 tensor)
    // clamp(max_norm / (total + 1e-6), max=1); `float / tensor` is reciprocal() * float.
    coef = Math.min(1, f(f(1 / f(total + f(1e-6))) * f(s.maxNorm)));
  }
  const bc1 = 1 - s.beta1 ** s.step;
  const bc2 = 1 - s.beta2 ** s.step;
  const decay = f(1 - s.lr * s.weightDecay);
  const w1 = f(1 - s.beta1);
  const w2 = f(1 - s.beta2);
  const negStep = f(-s.lr / bc1);
  const bc2Sqrt = f(Math.sqrt(bc2));
  for (let i = 0; i < p.length; i++) {
    const g = f(grad[i] * coef); // grads.mul_(clip_coef_clamped)
    p[i] = f(p[i] * decay); // param.mul_(1 - lr * wd)
    m[i] = f(m[i] + f(w1 * f(g - m[i]))); // exp_avg.lerp_(grad, 1 - beta1)
    v[i] = f(f(v[i] * f(s.beta2)) + f(f(w2 * g) * g)); // mul_(beta2).addcmul_(g, g, 1 - beta2)
    const denom = f(f(f(Math.sqrt(v[i])) / bc2Sqrt) + f(s.eps)); // (sqrt(v) / bc2_sqrt).add_(eps)
    p[i] = f(p[i] + f(f(negStep * m[i]) / denom)); // addcdiv_(m, denom, value=-step_size)
  }
}

for (const clip of [null, 0.5, 1e6]) {
  Deno.test(`planAdamW() matches PyTorch's float32 arithmetic over 3 steps (maxNorm ${clip})`, async () => {
    const gpu = await getGpu();
    const n = 129;
    const off = 64; // the range starts 256 bytes into the flat buffers
    const total = off + n + 11;
    const label = `test.adamw.${clip}`;
    const p0 = randomArray(total, 1);
    const flat = {
      param: uploadTensor(gpu, p0, [total], `${label}.param`),
      m: createTensor(gpu, [total], `${label}.m`),
      v: createTensor(gpu, [total], `${label}.v`),
      grad: createTensor(gpu, [total], `${label}.grad`),
    };
    const norms = createTensor(gpu, [2], `${label}.norms`);
    const view = (t: typeof flat.param) => t.rows(off, n);
    const base: AdamWStep = {
      lr: 3e-3,
      step: 1,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      maxNorm: clip,
    };
    const sumsq = await planSumSquares(gpu, norms, 1, view(flat.grad));
    const plan = await planAdamW(gpu, {
      param: view(flat.param),
      m: view(flat.m),
      v: view(flat.v),
      grad: view(flat.grad),
      norms,
      slot: 1,
    }, base);
    const p = p0.slice(off, off + n);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    for (let step = 1; step <= 3; step++) {
      const grad = randomArray(n, 10 + step, -0.3, 0.3);
      const full = new Float32Array(total);
      full.set(grad, off);
      writeTensor(gpu, flat.grad, full);
      const s = { ...base, step, lr: base.lr * step }; // lr changes without re-planning
      plan.setStep(s);
      await run(gpu, [...sumsq, plan.dispatch]);
      const normSq = (await readTensor(gpu, norms))[1];
      assertClose([normSq], [grad.reduce((a, g) => a + g * g, 0)], `norm step ${step}`, 1e-6, 1e-5);
      adamwRef(p, m, v, grad, normSq, s);
      const tag = `adamw clip=${clip} step ${step}`;
      const got = await readTensor(gpu, flat.param);
      assertClose(got.subarray(off, off + n), p, `${tag} param`, 1e-7, 2e-6);
      assertClose(
        (await readTensor(gpu, flat.m)).subarray(off, off + n),
        m,
        `${tag} m`,
        1e-9,
        2e-6,
      );
      assertClose(
        (await readTensor(gpu, flat.v)).subarray(off, off + n),
        v,
        `${tag} v`,
        1e-12,
        2e-6,
      );
      // Elements outside the range are untouched.
      assert.deepEqual(got.subarray(0, off), p0.subarray(0, off));
      assert.deepEqual(got.subarray(off + n), p0.subarray(off + n));
    }
  });
}

Deno.test("planAdamW() clips by the norm slot: scales the gradient by maxNorm / (‖g‖ + 1e-6) read from the norm slot", async () => {
  const gpu = await getGpu();
  const n = 37;
  const grad = randomArray(n, 5, -100, 100);
  const gnorm = Math.sqrt(grad.reduce((a, g) => a + g * g, 0));
  const t = {
    param: createTensor(gpu, [n], "test.adamw.clip.param"),
    m: createTensor(gpu, [n], "test.adamw.clip.m"),
    v: createTensor(gpu, [n], "test.adamw.clip.v"),
    grad: uploadTensor(gpu, grad, [n], "test.adamw.clip.grad"),
    norms: createTensor(gpu, [1], "test.adamw.clip.norms"),
    slot: 0,
  };
  const s: AdamWStep = {
    lr: 1e-3,
    step: 1,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    maxNorm: 1,
  };
  const plan = await planAdamW(gpu, t, s);
  await run(gpu, [...await planSumSquares(gpu, t.norms, 0, t.grad), plan.dispatch]);
  // After one step from m = 0: m = 0.1 · coef · grad, coef = 1 / (‖grad‖ + 1e-6).
  const want = grad.map((g) => 0.1 * g / (gnorm + 1e-6));
  assertClose(await readTensor(gpu, t.m), want, "clipped m", 1e-7, 1e-5);
  assert.throws(() => plan.setStep({ ...s, step: 0 }), /positive integer/);
});

Deno.test("planAdamW() rejects ranges of different lengths", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [8], "test.adamw.bad.a");
  const b = createTensor(gpu, [7], "test.adamw.bad.b");
  const s: AdamWStep = {
    lr: 1,
    step: 1,
    beta1: 0.9,
    beta2: 0.9,
    eps: 1e-8,
    weightDecay: 0,
    maxNorm: null,
  };
  await assert.rejects(
    planAdamW(gpu, { param: a, m: a, v: b, grad: a, norms: a, slot: 0 }, s),
    /must have 8 elements/,
  );
});
