import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import {
  type AttentionDirection,
  attentionFlops,
  planAttentionBackward,
  planAttentionForward,
} from "../../src/gpu/attention.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { attentionBackwardCpu, attentionForwardCpu } from "../../src/cpu/attention.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

/**
 * Document ids for B rows of T tokens with EOS at random places (about one token in five);
 * row 1 (when it exists) starts with EOS. Returns doc_f (cumulative EOS count including the
 * token) and doc_b (doc_f shifted right by one, 0 first).
 */
function makeDocs(B: number, T: number, seed: number): { docF: Int32Array; docB: Int32Array } {
  const r = rng(seed);
  const docF = new Int32Array(B * T);
  const docB = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < T; t++) {
      const eos = (b === 1 && t === 0) || r() < 0.2;
      docB[b * T + t] = count;
      if (eos) count++;
      docF[b * T + t] = count;
    }
  }
  return { docF, docB };
}

interface Case {
  B: number;
  T: number;
  H: number;
  D: number;
}

const CASES: Case[] = [
  { B: 1, T: 1, H: 1, D: 4 },
  { B: 2, T: 7, H: 3, D: 6 },
  { B: 3, T: 37, H: 2, D: 16 },
  { B: 1, T: 129, H: 4, D: 8 },
  { B: 2, T: 45, H: 1, D: 96 },
];

async function runGpu(
  c: Case,
  qkv: Float32Array,
  dout: Float32Array,
  doc: Int32Array,
  dir: AttentionDirection,
) {
  const gpu = await getGpu();
  const { B, T, H, D } = c;
  const C = H * D;
  const tq = uploadTensor(gpu, qkv, [B, T, 3 * C], "test.attn.qkv");
  const td = uploadTensor(gpu, doc, [B, T], "test.attn.doc");
  const tdo = uploadTensor(gpu, dout, [B, T, C], "test.attn.dout");
  const out = createTensor(gpu, [B, T, C], "test.attn.out");
  const lse = createTensor(gpu, [B, H, T], "test.attn.lse");
  const dqkv = createTensor(gpu, [B, T, 3 * C], "test.attn.dqkv");
  await run(gpu, [
    ...await planAttentionForward(gpu, out, lse, tq, td, H, dir),
    ...await planAttentionBackward(gpu, dqkv, tdo, tq, out, lse, td, H, dir),
  ]);
  return {
    out: await readTensor(gpu, out),
    lse: await readTensor(gpu, lse),
    dqkv: await readTensor(gpu, dqkv),
  };
}

for (const c of CASES) {
  for (const dir of ["forward", "backward"] as AttentionDirection[]) {
    const { B, T, H, D } = c;
    const name = `B=${B} T=${T} H=${H} D=${D} ${dir}`;
    Deno.test(`planAttentionForward() and planAttentionBackward() match float64 at ${name}`, async () => {
      const C = H * D;
      const qkv = randomArray(B * T * 3 * C, 11 + T, -2, 2);
      const dout = randomArray(B * T * C, 23 + T);
      const { docF, docB } = makeDocs(B, T, 5 + T);
      const doc = dir === "forward" ? docF : docB;
      const got = await runGpu(c, qkv, dout, doc, dir);
      const ref = attentionForwardCpu(qkv, doc, c, dir);
      assertClose(got.out, ref.out, `out ${name}`, 1e-5, 1e-4);
      assertClose(got.lse, ref.lse, `lse ${name}`, 1e-5, 1e-5);
      const dref = attentionBackwardCpu(dout, qkv, doc, c, dir);
      assertClose(got.dqkv, dref, `dqkv ${name}`, 2e-5, 1e-3);
    });
  }
}

Deno.test("planAttentionBackward() matches finite differences of the float64 forward", async () => {
  const c = { B: 2, T: 9, H: 2, D: 6 };
  const { B, T, H, D } = c;
  const C = H * D;
  for (const dir of ["forward", "backward"] as AttentionDirection[]) {
    const qkv = randomArray(B * T * 3 * C, 3, -2, 2);
    const dout = randomArray(B * T * C, 4);
    const { docF, docB } = makeDocs(B, T, 7);
    const doc = dir === "forward" ? docF : docB;
    const got = await runGpu(c, qkv, dout, doc, dir);
    // loss = Σ dout · out, so d loss / d qkv[e] is what backward returns.
    const loss = (x: Float64Array) => {
      const { out } = attentionForwardCpu(x, doc, c, dir);
      let s = 0;
      for (let k = 0; k < out.length; k++) s += out[k] * dout[k];
      return s;
    };
    const x = Float64Array.from(qkv);
    const r = rng(99);
    const picks: number[] = [];
    for (let n = 0; n < 24; n++) picks.push(Math.floor(r() * x.length));
    const fd: number[] = [];
    const an: number[] = [];
    const eps = 1e-5;
    for (const e of picks) {
      const keep = x[e];
      x[e] = keep + eps;
      const up = loss(x);
      x[e] = keep - eps;
      const down = loss(x);
      x[e] = keep;
      fd.push((up - down) / (2 * eps));
      an.push(got.dqkv[e]);
    }
    assertClose(an, fd, `dqkv vs finite differences ${dir}`, 1e-4, 1e-3);
  }
});

Deno.test("planAttentionForward() and planAttentionBackward() are bit-identical on rerun", async () => {
  const c = { B: 2, T: 37, H: 2, D: 16 };
  const { B, T, H, D } = c;
  const qkv = randomArray(B * T * 3 * H * D, 8);
  const dout = randomArray(B * T * H * D, 9);
  const { docB } = makeDocs(B, T, 10);
  const a = await runGpu(c, qkv, dout, docB, "backward");
  const b = await runGpu(c, qkv, dout, docB, "backward");
  for (const k of ["out", "lse", "dqkv"] as const) {
    const x = new Uint32Array(a[k].buffer, a[k].byteOffset, a[k].length);
    const y = new Uint32Array(b[k].buffer, b[k].byteOffset, b[k].length);
    if (!x.every((v, i) => v === y[i])) throw new Error(`${k} differs between runs`);
  }
});

Deno.test("planAttentionForward() rejects a head dim above 128 and a doc of the wrong shape", async () => {
  const gpu = await getGpu();
  const qkv = createTensor(gpu, [1, 2, 3 * 130], "test.attn.bad_qkv");
  const doc = createTensor(gpu, [1, 2], "test.attn.bad_doc", "i32");
  const out = createTensor(gpu, [1, 2, 130], "test.attn.bad_out");
  const lse = createTensor(gpu, [1, 1, 2], "test.attn.bad_lse");
  let message = "";
  try {
    await planAttentionForward(gpu, out, lse, qkv, doc, 1, "forward");
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("head dim 130")) throw new Error(`unexpected: "${message}"`);
  const doc3 = createTensor(gpu, [1, 3], "test.attn.bad_doc3", "i32");
  message = "";
  try {
    await planAttentionForward(gpu, out, lse, qkv, doc3, 2, "forward");
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("must be i32 [1, 2]")) throw new Error(`unexpected: "${message}"`);
});

Deno.test("attentionFlops() counts the causal half", () => {
  const f = attentionFlops(8, 8, 69, 96);
  const want = 4 * 64 * 96 * (69 * 70 / 2);
  if (f.forward !== want || f.backward !== 2.5 * want) throw new Error(JSON.stringify(f));
});
