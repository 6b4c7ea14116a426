import assert from "node:assert/strict";
import { dotlistToTree, mergeConfig, splitDotlistItem } from "../../src/config/merge.ts";
import { ConfigError } from "../../src/config/schema.ts";

Deno.test("mergeConfig() merges mappings deeply and replaces lists and scalars", () => {
  const base = {
    use_bst: true,
    model: { n_layer: 8, n_head: 8 },
    data: { goal_range: [25, 75], pretokenized_train_data: [["a.npy", 2]] },
  };
  const override = {
    use_bst: false,
    model: { n_layer: 6 },
    data: { goal_range: [10], pretokenized_train_data: [] },
    optimizer: { grad_clip: null },
  };
  const merged = mergeConfig(base, override);
  assert.deepEqual(merged, {
    use_bst: false,
    model: { n_layer: 6, n_head: 8 },
    data: { goal_range: [10], pretokenized_train_data: [] },
    optimizer: { grad_clip: null },
  });
  assert.deepEqual(base.model, { n_layer: 8, n_head: 8 }, "base not modified");
  assert.deepEqual(override.model, { n_layer: 6 }, "override not modified");
});

Deno.test("mergeConfig() shares no lists or mappings with its inputs", () => {
  const base = { data: { goal_range: [25, 75] }, trainer: { keep_checkpoint_steps: [1] } };
  const override = { trainer: { keep_checkpoint_steps: [2000, 4000] } };
  const merged = mergeConfig(base, override) as {
    data: { goal_range: number[] };
    trainer: { keep_checkpoint_steps: number[] };
  };
  merged.data.goal_range.push(1);
  merged.trainer.keep_checkpoint_steps.push(1);
  assert.deepEqual(base.data.goal_range, [25, 75]);
  assert.deepEqual(override.trainer.keep_checkpoint_steps, [2000, 4000]);
});

Deno.test("mergeConfig() replaces a mapping by null and keeps __proto__ as a plain key", () => {
  assert.deepEqual(mergeConfig({ model: { n_layer: 1 } }, { model: null }), { model: null });
  const evil = JSON.parse('{"__proto__": {"polluted": 1}}');
  const merged = mergeConfig({}, evil);
  assert.equal(Object.getPrototypeOf(merged), Object.prototype);
  assert.deepEqual(Object.keys(merged), ["__proto__"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("splitDotlistItem() splits at the first = and checks the key", () => {
  assert.deepEqual(splitDotlistItem("a.b=c=d"), { key: "a.b", valueText: "c=d" });
  assert.deepEqual(splitDotlistItem("seed="), { key: "seed", valueText: "" });
  assert.throws(
    () => splitDotlistItem("model.n_layer"),
    new ConfigError('Override "model.n_layer" must have the form key=value, e.g. model.n_layer=6'),
  );
  for (const bad of ["=3", "a..b=1", "data.goal_range[0]=1", "+model.x=1", "a.b =1"]) {
    assert.throws(() => splitDotlistItem(bad), /has an invalid key|must have the form/, bad);
  }
});

Deno.test("dotlistToTree() nests keys, later items win, values come from the parser", () => {
  const seen: string[] = [];
  const tree = dotlistToTree(
    ["model.n_layer=6", "model.n_head=4", "model.n_layer=2", "use_bst=false"],
    (text, item) => {
      seen.push(item);
      return JSON.parse(text);
    },
  );
  assert.deepEqual(tree, { model: { n_layer: 2, n_head: 4 }, use_bst: false });
  assert.equal(seen.length, 4);
});
