import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { gptConformance } from "../../src/conformance/conformance.ts";
import { fimLossMask, GPT, gptParamSpecs } from "../../src/models/gpt.ts";
import { gptPromptAndGoal } from "../../src/inference/greedy.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";

async function fixture(name: string) {
  const bytes = await Deno.readFile(new URL(`../fixtures/${name}`, import.meta.url));
  return parseSafetensors(bytes, name);
}

for (const name of ["gpt_tiny.safetensors", "gpt_fim_tiny.safetensors"]) {
  Deno.test(`GPT matches every check of the PyTorch fixture ${name}`, async () => {
    const checks = await gptConformance(await getGpu(), await fixture(name), name);
    for (const c of checks) {
      if (!c.ok) throw new Error(`${c.name}: max abs err ${c.max_abs_err} (${c.error ?? ""})`);
    }
    const worst = Math.max(...checks.map((c) => c.max_abs_err ?? 0));
    console.log(`${name}: ${checks.length} checks, worst max abs err ${worst.toExponential(2)}`);
    assert.ok(checks.length > 30);
    assert.equal(checks.some((c) => c.name === "fim_loss_mask"), name.includes("fim"));
  });

  Deno.test(`GPT in 16-mixed matches ${name} within the f16 tolerance, not the f32 one`, async () => {
    const checks = await gptConformance(await getGpu(), await fixture(name), name, {
      precision: "16-mixed",
    });
    assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.name), []);
    // f16 operands really are in play: the logits are off by more than the f32 tolerance.
    const logits = checks.find((c) => c.name === "logits")!;
    assert.ok(logits.max_abs_err! > 1e-3, `logits max abs err ${logits.max_abs_err}`);
  });
}

Deno.test("gptParamSpecs() lists the fixture's parameters in PyTorch order", async () => {
  const f = await fixture("gpt_tiny.safetensors");
  const c = JSON.parse(f.metadata.config);
  const specs = gptParamSpecs({
    vocabSize: c.vocab_size,
    eosTokenId: c.eos_token_id,
    nLayer: c.n_layer,
    nHead: c.n_head,
    nEmbd: c.n_embd,
    blockSize: c.block_size,
    bias: false,
    mode: "next_token",
    fimTokenId: -1,
  });
  const want = [...f.tensors].filter(([n]) => n.startsWith("model.")).map(([n, t]) => [n, t.shape]);
  assert.deepEqual(specs.map((s) => [s.name, s.shape]), want);
});

Deno.test("fimLossMask() follows the reference's vectorised rules", () => {
  const E = 9, F = 8;
  // Expected values from the reference formula run in numpy. The vectorised version treats a
  // row as a slice of alternating <fim> … EOS spans, so tokens before the first <fim> count,
  // <fim> tokens never do, and the row's first EOS never does.
  const row = [1, 2, F, 3, 4, E, 5, F, 6, E];
  const mask = fimLossMask(row, 1, row.length, E, F);
  assert.deepEqual([...mask], [1, 1, 0, 1, 1, 0, 1, 0, 1, 1]);
  assert.deepEqual([...fimLossMask([1, E, 2, E], 1, 4, E, F)], [1, 0, 0, 1]);
});

Deno.test("GPT rejects a FIM config without a FIM token", async () => {
  const gpu = await getGpu();
  await assert.rejects(
    () =>
      GPT.create(gpu, {
        vocabSize: 10,
        eosTokenId: 9,
        nLayer: 1,
        nHead: 2,
        nEmbd: 32,
        blockSize: 8,
        bias: false,
        mode: "fim",
        fimTokenId: -1,
      }),
    /FIM mode needs a fim token id/,
  );
});

Deno.test("gptPromptAndGoal() lays out next-token and FIM prompts like the reference", () => {
  const E = 9, F = 8;
  assert.deepEqual(gptPromptAndGoal("next_token", [1, 2], [5, 6], E, F), {
    prompt: [E, 1, 2],
    goal: [E],
  });
  assert.deepEqual(gptPromptAndGoal("fim", [1, 2], [5, 6], E, F), {
    prompt: [E, 5, 6, F, 1, 2],
    goal: [E],
  });
});
