/**
 * `deno task bench`: throughput figures as ONE JSON object on stdout (progress on stderr).
 *
 * - `matmul`: GFLOP/s of the three Linear patterns (forward `x·Wᵀ`, input gradient `dy·W`,
 *   weight gradient `dyᵀ·x`) at (M, K, N) = (512, 512, 512), (2048, 768, 2304), (2048, 2048, 768);
 * - `attention`: forward + backward time of the document-masked attention at
 *   B=8, H=8, T=69, D=96, both directions;
 * - `bst`: a full BST training step (see `_bench_bst.ts`) at the small and paper shapes;
 * - `tokenizer` (only with `--tokenizer FILE`, which runs nothing else and needs no adapter):
 *   MB/s of the TinyStories tokenizer on FILE's stories (see `_bench_tokenizer.ts`).
 *
 * Each figure is the median of `--repeats` timed runs after one warm-up; a run is submitted and
 * waited for with `onSubmittedWorkDone`, so times include dispatch overhead, not uploads.
 *
 * Permissions: env (`XDG_RUNTIME_DIR`, `DENO_WEBGPU_BACKEND`); read, for `--tokenizer FILE`.
 *
 * @module
 */

import { getGpu, type Gpu } from "../src/gpu/device.ts";
import {
  attentionFlops,
  planAttentionBackward,
  planAttentionForward,
} from "../src/gpu/attention.ts";
import { type Op, run } from "../src/gpu/kernel.ts";
import {
  matmulFlops,
  planLinearBackwardInput,
  planLinearBackwardWeight,
  planLinearForward,
} from "../src/gpu/matmul.ts";
import { uploadTensor } from "../src/gpu/tensor.ts";
import { benchBstSteps, BST_BENCH_SHAPES } from "./_bench_bst.ts";
import { benchTokenizer } from "./_bench_tokenizer.ts";
import { parseCli, runMain } from "./_cli.ts";

const { values } = parseCli({
  usage: "deno task bench [--repeats N] [--only matmul|attention|bst] [--skip-paper]",
  about: `Prints one JSON object: the adapter, matmul GFLOP/s for the three Linear patterns at three
shapes attention forward+backward time at B=8 H=8 T=69 D=96, and BST training steps (both
encoders, text head, AdamW) for the small G(2,5) shape and the paper's G(5,5) shape: ms/step,
tokens/s, achieved GFLOP/s. --skip-paper leaves out the paper shape (minutes per step on a
CPU adapter). Progress goes to stderr.

--tokenizer FILE runs only the tokenizer figure (no adapter needed): the TinyStories tokenizer
encodes the stories of FILE (separated by <|endoftext|> lines) one at a time; prints MB/s of the
first pass and the median of --repeats passes, each with a fresh tokenizer.`,
  flags: {
    repeats: { type: "integer", min: 1, default: 5, help: "timed runs per figure (default 5)" },
    only: {
      type: "string",
      arg: "PART",
      choices: ["matmul", "attention", "bst"],
      help: "one part only: matmul, attention or bst",
    },
    "skip-paper": { type: "boolean", help: "leave out the paper-sized BST step" },
    tokenizer: {
      type: "string",
      arg: "FILE",
      file: true,
      help: "only the tokenizer's MB/s on FILE's stories",
    },
  },
});
const repeats = values.repeats;

if (values.tokenizer !== undefined) {
  const path = values.tokenizer;
  const result = await benchTokenizer(path, repeats).catch((e) => {
    console.error(`error: Cannot benchmark the tokenizer on "${path}": ${(e as Error).message}`);
    Deno.exit(2);
  });
  console.log(JSON.stringify({ deno: Deno.version.deno, repeats, tokenizer: result }));
  Deno.exit(0);
}

/** Median wall time in ms of running `ops` (after one warm-up run). */
export async function timeOps(gpu: Gpu, ops: Op[], n: number): Promise<number> {
  await run(gpu, ops);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await run(gpu, ops);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
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
  const shapes: [number, number, number][] = [[512, 512, 512], [2048, 768, 2304], [
    2048,
    2048,
    768,
  ]];
  const out = [];
  for (const [M, K, N] of shapes) {
    console.error(`bench: matmul ${M}x${K}x${N}`);
    const x = uploadTensor(gpu, seeded(M * K, 1), [M, K], "bench.x");
    const w = uploadTensor(gpu, seeded(N * K, 2), [N, K], "bench.w");
    const y = uploadTensor(gpu, new Float32Array(M * N), [M, N], "bench.y");
    const dy = uploadTensor(gpu, seeded(M * N, 3), [M, N], "bench.dy");
    const dx = uploadTensor(gpu, new Float32Array(M * K), [M, K], "bench.dx");
    const dw = uploadTensor(gpu, new Float32Array(N * K), [N, K], "bench.dw");
    const flops = matmulFlops(M, K, N);
    const fwd = await timeOps(gpu, [await planLinearForward(gpu, { out: y, x, w })], repeats);
    const bIn = await timeOps(gpu, [await planLinearBackwardInput(gpu, { dx, dy, w })], repeats);
    const wOps = await planLinearBackwardWeight(gpu, { dw, dy, x });
    const bW = await timeOps(gpu, Array.isArray(wOps) ? wOps : [wOps], repeats);
    out.push({
      M,
      K,
      N,
      forward_gflops: round(flops / fwd / 1e6),
      backward_input_gflops: round(flops / bIn / 1e6),
      backward_weight_gflops: round(flops / bW / 1e6),
      forward_ms: round(fwd, 3),
      backward_input_ms: round(bIn, 3),
      backward_weight_ms: round(bW, 3),
    });
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
    const fwdMs = await timeOps(gpu, f, repeats);
    const allMs = await timeOps(gpu, [...f, ...b], repeats);
    const key = direction === "forward" ? "causal" : "anticausal";
    result[`${key}_forward_ms`] = round(fwdMs, 3);
    result[`${key}_forward_backward_ms`] = round(allMs, 3);
    result[`${key}_gflops`] = round((flops.forward + flops.backward) / allMs / 1e6);
  }
  return { B, H, T, D, ...result };
}

await runMain(async () => {
  const gpu = await getGpu({ log: true });
  const want = (name: string) => !values.only || values.only === name;
  const report: Record<string, unknown> = {
    adapter: gpu.info.description,
    fallback_adapter: gpu.info.isFallbackAdapter,
    deno: Deno.version.deno,
    repeats,
  };
  if (want("matmul")) report.matmul = await benchMatmul(gpu);
  if (want("attention")) report.attention = await benchAttention(gpu);
  if (want("bst")) {
    const shapes = BST_BENCH_SHAPES.filter((s) => !values["skip-paper"] || s.name !== "paper");
    report.bst = await benchBstSteps(gpu, repeats, shapes);
  }
  console.log(JSON.stringify(report));
});
