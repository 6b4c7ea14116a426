import assert from "node:assert/strict";
import {
  buildParamTable,
  PARAM_ALIGN_ELEMENTS,
  paramsFromSafetensors,
  paramsToSafetensors,
} from "../../src/core/param_table.ts";
import {
  fromFloat32,
  parseSafetensors,
  type SafeTensor,
  serializeSafetensors,
  toFloat32,
} from "../../src/io/safetensors.ts";
import { randomArray } from "../_util.ts";

const FIXTURE = new URL("../fixtures/bst_tiny.safetensors", import.meta.url);

const SPECS = [
  { name: "emb.weight", shape: [23, 32] }, // 736 elements
  { name: "ln.weight", shape: [32] },
  { name: "lin.weight", shape: [37, 3], decay: false },
  { name: "scalar", shape: [] },
  { name: "empty", shape: [0, 4] },
  { name: "last.bias", shape: [5], decay: true },
];

Deno.test("buildParamTable() aligns every tensor start to 64 elements, in spec order", () => {
  const table = buildParamTable(SPECS);
  assert.equal(PARAM_ALIGN_ELEMENTS, 64);
  assert.deepEqual(
    table.entries.map((e) => [e.name, e.offset, e.numel, e.decay]),
    [
      ["emb.weight", 0, 736, true],
      ["ln.weight", 768, 32, false],
      ["lin.weight", 832, 111, false],
      ["scalar", 960, 1, false],
      ["empty", 1024, 0, true],
      ["last.bias", 1024, 5, true],
    ],
  );
  assert.equal(table.size, 1088);
  assert.equal(table.byteSize, 4352);
  assert.equal(table.paramCount, 736 + 32 + 111 + 1 + 5);
  for (const e of table.entries) assert.equal((e.offset * 4) % 256, 0, e.name);
  assert.equal(table.get("lin.weight").index, 2);
  assert.deepEqual(table.get("lin.weight").shape, [37, 3]);
  assert.ok(table.has("scalar") && !table.has("nope"));
  assert.throws(() => table.get("nope"), /^Error: Parameter "nope" is not in the parameter table$/);
  assert.equal(buildParamTable([]).size, 0);
  assert.equal(buildParamTable(SPECS, 1).size, 736 + 32 + 111 + 1 + 5);
});

Deno.test("buildParamTable() keeps the caller's spec type and rejects bad lists", () => {
  const table = buildParamTable([{ name: "w", shape: [2, 2], module: "encoder" as const }]);
  assert.equal(table.get("w").spec.module, "encoder");
  assert.throws(
    () => buildParamTable([{ name: "a", shape: [1] }, { name: "a", shape: [2] }]),
    /^Error: Parameter "a" is listed twice$/,
  );
  assert.throws(
    () => buildParamTable([{ name: "a", shape: [2, -1] }]),
    /^Error: Parameter "a" has shape \[2,-1\], expected non-negative integers$/,
  );
  assert.throws(() => buildParamTable([{ name: "", shape: [1] }]), /Parameter 0 has an empty name/);
  assert.throws(() => buildParamTable(SPECS, 0), /alignment must be a positive integer/);
});

Deno.test("ParamTable.view() is the tensor's slice of the flat buffer", () => {
  const table = buildParamTable(SPECS);
  const flat = new Float32Array(table.size);
  table.view(flat, "ln.weight").fill(1);
  assert.equal(flat[767], 0);
  assert.equal(flat[768], 1);
  assert.equal(flat[799], 1);
  assert.equal(flat[800], 0);
  assert.throws(
    () => table.view(new Float32Array(10), "ln.weight"),
    /^Error: Flat parameter buffer has 10 elements, the parameter table needs 1088$/,
  );
});

Deno.test("paramsToSafetensors() then paramsFromSafetensors() round trips through bytes", () => {
  const table = buildParamTable(SPECS);
  const flat = new Float32Array(table.size);
  for (const e of table.entries) table.view(flat, e.name).set(randomArray(e.numel, e.index + 1));
  const tensors = paramsToSafetensors(table, flat);
  assert.deepEqual([...tensors.keys()], SPECS.map((s) => s.name));
  assert.deepEqual(tensors.get("scalar")!.shape, []);
  const parsed = parseSafetensors(serializeSafetensors(tensors), "params").tensors;
  assert.deepEqual(paramsFromSafetensors(table, parsed, "params"), flat);
  // Prefixed names, e.g. optimizer moments beside the parameters.
  const moments = paramsToSafetensors(table, flat, { prefix: "optimizer.exp_avg." });
  assert.ok(moments.has("optimizer.exp_avg.emb.weight"));
  const both = new Map([...tensors, ...moments]);
  assert.deepEqual(
    paramsFromSafetensors(table, both, "x", { prefix: "optimizer.exp_avg." }),
    flat,
  );
  assert.deepEqual(
    paramsFromSafetensors(table, both, "x", { ignore: (n) => n.startsWith("optimizer.") }),
    flat,
  );
});

Deno.test("paramsFromSafetensors() converts F16 and BF16 tensors to float32", () => {
  const table = buildParamTable([{ name: "a", shape: [3] }, { name: "b", shape: [2] }]);
  const tensors = {
    a: fromFloat32(new Float32Array([1, 0.5, -2]), [3], "F16"),
    b: fromFloat32(new Float32Array([0.1, 3]), [2], "BF16"),
  };
  const flat = paramsFromSafetensors(table, tensors, "half.safetensors");
  assert.deepEqual([...table.view(flat, "a")], [1, 0.5, -2]);
  assert.deepEqual([...table.view(flat, "b")], [0.10009765625, 3]);
  // Half-precision output too.
  const half = paramsToSafetensors(table, flat, { dtype: "BF16" });
  assert.equal(half.get("b")!.dtype, "BF16");
  assert.deepEqual([...toFloat32(half.get("b")!)], [0.10009765625, 3]);
});

Deno.test("paramsFromSafetensors() names missing, unexpected and mis-shaped tensors", () => {
  const table = buildParamTable([
    { name: "encoder.token_embedding.weight", shape: [56, 32] },
    { name: "b", shape: [2] },
  ]);
  const t = (shape: number[]): SafeTensor =>
    fromFloat32(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  assert.throws(
    () =>
      paramsFromSafetensors(
        table,
        { "encoder.token_embedding.weight": t([10, 32]), b: t([2]) },
        "out/x.safetensors",
      ),
    new Error(
      `Cannot load checkpoint "out/x.safetensors": tensor "encoder.token_embedding.weight" ` +
        `has shape [10, 32], expected [56, 32]`,
    ),
  );
  assert.throws(
    () => paramsFromSafetensors(table, { b: t([2]), c: t([1]), d: t([1]) }, "y"),
    new Error(
      `Cannot load checkpoint "y": missing tensors "encoder.token_embedding.weight"; ` +
        `unexpected tensors "c", "d"`,
    ),
  );
  const many = Object.fromEntries(
    ["encoder.token_embedding.weight", "b", ...Array.from({ length: 7 }, (_, i) => `x${i}`)].map(
      (n) => [n, n === "b" ? t([2]) : t([56, 32])],
    ),
  );
  assert.throws(
    () => paramsFromSafetensors(table, many, "z"),
    /unexpected tensors "x0", "x1", "x2", "x3", "x4" and 2 more$/,
  );
  assert.throws(
    () =>
      paramsFromSafetensors(table, {
        "encoder.token_embedding.weight": t([56, 32]),
        b: { dtype: "I32", shape: [2], data: new Uint8Array(8) },
      }, "w"),
    /^Error: Cannot load checkpoint "w": tensor "b" has dtype I32, expected a float type/,
  );
});

Deno.test("paramsFromSafetensors() loads the BST fixture's weights and its updated weights", async () => {
  const { tensors } = parseSafetensors(await Deno.readFile(FIXTURE), "bst_tiny");
  const model = [...tensors].filter(([n]) => !n.startsWith("input.") && !n.startsWith("expected."));
  const table = buildParamTable(model.map(([name, t]) => ({ name, shape: t.shape })));
  assert.equal(table.entries.length, 31);
  const notModel = (n: string) => n.startsWith("input.") || n.startsWith("expected.");
  const flat = paramsFromSafetensors(table, tensors, "bst_tiny", { ignore: notModel });
  for (const [name, t] of model) assert.deepEqual(table.view(flat, name), toFloat32(t), name);
  // The same table reads `expected.updated.<name>` through a prefix.
  const updated = paramsFromSafetensors(table, tensors, "bst_tiny", {
    prefix: "expected.updated.",
  });
  const name = "text_head.lm_head.weight";
  assert.deepEqual(
    table.view(updated, name),
    toFloat32(tensors.get(`expected.updated.${name}`)!),
  );
  // Back to safetensors: identical bytes for every model tensor.
  for (const [n, t] of paramsToSafetensors(table, flat)) {
    assert.deepEqual(t.data, tensors.get(n)!.data, n);
  }
  // Without ignoring the other entries they are reported.
  assert.throws(
    () => paramsFromSafetensors(table, tensors, "bst_tiny"),
    /^Error: Cannot load checkpoint "bst_tiny": unexpected tensors "input.tokens", "input.pairs", /,
  );
});
