import assert from "node:assert/strict";
import {
  isTorchCheckpoint,
  parseTorchCheckpoint,
  serializeTorchCheckpoint,
  TorchTensor,
} from "../../src/io/torch_pt.ts";
import { PyDict, PyOrderedDict, PyTuple, type PyValue } from "../../src/io/pickle.ts";
import { concatBytes } from "../../src/io/zip.ts";
import { pk, ptArchive } from "./_pickle_bytes.ts";

const dir = new URL("../fixtures/torch/", import.meta.url);
const fixture = (name: string) => Deno.readFile(new URL(name, dir));

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every tensor of a value, by path (`a.b.0`), for bit-for-bit comparisons. */
function tensors(v: PyValue, path = "", out = new Map<string, TorchTensor>()) {
  if (v instanceof TorchTensor) out.set(path, v);
  else if (v instanceof PyDict) { for (const [k, x] of v) tensors(x, `${path}.${k}`, out); }
  else if (Array.isArray(v)) v.forEach((x, i) => tensors(x, `${path}.${i}`, out));
  else if (v instanceof PyTuple) v.items.forEach((x, i) => tensors(x, `${path}.${i}`, out));
  return out;
}

Deno.test("parseTorchCheckpoint() reads views (strides, offsets, shared storages) in every dtype as torch has them", async () => {
  const value = parseTorchCheckpoint(await fixture("views.pt"), "views.pt") as PyDict;
  const expected = JSON.parse(
    await Deno.readTextFile(new URL("views.expected.json", dir)),
  ) as Record<string, { dtype: string; shape: number[]; hex: string }>;
  const got = value.get("tensors") as PyOrderedDict;
  assert.ok(got instanceof PyOrderedDict);
  assert.deepEqual([...got.keys()], Object.keys(expected));
  for (const [name, want] of Object.entries(expected)) {
    const t = got.get(name) as TorchTensor;
    assert.equal(t.dtype, want.dtype, name);
    assert.deepEqual(t.shape, want.shape, name);
    assert.equal(toHex(t.data), want.hex, name);
  }
  const nested = value.get("nested") as PyDict;
  assert.deepEqual(nested.get("list"), [1n, 2.5, null, true, "x"]);
  assert.deepEqual((nested.get("tuple") as PyTuple).items, [0.9, 0.95]);
  assert.equal(nested.get("big"), 2n ** 70n);
  assert.equal(nested.get("neg"), -(2n ** 33n));
  assert.equal(nested.get(3n), "int key");
  assert.equal(value.get("training_steps"), 12n);
});

Deno.test("serializeTorchCheckpoint() then parseTorchCheckpoint() keeps every value and tensor bit for bit", async () => {
  for (const name of ["views.pt", "bst_bf16.pt", "gpt_compiled.pt"]) {
    const first = parseTorchCheckpoint(await fixture(name), name);
    const bytes = concatBytes(serializeTorchCheckpoint(first));
    assert.ok(isTorchCheckpoint(bytes));
    const again = parseTorchCheckpoint(bytes, `${name} rewritten`);
    const a = tensors(first);
    const b = tensors(again);
    assert.deepEqual([...b.keys()], [...a.keys()], name);
    for (const [path, t] of a) {
      assert.deepEqual(b.get(path), t, `${name}${path}`);
    }
    // Writing again gives the same bytes.
    assert.deepEqual(concatBytes(serializeTorchCheckpoint(again)), bytes, name);
  }
});

Deno.test("parseTorchCheckpoint() refuses the legacy format and pickles that would run code", async () => {
  const marker = "/tmp/bst-webgpu-torch-fixture-was-executed";
  await Deno.remove(marker).catch(() => {});
  const cases: [string, RegExp][] = [
    ["legacy.pt", /^Error: Cannot read checkpoint "legacy.pt": it is in torch's legacy format/],
    [
      "evil_system.pt",
      /^Error: Cannot read checkpoint "evil_system.pt": evil_system\/data.pkl: the pickle names the global posix\.system, which is not allowed in a checkpoint/,
    ],
    [
      "evil_eval.pt",
      // protocol 2 writes Python 3's builtins module under its Python 2 name
      /^Error: Cannot read checkpoint "evil_eval.pt": evil_eval\/data.pkl: the pickle names the global __builtin__\.eval, which is not allowed in a checkpoint/,
    ],
  ];
  for (const [name, want] of cases) {
    assert.throws(() => parseTorchCheckpoint(Deno.readFileSync(new URL(name, dir)), name), want);
  }
  await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
});

/** A pickle of one tensor `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`. */
function tensorPickle(
  storage: string,
  numel: number,
  offset: number,
  size: number[],
  stride: number[],
): Uint8Array {
  const ints = (xs: number[]) => [0x28, ...xs.flatMap((x) => [0x4b, x]), 0x74];
  return pk(
    [0x80, 2, 0x63],
    "torch._utils\n_rebuild_tensor_v2\n",
    [0x28, 0x28, 0x58, 7, 0, 0, 0],
    "storage",
    [0x63],
    `torch\n${storage}\n`,
    [0x58, 1, 0, 0, 0],
    "0",
    [0x58, 3, 0, 0, 0],
    "cpu",
    [0x4d, numel & 0xff, numel >> 8, 0x74, 0x51],
    [0x4b, offset],
    ints(size),
    ints(stride),
    [0x89, 0x63],
    "collections\nOrderedDict\n",
    [0x29, 0x52, 0x74, 0x52, 0x2e],
  );
}

Deno.test("parseTorchCheckpoint() reads a hand-made tensor and refuses sizes that lie", () => {
  const data = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
  const ok = parseTorchCheckpoint(
    ptArchive(tensorPickle("FloatStorage", 6, 1, [2, 2], [3, 1]), { 0: data }),
    "x.pt",
  ) as TorchTensor;
  assert.deepEqual(ok.shape, [2, 2]);
  assert.deepEqual(new Float32Array(ok.data.slice().buffer), new Float32Array([1, 2, 4, 5]));
  const cases: [Uint8Array, RegExp][] = [
    [
      ptArchive(tensorPickle("FloatStorage", 600, 0, [6], [1]), { 0: data }),
      /storage "0" claims 600 F32 elements \(2400 bytes\) but its record holds 24 bytes \(a size that lies\)/,
    ],
    [
      ptArchive(tensorPickle("FloatStorage", 6, 3, [2, 2], [3, 1]), { 0: data }),
      /reaches element 7 of a storage of 6 elements \(a size that lies\)/,
    ],
    [
      ptArchive(tensorPickle("FloatStorage", 6, 0, [100, 6], [0, 1]), { 0: data }),
      /has 600 elements, more than its storage's 6: overlapping views \(expand\) are not read/,
    ],
    [
      ptArchive(tensorPickle("FloatStorage", 6, 0, [6], [1]), {}),
      /storage "0" has no record archive\/data\/0/,
    ],
    [
      ptArchive(tensorPickle("DoubleStorage", 3, 0, [2, 3], [3]), { 0: data }),
      /has 2 sizes but 1 strides/,
    ],
    [
      ptArchive(tensorPickle("UntypedStorage", 24, 0, [6], [1]), { 0: data }),
      /names the global torch\.UntypedStorage, which is not allowed/,
    ],
  ];
  for (const [bytes, want] of cases) {
    assert.throws(() => parseTorchCheckpoint(bytes, "x.pt"), (e: Error) => {
      assert.match(e.message, /^Cannot read checkpoint "x.pt": /);
      assert.match(e.message, want);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("parseTorchCheckpoint() refuses truncated files with one line at every length", async () => {
  const bytes = await fixture("gpt_compiled.pt");
  for (let n = 0; n < bytes.length; n += 997) {
    assert.throws(() => parseTorchCheckpoint(bytes.subarray(0, n), "cut.pt"), (e: Error) => {
      assert.match(e.message, /^Cannot read checkpoint "cut.pt": /);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("parseTorchCheckpoint() names what else it is given", () => {
  const script = concatBytes(serializeTorchCheckpoint(null));
  assert.equal(parseTorchCheckpoint(script, "none.pt"), null);
  assert.throws(
    () => parseTorchCheckpoint(new TextEncoder().encode("{}"), "x.json"),
    /it is not a torch.save file \(no zip signature\)/,
  );
  const jit = ptArchive(pk([0x80, 2, 0x4e, 0x2e]));
  const renamed = jit.slice();
  // a TorchScript archive has constants.pkl and code/ instead of data.pkl
  const at = new TextDecoder("latin1").decode(renamed).indexOf("archive/data.pkl");
  const enc = new TextEncoder();
  let i = at;
  while (i >= 0) {
    renamed.set(enc.encode("archive/code/abc"), i);
    i = new TextDecoder("latin1").decode(renamed).indexOf("archive/data.pkl", i + 1);
  }
  assert.throws(() => parseTorchCheckpoint(renamed, "jit.pt"), /TorchScript archive/);
});
