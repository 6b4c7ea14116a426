// Training from streamed data: TinyStories packed from stories (BST and the FIM GPT) and
// pretokenized .npy shards. Runs are deterministic, and a resumed run continues the stream
// where it stopped, ending with the same checkpoint bytes as an uninterrupted one.

import assert from "node:assert/strict";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { writeNpy } from "../../src/io/npy.ts";
import { loadTrainData } from "../../src/train/data.ts";
import { train } from "../../src/train/trainer.ts";
import { GENERATION_KEYS, readInferOutput } from "../_util.ts";

const STORIES = new URL("../fixtures/tinystories/stories_40.txt", import.meta.url).pathname;
const opts = { progress: false, handleInterrupt: false };

async function config(outDir: string, extra: string[]): Promise<Config> {
  return await loadConfig({
    overrides: [
      "model.n_layer=1",
      "model.n_head=2",
      "model.n_embd=32",
      "model.block_size=32",
      "model.bst_pair_subsample_rate=0.1",
      "data.effective_batch_size=4",
      "data.gradient_accum_steps=2",
      "trainer.train_batches=4",
      "trainer.val_interval=2",
      "trainer.val_batches=1",
      "trainer.log_interval=1",
      "optimizer.learning_rate=0.003",
      "lr_scheduler.decay_lr=false",
      `trainer.out_dir=${outDir}`,
      ...extra,
    ],
  });
}

/** Runs a, then c for 2 steps and resumed to 4; returns the final checkpoints of a and c. */
async function runAndResume(dir: string, extra: string[]) {
  const full = await config(dir, extra);
  const a = await train(full, await loadTrainData(full), { ...opts, runName: "a" });
  const half = await config(dir, [...extra, "trainer.train_batches=2"]);
  await train(half, await loadTrainData(half), { ...opts, runName: "c" });
  const resumed = await config(dir, [...extra, "trainer.init_from=resume"]);
  const c = await train(resumed, await loadTrainData(resumed), opts);
  const bytes = (run: string) => Deno.readFile(`${dir}/${run}/ckpt_iter_4.safetensors`);
  return { a, c, aBytes: await bytes("a"), cBytes: await bytes("c") };
}

Deno.test("train() on TinyStories stories: the packed stream resumes bit-exactly", async () => {
  const dir = await Deno.makeTempDir();
  const extra = ["data.dataset=tinystories", `data.tinystories_path=${STORIES}`];
  const data = await loadTrainData(await config(dir, extra));
  assert.equal(data.vocabSize, 1000);
  assert.equal(data.eosTokenId, 1);
  assert.equal(data.seqLen, 32);
  const { a, c, aBytes, cBytes } = await runAndResume(dir, extra);
  assert.equal(a.steps, 4);
  assert.ok(Number.isFinite(a.val_loss_next_token) && a.val_loss_next_token > 0);
  assert.ok(a.val_loss_next_token < Math.log(1000) + 1);
  assert.deepEqual({ ...c, seconds: 0 }, { ...a, seconds: 0 });
  assert.deepEqual(cBytes, aBytes);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train() of the FIM GPT on TinyStories: vocabulary 1001, skipped stories logged", async () => {
  const dir = await Deno.makeTempDir();
  const extra = [
    "data.dataset=tinystories",
    `data.tinystories_path=${STORIES}`,
    "use_bst=false",
    "model.gpt_mode=fim",
    "trainer.train_batches=2",
  ];
  const cfg = await config(dir, extra);
  const data = await loadTrainData(cfg);
  assert.equal(data.vocabSize, 1001);
  assert.equal(data.fimTokenId, 1000);
  let fims = 0;
  for (let step = 0; step < 10; step++) {
    fims += (await data.train.batch(step, 4)).tokens.filter((t) => t === 1000).length;
  }
  assert.ok(fims > 0, "FIM rows hold the <|fim|> token");
  const result = await train(cfg, await loadTrainData(cfg), { ...opts, runName: "f" });
  assert.equal(result.val_loss_prev_token, null);
  assert.ok(Number.isFinite(result.val_loss));
  const rows = (await Deno.readTextFile(`${dir}/f/metrics.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.ok(rows.some((r) => typeof r.fim_skipped === "number"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train() on pretokenized shards: weighted files, bit-exact resume", async () => {
  const dir = await Deno.makeTempDir();
  const tokens = (n: number, seed: number) => {
    const out = new Uint16Array(n);
    let x = seed;
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      out[i] = i % 29 === 0 ? 1 : 2 + ((x >>> 8) % 40);
    }
    return out;
  };
  await writeNpy(`${dir}/a.npy`, tokens(32 * 20, 1));
  await writeNpy(`${dir}/b.npy`, tokens(32 * 8, 2));
  await writeNpy(`${dir}/v.npy`, tokens(32 * 8, 3));
  const extra = [
    "data.dataset=pretokenized",
    `data.pretokenized_data_path=${dir}`,
    'data.pretokenized_train_data=["a.npy", ["b.npy", 2]]',
    "data.pretokenized_val_data=[v.npy]",
    "data.tokenizer_eos_id=1",
    "model.vocab_size=64",
  ];
  const data = await loadTrainData(await config(dir, extra));
  assert.equal(data.vocabSize, 64);
  const { a, c, aBytes, cBytes } = await runAndResume(`${dir}/out`, extra);
  assert.equal(a.steps, 4);
  assert.deepEqual({ ...c, seconds: 0 }, { ...a, seconds: 0 });
  assert.deepEqual(cBytes, aBytes);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("deno task infer samples TinyStories checkpoints: six BST modes and the FIM GPT", async () => {
  const dir = await Deno.makeTempDir();
  const root = new URL("../../", import.meta.url).pathname;
  const base = [
    "data.dataset=tinystories",
    `data.tinystories_path=${STORIES}`,
    "trainer.train_batches=1",
  ];
  const checkpoint = async (run: string, extra: string[]) => {
    const cfg = await config(`${dir}/${run}`, [...base, ...extra]);
    await train(cfg, await loadTrainData(cfg), { ...opts, runName: run });
    return `${dir}/${run}/${run}/ckpt_iter_1.safetensors`;
  };
  const bst = await checkpoint("bst", []);
  const gpt = await checkpoint("gpt", ["use_bst=false", "model.gpt_mode=fim"]);
  const output = `${dir}/samples.jsonl`;
  const runs: [string, string][] = [
    ...["AR", "reverse_AR", "beam", "reverse_beam", "goal_cond_plan", "reverse_goal_cond_plan"]
      .map((m): [string, string] => [bst, m]),
    [gpt, "AR"],
  ];
  for (const [ckpt, mode] of runs) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        `--allow-write=${dir}`,
        "--allow-env=XDG_RUNTIME_DIR,DENO_WEBGPU_BACKEND,HF_ENDPOINT",
        "scripts/infer.ts",
        "--checkpoint_path",
        ckpt,
        "--sampling_mode",
        mode,
        "--prefix_len",
        "8",
        "--suffix_len",
        "8",
        "--rollout_count",
        "2",
        "--top_k",
        "2",
        "--output_path",
        output,
      ],
      cwd: root,
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `${mode}: ${new TextDecoder().decode(out.stderr)}`);
  }
  const { sessions, records } = await readInferOutput(output);
  assert.equal(sessions, runs.length - 1);
  assert.equal(records.length, runs.length);
  // The held-out story (the last of the 40) is the original; texts are decoded words.
  const stories = (await Deno.readTextFile(STORIES)).split(/^<\|endoftext\|>$/m)
    .map((s) => s.trim()).filter((s) => s);
  for (const r of records) {
    assert.deepEqual(Object.keys(r), GENERATION_KEYS);
    assert.equal(r.original, stories.at(-1));
    assert.ok(!r.prompt.includes("##") && !r.prompt.includes("<|eos|>"));
  }
  assert.equal(records.at(-1)!.sampling_method, "autoregressive_gpt");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train --config bst_tinystories_defaults.yaml offline: one line naming the local keys", async () => {
  const dir = await Deno.makeTempDir();
  const root = new URL("../../", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      `--allow-write=${dir}`,
      "--allow-env",
      "--allow-net=127.0.0.1",
      "scripts/train.ts",
      "--config",
      "config/bst_tinystories_defaults.yaml",
      `trainer.out_dir=${dir}`,
    ],
    cwd: root,
    // A closed port on this machine stands for a network without the Hub.
    env: { HF_ENDPOINT: "http://127.0.0.1:9", NO_COLOR: "1", XDG_RUNTIME_DIR: "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).split("\n")
    .filter((l) => l && !l.includes("experimental feature"));
  assert.equal(out.code, 1, stderr.join("\n"));
  assert.equal(stderr.length, 1, stderr.join("\n"));
  assert.match(stderr[0], /^error: Cannot download the TinyStories data/);
  assert.match(stderr[0], /data\.tinystories_path=/);
  await Deno.remove(dir, { recursive: true });
});
