import assert from "node:assert/strict";
import {
  fromTorchCheckpoint,
  modelShapeOf,
  parseCheckpoint,
  TORCH_OPTIMIZER_KEY,
  toTorchCheckpoint,
} from "../../src/train/torch_checkpoint.ts";
import {
  parseTorchCheckpoint,
  serializeTorchCheckpoint,
  TorchTensor,
} from "../../src/io/torch_pt.ts";
import { PyDict, PyOrderedDict, type PyTuple, type PyValue } from "../../src/io/pickle.ts";
import {
  fromFloat32,
  parseSafetensors,
  serializeSafetensors,
  toFloat32,
} from "../../src/io/safetensors.ts";
import { concatBytes } from "../../src/io/zip.ts";
import { flatParamTable } from "../../src/models/flat_params.ts";
import { gptParamSpecs } from "../../src/models/gpt.ts";

const dir = new URL("../fixtures/torch/", import.meta.url);
const FIXTURES = ["bst_bf16", "gpt_compiled"] as const;

async function load(name: string) {
  const bytes = await Deno.readFile(new URL(`${name}.pt`, dir));
  const expected = parseSafetensors(
    await Deno.readFile(new URL(`${name}.expected.safetensors`, dir)),
    `${name}.expected`,
  );
  return { bytes, raw: parseTorchCheckpoint(bytes, name) as PyDict, expected };
}

/** The optimizer state of a parsed `.pt` object: `state[i]` by index. */
function optimizerState(raw: PyDict): PyDict {
  return (raw.get("optimizer") as PyDict).get("state") as PyDict;
}

Deno.test("parseCheckpoint() maps reference .pt files to this project's names, step and flat AdamW moments, in torch's parameter order", async () => {
  for (const name of FIXTURES) {
    const { bytes, raw, expected } = await load(name);
    const file = parseCheckpoint(bytes, `${name}.pt`);
    assert.equal(file.metadata.model, name.startsWith("bst") ? "bst" : "gpt");
    assert.equal(file.metadata.step, expected.metadata.training_steps);
    // torch's own numbering of each parameter (by object identity, in the generator):
    const index = JSON.parse(expected.metadata.param_index) as Record<string, number>;
    const table = flatParamTable(
      modelShapeOf(
        new Map(
          [...file.tensors].filter(([n]) => !n.startsWith("optimizer.")).map((
            [n, t],
          ) => [n, t.shape]),
        ),
        name,
      ).specs,
    );
    assert.deepEqual(
      new Set(table.entries.map((e) => e.name)),
      new Set(Object.keys(index)),
      `${name}: the parameter names`,
    );
    const m = toFloat32(file.tensors.get("optimizer.exp_avg")!);
    const v = toFloat32(file.tensors.get("optimizer.exp_avg_sq")!);
    const state = optimizerState(raw);
    let nonzero = 0;
    for (const e of table.entries) {
      const s = state.get(BigInt(index[e.name])) as PyDict;
      const want = toFloat32(s.get("exp_avg") as TorchTensor);
      const wantSq = toFloat32(s.get("exp_avg_sq") as TorchTensor);
      assert.deepEqual(table.view(m, e.name), want, `${name}: exp_avg of ${e.name}`);
      assert.deepEqual(table.view(v, e.name), wantSq, `${name}: exp_avg_sq of ${e.name}`);
      nonzero += want.some((x) => x !== 0) ? 1 : 0;
    }
    assert.equal(nonzero, table.entries.length, `${name}: every moment carries state`);
    const info = JSON.parse(file.metadata[TORCH_OPTIMIZER_KEY]);
    assert.equal(info.step, Number(expected.metadata.optimizer_step));
    assert.equal(info.momentDtype, name === "bst_bf16" ? "BF16" : "F32");
    // Model tensors keep their dtype; the compiled model's `_orig_mod.` is gone.
    const emb = file.tensors.get(
      name === "bst_bf16" ? "encoder.token_embedding.weight" : "model.token_embedding.weight",
    )!;
    assert.equal(emb.dtype, name === "bst_bf16" ? "BF16" : "F32");
    assert.ok(![...file.tensors.keys()].some((n) => n.includes("_orig_mod")));
  }
});

Deno.test(".pt -> safetensors -> .pt keeps every tensor bit for bit, the groups and training_steps", async () => {
  for (const name of FIXTURES) {
    const { bytes, raw } = await load(name);
    const ours = parseSafetensors(
      serializeSafetensors(...(() => {
        const f = parseCheckpoint(bytes, name);
        return [f.tensors, f.metadata] as const;
      })()),
      `${name}.safetensors`,
    );
    const back = parseTorchCheckpoint(
      concatBytes(serializeTorchCheckpoint(toTorchCheckpoint(ours, name))),
      `${name} again`,
    ) as PyDict;
    assert.equal(back.get("training_steps"), raw.get("training_steps"));
    const modules = name.startsWith("bst") ? ["encoder", "text_head"] : ["model"];
    for (const module of modules) {
      const a = raw.get(module) as PyDict;
      const b = back.get(module) as PyDict;
      assert.ok(b instanceof PyOrderedDict);
      assert.equal(b.size, a.size);
      for (const [key, t] of a) {
        const plain = (key as string).replace(/^_orig_mod\./, "");
        assert.deepEqual(b.get(plain), t, `${name}: ${module}.${plain}`);
      }
    }
    const sa = optimizerState(raw);
    const sb = optimizerState(back);
    assert.equal(sb.size, sa.size);
    for (const [i, entry] of sa) {
      for (const [k, t] of entry as PyDict) {
        assert.deepEqual((sb.get(i) as PyDict).get(k), t, `${name}: state[${i}].${k}`);
      }
    }
    const ga = (raw.get("optimizer") as PyDict).get("param_groups");
    const gb = (back.get("optimizer") as PyDict).get("param_groups");
    assert.deepEqual(gb, ga, `${name}: param_groups`);
  }
});

/** A GPT state dict of the fixtures' sizes under `prefix`, from a parameter list. */
function gptStateDict(prefix: string, drop?: string, reshape?: string): PyOrderedDict {
  const specs = gptParamSpecs({
    vocabSize: 26,
    eosTokenId: 24,
    nLayer: 1,
    nHead: 2,
    nEmbd: 32,
    blockSize: 26,
    bias: false,
    mode: "next_token",
    fimTokenId: -1,
  });
  const sd = new PyOrderedDict();
  for (const s of specs) {
    const name = s.name.slice("model.".length);
    if (name === drop) continue;
    const shape = name === reshape ? [s.shape[0] + 1, ...s.shape.slice(1)] : s.shape;
    const n = shape.reduce((a, b) => a * b, 1);
    sd.set(
      prefix + name,
      new TorchTensor("F32", shape, fromFloat32(new Float32Array(n), shape).data),
    );
  }
  return sd;
}

Deno.test("fromTorchCheckpoint() strips DDP's module. and torch.compile's _orig_mod. prefixes", () => {
  for (const prefix of ["module.", "_orig_mod.", "module._orig_mod.", "module.module."]) {
    const file = fromTorchCheckpoint(
      new PyDict([["model", gptStateDict(prefix)], ["training_steps", 0n]]),
      "x.pt",
    );
    assert.ok(file.tensors.has("model.transformer.blocks.0.attn.c_attn.weight"), prefix);
    assert.equal(file.tensors.size, 9, prefix);
    assert.equal(file.tensors.has("optimizer.exp_avg"), false);
  }
});

Deno.test("fromTorchCheckpoint() refuses what is not a reference checkpoint with one line naming the tensor", () => {
  const cases: [PyValue, RegExp][] = [
    [
      new PyDict([["state_dict", new PyDict()]]),
      /neither "encoder" and "text_head" \(a BST\) nor "model" \(a GPT\) .*\(its keys: state_dict\)/,
    ],
    [
      new PyDict([["model", gptStateDict("", "transformer.norm.weight")]]),
      /missing tensors "model.transformer.norm.weight"/,
    ],
    [
      new PyDict([["model", gptStateDict("", undefined, "lm_head.weight")]]),
      /tensor "model.lm_head.weight" has shape \[27, 32\], expected \[26, 32\]/,
    ],
    [new PyDict([["model", new PyDict([["x", 1n]])]]), /"model.x" is int 1, not a tensor/],
    [
      new PyDict([["model", gptStateDict("")], ["training_steps", -1n]]),
      /"training_steps" is int -1/,
    ],
    [
      new PyDict([["model", gptStateDict("")], [
        "optimizer",
        new PyDict([["state", new PyDict()], ["param_groups", [
          new PyDict([["params", [0n, 1n]]]),
        ]]]),
      ]]),
      /the optimizer has 1 param groups of \[2\] parameters, expected 2 groups: the 6 tensors with weight decay, then the 3 without/,
    ],
  ];
  for (const [value, want] of cases) {
    assert.throws(() => fromTorchCheckpoint(value, "x.pt"), (e: Error) => {
      assert.match(e.message, /^Cannot load checkpoint "x.pt": /);
      assert.match(e.message, want);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("fromTorchCheckpoint() refuses an optimizer state that does not fit the model", async () => {
  const { raw } = await load("gpt_compiled");
  const state = optimizerState(raw);
  const entry = state.get(3n) as PyDict;
  const saved = entry.get("step");
  entry.set("step", new TorchTensor("F32", [], fromFloat32(new Float32Array([9]), []).data));
  assert.throws(
    () => fromTorchCheckpoint(raw, "x.pt"),
    /optimizer state 3 \(model.transformer.blocks.0.mlp.up.gate_up.weight\) has step 9, parameter 0 has 3/,
  );
  entry.set("step", saved!);
  const avg = entry.get("exp_avg") as TorchTensor;
  entry.set("exp_avg", new TorchTensor("F32", [2], avg.data.subarray(0, 8)));
  assert.throws(
    () => fromTorchCheckpoint(raw, "x.pt"),
    /optimizer state 3 \(model.transformer.blocks.0.mlp.up.gate_up.weight\) "exp_avg" has shape \[2\], the parameter has \[256, 32\]/,
  );
  entry.set("exp_avg", avg);
  state.delete(8n);
  assert.throws(
    () => fromTorchCheckpoint(raw, "x.pt"),
    /the optimizer state has entries for 8 of its 9 parameters/,
  );
});

Deno.test("toTorchCheckpoint() writes this project's checkpoints with the config's optimizer settings, or none without moments", () => {
  const sd = gptStateDict("");
  const file = fromTorchCheckpoint(new PyDict([["model", sd], ["training_steps", 4n]]), "x.pt");
  // weights only, no settings: "optimizer": None (loads for inference)
  const plain = toTorchCheckpoint(
    { tensors: file.tensors, metadata: { step: "4" } },
    "x",
  ) as PyDict;
  assert.equal(plain.get("optimizer"), null);
  const table = flatParamTable(
    modelShapeOf(new Map([...file.tensors].map(([n, t]) => [n, t.shape])), "x").specs,
  );
  const moments = new Float32Array(table.size).fill(0.5);
  const tensors = new Map(file.tensors);
  tensors.set("optimizer.exp_avg", fromFloat32(moments, [table.size]));
  tensors.set("optimizer.exp_avg_sq", fromFloat32(moments, [table.size]));
  const ours = { tensors, metadata: { step: "4", model: "gpt", config: "{}" } };
  assert.throws(
    () => toTorchCheckpoint(ours, "ours.safetensors"),
    /^Error: Cannot convert checkpoint "ours.safetensors": the optimizer's settings .* pass --config$/,
  );
  const out = toTorchCheckpoint(ours, "ours.safetensors", {
    lr: 0.002,
    beta1: 0.9,
    beta2: 0.95,
    weightDecay: 0.1,
  }) as PyDict;
  const opt = out.get("optimizer") as PyDict;
  const groups = opt.get("param_groups") as PyDict[];
  assert.equal(groups.length, 2);
  assert.deepEqual(groups[0].get("params"), [0n, 1n, 2n, 3n, 4n, 5n]);
  assert.deepEqual(groups[1].get("params"), [6n, 7n, 8n]);
  assert.equal(groups[0].get("weight_decay"), 0.1);
  assert.equal(groups[1].get("weight_decay"), 0);
  assert.deepEqual((groups[0].get("betas") as PyTuple).items, [0.9, 0.95]);
  const s0 = (opt.get("state") as PyDict).get(0n) as PyDict;
  assert.deepEqual(toFloat32(s0.get("step") as TorchTensor), new Float32Array([4]));
  assert.deepEqual((s0.get("exp_avg") as TorchTensor).shape, [26, 32]);
  assert.equal(out.get("training_steps"), 4n);
  assert.deepEqual([...(out.get("bst_webgpu") as PyDict)], [["step", "4"], ["model", "gpt"], [
    "config",
    "{}",
  ]]);
});

Deno.test("a checkpoint of this project's layout is written as the .pt the reference's load_checkpoint (strict) loaded", async () => {
  // ours_to_pt.ts builds it; generate.py loaded these exact bytes with the reference's
  // load_checkpoint, optimizer included, and recorded their sha256.
  const { oursToPt } = await import("../fixtures/torch/ours_to_pt.ts");
  const bytes = await oursToPt();
  const want = parseSafetensors(
    await Deno.readFile(new URL("ours_gpt.expected.safetensors", dir)),
    "ours_gpt.expected",
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(hex, want.metadata.sha256);
  const back = parseTorchCheckpoint(bytes, "ours_gpt.pt") as PyDict;
  assert.equal(back.get("training_steps"), BigInt(want.metadata.training_steps));
  const groups = (back.get("optimizer") as PyDict).get("param_groups") as PyDict[];
  assert.deepEqual(groups.map((g) => g.get("weight_decay")), [0.1, 0]);
  assert.deepEqual(groups.map((g) => g.get("lr")), [0.001, 0.001]);
});
