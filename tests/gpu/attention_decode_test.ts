import assert from "node:assert/strict";
import { decodeAttentionWgsl } from "../../src/gpu/attention_decode_wgsl.ts";
import { planDecodeAttention, planKvAppend } from "../../src/gpu/attention_decode.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { attentionForwardCpu } from "../../src/cpu/attention.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

/** doc_f / doc_b of B rows with EOS about one token in four (row 1 starts with EOS). */
function makeDocs(B: number, T: number, seed: number) {
  const r = rng(seed);
  const docF = new Int32Array(B * T);
  const docB = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < T; t++) {
      docB[b * T + t] = count;
      if ((b === 1 && t === 0) || r() < 0.25) count++;
      docF[b * T + t] = count;
    }
  }
  return { docF, docB };
}

const CASES = [
  { B: 1, T: 1, H: 1, D: 4 },
  { B: 2, T: 7, H: 3, D: 6 },
  { B: 3, T: 37, H: 2, D: 16 },
  { B: 1, T: 129, H: 4, D: 8 },
  { B: 2, T: 45, H: 1, D: 96 },
];

for (const c of CASES) {
  for (const dir of ["forward", "backward"] as const) {
    const { B, T, H, D } = c;
    const name = `B=${B} T=${T} H=${H} D=${D} ${dir}`;
    Deno.test(`planDecodeAttention() over planKvAppend()'s cache matches float64 at ${name}`, async () => {
      const gpu = await getGpu();
      const C = H * D;
      const N = B * T;
      const qkv = randomArray(N * 3 * C, 31 + T, -2, 2);
      const { docF, docB } = makeDocs(B, T, 9 + T);
      const doc = dir === "forward" ? docF : docB;
      // Cache rows shifted by 3 (and 2 spare rows after): token (b, i) lives in row 3 + b·T + i.
      const shift = 3;
      const dst = new Int32Array(N).map((_, n) => shift + n);
      const span = new Int32Array(2 * N);
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < T; i++) {
          const same = (j: number) => doc[b * T + j] === doc[b * T + i];
          let lo = i;
          let hi = i + 1;
          if (dir === "forward") { while (lo > 0 && same(lo - 1)) lo--; }
          else while (hi < T && same(hi)) hi++;
          span[2 * (b * T + i)] = shift + b * T + lo;
          span[2 * (b * T + i) + 1] = shift + b * T + hi;
        }
      }
      const tq = uploadTensor(gpu, qkv, [N, 3 * C], "test.dec.qkv");
      const kc = uploadTensor(gpu, randomArray((N + 5) * C, 3), [N + 5, C], "test.dec.kc");
      const vc = uploadTensor(gpu, randomArray((N + 5) * C, 4), [N + 5, C], "test.dec.vc");
      const td = uploadTensor(gpu, dst, [N], "test.dec.dst");
      const ts = uploadTensor(gpu, span, [N, 2], "test.dec.span");
      const out = createTensor(gpu, [N, C], "test.dec.out");
      await run(gpu, [
        ...await planKvAppend(gpu, kc, vc, tq, td, H),
        ...await planDecodeAttention(gpu, out, tq, kc, vc, ts, H),
      ]);
      const ref = attentionForwardCpu(qkv, doc, c, dir);
      assertClose(await readTensor(gpu, out), ref.out, `out ${name}`, 1e-5, 1e-4);
      // The appended rows hold k and v; the spare rows are untouched.
      const k = await readTensor(gpu, kc);
      for (let n = 0; n < N; n++) {
        assert.equal(k[(shift + n) * C], qkv[n * 3 * C + C]);
      }
    });
  }
}

Deno.test("decodeAttentionWgsl() rejects a head wider than the workgroup", () => {
  assert.throws(() => decodeAttentionWgsl({ d4: 33, wg: 32 }), /Invalid decode attention tiles/);
});
