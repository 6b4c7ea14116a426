/**
 * `deno task convert`, and `.pt` files in `infer`, `evaluate` and resumed training, run as
 * the tasks run (subprocesses in a temporary folder holding `out/` and `data/`), against the
 * reference's outputs recorded in tests/fixtures/torch/.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { generateStarGraphFile } from "../../src/data/stargraph_generate.ts";
import { parseSafetensors, type SafetensorsFile } from "../../src/io/safetensors.ts";
import { parseTorchCheckpoint, type TorchTensor } from "../../src/io/torch_pt.ts";
import type { PyDict } from "../../src/io/pickle.ts";
import { StarGraphTokenizer } from "../../src/tokenizers/stargraph.ts";
import type { Generation } from "../../src/inference/bst_sampling.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixtures = join(root, "tests/fixtures/torch");
const BST_PT = join(fixtures, "bst_bf16.pt");
const GPT_PT = join(fixtures, "gpt_compiled.pt");

async function expected(name: string): Promise<SafetensorsFile> {
  return parseSafetensors(
    await Deno.readFile(join(fixtures, `${name}.expected.safetensors`)),
    name,
  );
}

/** A temporary folder with the fixtures' star graph in `data/` and a config for it. */
async function workspace(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bst_torchpt_" });
  const graph = JSON.parse((await expected("bst_bf16")).metadata.stargraph);
  const path = join(dir, "data", "graph_2_4_sample_2000.txt");
  await generateStarGraphFile({
    numSamples: graph.num_samples,
    numPaths: graph.num_paths,
    pathLength: graph.path_length,
    maxNodes: graph.max_nodes,
    path,
    workers: 0,
  });
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(hex, graph.sha256, "the reference generator's bytes");
  await Deno.writeTextFile(
    join(dir, "star.yaml"),
    `data:
  dataset: stargraph
  stargraph_data_path: data/graph_2_4_sample_2000.txt
  stargraph_max_nodes: 20
  effective_batch_size: 8
model:
  n_layer: 1
  n_head: 2
  n_embd: 32
optimizer:
  learning_rate: 0.003
trainer:
  val_batches: 1
  log_interval: 1
lr_scheduler:
  decay_lr: false
`,
  );
  return dir;
}

/** Runs a task's script in `cwd` with the project's config and narrow permissions. */
async function task(
  cwd: string,
  script: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string; last: Record<string, unknown> }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${join(root, "deno.json")}`,
      `--allow-read=${root},${cwd},/tmp`,
      `--allow-write=${join(cwd, "out")},${join(cwd, "data")}`,
      "--allow-env=XDG_RUNTIME_DIR,DENO_WEBGPU_BACKEND",
      join(root, "scripts", script),
      ...args,
    ],
    cwd,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  const lines = stdout.trim().split("\n");
  let last: Record<string, unknown> = {};
  try {
    last = JSON.parse(lines.at(-1) ?? "");
  } catch { /* not JSON */ }
  return { code: out.code, stdout, stderr: dec.decode(out.stderr), last };
}

/** stderr lines that say something (not Deno's config warning or the adapter lines). */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) =>
    l.trim() !== "" &&
    !/experimental feature|^WebGPU adapter: |^warning: this is a fallback/.test(l)
  );
}

/** The tensors of a `.pt` object by path, for bit-for-bit comparisons. */
function ptTensors(v: unknown, path = "", out = new Map<string, TorchTensor>()) {
  if (v instanceof Map) { for (const [k, x] of v) ptTensors(x, `${path}.${k}`, out); }
  else if (Array.isArray(v)) v.forEach((x, i) => ptTensors(x, `${path}.${i}`, out));
  else if (v && typeof v === "object" && "dtype" in v) out.set(path, v as TorchTensor);
  return out;
}

Deno.test("convert: .pt -> .safetensors -> .pt keeps every tensor bit for bit; a config is stored and checked", async () => {
  const dir = await workspace();
  try {
    for (const [pt, kind] of [[BST_PT, "bst"], [GPT_PT, "gpt"]] as const) {
      const args = kind === "gpt" ? ["use_bst=false"] : [];
      const a = await task(dir, "convert.ts", [
        pt,
        "out/a.safetensors",
        "--config",
        "star.yaml",
        ...args,
      ]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(a.last.model, kind);
      assert.equal(a.last.optimizer, true);
      const ours = parseSafetensors(await Deno.readFile(join(dir, "out/a.safetensors")), "a");
      assert.equal(JSON.parse(ours.metadata.config).model.n_embd, 32);
      const b = await task(dir, "convert.ts", ["out/a.safetensors", "out/b.pt"]);
      assert.equal(b.code, 0, b.stderr);
      const original = parseTorchCheckpoint(await Deno.readFile(pt), "original");
      const back = parseTorchCheckpoint(await Deno.readFile(join(dir, "out/b.pt")), "back");
      const want = ptTensors(original);
      const got = ptTensors(back);
      for (const [path, t] of want) {
        assert.deepEqual(got.get(path.replace("._orig_mod", "")), t, `${kind}${path}`);
      }
      assert.equal(got.size, want.size);
      assert.equal(
        (back as PyDict).get("training_steps"),
        (original as PyDict).get("training_steps"),
      );
      // and back again: the same safetensors bytes
      const c = await task(dir, "convert.ts", ["out/b.pt", "out/c.safetensors"]);
      assert.equal(c.code, 0, c.stderr);
      assert.deepEqual(
        await Deno.readFile(join(dir, "out/c.safetensors")),
        await Deno.readFile(join(dir, "out/a.safetensors")),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("convert: mistakes are one line (exit 2 for the command line, 1 for the file)", async () => {
  const dir = await workspace();
  try {
    const cases: [string[], number, RegExp][] = [
      [[BST_PT, "/tmp/x.safetensors"], 2, /^error: OUT "\/tmp\/x.safetensors" must be under out\//],
      [
        [BST_PT, "out/x.bin"],
        2,
        /^error: OUT "out\/x.bin" must end in .pt, .pth, .ckpt or .safetensors/,
      ],
      [["missing.pt", "out/x.safetensors"], 2, /^error: IN "missing.pt" not found \(see --help\)$/],
      [[join(root, "deno.json"), "out/x.pt"], 1, /^error: Cannot read checkpoint ".*deno.json": /],
      [
        [BST_PT, "out/x.safetensors", "--config", "star.yaml", "model.n_embd=64"],
        1,
        /^error: Cannot load checkpoint ".*bst_bf16.pt": tensor "encoder.token_embedding.weight" is 32 wide but the config's model.n_embd is 64$/,
      ],
      [
        [BST_PT, "out/x.safetensors", "--config", "star.yaml", "use_bst=false"],
        1,
        /it holds a BST but the config says use_bst: false$/,
      ],
      [
        [join(fixtures, "evil_system.pt"), "out/x.safetensors"],
        1,
        /the global posix.system, which is not allowed/,
      ],
    ];
    for (const [args, code, want] of cases) {
      const r = await task(dir, "convert.ts", args);
      const lines = errorLines(r.stderr);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], want);
      assert.equal(r.stdout, "");
    }
    await assert.rejects(Deno.stat(join(dir, "out")), Deno.errors.NotFound, "nothing written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

interface SamplingRun {
  prefix_len: number;
  suffix_len: number;
  results: Record<string, Generation[]>;
}

Deno.test("infer samples a reference BST .pt as the reference's inference.py does on it (AR)", async () => {
  const dir = await workspace();
  try {
    const runs = JSON.parse((await expected("bst_bf16")).metadata.sampling) as SamplingRun[];
    const tok = new StarGraphTokenizer(20);
    const text = (ids: string) => tok.decode(ids.split(" ").map(Number));
    for (const run of runs) {
      const r = await task(dir, "infer.ts", [
        "--checkpoint_path",
        BST_PT,
        "--config",
        "star.yaml",
        "--sampling_mode",
        "AR",
        "--num_samples",
        "4",
        "--prefix_len",
        String(run.prefix_len),
        "--suffix_len",
        String(run.suffix_len),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const got = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Generation);
      const want = run.results.AR;
      assert.equal(got.length, want.length);
      got.forEach((g, i) => {
        // the reference's records are token ids; ours the star graph's text of the same ids
        assert.equal(g.prompt, text(want[i].prompt), `row ${i} prompt`);
        assert.equal(g.goal, text(want[i].goal), `row ${i} goal`);
        assert.equal(g.generated, text(want[i].generated), `row ${i}`);
        assert.equal(g.sampling_method, want[i].sampling_method);
      });
      console.log(
        `split ${run.prefix_len}/${run.suffix_len}: ${got.map((g) => g.generated).join(" · ")}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluate reads a reference .pt (with --config)", async () => {
  const dir = await workspace();
  try {
    const r = await task(dir, "evaluate.ts", [
      "--checkpoint",
      GPT_PT,
      "--config",
      "star.yaml",
      "use_bst=false",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.last.steps, 3);
    assert.ok(Number.isFinite(r.last.val_loss) && (r.last.val_loss as number) > 0);
    const noConfig = await task(dir, "evaluate.ts", ["--checkpoint", GPT_PT]);
    assert.equal(noConfig.code, 1);
    assert.match(errorLines(noConfig.stderr)[0], /has no config in its metadata; pass --config/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Writes a reference-style out dir: the checkpoint under the reference's name and a pointer. */
async function referenceOutDir(dir: string, out: string, pt: string, name: string): Promise<void> {
  await Deno.mkdir(join(dir, out, "run1"), { recursive: true });
  const target = join(out, "run1", name);
  await Deno.copyFile(pt, join(dir, target));
  await Deno.writeTextFile(join(dir, out, "latest_ckpt"), target);
}

Deno.test("train resumes from a reference run's out dir (.pt): like the same checkpoint converted, and like an uninterrupted run", async () => {
  const dir = await workspace();
  const train = (out: string, steps: number, extra: string[] = []) =>
    task(dir, "train.ts", [
      "--config",
      "star.yaml",
      `trainer.out_dir=${out}`,
      `trainer.train_batches=${steps}`,
      "trainer.val_interval=2",
      ...extra,
    ]);
  const final = (r: { last: Record<string, unknown> }) => ({ ...r.last, seconds: 0 });
  try {
    // The reference's BST at step 300, resumed as a .pt and as the converted .safetensors.
    await referenceOutDir(dir, "out/ref", BST_PT, "ckpt_iter_300_loss_1.2345.pt");
    const fromPt = await train("out/ref", 302, ["trainer.init_from=resume"]);
    assert.equal(fromPt.code, 0, fromPt.stderr);
    assert.match(fromPt.stderr, /Resuming from .*ckpt_iter_300_loss_1\.2345\.pt at step 300/);
    const conv = await task(dir, "convert.ts", [
      BST_PT,
      "out/conv.safetensors",
      "--config",
      "star.yaml",
    ]);
    assert.equal(conv.code, 0, conv.stderr);
    await referenceOutDir(
      dir,
      "out/conv",
      join(dir, "out/conv.safetensors"),
      "ckpt_iter_300.safetensors",
    );
    const fromConverted = await train("out/conv", 302, ["trainer.init_from=resume"]);
    assert.equal(fromConverted.code, 0, fromConverted.stderr);
    assert.deepEqual(final(fromPt), final(fromConverted));
    assert.equal(fromPt.last.steps, 302);

    // Our run: 4 steps straight, against 2 steps, its checkpoint converted to .pt, resumed.
    const straight = await train("out/u", 4, ["trainer.keep_checkpoint_steps=[2]"]);
    assert.equal(straight.code, 0, straight.stderr);
    const run = [...Deno.readDirSync(join(dir, "out/u"))].find((e) => e.isDirectory)!.name;
    const pt = "out/ours/ckpt_iter_2_loss_0.pt";
    await Deno.mkdir(join(dir, "out/ours"), { recursive: true });
    const c = await task(dir, "convert.ts", [`out/u/${run}/ckpt_iter_2.safetensors`, pt]);
    assert.equal(c.code, 0, c.stderr);
    await referenceOutDir(dir, "out/r", join(dir, pt), "ckpt_iter_2_loss_0.pt");
    const resumed = await train("out/r", 4, [
      "trainer.keep_checkpoint_steps=[2]",
      "trainer.init_from=resume",
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /at step 2/);
    assert.deepEqual(final(resumed), final(straight));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
