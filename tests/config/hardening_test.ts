import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpointConfig, loadConfig } from "../../src/config/load.ts";
import { CONFIG_LIMITS, excerpt } from "../../src/config/limits.ts";
import { rangeProblem } from "../../src/config/ranges.ts";
import { ConfigError } from "../../src/config/schema.ts";

/** A YAML flow list nesting `levels` levels of `width` aliases each (about 420 bytes at 9×10). */
function aliasBomb(levels: number, width: number): string {
  const parts = [`&l0 [${Array(width).fill(1).join(",")}]`];
  for (let i = 1; i < levels; i++) {
    parts.push(`&l${i} [${Array(width).fill(`*l${i - 1}`).join(",")}]`);
  }
  return `[${parts.join(", ")}]`;
}

async function rejects(p: Promise<unknown>, pattern: RegExp, maxLength = 400): Promise<string> {
  let message = "";
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    message = e.message;
    return true;
  });
  assert.match(message, pattern);
  assert.ok(!message.includes("\n"), `one line: ${message}`);
  assert.ok(message.length <= maxLength, `short: ${message.length} characters`);
  return message;
}

Deno.test("loadConfig() refuses a YAML alias bomb in an override within milliseconds", async () => {
  const started = performance.now();
  await rejects(
    loadConfig({ overrides: [`data.goal_range=${aliasBomb(9, 10)}`] }),
    /^Cannot parse override "data\.goal_range=\[&l0.*: aliases exceeded maxAliases \(64\)/,
  );
  // Fewer aliases than the parser's limit still expand past the value limit: refused too.
  await rejects(
    loadConfig({ overrides: [`data.goal_range=${aliasBomb(5, 10)}`] }),
    /^Config from override ".*" \(\d+ characters\) is too large: more than 10000 values/,
  );
  assert.ok(performance.now() - started < 2000);
});

Deno.test("loadConfig() refuses a YAML alias bomb and oversized files naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bomb = join(dir, "bomb.yaml");
    await Deno.writeTextFile(bomb, `data:\n  goal_range: ${aliasBomb(9, 10)}\n`);
    await rejects(
      loadConfig({ configFile: bomb }),
      new RegExp(`^Cannot parse config file "${bomb}" at line 2, column \\d+: aliases exceeded`),
    );
    const wide = join(dir, "wide.yaml");
    await Deno.writeTextFile(wide, `data:\n  goal_range: ${aliasBomb(3, 30)}\n`);
    await rejects(
      loadConfig({ configFile: wide }),
      new RegExp(`^Config from ${wide} is too large: more than 10000 values`),
    );
    const big = join(dir, "big.yaml");
    await Deno.writeTextFile(big, "# padding\n".repeat(CONFIG_LIMITS.fileBytes / 10 + 1));
    await rejects(
      loadConfig({ configFile: big }),
      /^Cannot read config file ".*big\.yaml": file is larger than the limit of 1048576 bytes$/,
    );
    const deep = join(dir, "deep.yaml");
    await Deno.writeTextFile(deep, `data: ${"[".repeat(40)}${"]".repeat(40)}\n`);
    await rejects(loadConfig({ configFile: deep }), /nesting exceeded maxDepth \(16\)/);
    const longString = join(dir, "long.yaml");
    await Deno.writeTextFile(longString, `trainer:\n  out_dir: ${"o".repeat(100_000)}\n`);
    await rejects(
      loadConfig({ configFile: longString }),
      /has a string of 100000 characters, more than the limit of 4096: "o+…" \(100000 char/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() refuses an override key of 30,000 names without overflowing", async () => {
  const key = Array(30_000).fill("a").join(".");
  await rejects(
    loadConfig({ overrides: [`${key}=1`] }),
    /^Override "a\.a\.a.*…" \(60001 characters\) is longer than the limit of 16384 characters$/,
  );
  await rejects(
    loadConfig({ overrides: [`${key.slice(0, 8001)}=1`] }),
    /^Override "a\.a\.a.*…" \(8003 characters\) has a key of 4001 names, more than the limit of 8$/,
  );
  await rejects(
    loadConfig({ overrides: [`model.${"n".repeat(200)}=1`] }),
    /has a key name longer than 128 characters/,
  );
});

Deno.test("loadConfig() rejects keys named after Object.prototype members", async () => {
  for (const item of ["toString=1", "constructor=1", "model.hasOwnProperty=1", "__proto__=1"]) {
    await rejects(loadConfig({ overrides: [item] }), /^Unknown config key "/);
  }
  const dir = await Deno.makeTempDir();
  try {
    for (const text of ["constructor: 1\n", "model:\n  __proto__: 1\n", "valueOf: {}\n"]) {
      const file = join(dir, "proto.yaml");
      await Deno.writeTextFile(file, text);
      await rejects(loadConfig({ configFile: file }), /^Unknown config key "/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() quotes at most a short excerpt of a huge rejected override", async () => {
  const huge = `model.n_layer=${"x".repeat(2_000_000)}`;
  await rejects(loadConfig({ overrides: [huge] }), /is longer than the limit of 16384/, 200);
  const wrong = `model.n_layer=[${Array(3000).fill(7).join(",")}]`;
  const message = await rejects(
    loadConfig({ overrides: [wrong] }),
    /^Config key "model\.n_layer" must be an integer, got \[7, 7, .*\.\.\. \(from override "model\.n_layer=\[7,7.*…" \(\d+ characters\)\)$/,
    300,
  );
  assert.ok(message.length < 300);
  assert.equal(excerpt("a\nb"), '"a\\nb"');
});

Deno.test("loadConfig() checks each numeric key's range naming the key and the source", async () => {
  const cases: [string, RegExp][] = [
    ["trainer.train_batches=-1", /"trainer\.train_batches" must be from 1 to 2147483647, got -1/],
    ["trainer.train_batches=0", /"trainer\.train_batches" must be from 1/],
    ["data.effective_batch_size=0", /"data\.effective_batch_size" must be from 1/],
    ["optimizer.learning_rate=-0.001", /"optimizer\.learning_rate" must be 0 or more/],
    ["trainer.val_interval=-5", /"trainer\.val_interval" must be from 1/],
    ["trainer.log_interval=0", /"trainer\.log_interval" must be from 1/],
    ["data.gradient_accum_steps=-2", /"data\.gradient_accum_steps" must be from 1/],
    ["trainer.val_batches=0", /"trainer\.val_batches" must be -1 \(the whole validation set\)/],
    ["trainer.save_recovery_checkpoint=-2", /"trainer\.save_recovery_checkpoint" must be -1/],
    [
      "data.stargraph_max_nodes=2147483648",
      /"data\.stargraph_max_nodes" must be from 1 to 2147483641/,
    ],
    ["model.bst_pair_subsample_rate=1.5", /must be within \[0, 1\], got 1\.5/],
    ["optimizer.beta2=1", /"optimizer\.beta2" must be within \[0, 1\)/],
    ["optimizer.grad_clip=0", /"optimizer\.grad_clip" must be greater than 0, or null/],
    ["data.goal_range=[30,20]", /"data\.goal_range" must be \[low, high\] with low <= high/],
    ["data.tokenizer_eos_id=-2", /"data\.tokenizer_eos_id" must be -1 \(none\) or a token id/],
    ["trainer.keep_checkpoint_steps=[100,0]", /"trainer\.keep_checkpoint_steps" must be a list/],
    ["seed=-1", /"seed" must be within \[0, 4294967295\]/],
    ["model.n_layer=4294967297", /"model\.n_layer" must be from 1 to 2147483647/],
    ["data.pretokenized_train_data=[[a.npy,-1]]", /weights are 0 or more/],
  ];
  for (const [item, pattern] of cases) {
    const message = await rejects(loadConfig({ overrides: [item] }), pattern);
    assert.ok(message.endsWith(`(from override ${item})`), message);
  }
  // The values the reference gives a meaning below 1 stay valid.
  const c = await loadConfig({
    overrides: [
      "trainer.val_batches=-1",
      "trainer.save_recovery_checkpoint=0",
      "trainer.garbage_collect=-1",
      "data.tokenizer_eos_id=-1",
      "model.bst_pair_maximum_gap=-1",
      "optimizer.grad_clip=null",
      "optimizer.learning_rate=0",
    ],
  });
  assert.equal(c.trainer.val_batches, -1);
});

Deno.test("loadConfig() checks keys against each other on the merged config", async () => {
  await rejects(
    loadConfig({ overrides: ["data.effective_batch_size=10", "data.gradient_accum_steps=3"] }),
    /^Config key "data\.gradient_accum_steps" \(3\) must divide data\.effective_batch_size \(10\) \(from .*defaults\.yaml \+ overrides\)$/,
  );
  await rejects(
    loadConfig({ overrides: ["model.n_embd=100", "model.n_head=8"] }),
    /"model\.n_embd" \(100\) must be divisible by model\.n_head \(8\)/,
  );
  await rejects(
    loadConfig({ overrides: ["model.n_embd=24", "model.n_head=8"] }),
    /"model\.n_embd" \(24\) \/ model\.n_head \(8\) must be even/,
  );
  await rejects(
    loadConfig({ overrides: ["model.bst_pair_minimum_gap=3", "model.bst_pair_maximum_gap=2"] }),
    /"model\.bst_pair_maximum_gap" \(2\) must be <= 0 \(the block size\) or at least/,
  );
  await rejects(
    loadConfig({
      overrides: ["data.dataset=pretokenized", "model.vocab_size=100", "data.tokenizer_eos_id=100"],
    }),
    /"data\.tokenizer_eos_id" \(100\) must be below model\.vocab_size \(100\)/,
  );
});

Deno.test("rangeProblem() accepts every value of the shipped configs", async () => {
  for (
    const file of [
      "stargraph_cpu.yaml",
      "bst_stargraph_defaults.yaml",
      "bst_tinystories_defaults.yaml",
    ]
  ) {
    await loadConfig({ configFile: new URL(`../../config/${file}`, import.meta.url).pathname });
  }
  assert.equal(rangeProblem("model.bst_pair_maximum_gap", -1), undefined);
  assert.equal(rangeProblem("trainer.out_dir", "out"), undefined);
});

Deno.test("loadCheckpointConfig() rejects a stored config that is null, a list or malformed", async () => {
  for (const text of ["null", "[1]", "42", '"x"']) {
    await rejects(
      loadCheckpointConfig({ config: text }, "out/r/ckpt_iter_1.safetensors"),
      /^Checkpoint "out\/r\/ckpt_iter_1\.safetensors" has a metadata field "config" that is not a JSON object/,
    );
  }
  await rejects(
    loadCheckpointConfig({ config: '{"trainer": null}' }, "c.safetensors"),
    /^Config key "trainer" must be a mapping of keys, got null \(from c\.safetensors \(metadata\)\)$/,
  );
  await rejects(
    loadCheckpointConfig({ config: '{"trainer": {"train_batches": -1}}' }, "c.safetensors"),
    /c\.safetensors \(metadata\)/,
  );
});
