import assert from "node:assert/strict";
import {
  buildPairBatch,
  type PairConfig,
  PairSampler,
  pairTargets,
  validRowPairs,
} from "../../src/models/bst_pairs.ts";
import { parseSafetensors, toInt32 } from "../../src/io/safetensors.ts";
import { rng } from "../_util.ts";

const FIXTURE = new URL("../fixtures/bst_tiny.safetensors", import.meta.url);
const E = 9; // EOS in the synthetic tests

function config(over: Partial<PairConfig> = {}): PairConfig {
  return {
    eosTokenId: E,
    blockSize: 8,
    contextLength: 0,
    pairMinimumGap: 1,
    pairMaximumGap: -1,
    pairSubsampleRate: 1,
    singleGapPredictionMode: "eos",
    ...over,
  };
}

/**
 * The reference's `_create_pair_indices` + `_create_valid_pairs` (no subsampling), literally:
 * cartesian product of (start, offset), filter end < T, then doc_f[t_f] == roll(doc_f)[t_b].
 */
function referencePairs(row: number[], cfg: PairConfig): [number, number][] {
  const T = row.length;
  const maxGap = cfg.pairMaximumGap <= 0 ? T : cfg.pairMaximumGap;
  const all: [number, number][] = [];
  for (let s = cfg.contextLength; s < T; s++) {
    for (let o = cfg.pairMinimumGap; o < maxGap; o++) all.push([s, s + o]);
  }
  const inRange = all.filter(([, b]) => b < T);
  let c = 0;
  const docF = row.map((t) => (c += t === cfg.eosTokenId ? 1 : 0));
  const docB = docF.map((_, i) => (i === 0 ? 0 : docF[i - 1]));
  return inRange.filter(([f, b]) => docF[f] === docB[b]);
}

function pairsOf(row: number[], cfg: PairConfig): [number, number][] {
  const { tF, tB } = validRowPairs(new Int32Array(row), cfg);
  return [...tF].map((f, i) => [f, tB[i]]);
}

/** The reference's `compute_loss` arithmetic given per-pair CE values of each row. */
function referenceChunkedLoss(
  ceNext: number[][],
  cePrev: number[][],
  pairBatchSize: number,
  lossDiv: number,
): number {
  const B = ceNext.length;
  let batchLoss = 0;
  for (let b = 0; b < B; b++) {
    const n = ceNext[b].length;
    const steps = Math.ceil(n / pairBatchSize);
    const div = lossDiv * B * steps;
    for (let i = 0; i < steps; i++) {
      const start = i * pairBatchSize;
      const end = Math.min((i + 1) * pairBatchSize, n);
      const mean = (a: number[]) => a.slice(start, end).reduce((x, y) => x + y, 0) / (end - start);
      batchLoss += (mean(ceNext[b]) + mean(cePrev[b])) / 2 / div;
    }
  }
  return batchLoss;
}

Deno.test("validRowPairs() matches the reference's cartesian product and doc filter on random rows", () => {
  const r = rng(5);
  for (let trial = 0; trial < 300; trial++) {
    const T = 1 + Math.floor(r() * 20);
    const row = Array.from({ length: T }, () => (r() < 0.25 ? E : Math.floor(r() * 5)));
    const minGap = 1 + Math.floor(r() * 3);
    const maxGap = r() < 0.4 ? -1 : minGap + Math.floor(r() * 25); // often > T
    if (maxGap <= 0 && T < minGap) continue; // the reference asserts there
    const cfg = config({
      contextLength: Math.floor(r() * 5),
      pairMinimumGap: minGap,
      pairMaximumGap: maxGap,
    });
    assert.deepEqual(pairsOf(row, cfg), referencePairs(row, cfg), `row ${row} ${maxGap}`);
  }
});

Deno.test("validRowPairs() keeps pairs with an EOS at t_f or t_b, drops EOS strictly inside", () => {
  // a E b: (0,1) ends on EOS, (1,2) starts on EOS, (0,2) crosses it
  assert.deepEqual(pairsOf([1, E, 2], config()), [[0, 1], [1, 2]]);
  // row starting with EOS: nothing is crossed
  assert.deepEqual(pairsOf([E, 1, 2], config()), [[0, 1], [0, 2], [1, 2]]);
  // row ending with EOS: every pair ending on it is valid
  assert.deepEqual(pairsOf([1, 2, E], config()), [[0, 1], [0, 2], [1, 2]]);
});

Deno.test("validRowPairs() gap limits: maximum exclusive, ≤ 0 or > T means T, minimum ≥ T gives none", () => {
  const row = [1, 2, 3, 4, 5];
  assert.deepEqual(pairsOf(row, config({ pairMinimumGap: 2, pairMaximumGap: 3 })), [
    [0, 2],
    [1, 3],
    [2, 4],
  ]);
  const all = pairsOf(row, config());
  assert.equal(all.length, 10);
  assert.deepEqual(pairsOf(row, config({ pairMaximumGap: 0 })), all);
  assert.deepEqual(pairsOf(row, config({ pairMaximumGap: 100 })), all);
  assert.deepEqual(pairsOf(row, config({ pairMinimumGap: 5 })), []);
  // order: t_f ascending, then gap ascending
  assert.deepEqual(all.slice(0, 5), [[0, 1], [0, 2], [0, 3], [0, 4], [1, 2]]);
});

Deno.test("validRowPairs() gives no pair when context_length ≥ T − 1 or T = 1", () => {
  assert.deepEqual(pairsOf([1, 2, 3], config({ contextLength: 2 })), []);
  assert.deepEqual(pairsOf([1, 2, 3], config({ contextLength: 7 })), []);
  assert.deepEqual(pairsOf([1], config()), []);
  assert.deepEqual(pairsOf([1, 2, 3], config({ contextLength: 1 })), [[1, 2]]);
});

Deno.test("validRowPairs() rejects configs the reference cannot run", () => {
  assert.throws(() => pairsOf([1, 2], config({ pairMinimumGap: 0 })), /bst_pair_minimum_gap/);
  assert.throws(() => pairsOf([1, 2], config({ contextLength: -1 })), /context_length/);
  assert.throws(
    () => pairsOf([1, 2, 3], config({ pairMinimumGap: 3, pairMaximumGap: 2 })),
    /bst_pair_maximum_gap 2 .* smaller than bst_pair_minimum_gap 3/,
  );
  // max gap ≤ 0 resolves to T = 2 < min gap 3: the reference's assert
  assert.throws(() => pairsOf([1, 2], config({ pairMinimumGap: 3 })), /resolved for rows of 2/);
  assert.throws(() => new PairSampler(config({ pairSubsampleRate: 1.5 }), 0), /subsample_rate/);
  assert.throws(
    () => new PairSampler(config({ singleGapPredictionMode: "x" as "eos" }), 0),
    /single_gap_prediction_mode/,
  );
});

Deno.test("pairTargets() next = row[t_f+1], prev = row[t_b−1]; eos mode replaces gap-1 targets", () => {
  const row = new Int32Array([1, 2, E, 3, 4]);
  const pairs = validRowPairs(row, config());
  // pairs: (0,1) (0,2) (1,2) (2,3) (2,4) (3,4)
  assert.deepEqual([...pairs.tF], [0, 0, 1, 2, 2, 3]);
  assert.deepEqual([...pairs.tB], [1, 2, 2, 3, 4, 4]);
  const plain = pairTargets(row, pairs, config({ singleGapPredictionMode: "next_token" }));
  assert.deepEqual([...plain.next], [2, 2, E, 3, 3, 4]);
  assert.deepEqual([...plain.prev], [1, 2, 2, E, 3, 3]);
  const eos = pairTargets(row, pairs, config());
  assert.deepEqual([...eos.next], [E, 2, E, E, 3, E]);
  assert.deepEqual([...eos.prev], [E, 2, E, E, 3, E]);
});

Deno.test("buildPairBatch() weights reproduce the reference's chunk-mean, row-mean loss", () => {
  const r = rng(9);
  for (let trial = 0; trial < 40; trial++) {
    const B = 1 + Math.floor(r() * 4);
    const T = 2 + Math.floor(r() * 14);
    const tokens = Int32Array.from({ length: B * T }, () => (r() < 0.2 ? E : Math.floor(r() * 5)));
    if (trial % 5 === 0) tokens.subarray(0, T).fill(E); // a row of EOS only: gap-1 pairs only
    const pairBatchSize = 1 + Math.floor(r() * 9);
    const accum = 1 + Math.floor(r() * 3);
    const cfg = config({ blockSize: T, contextLength: Math.floor(r() * 3) });
    const batch = buildPairBatch(tokens, B, T, new PairSampler(cfg, 1), {
      pairBatchSize,
      gradientAccumSteps: accum,
    });
    // random per-pair CE values; the weighted sum must equal the reference's loop
    const ceN = Array.from({ length: batch.count }, () => 5 * r());
    const ceP = Array.from({ length: batch.count }, () => 5 * r());
    let weighted = 0;
    for (let p = 0; p < batch.count; p++) weighted += batch.weight[p] * (ceN[p] + ceP[p]);
    const perRow = (a: number[]) =>
      Array.from({ length: B }, (_, b) => a.slice(batch.rowOffsets[b], batch.rowOffsets[b + 1]));
    const ref = referenceChunkedLoss(perRow(ceN), perRow(ceP), pairBatchSize, accum);
    assert.ok(Math.abs(weighted - ref) <= 1e-6 * Math.max(1, ref), `${weighted} vs ${ref}`);
    // indices and targets agree with the per-row functions
    for (let b = 0; b < B; b++) {
      const row = tokens.subarray(b * T, (b + 1) * T);
      const pairs = validRowPairs(row, cfg);
      const t = pairTargets(row, pairs, cfg);
      const s = batch.rowOffsets[b];
      const e = batch.rowOffsets[b + 1];
      assert.deepEqual([...batch.fIndex.subarray(s, e)], [...pairs.tF].map((f) => b * T + f));
      assert.deepEqual([...batch.bIndex.subarray(s, e)], [...pairs.tB].map((x) => b * T + x));
      assert.deepEqual([...batch.nextTarget.subarray(s, e)], [...t.next]);
      assert.deepEqual([...batch.prevTarget.subarray(s, e)], [...t.prev]);
    }
  }
});

Deno.test("buildPairBatch() chunking: a short last chunk weighs more; an empty row still counts in B", () => {
  // row 0: 5 tokens, no EOS → 10 pairs; chunks of 4: 4, 4, 2 → weights 1/(2·4·3·2), 1/(2·2·3·2)
  // row 1: all EOS → only the 4 gap-1 pairs, one chunk → weight 1/(2·4·1·2)
  const T = 5;
  const tokens = new Int32Array([1, 2, 3, 4, 5, E, E, E, E, E]);
  const b = buildPairBatch(tokens, 2, T, new PairSampler(config({ blockSize: T }), 0), {
    pairBatchSize: 4,
  });
  assert.deepEqual([...b.rowOffsets], [0, 10, 14]);
  const w = [...b.weight];
  assert.deepEqual(w.slice(0, 8), Array(8).fill(Math.fround(1 / 48)));
  assert.deepEqual(w.slice(8, 10), Array(2).fill(Math.fround(1 / 24)));
  assert.deepEqual(w.slice(10), Array(4).fill(Math.fround(1 / 16)));
  // each non-empty row's weights sum to 1/(2B): Σ w·(1 + 1) is that row's share of the mean
  const sum = w.reduce((x, y) => x + y, 0);
  assert.ok(Math.abs(sum - 2 / 4) < 1e-7);

  // a row with no valid pair (context_length ≥ T − 1 for every row here) adds nothing
  const none = buildPairBatch(tokens, 2, T, new PairSampler(config({ contextLength: 4 }), 0), {
    pairBatchSize: 4,
  });
  assert.equal(none.count, 0);
  assert.deepEqual([...none.rowOffsets], [0, 0, 0]);

  const blocked = buildPairBatch(
    new Int32Array([1, 2, 3, 4, E, 6]),
    2,
    3,
    new PairSampler(config({ blockSize: 3, pairMinimumGap: 2 }), 0),
    { pairBatchSize: 8 },
  );
  // row 1 (4 E 6): its only candidate (0,2) crosses the EOS → no pair, still counted in B
  assert.deepEqual([...blocked.rowOffsets], [0, 1, 1]);
  assert.deepEqual([...blocked.weight], [0.25]);
});

Deno.test("buildPairBatch() rejects bad options and shapes", () => {
  const s = new PairSampler(config(), 0);
  const t = new Int32Array(6);
  assert.throws(() => buildPairBatch(t, 2, 3, s, { pairBatchSize: 0 }), /pair_batch_size/);
  assert.throws(
    () => buildPairBatch(t, 2, 3, s, { pairBatchSize: 2, gradientAccumSteps: 0 }),
    /gradient_accum_steps/,
  );
  assert.throws(() => buildPairBatch(t, 2, 4, s, { pairBatchSize: 2 }), /expected 2 × 4 = 8/);
});

Deno.test("PairSampler rate 1 keeps every valid pair, draws nothing, and still averages", () => {
  const s = new PairSampler(config(), 3);
  const rng0 = s.getState().rng;
  const row = new Int32Array([1, 2, E, 3, 4, 5, 6, 7]);
  assert.deepEqual(s.sampleRow(row), validRowPairs(row, config()));
  assert.deepEqual(s.getState().rng, rng0);
  assert.equal(s.subsampleTarget(), null);
  const n = validRowPairs(row, config()).tF.length;
  assert.equal(s.avgValidPairs, n);
  assert.equal(s.avgSampledPairs, n);
});

Deno.test("PairSampler rate 0 keeps exactly the pairs touching an EOS", () => {
  const cfg = config({ pairSubsampleRate: 0 });
  const s = new PairSampler(cfg, 3);
  const row = new Int32Array([1, 2, E, 3, 4, 5, 6, E]);
  const got = s.sampleRow(row);
  const valid = validRowPairs(row, cfg);
  const expect: [number, number][] = [];
  for (let p = 0; p < valid.tF.length; p++) {
    if (row[valid.tF[p]] === E || row[valid.tB[p]] === E) expect.push([valid.tF[p], valid.tB[p]]);
  }
  assert.deepEqual([...got.tF].map((f, i) => [f, got.tB[i]]), expect);
  assert.ok(expect.length > 0 && expect.length < valid.tF.length);
  // no EOS: nothing at all
  assert.equal(s.sampleRow(new Int32Array([1, 2, 3, 4, 5, 6, 7, 8])).tF.length, 0);
  assert.equal(s.avgSampledPairs, 0.9 * expect.length);
});

Deno.test("PairSampler subsampling hits rate × running average in expectation, EOS pairs always kept", () => {
  const T = 32;
  const cfg = config({ blockSize: T, pairSubsampleRate: 0.3 });
  const s = new PairSampler(cfg, 1337);
  // before any row the target is trunc(T(T−1)/2 · rate)
  assert.equal(s.subsampleTarget(), Math.trunc(496 * 0.3));
  const r = rng(2);
  let kept = 0;
  let expected = 0;
  const rows = 400;
  for (let i = 0; i < rows; i++) {
    const row = Int32Array.from({ length: T }, () => (r() < 0.05 ? E : 1 + Math.floor(r() * 7)));
    const target = s.subsampleTarget()!;
    const valid = validRowPairs(row, cfg);
    const got = s.sampleRow(row);
    let nEos = 0;
    for (let p = 0; p < valid.tF.length; p++) {
      if (row[valid.tF[p]] === E || row[valid.tB[p]] === E) nEos++;
    }
    const prob = Math.min(1, Math.max(0, (target - nEos) / (valid.tF.length - nEos)));
    expected += nEos + prob * (valid.tF.length - nEos);
    kept += got.tF.length;
    // every EOS pair is in the sample
    const sampled = new Set([...got.tF].map((f, k) => `${f},${got.tB[k]}`));
    for (let p = 0; p < valid.tF.length; p++) {
      if (row[valid.tF[p]] === E || row[valid.tB[p]] === E) {
        assert.ok(sampled.has(`${valid.tF[p]},${valid.tB[p]}`));
      }
    }
  }
  // binomial noise: the sd of the total is well under 1% of it here
  assert.ok(Math.abs(kept - expected) < 0.02 * expected, `${kept} vs ${expected}`);
  assert.ok(Math.abs(s.avgSampledPairs! - 0.3 * s.avgValidPairs!) < 0.1 * s.avgValidPairs!);
});

Deno.test("PairSampler running average uses α = clamp(1/n, 0.001, 0.1), first row sets it", () => {
  const s = new PairSampler(config({ blockSize: 6 }), 0);
  const rows = [
    [1, 2, 3, 4, 5, 6], // 15 pairs
    [1, E, 3, 4, 5, 6], // fewer
    [E, E, E, E, E, E], // 5
  ];
  let avg: number | null = null;
  for (let n = 1; n <= 1200; n++) {
    const row = new Int32Array(rows[n % 3]);
    const v = validRowPairs(row, s.cfg).tF.length;
    s.sampleRow(row);
    const alpha = Math.min(Math.max(1 / n, 0.001), 0.1);
    avg = avg === null ? v : (1 - alpha) * avg + alpha * v;
    assert.equal(s.avgValidPairs, avg);
  }
  assert.equal(s.getState().nItersAveraged, 1200);
});

Deno.test("PairSampler is deterministic per seed and resumes exactly from a saved state", () => {
  const cfg = config({ blockSize: 16, pairSubsampleRate: 0.5 });
  const r = rng(4);
  const rows = Array.from(
    { length: 20 },
    () => Int32Array.from({ length: 16 }, () => (r() < 0.1 ? E : 1 + Math.floor(r() * 5))),
  );
  const run = (s: PairSampler, rs: Int32Array[]) =>
    rs.map((row) => {
      const p = s.sampleRow(row);
      return [...p.tF, -1, ...p.tB];
    });
  const a = new PairSampler(cfg, 42);
  const b = new PairSampler(cfg, 42);
  const c = new PairSampler(cfg, 43);
  assert.deepEqual(run(a, rows), run(b, rows));
  assert.notDeepEqual(run(new PairSampler(cfg, 42), rows), run(c, rows));

  const full = new PairSampler(cfg, 7);
  const first = run(full, rows.slice(0, 10));
  const saved = JSON.parse(JSON.stringify(full.getState()));
  const rest = run(full, rows.slice(10));
  const resumed = new PairSampler(cfg, 999);
  resumed.setState(saved);
  assert.deepEqual(run(resumed, rows.slice(10)), rest);
  assert.equal(first.length, 10);
  assert.deepEqual(resumed.getState(), full.getState());
});

Deno.test("PairSampler.setState() rejects malformed states", () => {
  const s = new PairSampler(config(), 0);
  const good = s.getState();
  assert.throws(() => s.setState({ ...good, nItersAveraged: -1 }), /malformed/);
  assert.throws(() => s.setState({ ...good, avgValidPairs: 3 }), /malformed/); // n = 0
  assert.throws(() => s.setState({ ...good, rng: [0, 0, 0, 0] }), /all zeros/);
  assert.throws(() => s.setState({ ...good, rng: [1, 2, 3] as never }), /4 unsigned/);
});

Deno.test("buildPairBatch() on the bst_tiny fixture batch (context 0, gaps 1..T, eos mode)", async () => {
  const { tensors, metadata } = parseSafetensors(await Deno.readFile(FIXTURE), "bst_tiny");
  const tokensT = tensors.get("input.tokens")!;
  assert.deepEqual(tokensT.shape, [3, 16]);
  const tokens = toInt32(tokensT, "input.tokens");
  const ref = JSON.parse(metadata.config);
  const cfg: PairConfig = {
    eosTokenId: ref.eos_token_id,
    blockSize: ref.block_size,
    contextLength: ref.context_length,
    pairMinimumGap: ref.bst_pair_minimum_gap,
    pairMaximumGap: ref.bst_pair_maximum_gap,
    pairSubsampleRate: 1,
    singleGapPredictionMode: ref.bst_single_gap_prediction_mode,
  };
  assert.equal(cfg.singleGapPredictionMode, "eos");
  const [B, T] = [3, 16];

  // pair_batch_size ≥ pairs (the fixture's `loss`): one chunk per row
  const one = buildPairBatch(tokens, B, T, new PairSampler(cfg, 0), { pairBatchSize: 1 << 20 });
  // counts from a NumPy port of the reference's _create_valid_pairs: row 0 has EOS at 5 and
  // 11; row 1 starts with EOS (crosses nothing); row 2 has no EOS: all 16·15/2 pairs
  assert.deepEqual([...one.rowOffsets], [0, 46, 166, 286]);
  for (let b = 0; b < B; b++) {
    const row = [...tokens.subarray(b * T, (b + 1) * T)];
    const got = pairsOf(row, cfg);
    assert.deepEqual(got, referencePairs(row, cfg));
  }
  // weights: 1/(2·n_row·B), Σ = 1/2 (all rows have pairs)
  assert.equal(one.weight[0], Math.fround(1 / (2 * 46 * 3)));
  assert.equal(one.weight[100], Math.fround(1 / (2 * 120 * 3)));
  assert.ok(Math.abs(one.weight.reduce((x, y) => x + y, 0) - 0.5) < 1e-6);
  // gap-1 pairs predict EOS (22) for both heads
  for (let p = 0; p < one.count; p++) {
    if (one.bIndex[p] - one.fIndex[p] === 1) {
      assert.equal(one.nextTarget[p], 22);
      assert.equal(one.prevTarget[p], 22);
    } else {
      assert.equal(one.nextTarget[p], tokens[one.fIndex[p] + 1]);
      assert.equal(one.prevTarget[p], tokens[one.bIndex[p] - 1]);
    }
  }
  // the fixture's text-head probe pairs on row 0 (EOS at 5 and 11): (0,15) crosses an EOS and
  // (4,4) has gap 0, so only three of the five are training pairs
  const probe = toInt32(tensors.get("input.pairs")!, "input.pairs");
  const valid0 = new Set(pairsOf([...tokens.subarray(0, T)], cfg).map(([f, b]) => `${f},${b}`));
  const probeKeys = Array.from(
    { length: probe.length / 2 },
    (_, i) => `${probe[2 * i]},${probe[2 * i + 1]}`,
  );
  assert.deepEqual(probeKeys, ["0,1", "0,15", "2,5", "13,15", "4,4"]);
  assert.deepEqual(probeKeys.map((k) => valid0.has(k)), [true, false, true, true, false]);

  // pair_batch_size 7 (the fixture's `loss_pair_batch_size_7`): 46 → 6×7 + 4, 120 → 17×7 + 1
  const seven = buildPairBatch(tokens, B, T, new PairSampler(cfg, 0), { pairBatchSize: 7 });
  assert.equal(seven.weight[0], Math.fround(1 / (2 * 7 * 7 * 3)));
  assert.equal(seven.weight[45], Math.fround(1 / (2 * 4 * 7 * 3)));
  assert.equal(seven.weight[46], Math.fround(1 / (2 * 7 * 18 * 3)));
  assert.equal(seven.weight[165], Math.fround(1 / (2 * 1 * 18 * 3)));
  assert.ok(Math.abs(seven.weight.reduce((x, y) => x + y, 0) - 0.5) < 1e-6);
});
