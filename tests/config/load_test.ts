import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  configToYaml,
  defaultsFilePath,
  loadConfig,
  parseDotlist,
  readConfigFile,
} from "../../src/config/load.ts";
import { parseYaml } from "../../src/config/_yaml.ts";
import { ConfigError, FloatLiteral, validateConfig } from "../../src/config/schema.ts";

const configDir = fileURLToPath(new URL("../../config/", import.meta.url));
const STARGRAPH = join(configDir, "bst_stargraph_defaults.yaml");
const TINYSTORIES = join(configDir, "bst_tinystories_defaults.yaml");

/** Writes `files` into a fresh temporary directory and runs `fn` with its path. */
async function withFiles(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bst_config_test_" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, name), text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts that `promise` rejects with a ConfigError whose message is `message` or matches it. */
async function rejectsWith(promise: Promise<unknown>, message: string | RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("loadConfig() with no file gives the reference defaults plus seed 1337", async () => {
  const c = await loadConfig();
  assert.equal(c.use_bst, true);
  assert.equal(c.seed, 1337);
  assert.deepEqual(c.trainer, {
    train_batches: 600000,
    val_batches: 128,
    val_only: false,
    log_interval: 10,
    val_interval: 2000,
    save_last_checkpoint: true,
    save_best_checkpoint: true,
    always_save_checkpoint: false,
    save_recovery_checkpoint: -1,
    keep_checkpoint_steps: [],
    out_dir: "out",
    init_from: "scratch",
    log_to_file: false,
    log_to_wandb: false,
    wandb_project: "bst-tinystories",
    compile: true,
    use_fused_kernels: false,
    garbage_collect: -1,
    print_samples: false,
    sampling_mode: "AR",
    precision: "32-true",
  });
  assert.deepEqual(c.data, {
    dataset: "tinystories",
    effective_batch_size: 256,
    gradient_accum_steps: 1,
    pair_batch_size: 32768,
    num_workers: 0,
    goal_range: [25, 75],
    tinystories_path: "",
    tinystories_val_path: "",
    pretokenized_data_path: "",
    pretokenized_train_data: [],
    pretokenized_val_data: [],
    tokenizer_name_or_path: "",
    tokenizer_eos_id: -1,
    stargraph_data_path: "",
    stargraph_max_nodes: 50,
  });
  assert.deepEqual(c.model, {
    n_layer: 8,
    n_head: 8,
    n_embd: 768,
    dropout: 0.0,
    bias: false,
    vocab_size: 1000,
    block_size: 256,
    context_length: 0,
    bst_pair_minimum_gap: 1,
    bst_pair_maximum_gap: -1,
    bst_pair_subsample_rate: 1.0,
    bst_single_gap_prediction_mode: "eos",
    gpt_mode: "next_token",
  });
  assert.deepEqual(c.optimizer, {
    learning_rate: 0.0003,
    weight_decay: 0.1,
    beta1: 0.9,
    beta2: 0.95,
    grad_clip: 1.0,
  });
  assert.deepEqual(c.lr_scheduler, {
    decay_lr: true,
    warmup_iters: 1,
    lr_decay_iters: 600000,
    min_lr: 0.0002,
  });
});

Deno.test("loadConfig() reads bst_stargraph_defaults.yaml with the reference values", async () => {
  const c = await loadConfig({ configFile: STARGRAPH });
  assert.equal(c.use_bst, true);
  assert.equal(c.trainer.train_batches, 5000);
  assert.equal(c.trainer.val_batches, 200);
  assert.equal(c.trainer.log_interval, 1);
  assert.equal(c.trainer.val_interval, 2000);
  assert.equal(c.trainer.compile, true);
  assert.equal(c.trainer.wandb_log, false);
  assert.equal(c.trainer.wandb_project, "");
  assert.deepEqual(c.data, {
    dataset: "stargraph",
    effective_batch_size: 256,
    gradient_accum_steps: 1,
    pair_batch_size: 32768,
    num_workers: 0,
    goal_range: [25, 75],
    tinystories_path: "",
    tinystories_val_path: "",
    pretokenized_data_path: "",
    pretokenized_train_data: [],
    pretokenized_val_data: [],
    tokenizer_name_or_path: "",
    tokenizer_eos_id: -1,
    stargraph_data_path: "data/stargraph/graph_5_5_sample_8000000.txt",
    stargraph_max_nodes: 50,
    pair_accum_steps: 1,
  });
  assert.deepEqual(
    [c.model.n_layer, c.model.n_head, c.model.n_embd, c.model.dropout, c.model.bias],
    [6, 8, 768, 0, false],
  );
  assert.deepEqual(
    [c.model.vocab_size, c.model.block_size, c.model.context_length, c.model.gpt_mode],
    [0, 1024, 0, "next_token"],
  );
  assert.equal(c.model.bst_pair_minimum_gap, 2);
  assert.deepEqual(c.optimizer, {
    learning_rate: 1e-4,
    weight_decay: 0,
    beta1: 0.9,
    beta2: 0.95,
    grad_clip: null,
  });
  assert.deepEqual(c.lr_scheduler, {
    decay_lr: false,
    warmup_iters: 1,
    lr_decay_iters: 600000,
    min_lr: 0.0002,
  });
});

Deno.test("loadConfig() reads bst_tinystories_defaults.yaml with the reference values (out_dir under out/)", async () => {
  const c = await loadConfig({ configFile: TINYSTORIES });
  assert.deepEqual(
    [c.trainer.train_batches, c.trainer.val_batches, c.trainer.log_interval],
    [100000, -1, 10],
  );
  assert.equal(c.trainer.val_interval, 1000);
  // The one departure: the train task writes under out/ (the reference: output/).
  assert.equal(c.trainer.out_dir, "out/bst-tinystories");
  assert.equal(c.trainer.log_to_file, true);
  assert.equal(c.trainer.log_to_wandb, true);
  assert.equal(c.trainer.wandb_project, "bst-tinystories");
  assert.equal(c.trainer.print_samples, false);
  assert.equal(c.trainer.sampling_mode, "AR");
  assert.equal(c.data.dataset, "tinystories");
  assert.equal(c.data.effective_batch_size, 256);
  assert.equal(c.data.pair_batch_size, 32768);
  assert.deepEqual(c.data.goal_range, [25, 75]);
  assert.deepEqual(
    [c.model.n_layer, c.model.n_head, c.model.n_embd, c.model.vocab_size, c.model.block_size],
    [8, 8, 768, 1000, 256],
  );
  assert.equal(c.model.bst_pair_minimum_gap, 1);
  assert.equal(c.model.bst_single_gap_prediction_mode, "eos");
  assert.deepEqual(c.optimizer, {
    learning_rate: 0.0003,
    weight_decay: 0.1,
    beta1: 0.9,
    beta2: 0.95,
    grad_clip: 1.0,
  });
  assert.deepEqual(c.lr_scheduler, {
    decay_lr: true,
    warmup_iters: 1,
    lr_decay_iters: 600000,
    min_lr: 0.0002,
  });
});

Deno.test("loadConfig() applies nested, list and null overrides after the config file", async () => {
  const c = await loadConfig({
    configFile: TINYSTORIES,
    overrides: [
      "model.n_layer=2",
      "data.goal_range=[10,20]",
      "optimizer.grad_clip=null",
      "data.tokenizer_name_or_path=null",
      "optimizer.learning_rate=1e-3",
      "optimizer.weight_decay=0",
      "trainer.keep_checkpoint_steps=[2000, 4000]",
      "data.pretokenized_train_data=[[a.npy, 2], b.npy]",
      "trainer.out_dir='123'",
      "use_bst=false",
      "seed=7",
      "model.n_layer=3",
    ],
  });
  assert.equal(c.model.n_layer, 3, "later override wins");
  assert.equal(c.model.n_head, 8, "sibling keys kept");
  assert.deepEqual(c.data.goal_range, [10, 20]);
  assert.equal(c.optimizer.grad_clip, null);
  assert.equal(c.data.tokenizer_name_or_path, null);
  assert.equal(c.optimizer.learning_rate, 0.001);
  assert.equal(c.optimizer.weight_decay, 0);
  assert.deepEqual(c.trainer.keep_checkpoint_steps, [2000, 4000]);
  assert.deepEqual(c.data.pretokenized_train_data, [["a.npy", 2], "b.npy"]);
  assert.equal(c.trainer.out_dir, "123");
  assert.equal(c.use_bst, false);
  assert.equal(c.seed, 7);
  assert.equal(c.trainer.out_dir, "123");
});

Deno.test("loadConfig() overrides derived model sizes", async () => {
  const c = await loadConfig({
    configFile: STARGRAPH,
    overrides: ["model.vocab_size=52", "model.block_size=46", "model.context_length=32"],
  });
  assert.deepEqual([c.model.vocab_size, c.model.block_size, c.model.context_length], [52, 46, 32]);
});

Deno.test("loadConfig() rejects a wrong-typed override naming the key and the override", async () => {
  await rejectsWith(
    loadConfig({ overrides: ["model.n_layer=six"] }),
    'Config key "model.n_layer" must be an integer, got "six" (from override model.n_layer=six)',
  );
  await rejectsWith(
    loadConfig({ overrides: ["model.n_layer=6.0"] }),
    'Config key "model.n_layer" must be an integer, got 6.0 (from override model.n_layer=6.0)',
  );
  await rejectsWith(
    loadConfig({ overrides: ["model.n_layer=null"] }),
    'Config key "model.n_layer" must be an integer, got null (from override model.n_layer=null)',
  );
  await rejectsWith(
    loadConfig({ overrides: ["trainer.init_from=gpt2"] }),
    'Config key "trainer.init_from" must be "scratch" or "resume", got "gpt2" ' +
      "(from override trainer.init_from=gpt2)",
  );
});

Deno.test("loadConfig() rejects an unknown override key and a malformed override", async () => {
  await rejectsWith(
    loadConfig({ overrides: ["model.n_embed=3"] }),
    'Unknown config key "model.n_embed" in override model.n_embed=3 (did you mean "model.n_embd"?)',
  );
  await rejectsWith(
    loadConfig({ overrides: ["model.n_layer"] }),
    'Override "model.n_layer" must have the form key=value, e.g. model.n_layer=6',
  );
  await rejectsWith(
    loadConfig({ overrides: ["data.goal_range=[10,"] }),
    /^Cannot parse override "data\.goal_range=\[10,": /,
  );
});

Deno.test("loadConfig() names the file and key of an unknown key or wrong type", async () => {
  await withFiles({
    "unknown.yaml": "model:\n  n_layer: 2\n  n_embed: 64\n",
    "wrong.yaml": "trainer:\n  train_batches: many\n",
    "float.yaml": "model:\n  dropout: 1\n  n_layer: 4.0\n",
  }, async (dir) => {
    const unknown = join(dir, "unknown.yaml");
    await rejectsWith(
      loadConfig({ configFile: unknown }),
      `Unknown config key "model.n_embed" in ${unknown} (did you mean "model.n_embd"?)`,
    );
    const wrong = join(dir, "wrong.yaml");
    await rejectsWith(
      loadConfig({ configFile: wrong }),
      `Config key "trainer.train_batches" must be an integer, got "many" (from ${wrong})`,
    );
    const float = join(dir, "float.yaml");
    await rejectsWith(
      loadConfig({ configFile: float }),
      `Config key "model.n_layer" must be an integer, got 4.0 (from ${float})`,
    );
  });
});

Deno.test("loadConfig() reports malformed YAML with the file and line", async () => {
  await withFiles({
    "bad.yaml": "model:\n  n_layer: 2\n    n_head: 4\n",
    "flow.yaml": "data:\n  goal_range: [10, 20\nmodel:\n  n_layer: 2\n",
    "two.yaml": "seed: 1\n---\nseed: 2\n",
  }, async (dir) => {
    const bad = join(dir, "bad.yaml");
    await rejectsWith(
      loadConfig({ configFile: bad }),
      new RegExp(`^Cannot parse config file "${RegExp.escape(bad)}" at line 3, column \\d+: .+`),
    );
    const flow = join(dir, "flow.yaml");
    await rejectsWith(
      loadConfig({ configFile: flow }),
      new RegExp(`^Cannot parse config file "${RegExp.escape(flow)}" at line \\d+, column \\d+: `),
    );
    const two = join(dir, "two.yaml");
    await rejectsWith(
      loadConfig({ configFile: two }),
      `Cannot parse config file "${two}": expected one YAML document, found 2`,
    );
  });
});

Deno.test("loadConfig() reports a missing config file or defaults file by path", async () => {
  await rejectsWith(
    loadConfig({ configFile: "config/does_not_exist.yaml" }),
    'Cannot read config file "config/does_not_exist.yaml": no such file',
  );
  await rejectsWith(
    loadConfig({ defaultsFile: "nowhere/defaults.yaml" }),
    'Cannot read config file "nowhere/defaults.yaml": no such file',
  );
});

Deno.test("loadConfig() requires a complete defaults file and accepts an empty config", async () => {
  await withFiles({
    "defaults.yaml": "use_bst: true\n",
    "empty.yaml": "# nothing here\n",
    "list.yaml": "- 1\n",
  }, async (dir) => {
    const defaults = join(dir, "defaults.yaml");
    await rejectsWith(
      loadConfig({ defaultsFile: defaults }),
      `Config key "seed" is missing (from ${defaults})`,
    );
    const empty = await loadConfig({ configFile: join(dir, "empty.yaml") });
    assert.deepEqual(empty, await loadConfig());
    const list = join(dir, "list.yaml");
    await rejectsWith(
      loadConfig({ configFile: list }),
      `Config file "${list}" must hold a mapping of keys, got a list or value`,
    );
  });
});

Deno.test("readConfigFile() keeps float literals distinct from integers", async () => {
  const tree = await readConfigFile(STARGRAPH);
  const model = tree.model as Record<string, unknown>;
  assert.deepEqual(model.dropout, new FloatLiteral(0, "0.0"));
  assert.equal(model.n_layer, 6);
  assert.equal((tree.optimizer as Record<string, unknown>).learning_rate, 1e-4);
});

Deno.test("parseDotlist() parses values as YAML scalars and flow lists", () => {
  assert.deepEqual(
    parseDotlist([
      "a.int=6",
      "a.str=six",
      "a.quoted='6'",
      "a.list=[10, 20]",
      "a.null=null",
      "a.empty=",
      "a.bool=true",
      "a.exp=1e-4",
    ]),
    {
      a: {
        int: 6,
        str: "six",
        quoted: "6",
        list: [10, 20],
        null: null,
        empty: null,
        bool: true,
        exp: 1e-4,
      },
    },
  );
  assert.deepEqual(parseDotlist(["x=6.0"]), { x: new FloatLiteral(6, "6.0") });
});

Deno.test("configToYaml() is deterministic and loads back to the same config", async () => {
  for (const configFile of [undefined, STARGRAPH, TINYSTORIES]) {
    const config = await loadConfig({
      configFile,
      overrides: ["data.pretokenized_train_data=[[a.npy, 2], 'b,c.npy']", "trainer.out_dir=''"],
    });
    const text = configToYaml(config);
    assert.equal(configToYaml(structuredClone(config)), text);
    assert.deepEqual(validateConfig(parseYaml(text), "dump"), config);
    const commented = configToYaml(config, { comments: true });
    assert.deepEqual(validateConfig(parseYaml(commented), "dump"), config);
  }
  const text = configToYaml(await loadConfig({ configFile: STARGRAPH }));
  assert.ok(text.startsWith("use_bst: true\nseed: 1337\n\ntrainer:\n  train_batches: 5000\n"));
  for (
    const line of [
      "  dropout: 0.0",
      "  grad_clip: null",
      "  goal_range: [25, 75]",
      "  learning_rate: 0.0001",
      "  wandb_project: ''",
    ]
  ) {
    assert.ok(text.includes(`\n${line}\n`), `missing line ${JSON.stringify(line)}`);
  }
});

Deno.test("defaultsFilePath() points at config/defaults.yaml", () => {
  assert.equal(defaultsFilePath(), join(configDir, "defaults.yaml"));
});

Deno.test("loadConfig() reads bst_tinystories_pretokenized.yaml: the TinyStories run on the README's shards", async () => {
  const pretokenized = await loadConfig({
    configFile: join(configDir, "bst_tinystories_pretokenized.yaml"),
  });
  const tinystories = await loadConfig({ configFile: TINYSTORIES });
  assert.deepEqual(pretokenized.data, {
    ...tinystories.data,
    dataset: "pretokenized",
    pretokenized_data_path: "data/tinystories/tinystories2-ascii",
    pretokenized_train_data: [0, 1, 2, 3, 4, 5, 6].map((i) => `tinystories2_train_00000${i}.npy`),
    pretokenized_val_data: ["tinystories2_val_000000.npy"],
    tokenizer_name_or_path: "",
    tokenizer_eos_id: 1,
  });
  assert.deepEqual({ ...pretokenized, data: null }, { ...tinystories, data: null });
});

Deno.test("loadConfig() reads -0 as 0, so a dumped config loads back equal", async () => {
  const config = await loadConfig({
    overrides: ["lr_scheduler.min_lr=-0.0", "optimizer.weight_decay=-0", "seed=-0"],
  });
  assert.ok(Object.is(config.lr_scheduler.min_lr, 0));
  assert.ok(Object.is(config.optimizer.weight_decay, 0));
  assert.ok(Object.is(config.seed, 0));
  const dir = await Deno.makeTempDir();
  try {
    const dump = join(dir, "dump.yaml");
    await Deno.writeTextFile(dump, configToYaml(config));
    assert.deepEqual(await loadConfig({ configFile: dump }), config);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
