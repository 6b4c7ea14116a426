/**
 * `deno task bench`: throughput figures as ONE JSON object on stdout (progress and tables on
 * stderr).
 *
 * - `matmul`: GFLOP/s of the three Linear patterns (forward `x·Wᵀ`, input gradient `dy·W`,
 *   weight gradient `dyᵀ·x`) at (M, K, N) = (512, 512, 512), (2048, 768, 2304), (2048, 2048, 768)
 *   (only the first on a CPU adapter, to keep the default run short); one entry per shape and
 *   precision: `"precision": "f32"`, and `"f16"` (the 16-mixed kernels: f16 inputs, f32
 *   totals) where the adapter has `shader-f16`;
 * - `attention`: forward + backward time of the document-masked attention at
 *   B=8, H=8, T=69, D=96, both directions;
 * - `bst`: a full BST training step (see `_bench_bst.ts`) at the small shape, and at the paper
 *   shape on hardware adapters (or with `--paper`);
 * - `infer`: ms per generated token of a greedy BST rollout at block size 256 with the K/V cache
 *   and re-encoding every step, and the speed-up (see `_bench_infer.ts`);
 * - `--profile SHAPE [--batch N]`: only the per-kernel table of one training step of SHAPE.
 * - `--precision 16-mixed`: the BST steps and `--profile` with f16 Linear matmuls and loss
 *   scaling (`trainer.precision=16-mixed`; default 32-true).
 *
 * Timing never waits per dispatch (each wait from Deno costs >= 10 ms): with the adapter's
 * `timestamp-query` the GPU timestamps the work (`src/gpu/timing.ts`); without it the work is
 * repeated inside one submission. Each figure is the median of `--repeats` samples after one
 * warm-up run.
 *
 * - `tokenizer` (only with `--tokenizer FILE`, which runs nothing else and needs no adapter):
 *   MB/s of the TinyStories tokenizer on FILE's stories (see `_bench_tokenizer.ts`).
 *
 * The JSON names the kernel variants that ran: `matmul_variants` and `attention_variants` (per
 * key, the variant and whether it came from the checked-in table, the tuning cache, or was tuned
 * now). The inference figure plans matmuls for every row count of its rollouts, so it counts
 * its own new shapes per variant instead (`infer.matmul_variants`).
 *
 * Permissions: read (for `--tokenizer FILE`); write `out/tune` (the tuning caches when
 * `BST_CACHE_DIR` points there); env (`XDG_RUNTIME_DIR`, `DENO_WEBGPU_BACKEND`, `BST_CACHE_DIR`).
 *
 * @module
 */

import { getGpu, type Gpu } from "../src/gpu/device.ts";
import {
  attentionFlops,
  attentionTuner,
  planAttentionBackward,
  planAttentionForward,
  setAttentionTuner,
} from "../src/gpu/attention.ts";
import {
  matmulFlops,
  type MatmulPrecision,
  matmulTuner,
  planLinearBackwardInput,
  planLinearBackwardWeight,
  planLinearForward,
  setMatmulTuner,
} from "../src/gpu/matmul.ts";
import { defaultCacheDir, MatmulTuner } from "../src/gpu/matmul_tune.ts";
import { AttentionTuner } from "../src/gpu/attention_tune.ts";
import { uploadTensor } from "../src/gpu/tensor.ts";
import type { Op } from "../src/gpu/kernel.ts";
import { timeOps, type TimingMethod } from "../src/gpu/timing.ts";
import { benchBstSteps, BST_BENCH_SHAPES, profileBstStep } from "./_bench_bst.ts";
import { benchInfer } from "./_bench_infer.ts";
import type { ModelPrecision } from "../src/models/flat_params.ts";
import { benchTokenizer } from "./_bench_tokenizer.ts";
import { parseCli } from "./_cli.ts";

const { values } = parseCli({
  usage:
    "deno task bench [--repeats N] [--only matmul|attention|bst|infer] [--paper | --skip-paper]\n" +
    "       deno task bench --profile small|paper|tinystories_cpu [--batch N] [--retune]\n" +
    "                       [--precision 32-true|16-mixed]\n" +
    "       deno task bench --tokenizer FILE",
  about: `Prints one JSON object: the adapter, matmul GFLOP/s for the three Linear patterns at three
shapes (only 512^3 on a CPU adapter), in f32 and, with shader-f16, in f16 (the 16-mixed
kernels), attention forward+backward time at B=8 H=8 T=69 D=96, BST training steps (both
encoders, text head, AdamW; in --precision): ms/step, tokens/s, achieved GFLOP/s, and a greedy
BST rollout at block size 256 with the K/V cache and re-encoding every step.
The paper's G(5,5) step is included on hardware adapters; --paper adds it on a CPU adapter
(minutes), --skip-paper leaves it out. Kernels are timed with GPU timestamps where the adapter
has timestamp-query, else by repeating the work inside one submission.`,
  flags: {
    repeats: { type: "integer", min: 1, default: 5, help: "timed samples per figure (default 5)" },
    only: {
      type: "string",
      arg: "PART",
      choices: ["matmul", "attention", "bst", "infer"],
      help: "one part only: matmul, attention, bst or infer",
    },
    paper: { type: "boolean", help: "include the paper-sized BST step on a CPU adapter" },
    "skip-paper": { type: "boolean", help: "leave out the paper-sized BST step" },
    profile: {
      type: "string",
      arg: "SHAPE",
      choices: ["small", "paper", "tinystories_cpu"],
      help: "only the per-kernel table of one training step of SHAPE",
    },
    batch: { type: "integer", min: 1, help: "rows per step of --profile" },
    retune: {
      type: "boolean",
      help: "time every matmul and attention candidate anew (ignore the tables and the caches; " +
        "rewrite the caches)",
    },
    precision: {
      type: "string",
      arg: "P",
      choices: ["32-true", "16-mixed"],
      default: "32-true",
      help: "precision of the BST steps and --profile (16-mixed needs shader-f16)",
    },
    tokenizer: {
      type: "string",
      arg: "FILE",
      file: true,
      help: "only the tokenizer's MB/s on FILE's stories",
    },
  },
  notes: `--profile SHAPE times one training step of SHAPE (small: L2 C128 T33; paper: L6 C768 T69;
tinystories_cpu: config/tinystories_cpu.yaml's L2 C64 T64, vocabulary 1000, 5% of the pairs)
kernel by kernel and prints the table (ms, GFLOP/s, share) on stderr and in the JSON. --batch
sets its rows per step (default 64 for small; 256 for paper, 16 on a CPU adapter). The JSON also
lists the matmul variant used per shape (matmul_variants) and the attention variant per pass
(attention_variants: rows per workgroup and lanes per row, e.g. r64_l4), each from the
checked-in table or tuned at first use on adapters it does not list; the inference figure's
shapes (every row count of its rollouts) are counted per variant in infer.matmul_variants.
--tokenizer FILE runs only the tokenizer figure (no adapter needed): the TinyStories tokenizer
encodes FILE's stories (separated by <|endoftext|> lines) one at a time; prints MB/s of the first
pass and the median of --repeats passes.
Progress goes to stderr.`,
});
const repeats = values.repeats;
if (values.batch !== undefined && values.profile === undefined) {
  usageError("--batch needs --profile");
}
const profileShape = values.profile === undefined
  ? undefined
  : BST_BENCH_SHAPES.find((s) => s.name === values.profile);
const batch = values.batch;

if (values.tokenizer !== undefined) {
  const path = values.tokenizer;
  const result = await benchTokenizer(path, repeats).catch((e) => {
    console.error(`error: Cannot benchmark the tokenizer on "${path}": ${(e as Error).message}`);
    Deno.exit(2);
  });
  console.log(JSON.stringify({ deno: Deno.version.deno, repeats, tokenizer: result }));
  Deno.exit(0);
}

function usageError(message: string): never {
  console.error(`error: ${message} (see --help)`);
  Deno.exit(2);
}

/** Median ms of one run of `ops` and how it was timed. */
function time(gpu: Gpu, ops: Op[]): Promise<{ ms: number; method: TimingMethod }> {
  return timeOps(gpu, ops, { samples: repeats });
}

function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 0.2;
  }
  return out;
}

const round = (x: number, d = 2) => Number(x.toFixed(d));

async function benchMatmul(gpu: Gpu) {
  // A CPU adapter does about 1 GFLOP/s: only the small shape there, to keep the run short.
  const all: [number, number, number][] = [[512, 512, 512], [2048, 768, 2304], [2048, 2048, 768]];
  const shapes = gpu.info.isFallbackAdapter ? all.slice(0, 1) : all;
  const precisions: MatmulPrecision[] = gpu.info.features.includes("shader-f16")
    ? ["f32", "f16"]
    : ["f32"];
  const out = [];
  for (const [M, K, N] of shapes) {
    const x = uploadTensor(gpu, seeded(M * K, 1), [M, K], "bench.x");
    const w = uploadTensor(gpu, seeded(N * K, 2), [N, K], "bench.w");
    const y = uploadTensor(gpu, new Float32Array(M * N), [M, N], "bench.y");
    const dy = uploadTensor(gpu, seeded(M * N, 3), [M, N], "bench.dy");
    const dx = uploadTensor(gpu, new Float32Array(M * K), [M, K], "bench.dx");
    const dw = uploadTensor(gpu, new Float32Array(N * K), [N, K], "bench.dw");
    const flops = matmulFlops(M, K, N);
    for (const precision of precisions) {
      console.error(`bench: matmul ${M}x${K}x${N} ${precision}`);
      const fwd = await time(gpu, [await planLinearForward(gpu, { out: y, x, w, precision })]);
      const bIn = await time(gpu, [await planLinearBackwardInput(gpu, { dx, dy, w, precision })]);
      const wOps = await planLinearBackwardWeight(gpu, { dw, dy, x, precision });
      const bW = await time(gpu, Array.isArray(wOps) ? wOps : [wOps]);
      out.push({
        M,
        K,
        N,
        precision,
        forward_gflops: round(flops / fwd.ms / 1e6),
        backward_input_gflops: round(flops / bIn.ms / 1e6),
        backward_weight_gflops: round(flops / bW.ms / 1e6),
        forward_ms: round(fwd.ms, 3),
        backward_input_ms: round(bIn.ms, 3),
        backward_weight_ms: round(bW.ms, 3),
      });
    }
    for (const t of [x, w, y, dy, dx, dw]) t.buffer.destroy();
  }
  return out;
}

async function benchAttention(gpu: Gpu) {
  const B = 8, H = 8, T = 69, D = 96;
  const C = H * D;
  console.error(`bench: attention B=${B} H=${H} T=${T} D=${D}`);
  const qkv = uploadTensor(gpu, seeded(B * T * 3 * C, 4), [B, T, 3 * C], "bench.qkv");
  const out = uploadTensor(gpu, new Float32Array(B * T * C), [B, T, C], "bench.att");
  const dout = uploadTensor(gpu, seeded(B * T * C, 5), [B, T, C], "bench.datt");
  const dqkv = uploadTensor(gpu, new Float32Array(B * T * 3 * C), [B, T, 3 * C], "bench.dqkv");
  const lse = uploadTensor(gpu, new Float32Array(B * H * T), [B, H, T], "bench.lse");
  // Three documents per row so the mask is exercised.
  const doc = new Int32Array(B * T).map((_, i) => Math.floor((i % T) / 23));
  const docT = uploadTensor(gpu, doc, [B, T], "bench.doc");
  const result: Record<string, number> = {};
  const flops = attentionFlops(B, H, T, D);
  for (const direction of ["forward", "backward"] as const) {
    const f = await planAttentionForward(gpu, out, lse, qkv, docT, H, direction);
    const b = await planAttentionBackward(gpu, dqkv, dout, qkv, out, lse, docT, H, direction);
    const fwd = await time(gpu, f);
    const all = await time(gpu, [...f, ...b]);
    const key = direction === "forward" ? "causal" : "anticausal";
    result[`${key}_forward_ms`] = round(fwd.ms, 3);
    result[`${key}_forward_backward_ms`] = round(all.ms, 3);
    result[`${key}_gflops`] = round((flops.forward + flops.backward) / all.ms / 1e6);
  }
  return { B, H, T, D, ...result };
}

const gpu = await getGpu({ log: true }).catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
});
if (values.retune) {
  const tuning = { adapter: gpu.info.description, cacheDir: defaultCacheDir(), retune: true };
  setMatmulTuner(gpu, new MatmulTuner(tuning));
  setAttentionTuner(gpu, new AttentionTuner(tuning));
}
const report: Record<string, unknown> = {
  adapter: gpu.info.description,
  fallback_adapter: gpu.info.isFallbackAdapter,
  deno: Deno.version.deno,
  timing: gpu.info.features.includes("timestamp-query") ? "timestamp" : "wall",
  repeats,
};
/** The shapes `matmul_variants` lists (all, unless the infer figure summarized its own). */
let matmulShapes: Set<string> | undefined;
try {
  if (profileShape) {
    const rows = batch ??
      (profileShape.name === "paper"
        ? (gpu.info.isFallbackAdapter ? 16 : 256)
        : profileShape.batch);
    report.profile = await profileBstStep(
      gpu,
      { ...profileShape, batch: rows },
      values.precision as ModelPrecision,
    );
  } else {
    const want = (name: string) => !values.only || values.only === name;
    if (want("matmul")) report.matmul = await benchMatmul(gpu);
    if (want("attention")) report.attention = await benchAttention(gpu);
    if (want("bst")) {
      const paper = values["skip-paper"] ? false : values.paper || !gpu.info.isFallbackAdapter;
      const shapes = BST_BENCH_SHAPES.filter((s) =>
        !s.profileOnly && (paper || s.name !== "paper")
      );
      report.bst = await benchBstSteps(gpu, repeats, shapes, values.precision as ModelPrecision);
    }
    if (want("infer")) {
      // The rollouts plan matmuls for every row count up to the block size (re-encoding:
      // thousands of shapes): the infer figure counts its new shapes per variant instead of
      // listing them beside the timed parts' shapes.
      const before = new Set(Object.keys(matmulTuner(gpu).choices()));
      const infer: Record<string, unknown> = await benchInfer(gpu, repeats);
      const counts: Record<string, number> = {};
      for (const [key, variant] of Object.entries(matmulTuner(gpu).choices())) {
        if (!before.has(key)) counts[variant] = (counts[variant] ?? 0) + 1;
      }
      infer.matmul_variants = counts;
      report.infer = infer;
      matmulShapes = before;
    }
  }
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
}
report.matmul_variants = Object.fromEntries(
  Object.entries(matmulTuner(gpu).choices()).filter(([key]) => matmulShapes?.has(key) ?? true),
);
report.attention_variants = attentionTuner(gpu).choices();
console.log(JSON.stringify(report));
