import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { planCopyRows, run } from "../../src/gpu/kernel.ts";
import { createTensor, readTensor } from "../../src/gpu/tensor.ts";
import { BST } from "../../src/models/bst.ts";
import { GPT } from "../../src/models/gpt.ts";
import { greedyDecode } from "../../src/inference/greedy.ts";
import { BstSampler, type Generation, SAMPLING_MODES } from "../../src/inference/bst_sampling.ts";
import { assertClose, rng } from "../_util.ts";

// Awkward sizes: D = 12 (3 vec4s), 2 layers, vocabulary 13 with EOS 12.
const BST_CFG = {
  vocabSize: 13,
  eosTokenId: 12,
  nLayer: 2,
  nHead: 3,
  nEmbd: 36,
  blockSize: 96,
  bias: false,
  contextLength: 0,
  pairMinimumGap: 1,
  pairMaximumGap: -1,
  pairSubsampleRate: 1,
  singleGapPredictionMode: "eos" as const,
};
const GPT_CFG = {
  vocabSize: 13,
  eosTokenId: 12,
  nLayer: 2,
  nHead: 3,
  nEmbd: 36,
  blockSize: 96,
  bias: true,
  mode: "next_token" as const,
  fimTokenId: -1,
};

/** rows × len tokens, EOS about one in six (and at the start of row 1). */
function tokens(rows: number, len: number, seed: number): Int32Array {
  const r = rng(seed);
  return new Int32Array(rows * len).map((_, i) =>
    (i === len && rows > 1) || r() < 0.17 ? 12 : Math.floor(r() * 12)
  );
}

/** The full encoder's states (rows·len, C) of one direction. */
async function fullStates(model: BST, seq: Int32Array, rows: number, len: number, f: boolean) {
  const enc = await model.encoders(rows, len);
  enc.setTokens(seq);
  await run(model.gpu, enc.forward);
  const all = await readTensor(model.gpu, f ? enc.outF : enc.outB);
  return all.subarray(0, rows * len * model.config.nEmbd);
}

// Forward: the rows grow at the back in chunks of these sizes (1, 3, 64 + 1, …); backward: at
// the front. Both are compared, after every chunk, with the full encode of the rows so far.
const CHUNKS = [5, 1, 3, 65, 1, 2, 17];

for (const direction of ["forward", "backward"] as const) {
  Deno.test(`BST.decoder("${direction}") gives the full encoder's states within 2e-5 after chunks ${CHUNKS}`, async () => {
    const gpu = await getGpu();
    const model = await BST.create(gpu, BST_CFG, { seed: 3 });
    const C = BST_CFG.nEmbd;
    const rows = 3;
    const total = CHUNKS.reduce((a, b) => a + b);
    const all = tokens(rows, total, 7);
    const dec = await model.decoder(direction, rows, total);
    dec.truncate(0);
    let len = 0;
    for (const count of CHUNKS) {
      // The new tokens of each row, in sequence order: forward the next `count` of the row,
      // backward the `count` before what the cache holds (rows are consumed from the end).
      const start = direction === "forward" ? len : total - len - count;
      const add = new Int32Array(rows * count);
      for (let r = 0; r < rows; r++) {
        add.set(all.subarray(r * total + start, r * total + start + count), r * count);
      }
      const step = await dec.extend(add, count);
      const W = step.width;
      const got = createTensor(gpu, [rows, C], "test.decode.got");
      await run(gpu, [
        ...step.ops,
        ...Array.from(
          { length: rows },
          (_, r) => planCopyRows(step.out, r * W + W - 1, got, r, 1, C),
        ),
      ]);
      len += count;
      // The full encode of the rows held so far.
      const from = direction === "forward" ? 0 : total - len;
      const seq = new Int32Array(rows * len);
      for (let r = 0; r < rows; r++) {
        seq.set(all.subarray(r * total + from, r * total + from + len), r * len);
      }
      const ref = await fullStates(model, seq, rows, len, direction === "forward");
      // The state of the token added last: forward the last of the row, backward the first.
      const at = direction === "forward" ? len - 1 : 0;
      const want = new Float32Array(rows * C);
      for (let r = 0; r < rows; r++) {
        want.set(ref.subarray((r * len + at) * C, (r * len + at + 1) * C), r * C);
      }
      assertClose(await readTensor(gpu, got), want, `${direction} len ${len}`, 2e-5, 2e-4);
    }
    assert.equal(dec.length, total);
    assert.deepEqual(
      [...dec.tokens(1)],
      direction === "forward"
        ? [...all.subarray(total, 2 * total)]
        : [...all.subarray(total, 2 * total)].reverse(),
    );
    assert.throws(() => dec.truncate(total + 1), /Cannot truncate/);
    await assert.rejects(() => dec.extend(new Int32Array(rows), 1), /Cannot add 1 tokens/);
  });
}

Deno.test("BST decoder after truncate() recomputes the dropped tokens like a fresh encode", async () => {
  const gpu = await getGpu();
  const model = await BST.create(gpu, BST_CFG, { seed: 5 });
  const C = BST_CFG.nEmbd;
  const dec = await model.decoder("forward", 1, 40);
  dec.truncate(0);
  const a = tokens(1, 30, 11);
  await run(gpu, (await dec.extend(a, 30)).ops);
  dec.truncate(9);
  const b = tokens(1, 20, 12);
  const step = await dec.extend(b, 20);
  const got = createTensor(gpu, [1, C], "test.truncate.got");
  await run(gpu, [...step.ops, planCopyRows(step.out, step.width - 1, got, 0, 1, C)]);
  const seq = new Int32Array([...a.subarray(0, 9), ...b]);
  const ref = await fullStates(model, seq, 1, 29, true);
  assertClose(await readTensor(gpu, got), ref.subarray(28 * C, 29 * C), "truncated", 2e-5, 2e-4);
});

for (const kind of ["BST", "GPT"] as const) {
  Deno.test(`greedyDecode() of a ${kind} with the K/V cache equals re-encoding at every step`, async () => {
    const gpu = await getGpu();
    const model = kind === "BST"
      ? await BST.create(gpu, BST_CFG, { seed: 9 })
      : await GPT.create(gpu, GPT_CFG, { seed: 9 });
    const rows = 3;
    const prefixLen = 7;
    const prefixes = tokens(rows, prefixLen, 21);
    const cached = await greedyDecode(model, prefixes, rows, prefixLen, 40);
    const full = await greedyDecode(model, prefixes, rows, prefixLen, 40, { reencode: true });
    assert.deepEqual([...cached], [...full]);
  });
}

Deno.test("BstSampler: the six modes with the K/V caches give the re-encoding records", async () => {
  const gpu = await getGpu();
  const model = await BST.create(gpu, BST_CFG, { seed: 13 });
  const cached = new BstSampler(model);
  const full = new BstSampler(model, { reencode: true });
  const prompt = [12, 3, 5, 1, 12, 7];
  const goal = [4, 4, 9, 2, 12];
  const o = { rolloutLen: 11, rolloutCount: 4, topK: 3 };
  for (const mode of SAMPLING_MODES) {
    const a = await cached.sample(mode, prompt, goal, o);
    const b = await full.sample(mode, prompt, goal, o);
    const texts = (g: Generation) => [g.generated, g.greedy, ...g.top_n.map((t) => t[0])];
    const scores = (g: Generation) => [g.score, g.greedy_score, ...g.top_n.map((t) => t[1])];
    assert.deepEqual(texts(a), texts(b), mode);
    assert.ok(a.generated.length > 0, mode);
    const sa = scores(a);
    const sb = scores(b);
    assert.equal(sa.length, sb.length);
    sa.forEach((x, i) => {
      assert.ok(
        x === sb[i] || Math.abs((x ?? NaN) - (sb[i] ?? NaN)) < 1e-5,
        `${mode} score ${i}: ${x} vs ${sb[i]}`,
      );
    });
  }
});
