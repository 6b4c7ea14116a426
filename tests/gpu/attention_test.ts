import assert from "node:assert/strict";
import { attentionWgsl } from "../../src/gpu/attention_wgsl.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import {
  type AttentionDirection,
  attentionFlops,
  attentionTuner,
  type AttentionVariant,
  balancedRows,
  planAttentionBackward,
  planAttentionForward,
  setAttentionTuner,
} from "../../src/gpu/attention.ts";
import {
  ATTENTION_CANDIDATES,
  attentionTuneKey,
  AttentionTuner,
} from "../../src/gpu/attention_tune.ts";
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
  variant?: AttentionVariant,
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
    ...await planAttentionForward(gpu, out, lse, tq, td, H, dir, { variant }),
    ...await planAttentionBackward(gpu, dqkv, tdo, tq, out, lse, td, H, dir, { variant }),
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

Deno.test("planAttentionForward() and planAttentionBackward() match float64 at T=1024 in one document", async () => {
  const c = { B: 1, T: 1024, H: 1, D: 8 };
  const C = c.H * c.D;
  const qkv = randomArray(c.T * 3 * C, 71, -2, 2);
  const dout = randomArray(c.T * C, 72);
  const doc = new Int32Array(c.T);
  const gpu = await getGpu();
  // The adapter's default, and split rows (with subgroup shuffles where the device has them).
  const variants: (AttentionVariant | undefined)[] = [undefined, ATTENTION_CANDIDATES.r64_l4];
  if (gpu.info.features.includes("subgroups")) variants.push(ATTENTION_CANDIDATES.r32_l8_sg);
  for (const variant of variants) {
    const vname = variant ? ` ${JSON.stringify(variant)}` : "";
    for (const dir of ["forward", "backward"] as AttentionDirection[]) {
      const got = await runGpu(c, qkv, dout, doc, dir, variant);
      const ref = attentionForwardCpu(qkv, doc, c, dir);
      assertClose(got.out, ref.out, `out T=1024 ${dir}${vname}`, 1e-5, 1e-4);
      assertClose(got.lse, ref.lse, `lse T=1024 ${dir}${vname}`, 1e-5, 1e-5);
      assertClose(
        got.dqkv,
        attentionBackwardCpu(dout, qkv, doc, c, dir),
        `dqkv T=1024 ${dir}${vname}`,
        2e-5,
        1e-3,
      );
    }
  }
});

Deno.test("attentionWgsl() keeps head rows in named registers and rejects bad tiles", () => {
  for (const lanes of [1, 2, 4, 8]) {
    for (const d4 of [1, 2, 24, 32]) {
      const code = attentionWgsl({ d4, wg: 32, bk: 16, lanes });
      assert.match(code, /^\/\/ Generated by src\/gpu\/attention_wgsl\.ts/);
      assert.match(code, new RegExp(`@workgroup_size\\(${32 * lanes}\\)`));
      assert.doesNotMatch(code, /\bvar\s+\w+\s*:\s*array/);
      // Each lane holds ceil(d4 / lanes) vec4 of every head row vector.
      for (const name of ["q", "acc", "do", "dq", "k", "v", "dk", "dv"]) {
        const names = new Set(code.match(new RegExp(`\\b${name}_\\d+\\b`, "g")));
        assert.equal(names.size, Math.ceil(d4 / lanes), `${name} d4=${d4} lanes=${lanes}`);
      }
      // Split rows exchange partial dot products; one lane per row needs no exchange.
      assert.equal(code.includes("var<workgroup> pb"), lanes > 1);
    }
  }
  assert.throws(() => attentionWgsl({ d4: 33, wg: 32, bk: 16 }), /Invalid attention tiles/);
  assert.throws(() => attentionWgsl({ d4: 2, wg: 0, bk: 16 }), /Invalid attention tiles/);
  assert.throws(() => attentionWgsl({ d4: 2, wg: 8, bk: 16, lanes: 3 }), /Invalid attention/);
  assert.throws(
    () => attentionWgsl({ d4: 2, wg: 8, bk: 16, lanes: 1, subgroups: true }),
    /Invalid attention/,
  );
  // The subgroup form: shuffles instead of the second partial array; no `enable` directive
  // (Naga rejects it; the device feature is what allows the builtins).
  const sg = attentionWgsl({ d4: 24, wg: 32, bk: 16, lanes: 4, subgroups: true });
  assert.match(sg, /subgroupShuffle\(spart, sbase\) \+ subgroupShuffle\(spart, sbase \+ 1u\)/);
  assert.doesNotMatch(sg, /\benable\b/);
  assert.doesNotMatch(sg, /var<workgroup> pb/);
});

// Every variant the tuner may pick, at awkward sizes: D not a multiple of 4 (and below the
// lane count, so some lanes own only padding), D/4 not a multiple of the lanes, T not a
// multiple of the tiles, packed docs; the paper's D = 96 for split rows (one lane per row
// runs it in the cases above, and its kernels are slow to compile on a CPU adapter).
const VARIANT_CASES: Case[] = [
  { B: 2, T: 37, H: 2, D: 6 },
  { B: 2, T: 70, H: 1, D: 20 },
  { B: 1, T: 33, H: 2, D: 52 },
];

for (const [vname, variant] of Object.entries(ATTENTION_CANDIDATES)) {
  Deno.test(`attention variant ${vname} matches float64 in both directions`, async () => {
    const cases = variant.lanes >= 4
      ? [...VARIANT_CASES, { B: 1, T: 45, H: 1, D: 96 }]
      : VARIANT_CASES;
    for (const c of cases) {
      for (const dir of ["forward", "backward"] as AttentionDirection[]) {
        const { B, T, H, D } = c;
        const name = `${vname} B=${B} T=${T} H=${H} D=${D} ${dir}`;
        const qkv = randomArray(B * T * 3 * H * D, 31 + T, -2, 2);
        const dout = randomArray(B * T * H * D, 37 + T);
        const { docF, docB } = makeDocs(B, T, 41 + T);
        const doc = dir === "forward" ? docF : docB;
        const got = await runGpu(c, qkv, dout, doc, dir, variant);
        const ref = attentionForwardCpu(qkv, doc, c, dir);
        assertClose(got.out, ref.out, `out ${name}`, 1e-5, 1e-4);
        assertClose(got.lse, ref.lse, `lse ${name}`, 1e-5, 1e-5);
        const dref = attentionBackwardCpu(dout, qkv, doc, c, dir);
        assertClose(got.dqkv, dref, `dqkv ${name}`, 2e-5, 1e-3);
      }
    }
  });
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

Deno.test("attention variants with split rows are bit-identical on rerun", async () => {
  const c = { B: 2, T: 45, H: 2, D: 20 };
  const { B, T, H, D } = c;
  const qkv = randomArray(B * T * 3 * H * D, 18);
  const dout = randomArray(B * T * H * D, 19);
  const { docF } = makeDocs(B, T, 20);
  for (const name of ["r16_l4", "r32_l8"]) {
    const v = ATTENTION_CANDIDATES[name];
    const a = await runGpu(c, qkv, dout, docF, "forward", v);
    const b = await runGpu(c, qkv, dout, docF, "forward", v);
    for (const k of ["out", "lse", "dqkv"] as const) {
      const x = new Uint32Array(a[k].buffer, a[k].byteOffset, a[k].length);
      const y = new Uint32Array(b[k].buffer, b[k].byteOffset, b[k].length);
      assert.ok(x.every((u, i) => u === y[i]), `${name}: ${k} differs between runs`);
    }
  }
});

Deno.test("balancedRows() shares T evenly among the workgroups in whole warps", () => {
  assert.equal(balancedRows(69, { rows: 64, lanes: 4 }), 40);
  assert.equal(balancedRows(69, { rows: 32, lanes: 1 }), 32);
  assert.equal(balancedRows(69, { rows: 16, lanes: 8 }), 16);
  assert.equal(balancedRows(45, { rows: 16, lanes: 8 }), 16);
  assert.equal(balancedRows(40, { rows: 32, lanes: 8 }), 20);
  assert.equal(balancedRows(1024, { rows: 64, lanes: 4 }), 64);
  assert.equal(balancedRows(5, { rows: 64, lanes: 4 }), 8);
  assert.equal(balancedRows(1, { rows: 32, lanes: 1 }), 32);
});

Deno.test("attentionTuneKey() buckets T to a power of two of at least 32", () => {
  assert.equal(attentionTuneKey("forward", 96, 1), "forward:D96xT32");
  assert.equal(attentionTuneKey("backward_dq", 96, 69), "backward_dq:D96xT128");
  assert.equal(attentionTuneKey("backward_dkv", 64, 1024), "backward_dkv:D64xT1024");
  const tuner = new AttentionTuner({ adapter: "Some GPU (x)", cacheDir: "/tmp/c" });
  assert.equal(tuner.cacheFile, "/tmp/c/attention_tune_Some_GPU_x_.json");
});

Deno.test("attention planners tune each pass at first use on an adapter missing from the table", async () => {
  const gpu = await getGpu();
  const saved = attentionTuner(gpu);
  const tuner = new AttentionTuner({
    adapter: gpu.info.description,
    table: [],
    // Two candidates keep the timing short on a CPU adapter.
    candidates: { r16_l4: ATTENTION_CANDIDATES.r16_l4, r32_l1: ATTENTION_CANDIDATES.r32_l1 },
  });
  setAttentionTuner(gpu, tuner);
  try {
    const c = { B: 2, T: 21, H: 2, D: 12 };
    const { B, T, H, D } = c;
    const qkv = randomArray(B * T * 3 * H * D, 51, -2, 2);
    const dout = randomArray(B * T * H * D, 52);
    const { docB } = makeDocs(B, T, 53);
    // Tuning ran on scratch tensors: the outputs hold the results, not leftovers.
    const got = await runGpu(c, qkv, dout, docB, "backward");
    const choices = tuner.choices();
    assert.deepEqual(Object.keys(choices).sort(), [
      "backward_dkv:D12xT32",
      "backward_dq:D12xT32",
      "forward:D12xT32",
    ]);
    for (const v of Object.values(choices)) assert.match(v, /^(r16_l4|r32_l1) \(tuned\)$/);
    const ref = attentionForwardCpu(qkv, docB, c, "backward");
    assertClose(got.out, ref.out, "tuned out", 1e-5, 1e-4);
    assertClose(got.lse, ref.lse, "tuned lse", 1e-5, 1e-5);
    const dref = attentionBackwardCpu(dout, qkv, docB, c, "backward");
    assertClose(got.dqkv, dref, "tuned dqkv", 2e-5, 1e-3);
    const again = await tuner.choose(attentionTuneKey("forward", D, T), () => {
      throw new Error("already tuned");
    });
    assert.equal(again.source, "memory");
  } finally {
    setAttentionTuner(gpu, saved);
  }
});

Deno.test("attention planners reject a variant the adapter cannot run", async () => {
  const gpu = await getGpu();
  const qkv = createTensor(gpu, [1, 4, 3 * 8], "test.attn.v_qkv");
  const doc = createTensor(gpu, [1, 4], "test.attn.v_doc", "i32");
  const out = createTensor(gpu, [1, 4, 8], "test.attn.v_out");
  const lse = createTensor(gpu, [1, 1, 4], "test.attn.v_lse");
  const big = gpu.limits.maxComputeInvocationsPerWorkgroup;
  await assert.rejects(
    () =>
      planAttentionForward(gpu, out, lse, qkv, doc, 1, "forward", {
        variant: { rows: big, lanes: 2 },
      }),
    /Cannot plan attention variant r\d+_l2: \d+ invocations exceed the adapter's \d+ per workgroup/,
  );
  await assert.rejects(
    () =>
      planAttentionForward(gpu, out, lse, qkv, doc, 1, "forward", {
        variant: { rows: 8, lanes: 3 },
      }),
    /Cannot plan attention variant r8_l3: rows must be a positive integer, lanes 1, 2, 4 or 8/,
  );
  // A device without subgroups: subgroup variants are refused (and skipped by the tuner).
  const plain = { ...gpu, info: { ...gpu.info, features: [] } };
  await assert.rejects(
    () =>
      planAttentionForward(plain, out, lse, qkv, doc, 1, "forward", {
        variant: ATTENTION_CANDIDATES.r32_l4_sg,
      }),
    /Cannot plan attention variant r32_l4_sg: the device has no subgroups/,
  );
});

Deno.test("subgroup variants match their workgroup-memory form bit for bit at the same tile size", async (t) => {
  const gpu = await getGpu();
  // Both forms need the same tile size (32 rows here), which needs 32 KiB of workgroup memory.
  if (
    !gpu.info.features.includes("subgroups") ||
    gpu.limits.maxComputeWorkgroupStorageSize < 32768
  ) {
    await t.step({ name: "no subgroups or small workgroup memory", ignore: true, fn: () => {} });
    return;
  }
  const c = { B: 2, T: 45, H: 2, D: 20 };
  const { B, T, H, D } = c;
  const qkv = randomArray(B * T * 3 * H * D, 61, -2, 2);
  const dout = randomArray(B * T * H * D, 62);
  const { docB } = makeDocs(B, T, 63);
  // Variants small enough that both forms get the largest tile (32 rows; the tile size sets
  // where the forward's online softmax rescales, so it must match too).
  for (const v of [{ rows: 16, lanes: 4 }, { rows: 8, lanes: 8 }]) {
    const a = await runGpu(c, qkv, dout, docB, "backward", v);
    const b = await runGpu(c, qkv, dout, docB, "backward", { ...v, subgroups: true });
    for (const k of ["out", "lse", "dqkv"] as const) {
      const x = new Uint32Array(a[k].buffer, a[k].byteOffset, a[k].length);
      const y = new Uint32Array(b[k].buffer, b[k].byteOffset, b[k].length);
      assert.ok(x.every((u, i) => u === y[i]), `${JSON.stringify(v)}: ${k} differs`);
    }
  }
});

Deno.test("the texture variant matches the staged one-lane kernel bit for bit and keeps no workgroup tiles", async () => {
  const code = attentionWgsl({ d4: 5, wg: 32, bk: 32, lanes: 1, tex: true });
  assert.doesNotMatch(code, /var<workgroup>/);
  assert.match(code, /textureLoad\(tx_qkv/);
  assert.throws(() => attentionWgsl({ d4: 5, wg: 32, bk: 32, lanes: 2, tex: true }), /Invalid/);
  // D = 20: both forms get 32-row tiles (the tile size sets where the softmax rescales).
  const c = { B: 2, T: 45, H: 2, D: 20 };
  const { B, T, H, D } = c;
  const qkv = randomArray(B * T * 3 * H * D, 71, -2, 2);
  const dout = randomArray(B * T * H * D, 72);
  const { docF, docB } = makeDocs(B, T, 73);
  for (const [dir, doc] of [["forward", docF], ["backward", docB]] as const) {
    const a = await runGpu(c, qkv, dout, doc, dir, { rows: 32, lanes: 1 });
    const b = await runGpu(c, qkv, dout, doc, dir, { rows: 32, lanes: 1, tex: true });
    for (const k of ["out", "lse", "dqkv"] as const) {
      const x = new Uint32Array(a[k].buffer, a[k].byteOffset, a[k].length);
      const y = new Uint32Array(b[k].buffer, b[k].byteOffset, b[k].length);
      assert.ok(x.every((u, i) => u === y[i]), `${dir}: ${k} differs`);
    }
  }
});
