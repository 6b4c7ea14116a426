import assert from "node:assert/strict";
import {
  CONFIG_KEYS,
  ConfigError,
  deriveStargraph,
  FloatLiteral,
  validateConfig,
  validatePartialConfig,
} from "../../src/config/schema.ts";

/** A complete config tree equal to the reference defaults.yaml plus seed. */
function defaultsTree(): Record<string, unknown> {
  return {
    use_bst: true,
    seed: 1337,
    trainer: {
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
    },
    data: {
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
    },
    model: {
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
    },
    optimizer: {
      learning_rate: 0.0003,
      weight_decay: 0.1,
      beta1: 0.9,
      beta2: 0.95,
      grad_clip: 1.0,
    },
    lr_scheduler: { decay_lr: true, warmup_iters: 1, lr_decay_iters: 600000, min_lr: 0.0002 },
  };
}

function layer(section: string, key: string, value: unknown): Record<string, unknown> {
  return { [section]: { [key]: value } };
}

Deno.test("validateConfig() accepts a complete tree and returns it unchanged in value", () => {
  const raw = defaultsTree();
  const config = validateConfig(raw, "test");
  assert.deepEqual(config, raw);
  assert.notEqual(config.model, raw.model);
});

Deno.test("validateConfig() returns keys in CONFIG_KEYS order whatever the input order", () => {
  const raw = defaultsTree();
  const reversed = Object.fromEntries(
    Object.entries(raw).reverse().map((
      [k, v],
    ) => [k, typeof v === "object" ? Object.fromEntries(Object.entries(v!).reverse()) : v]),
  );
  const config = validateConfig(reversed, "test") as unknown as Record<string, object>;
  const dotted = Object.entries(config).flatMap(([k, v]) =>
    typeof v === "object" ? Object.keys(v).map((f) => `${k}.${f}`) : [k]
  );
  assert.deepEqual(
    dotted,
    Object.entries(CONFIG_KEYS).filter(([, s]) => !("optional" in s)).map(([k]) => k),
  );
});

Deno.test("validateConfig() names a missing key and the source", () => {
  const raw = defaultsTree();
  delete (raw.model as Record<string, unknown>).n_head;
  assert.throws(
    () => validateConfig(raw, "config/defaults.yaml"),
    new ConfigError('Config key "model.n_head" is missing (from config/defaults.yaml)'),
  );
});

Deno.test("validateConfig() requires data.tokenizer_eos_id >= 0 for pretokenized data only", () => {
  const tree = defaultsTree();
  const data = tree.data as Record<string, unknown>;
  assert.equal(data.tokenizer_eos_id, -1);
  validateConfig(tree, "defaults"); // star-graph: -1 is fine
  data.dataset = "pretokenized";
  assert.throws(
    () => validateConfig(tree, "config/p.yaml"),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message ===
        'Config key "data.tokenizer_eos_id" must be set to the EOS id of the pretokenized data ' +
          "(1 for TinyStories) when data.dataset is pretokenized, got -1 (from config/p.yaml)",
  );
  data.tokenizer_eos_id = 1;
  assert.equal(validateConfig(tree, "config/p.yaml").data.tokenizer_eos_id, 1);
});

Deno.test("validatePartialConfig() reports an unknown key with the source and a suggestion", () => {
  assert.throws(
    () => validatePartialConfig(layer("model", "n_embed", 768), "config/foo.yaml"),
    new ConfigError(
      'Unknown config key "model.n_embed" in config/foo.yaml (did you mean "model.n_embd"?)',
    ),
  );
  assert.throws(
    () => validatePartialConfig(layer("trainer", "learning_rate", 1), "x.yaml"),
    /Unknown config key "trainer.learning_rate" in x.yaml \(did you mean "optimizer.learning_rate"\?\)/,
  );
  assert.throws(
    () => validatePartialConfig({ zzzzzz: 1 }, "x.yaml"),
    new ConfigError('Unknown config key "zzzzzz" in x.yaml'),
  );
});

Deno.test("validatePartialConfig() rejects wrong types naming the dotted key and source", () => {
  const cases: [Record<string, unknown>, string][] = [
    [layer("model", "n_layer", "six"), 'Config key "model.n_layer" must be an integer, got "six"'],
    [layer("model", "n_layer", 6.5), 'Config key "model.n_layer" must be an integer, got 6.5'],
    [
      layer("model", "n_layer", new FloatLiteral(6, "6.0")),
      'Config key "model.n_layer" must be an integer, got 6.0',
    ],
    [layer("model", "n_layer", null), 'Config key "model.n_layer" must be an integer, got null'],
    [layer("model", "dropout", "0.1"), 'Config key "model.dropout" must be a number, got "0.1"'],
    [layer("model", "dropout", Infinity), 'Config key "model.dropout" must be a number'],
    [layer("model", "bias", "yes"), 'Config key "model.bias" must be true or false, got "yes"'],
    [layer("trainer", "out_dir", 5), 'Config key "trainer.out_dir" must be a string'],
    [layer("trainer", "out_dir", null), 'Config key "trainer.out_dir" must be a string'],
    [
      layer("model", "gpt_mode", "fill"),
      'Config key "model.gpt_mode" must be "next_token" or "fim", got "fill"',
    ],
    [
      layer("data", "dataset", "openwebtext"),
      'Config key "data.dataset" must be one of "stargraph", "tinystories", "pretokenized"',
    ],
    [
      layer("data", "goal_range", [10]),
      'Config key "data.goal_range" must be a list of two integers [low, high], got [10]',
    ],
    [
      layer("trainer", "keep_checkpoint_steps", [1, "2"]),
      'Config key "trainer.keep_checkpoint_steps" must be a list of integers, got [1, "2"]',
    ],
    [
      layer("data", "pretokenized_train_data", [["a.npy", 1, 2]]),
      'Config key "data.pretokenized_train_data" must be a list of file names or [file, weight]',
    ],
    [layer("optimizer", "grad_clip", "off"), 'Config key "optimizer.grad_clip" must be a number'],
    [{ model: 3 }, 'Config key "model" must be a mapping of keys, got 3'],
    [{ seed: true }, 'Config key "seed" must be an integer, got true'],
  ];
  for (const [raw, message] of cases) {
    assert.throws(() => validatePartialConfig(raw, "src.yaml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
      assert.ok(e.message.startsWith(message), `message ${JSON.stringify(e.message)}`);
      assert.ok(e.message.endsWith("(from src.yaml)"), `message ${JSON.stringify(e.message)}`);
      return true;
    });
  }
});

Deno.test("validatePartialConfig() rejects a config that is not a mapping", () => {
  assert.throws(
    () => validatePartialConfig([1, 2], "a.yaml"),
    new ConfigError("Config from a.yaml must be a mapping of keys, got [1, 2]"),
  );
});

Deno.test("validatePartialConfig() normalises floats, nulls and data file lists", () => {
  const out = validatePartialConfig({
    model: { dropout: 0, bst_pair_subsample_rate: new FloatLiteral(1, "1.0") },
    optimizer: { grad_clip: null, learning_rate: 1e-4 },
    data: {
      tokenizer_name_or_path: null,
      pretokenized_train_data: ["a.npy", ["b.npy", 2], ["c.npy", new FloatLiteral(3, "3.0")]],
      goal_range: [10, 20],
    },
  }, "t");
  assert.deepEqual(out, {
    data: {
      goal_range: [10, 20],
      pretokenized_train_data: ["a.npy", ["b.npy", 2], ["c.npy", 3]],
      tokenizer_name_or_path: null,
    },
    model: { dropout: 0, bst_pair_subsample_rate: 1 },
    optimizer: { learning_rate: 1e-4, grad_clip: null },
  });
});

Deno.test("validatePartialConfig() accepts the reference's extra and PyTorch-only keys", () => {
  const out = validatePartialConfig({
    trainer: { wandb_log: false, compile: true, use_fused_kernels: false, garbage_collect: 10 },
    data: { pair_accum_steps: 1, num_workers: 4 },
  }, "t");
  assert.equal(out.trainer?.wandb_log, false);
  assert.equal(out.data?.pair_accum_steps, 1);
  for (const key of ["trainer.wandb_log", "data.pair_accum_steps"] as const) {
    assert.equal(CONFIG_KEYS[key].optional, true);
  }
  for (
    const key of [
      "trainer.compile",
      "trainer.use_fused_kernels",
      "trainer.garbage_collect",
      "data.num_workers",
    ] as const
  ) {
    assert.match(CONFIG_KEYS[key].doc, /no effect/);
  }
});

Deno.test("CONFIG_KEYS documents every key with one line and lists the reference enums", () => {
  for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
    assert.ok(spec.doc.length > 5 && !spec.doc.includes("\n"), `doc of ${key}`);
    assert.ok(!spec.doc.endsWith("."), `doc of ${key} ends with a period`);
  }
  assert.deepEqual(CONFIG_KEYS["trainer.sampling_mode"].values, [
    "AR",
    "beam",
    "goal_cond_plan",
    "reverse_AR",
    "reverse_beam",
    "reverse_goal_cond_plan",
  ]);
  assert.deepEqual(CONFIG_KEYS["trainer.init_from"].values, ["scratch", "resume"]);
  assert.deepEqual(CONFIG_KEYS["data.dataset"].values, [
    "stargraph",
    "tinystories",
    "pretokenized",
  ]);
  assert.deepEqual(CONFIG_KEYS["model.gpt_mode"].values, ["next_token", "fim"]);
  assert.deepEqual(CONFIG_KEYS["model.bst_single_gap_prediction_mode"].values, [
    "eos",
    "next_token",
  ]);
});

Deno.test("deriveStargraph() sets vocab_size, block_size and context_length only", () => {
  const config = validateConfig(defaultsTree(), "t");
  const derived = deriveStargraph(config, { vocabSize: 52, blockSize: 46, contextLength: 32 });
  assert.deepEqual(derived.model, {
    ...config.model,
    vocab_size: 52,
    block_size: 46,
    context_length: 32,
  });
  assert.equal(config.model.vocab_size, 1000);
  assert.throws(
    () => deriveStargraph(config, { vocabSize: -1, blockSize: 46, contextLength: 32 }),
    /vocabSize must be a non-negative integer/,
  );
});

Deno.test("src/config/schema.ts and merge.ts import only each other and the sampling modes", async () => {
  for (const name of ["schema.ts", "merge.ts"]) {
    const text = await Deno.readTextFile(new URL(`../../src/config/${name}`, import.meta.url));
    const statements =
      /^(?:import|export)\s+(?:type\s+)?(?:\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+)\s+from\s*["']([^"']+)["']/gm;
    const bare = /^import\s*["']([^"']+)["']/gm;
    const dynamic = /\bimport\s*\(\s*["']([^"']+)["']/g;
    const specifiers = [statements, bare, dynamic].flatMap((re) =>
      [...text.matchAll(re)].map((m) => m[1])
    );
    if (name === "merge.ts") assert.deepEqual(specifiers, ["./schema.ts"]);
    for (const s of specifiers) {
      assert.ok(
        ["./schema.ts", "./merge.ts", "../core/sampling_modes.ts"].includes(s),
        `${name} imports "${s}"`,
      );
    }
    assert.ok(!/npm:|jsr:|node:|https?:\/\//.test(text.replace(/\/\/.*|\/\*[\s\S]*?\*\//g, "")));
  }
});
