import assert from "node:assert/strict";
import { bstParamSpecs, validateBstConfig } from "../../src/models/bst_config.ts";
import { swigluHidden } from "../../src/models/param_specs.ts";
import { bstTiny, tinyConfig } from "../_bst_fixture.ts";

const fixture = await bstTiny();

Deno.test("bstParamSpecs() lists the fixture's parameters in PyTorch order and shapes", () => {
  const want = [...fixture.tensors].filter(([n]) =>
    n.startsWith("encoder.") || n.startsWith("text_head.")
  ).map(([n, t]) => [n, t.shape]);
  const got = bstParamSpecs(tinyConfig(fixture)).map((s) => [s.name, s.shape]);
  assert.deepEqual(got, want);
});

Deno.test("bstParamSpecs() adds biases and LayerNorm biases when bias is true", () => {
  const specs = bstParamSpecs({ ...tinyConfig(fixture), bias: true });
  const names = specs.map((s) => s.name);
  assert.ok(names.includes("encoder.transformer_f.blocks.0.ln_1.bias"));
  assert.ok(names.includes("encoder.transformer_b.blocks.1.attn.c_attn.bias"));
  assert.ok(names.includes("text_head.mlp.2.bias"));
  assert.ok(!names.includes("text_head.lm_head.bias"));
  for (const s of specs) assert.equal(s.decay, s.shape.length >= 2, s.name);
});

Deno.test("swigluHidden() rounds like Python (halves to even)", () => {
  assert.equal(swigluHidden(32), 128);
  assert.equal(swigluHidden(64), 128);
  assert.equal(swigluHidden(128), 384);
  assert.equal(swigluHidden(768), 2048);
  assert.equal(swigluHidden(1536), 4096);
  assert.equal(swigluHidden(24), 0); // 8*24/3/128 = 0.5 -> 0 (Python round)
});

Deno.test("validateBstConfig() names the bad field", () => {
  const ok = tinyConfig(fixture);
  validateBstConfig(ok);
  assert.throws(() => validateBstConfig({ ...ok, nHead: 3 }), /not divisible by n_head 3/);
  assert.throws(() => validateBstConfig({ ...ok, eosTokenId: 23 }), /outside the vocabulary/);
  assert.throws(() => validateBstConfig({ ...ok, nEmbd: 24, nHead: 4 }), /rounds to 0/);
  assert.throws(() => validateBstConfig({ ...ok, nLayer: 0 }), /nLayer must be a positive/);
});
