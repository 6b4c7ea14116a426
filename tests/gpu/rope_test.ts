import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { checkPositions, planRope, ropeTable } from "../../src/gpu/rope.ts";
import { readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

const P = 64; // table rows

/**
 * Reference RoPE on a qkv (N, 3C) row-major array, as model_base.py does it: cos/sin tables
 * (P, D) with the angles repeated twice, `q·cos + rotate_half(q)·sin` per head. float64
 * arithmetic on the f32 table; `sign` −1 applies the inverse rotation.
 */
function ropeRef(
  qkv: ArrayLike<number>,
  pos: ArrayLike<number>,
  N: number,
  H: number,
  D: number,
  sign = 1,
): Float64Array {
  const C = H * D;
  const half = D / 2;
  const table = ropeTable(P, D);
  const out = Float64Array.from(qkv);
  for (let n = 0; n < N; n++) {
    for (let section = 0; section < 2; section++) {
      for (let h = 0; h < H; h++) {
        const base = n * 3 * C + section * C + h * D;
        for (let d = 0; d < D; d++) {
          const i = d % half;
          const cos = table[(pos[n] * half + i) * 2];
          const sin = sign * table[(pos[n] * half + i) * 2 + 1];
          const rot = d < half ? -qkv[base + d + half] : qkv[base + d - half];
          out[base + d] = qkv[base + d] * cos + rot * sin;
        }
      }
    }
  }
  return out;
}

function randomPositions(N: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: N }, () => Math.floor(r() * P));
}

async function gpuRope(
  qkv: Float32Array,
  pos: Int32Array,
  N: number,
  H: number,
  D: number,
  inverse: boolean,
): Promise<Float32Array> {
  const gpu = await getGpu();
  const label = `test.rope.${N}x${H}x${D}`;
  const t = uploadTensor(gpu, qkv, [N, 3 * H * D], `${label}.qkv`);
  const tp = uploadTensor(gpu, pos, [N], `${label}.pos`, "i32");
  await run(gpu, [await planRope(gpu, t, tp, H, P, inverse)]);
  return readTensor(gpu, t);
}

for (const [H, D] of [[3, 6], [4, 8], [1, 2]]) {
  for (const N of [1, 7, 37, 129]) {
    Deno.test(`planRope() forward and inverse match the reference at N=${N}, H=${H}, D=${D}`, async () => {
      const C = H * D;
      const qkv = randomArray(N * 3 * C, N + 100 * D);
      const pos = randomPositions(N, N + D);
      const tag = `rope N=${N} H=${H} D=${D}`;
      const fwd = await gpuRope(qkv, pos, N, H, D, false);
      assertClose(fwd, ropeRef(qkv, pos, N, H, D), `${tag} fwd`, 1e-6, 1e-5);
      const inv = await gpuRope(qkv, pos, N, H, D, true);
      assertClose(inv, ropeRef(qkv, pos, N, H, D, -1), `${tag} inverse`, 1e-6, 1e-5);
      // v is untouched, bit for bit.
      for (let n = 0; n < N; n++) {
        const v = [2 * C, 3 * C].map((c) => n * 3 * C + c);
        assert.deepEqual(fwd.subarray(v[0], v[1]), qkv.subarray(v[0], v[1]));
        assert.deepEqual(inv.subarray(v[0], v[1]), qkv.subarray(v[0], v[1]));
      }
    });
  }
}

for (const [H, D] of [[3, 6], [4, 8]]) {
  Deno.test(`planRope() inverse matches finite differences at N=7, H=${H}, D=${D}`, async () => {
    const N = 7;
    const C = H * D;
    const qkv = randomArray(N * 3 * C, 1);
    const r = randomArray(N * 3 * C, 2); // loss L = Σ r·rope(qkv), ∂L/∂y = r
    const pos = randomPositions(N, 3);
    const h = 1e-6;
    const x = Float64Array.from(qkv);
    const fd = new Float64Array(x.length);
    const loss = () => ropeRef(x, pos, N, H, D).reduce((s, y, i) => s + y * r[i], 0);
    for (let i = 0; i < x.length; i++) {
      const old = x[i];
      x[i] = old + h;
      const lp = loss();
      x[i] = old - h;
      const lm = loss();
      x[i] = old;
      fd[i] = (lp - lm) / (2 * h);
    }
    // Backward is the inverse rotation applied to the upstream gradient (v passes through).
    assertClose(await gpuRope(r, pos, N, H, D, true), fd, `rope FD H=${H} D=${D}`, 1e-6, 1e-5);
  });
}

Deno.test("planRope() inverse undoes the forward at N=129, H=4, D=8", async () => {
  const gpu = await getGpu();
  const [N, H, D] = [129, 4, 8];
  const qkv = randomArray(N * 3 * H * D, 9);
  const t = uploadTensor(gpu, qkv, [N, 3 * H * D], "test.rope.roundtrip");
  const tp = uploadTensor(gpu, randomPositions(N, 9), [N], "test.rope.roundtrip.pos", "i32");
  await run(gpu, [await planRope(gpu, t, tp, H, P, false), await planRope(gpu, t, tp, H, P, true)]);
  assertClose(await readTensor(gpu, t), qkv, "rope round trip", 1e-6, 1e-5);
});

Deno.test("ropeTable() matches the reference's float32 formula", () => {
  const D = 6;
  const t = ropeTable(P, D);
  for (const [pos, i] of [[0, 0], [1, 0], [5, 1], [63, 2]]) {
    // freqs = 1 / 10000^(2i/D) in f32, angle = pos·freq in f32.
    const freq = Math.fround(1 / Math.fround(10000 ** Math.fround((2 * i) / D)));
    const angle = Math.fround(pos * freq);
    assert.equal(t[(pos * 3 + i) * 2], Math.fround(Math.cos(angle)));
    assert.equal(t[(pos * 3 + i) * 2 + 1], Math.fround(Math.sin(angle)));
  }
  assert.equal(t[(1 * 3 + 0) * 2], Math.fround(Math.cos(1)));
});

Deno.test("planRope() clamps out-of-range positions; checkPositions() rejects them", async () => {
  const [N, H, D] = [4, 3, 6];
  const qkv = randomArray(N * 3 * H * D, 11);
  const got = await gpuRope(qkv, new Int32Array([-5, 0, P, 1 << 30]), N, H, D, false);
  const want = ropeRef(qkv, new Int32Array([0, 0, P - 1, P - 1]), N, H, D);
  assertClose(got, want, "rope clamped", 1e-6, 1e-5);
  assert.throws(() => checkPositions([0, 3, P], P), /position 64 at token 2/);
  assert.throws(() => checkPositions([-1], P), /position -1 at token 0/);
  checkPositions([0, P - 1], P);
});

Deno.test("planRope() rejects an odd head dimension and mismatched positions", async () => {
  const gpu = await getGpu();
  const qkv = uploadTensor(gpu, new Float32Array(2 * 9), [2, 9], "test.rope.bad");
  const pos = uploadTensor(gpu, new Int32Array(2), [2], "test.rope.bad.pos", "i32");
  const pos3 = uploadTensor(gpu, new Int32Array(3), [3], "test.rope.bad.pos3", "i32");
  assert.throws(() => planRope(gpu, qkv, pos, 1, P, false), /width 9 with 1 heads/);
  const qkv2 = uploadTensor(gpu, new Float32Array(2 * 12), [2, 12], "test.rope.bad2");
  assert.throws(() => planRope(gpu, qkv2, pos3, 1, P, false), /must be 2 i32 values/);
});
