/**
 * Reference `.pt` checkpoints (tests/fixtures/torch/, written by microsoft/BST's code) loaded
 * the way `infer`, `evaluate` and resuming load them (`loadCheckpoint`,
 * `restoreModelAndOptimizer`), against the numbers the reference computed from the same files.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { readTensor } from "../../src/gpu/tensor.ts";
import {
  parseSafetensors,
  type SafetensorsFile,
  toFloat32,
  toInt32,
} from "../../src/io/safetensors.ts";
import {
  ATOL,
  bstConfigFromMetadata,
  type Check,
  compare,
  gptConfigFromMetadata,
  RTOL,
  samplingChecks,
  textHeadLogits,
} from "../../src/conformance/conformance.ts";
import { BST, trainingPairList } from "../../src/models/bst.ts";
import { GPT } from "../../src/models/gpt.ts";
import { buildPairBatch, PairSampler } from "../../src/models/bst_pairs.ts";
import type { Generation } from "../../src/inference/bst_sampling.ts";
import { loadCheckpoint } from "../../src/train/checkpoints.ts";
import { checkpointStep, restoreModelAndOptimizer } from "../../src/train/run.ts";
import { AdamW } from "../../src/train/optimizer.ts";
import { assertClose } from "../_util.ts";

const dir = new URL("../fixtures/torch/", import.meta.url);
const path = (name: string) => fileURLToPath(new URL(name, dir));

async function expected(name: string): Promise<SafetensorsFile> {
  return parseSafetensors(await Deno.readFile(new URL(`${name}.expected.safetensors`, dir)), name);
}

function assertChecks(checks: Check[]): void {
  for (const c of checks) {
    console.log(`${c.name}: max abs err ${c.max_abs_err}, max rel err ${c.max_rel_err}`);
    assert.ok(c.ok, `${c.name}: ${c.error ?? `max abs err ${c.max_abs_err}`}`);
  }
}

Deno.test("a reference BST .pt (bf16), imported, gives the reference's encoder outputs, text-head logits and evaluation losses", async () => {
  const gpu = await getGpu();
  const want = await expected("bst_bf16");
  const model = await BST.create(gpu, bstConfigFromMetadata(want.metadata), { label: "pt.bst" });
  const file = await loadCheckpoint(path("bst_bf16.pt"));
  model.loadSafetensors(file.tensors, "bst_bf16.pt");
  const tokensT = want.tensors.get("input.tokens")!;
  const [B, T] = tokensT.shape;
  const tokens = toInt32(tokensT);
  const N = B * T * model.config.nEmbd;
  const enc = await model.encoders(B, T, false);
  enc.setTokens(tokens);
  await run(gpu, enc.forward);
  const check = (name: string, got: ArrayLike<number>) =>
    compare("bst_bf16", name, got, toFloat32(want.tensors.get(`expected.${name}`)!));
  const logits = await textHeadLogits(model, enc, toInt32(want.tensors.get("input.pairs")!));
  const evalLoss = await model.evaluationLoss(tokens, B, T);
  assertChecks([
    check("fwd_emb", (await readTensor(gpu, enc.outF)).subarray(0, N)),
    check("bwd_emb", (await readTensor(gpu, enc.outB)).subarray(0, N)),
    check("texthead_logits", logits),
    check("eval_next_loss", evalLoss.next),
    check("eval_prev_loss", evalLoss.prev),
  ]);
});

Deno.test("a reference GPT .pt (compiled, _orig_mod. names), imported, gives the reference's logits", async () => {
  const gpu = await getGpu();
  const want = await expected("gpt_compiled");
  const model = await GPT.create(gpu, gptConfigFromMetadata(want.metadata), { label: "pt.gpt" });
  model.loadSafetensors((await loadCheckpoint(path("gpt_compiled.pt"))).tensors, "gpt");
  const tokensT = want.tensors.get("input.tokens")!;
  const [B, T] = tokensT.shape;
  const logits = await model.logits(toInt32(tokensT), B, T);
  assertClose(logits, toFloat32(want.tensors.get("expected.logits")!), "logits", ATOL, RTOL);
});

interface SamplingRun {
  rows: number;
  prefix_len: number;
  suffix_len: number;
  top_k: number;
  rollout_count: number;
  results: Record<string, Generation[]>;
}

Deno.test("a reference BST .pt samples as inference.py does on it: six modes, two prompt splits", async () => {
  const gpu = await getGpu();
  const want = await expected("bst_bf16");
  const model = await BST.create(gpu, bstConfigFromMetadata(want.metadata), { label: "pt.sample" });
  model.loadSafetensors((await loadCheckpoint(path("bst_bf16.pt"))).tensors, "bst_bf16.pt");
  const eos = model.config.eosTokenId;
  const runs = JSON.parse(want.metadata.sampling) as SamplingRun[];
  const val = toInt32(want.tensors.get("sampling.tokens")!); // the first validation rows
  let checked = 0;
  for (const r of runs) {
    const T = model.config.blockSize;
    const rolloutLen = T - r.prefix_len - r.suffix_len - 2;
    for (let i = 0; i < r.rows; i++) {
      const row = [...val.subarray(i * T, (i + 1) * T)];
      const results: Record<string, Generation> = {};
      for (const [mode, list] of Object.entries(r.results)) results[mode] = list[i];
      // inference.py's prompt and goal (generate_samples with add_eos_token=True)
      const checks = await samplingChecks(model, `split ${r.prefix_len}/${r.suffix_len} row ${i}`, {
        prompt: [eos, ...row.slice(0, r.prefix_len)],
        goal: [...row.slice(T - r.suffix_len), eos],
        rollout_len: rolloutLen,
        top_k: r.top_k,
        rollout_count: r.rollout_count,
        results,
      });
      for (const c of checks) {
        assert.ok(c.ok, `${c.fixture} ${c.name}: ${c.error ?? `max abs err ${c.max_abs_err}`}`);
        checked++;
      }
    }
  }
  assert.equal(checked, 2 * 4 * 6);
});

interface Continuation {
  lr: number;
  betas: [number, number];
  weight_decay: number;
  eps: number;
  grad_clip: null;
  pair_batch_size?: number;
  losses: number[];
}

/**
 * Resumes from a reference `.pt` as training does (`restoreModelAndOptimizer`) and takes the
 * steps of the reference's continuation on the same batches; returns the losses, and the
 * losses when the AdamW moments are dropped after the restore.
 */
async function continueFrom(name: "bst_bf16" | "gpt_compiled") {
  const gpu = await getGpu();
  const want = await expected(name);
  const c = JSON.parse(want.metadata.continuation) as Continuation;
  const batches = want.tensors.get("continuation.tokens")!;
  const [steps, B, T] = batches.shape;
  const tokens = toInt32(batches);
  const losses = async (dropMoments: boolean) => {
    const model = name === "bst_bf16"
      ? await BST.create(gpu, bstConfigFromMetadata(want.metadata), { label: `pt.${name}` })
      : await GPT.create(gpu, gptConfigFromMetadata(want.metadata), { label: `pt.${name}` });
    const opt = await AdamW.create(model, {
      beta1: c.betas[0],
      beta2: c.betas[1],
      weightDecay: c.weight_decay,
      gradClip: c.grad_clip,
      eps: c.eps,
    });
    const file = await restoreModelAndOptimizer(path(`${name}.pt`), model, opt, {
      kind: model instanceof BST ? "bst" : "gpt",
    });
    const start = checkpointStep(name, file.metadata);
    assert.equal(start, Number(want.metadata.training_steps));
    if (dropMoments) {
      const zeros = new Float32Array(model.table.size);
      opt.setState({ m: zeros, v: zeros });
    }
    const out: number[] = [];
    const zero = await model.planZeroGrads();
    for (let k = 0; k < steps; k++) {
      const batch = tokens.subarray(k * B * T, (k + 1) * B * T);
      opt.setStep(c.lr, start + k + 1);
      if (model instanceof BST) {
        const enc = await model.encoders(B, T);
        const pairs = buildPairBatch(batch, B, T, new PairSampler(model.config, 0), {
          pairBatchSize: c.pair_batch_size!,
        });
        const head = model.pairHead(enc, pairs.count, true);
        const ops = await model.planMicroStep(enc, head, batch, trainingPairList(pairs));
        await run(gpu, [...zero, ...ops, ...opt.ops]);
        out.push(await head.readLoss());
      } else {
        const { plan, ops } = await model.planMicroStep(batch, B, T);
        await run(gpu, [...zero, ...ops, ...opt.ops]);
        out.push((await readTensor(gpu, plan.lossOut))[0]);
      }
    }
    return out;
  };
  return { want: c.losses, resumed: await losses(false), fresh: await losses(true) };
}

for (const name of ["bst_bf16", "gpt_compiled"] as const) {
  Deno.test(`resuming from a reference .pt (${name}) continues with its AdamW state: the next steps' losses are the reference's`, async () => {
    const { want, resumed, fresh } = await continueFrom(name);
    console.log(`reference ${want}\nresumed   ${resumed}\nno moments ${fresh}`);
    assertClose(resumed, want, `${name} losses`, 1e-5, 1e-5);
    // The first loss comes before any update; the later ones depend on the moments carried.
    const rel = (i: number) => Math.abs(fresh[i] - want[i]) / want[i];
    assert.ok(
      rel(1) > 1e-3 && rel(2) > 1e-3,
      `without the moments the losses should differ: ${fresh} vs ${want}`,
    );
  });
}

Deno.test("the .pt written from a checkpoint of this project's layout gives the logits the reference computed after loading it", async () => {
  const { oursToPt } = await import("../fixtures/torch/ours_to_pt.ts");
  const want = await expected("ours_gpt");
  const gpt = await expected("gpt_compiled"); // the same model's config
  const model = await GPT.create(await getGpu(), gptConfigFromMetadata(gpt.metadata), {
    label: "pt.ours",
  });
  const { parseCheckpoint } = await import("../../src/train/torch_checkpoint.ts");
  model.loadSafetensors(parseCheckpoint(await oursToPt(), "ours_gpt.pt").tensors, "ours_gpt.pt");
  const tokensT = want.tensors.get("input.tokens")!;
  const [B, T] = tokensT.shape;
  const logits = await model.logits(toInt32(tokensT), B, T);
  assertClose(logits, toFloat32(want.tensors.get("expected.logits")!), "logits", ATOL, RTOL);
});
