import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { planSwigluBackward, planSwigluForward } from "../../src/gpu/swiglu.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray } from "../_util.ts";

const silu = (g: number) => g / (1 + Math.exp(-g));

/** float64 reference: x (N, 2H) = [gate | up] (torch `chunk(2, dim=-1)`), y = silu(gate)·up. */
function swigluRef(x: ArrayLike<number>, N: number, H: number): Float64Array {
  const y = new Float64Array(N * H);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < H; j++) y[n * H + j] = silu(x[n * 2 * H + j]) * x[n * 2 * H + H + j];
  }
  return y;
}

/** float64 analytic backward: dx (N, 2H) = [dgate | dup]. */
function swigluBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, N: number, H: number) {
  const dx = new Float64Array(N * 2 * H);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < H; j++) {
      const g = x[n * 2 * H + j];
      const u = x[n * 2 * H + H + j];
      const s = 1 / (1 + Math.exp(-g));
      dx[n * 2 * H + j] = dy[n * H + j] * u * s * (1 + g * (1 - s));
      dx[n * 2 * H + H + j] = dy[n * H + j] * g * s;
    }
  }
  return dx;
}

async function gpuSwiglu(x: Float32Array, dy: Float32Array, N: number, H: number) {
  const gpu = await getGpu();
  const label = `test.swiglu.${N}x${H}`;
  const tx = uploadTensor(gpu, x, [N, 2 * H], `${label}.x`);
  const tdy = uploadTensor(gpu, dy, [N, H], `${label}.dy`);
  const ty = createTensor(gpu, [N, H], `${label}.y`);
  // Garbage in dx: the backward overwrites it.
  const tdx = uploadTensor(gpu, randomArray(N * 2 * H, 77), [N, 2 * H], `${label}.dx`);
  await run(gpu, [
    await planSwigluForward(gpu, ty, tx),
    await planSwigluBackward(gpu, tdx, tx, tdy),
  ]);
  return { y: await readTensor(gpu, ty), dx: await readTensor(gpu, tdx) };
}

for (const N of [1, 7, 37, 129]) {
  for (const H of [1, 7, 37, 130]) {
    Deno.test(`planSwigluForward()/planSwigluBackward() match float64 at N=${N}, H=${H}`, async () => {
      const x = randomArray(N * 2 * H, N * 1000 + H, -6, 6);
      const dy = randomArray(N * H, N * 1000 + H + 1);
      const got = await gpuSwiglu(x, dy, N, H);
      const tag = `swiglu N=${N} H=${H}`;
      assertClose(got.y, swigluRef(x, N, H), `${tag} y`, 1e-6, 1e-5);
      assertClose(got.dx, swigluBackwardRef(x, dy, N, H), `${tag} dx`, 1e-6, 1e-5);
    });
  }
}

Deno.test("planSwigluBackward() matches finite differences at N=7, H=37", async () => {
  const [N, H] = [7, 37];
  const x = randomArray(N * 2 * H, 5, -4, 4);
  const dy = randomArray(N * H, 6); // loss L = Σ dy·y
  const got = await gpuSwiglu(x, dy, N, H);
  const p = Float64Array.from(x);
  const fd = new Float64Array(p.length);
  const loss = () => swigluRef(p, N, H).reduce((s, y, i) => s + y * dy[i], 0);
  const h = 1e-6;
  for (let i = 0; i < p.length; i++) {
    const old = p[i];
    p[i] = old + h;
    const lp = loss();
    p[i] = old - h;
    const lm = loss();
    p[i] = old;
    fd[i] = (lp - lm) / (2 * h);
  }
  assertClose(got.dx, fd, "swiglu FD dx", 1e-5, 1e-4);
});

Deno.test("planSwigluForward() stays finite for large |gate|", async () => {
  const x = new Float32Array([-200, 200, -90, 0, 3, 3, 3, 3]); // N=1, H=4: gates then ups
  const got = await gpuSwiglu(x, new Float32Array([1, 1, 1, 1]), 1, 4);
  assertClose(got.y, swigluRef(x, 1, 4), "swiglu extreme y", 1e-6, 1e-5);
  assertClose(got.dx, swigluBackwardRef(x, [1, 1, 1, 1], 1, 4), "swiglu extreme dx", 1e-6, 1e-5);
});

Deno.test("planSwigluForward() rejects an input that is not (N, 2H)", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [3, 7], "test.swiglu.bad.x");
  const y = createTensor(gpu, [3, 4], "test.swiglu.bad.y");
  assert.throws(() => planSwigluForward(gpu, y, x), /is not \(N, 2H\)/);
});
