import assert from "node:assert/strict";
import {
  fromFloat32,
  fromInt32,
  parseSafetensors,
  readSafetensors,
  type SafeTensor,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype,
  serializeSafetensors,
  toFloat32,
  toInt32,
  writeSafetensorsAtomic,
} from "../../src/io/safetensors.ts";

const FIXTURE = new URL("../fixtures/bst_tiny.safetensors", import.meta.url);

function sameTensor(a: SafeTensor, b: SafeTensor, name: string): void {
  assert.equal(a.dtype, b.dtype, `${name} dtype`);
  assert.deepEqual(a.shape, b.shape, `${name} shape`);
  assert.deepEqual(a.data, b.data, `${name} data`);
}

/** A file from a header (object or raw text) and `dataBytes` bytes of data. */
function rawFile(header: unknown, dataBytes: number, lengthField?: number): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(lengthField ?? json.length), true);
  out.set(json, 8);
  return out;
}

function f32(name: string, shape: number[], begin: number, end: number) {
  return { [name]: { dtype: "F32", shape, data_offsets: [begin, end] } };
}

Deno.test("parseSafetensors() reads the BST fixture: names, shapes, dtypes, metadata", async () => {
  const { tensors, metadata } = parseSafetensors(await Deno.readFile(FIXTURE), "bst_tiny");
  assert.equal(tensors.size, 100);
  assert.deepEqual(tensors.get("encoder.token_embedding.weight")!.shape, [23, 32]);
  assert.deepEqual(tensors.get("text_head.mlp.0.gate_up.weight")!.shape, [256, 64]);
  assert.deepEqual(tensors.get("text_head.lm_head.weight")!.shape, [23, 32]);
  assert.equal(tensors.get("input.tokens")!.dtype, "I32");
  assert.deepEqual(tensors.get("input.tokens")!.shape, [3, 16]);
  // Tensors come back in file (offset) order.
  assert.equal([...tensors.keys()][0], "encoder.token_embedding.weight");
  for (const key of ["config", "optimizer", "loss", "grad_norm", "inference"]) {
    assert.ok(key in metadata, `metadata has ${key}`);
  }
  const config = JSON.parse(metadata.config);
  assert.equal(config.vocab_size, 23);
  assert.equal(config.n_embd, 32);
  const tokens = toInt32(tensors.get("input.tokens")!, "input.tokens");
  assert.equal(tokens.length, 48);
  assert.ok(tokens.every((t) => t >= 0 && t < 23));
  const norm = toFloat32(tensors.get("encoder.transformer_f.norm.weight")!);
  assert.equal(norm.length, 32);
  assert.ok(norm.every(Number.isFinite));
});

Deno.test("serializeSafetensors() round trip of the fixture keeps every tensor and the metadata", async () => {
  const fixture = await Deno.readFile(FIXTURE);
  const first = parseSafetensors(fixture, "bst_tiny");
  const bytes = serializeSafetensors(first.tensors, first.metadata);
  const second = parseSafetensors(bytes, "round trip");
  assert.equal(second.tensors.size, first.tensors.size);
  for (const [name, t] of first.tensors) sameTensor(second.tensors.get(name)!, t, name);
  assert.deepEqual(second.metadata, first.metadata);
  // Canonical: serializing the re-parsed content gives the same bytes again.
  assert.deepEqual(serializeSafetensors(second.tensors, second.metadata), bytes);
  // Not byte-identical to the fixture: the fixture keeps the reference script's insertion
  // order (I32 inputs between F32 tensors) with __metadata__ last, while the writer uses the
  // Rust library's content-only layout (dtype, then name; __metadata__ first).
});

Deno.test("serializeSafetensors() matches the reference Rust library's test vectors", () => {
  const data = new Float32Array([0, 1, 2, 3, 4, 5]);
  // safetensors/src/tensor.rs test_serialization
  assert.deepEqual(
    [...serializeSafetensors({ "attn.0": fromFloat32(data, [1, 2, 3]) })],
    [
      64,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      123,
      34,
      97,
      116,
      116,
      110,
      46,
      48,
      34,
      58,
      123,
      34,
      100,
      116,
      121,
      112,
      101,
      34,
      58,
      34,
      70,
      51,
      50,
      34,
      44,
      34,
      115,
      104,
      97,
      112,
      101,
      34,
      58,
      91,
      49,
      44,
      50,
      44,
      51,
      93,
      44,
      34,
      100,
      97,
      116,
      97,
      95,
      111,
      102,
      102,
      115,
      101,
      116,
      115,
      34,
      58,
      91,
      48,
      44,
      50,
      52,
      93,
      125,
      125,
      0,
      0,
      0,
      0,
      0,
      0,
      128,
      63,
      0,
      0,
      0,
      64,
      0,
      0,
      64,
      64,
      0,
      0,
      128,
      64,
      0,
      0,
      160,
      64,
    ],
  );
  // test_serialization_forced_alignement: the header is padded with spaces to 8 bytes
  assert.deepEqual(
    [...serializeSafetensors({ attn0: fromFloat32(data, [1, 1, 2, 3]) })],
    [
      72,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      123,
      34,
      97,
      116,
      116,
      110,
      48,
      34,
      58,
      123,
      34,
      100,
      116,
      121,
      112,
      101,
      34,
      58,
      34,
      70,
      51,
      50,
      34,
      44,
      34,
      115,
      104,
      97,
      112,
      101,
      34,
      58,
      91,
      49,
      44,
      49,
      44,
      50,
      44,
      51,
      93,
      44,
      34,
      100,
      97,
      116,
      97,
      95,
      111,
      102,
      102,
      115,
      101,
      116,
      115,
      34,
      58,
      91,
      48,
      44,
      50,
      52,
      93,
      125,
      125,
      32,
      32,
      32,
      32,
      32,
      32,
      32,
      0,
      0,
      0,
      0,
      0,
      0,
      128,
      63,
      0,
      0,
      0,
      64,
      0,
      0,
      64,
      64,
      0,
      0,
      128,
      64,
      0,
      0,
      160,
      64,
    ],
  );
  // test_empty, without and with metadata
  assert.deepEqual([...serializeSafetensors({})], [
    8,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    123,
    125,
    ...Array(6).fill(32),
  ]);
  assert.deepEqual(
    [...serializeSafetensors({}, { framework: "pt" })],
    [
      40,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      123,
      34,
      95,
      95,
      109,
      101,
      116,
      97,
      100,
      97,
      116,
      97,
      95,
      95,
      34,
      58,
      123,
      34,
      102,
      114,
      97,
      109,
      101,
      119,
      111,
      114,
      107,
      34,
      58,
      34,
      112,
      116,
      34,
      125,
      125,
      32,
      32,
      32,
      32,
      32,
    ],
  );
});

Deno.test("serializeSafetensors() orders by dtype alignment then name, independent of insertion order", () => {
  const tensors: Record<string, SafeTensor> = {
    "b.f32": fromFloat32(new Float32Array([1, 2, 3]), [3]),
    "a.f32": fromFloat32(new Float32Array([4]), [1]),
    "z.i64": { dtype: "I64", shape: [1], data: new Uint8Array(8).fill(1) },
    "m.bf16": fromFloat32(new Float32Array([1, 2, 3]), [3], "BF16"),
    "k.f16": fromFloat32(new Float32Array([1]), [1], "F16"),
    "ids": fromInt32(new Int32Array([1, 2, 3]), [3]),
    "flag": { dtype: "BOOL", shape: [3], data: new Uint8Array([1, 0, 1]) },
    "10": fromFloat32(new Float32Array([9]), []),
  };
  const bytes = serializeSafetensors(tensors, { z: "1", a: "2", "0": "3" });
  const reversed = Object.fromEntries(Object.entries(tensors).reverse());
  assert.deepEqual(
    serializeSafetensors(new Map(Object.entries(reversed)), { "0": "3", a: "2", z: "1" }),
    bytes,
  );
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
  assert.ok(header.startsWith(`{"__metadata__":{"0":"3","a":"2","z":"1"},"z.i64":`), header);
  const { tensors: parsed } = parseSafetensors(bytes);
  assert.deepEqual(
    [...parsed.keys()],
    ["z.i64", "10", "a.f32", "b.f32", "ids", "m.bf16", "k.f16", "flag"],
  );
  for (const [name, t] of parsed) {
    sameTensor(t, tensors[name], name);
    const start = t.data.byteOffset;
    assert.equal(start % SAFETENSORS_DTYPE_BYTES[t.dtype], 0, `${name} is aligned`);
  }
});

Deno.test("toFloat32() decodes F16, BF16 and I64 to known values", () => {
  const u16 = (dtype: SafetensorsDtype, bits: number[]): SafeTensor => ({
    dtype,
    shape: [bits.length],
    data: new Uint8Array(new Uint16Array(bits).buffer),
  });
  const half = toFloat32(
    u16("F16", [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x8000, 0x7c00, 0xfc00, 0x7e00]),
  );
  assert.deepEqual(
    [...half],
    [1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, -0, Infinity, -Infinity, NaN],
  );
  assert.ok(Object.is(half[6], -0));
  const bf = toFloat32(u16("BF16", [0x3f80, 0xc000, 0x4049, 0x7f80, 0x0001, 0xff80]));
  assert.deepEqual([...bf], [1, -2, 3.140625, Infinity, 2 ** -133, -Infinity]);
  const i64: SafeTensor = {
    dtype: "I64",
    shape: [2, 2],
    data: new Uint8Array(new BigInt64Array([-3n, 2147483647n, -2147483648n, 1n << 40n]).buffer),
  };
  assert.deepEqual([...toFloat32(i64)], [-3, 2147483648, -2147483648, 2 ** 40]);
  const i32 = fromInt32(new Int32Array([-7, 0, 7]), [3]);
  assert.deepEqual([...toFloat32(i32)], [-7, 0, 7]);
  const u8: SafeTensor = { dtype: "U8", shape: [2], data: new Uint8Array([0, 255]) };
  assert.deepEqual([...toFloat32(u8)], [0, 255]);
});

Deno.test("toInt32() converts I64 with a range check and rejects float tensors", () => {
  const i64 = (values: bigint[]): SafeTensor => ({
    dtype: "I64",
    shape: [values.length],
    data: new Uint8Array(new BigInt64Array(values).buffer),
  });
  assert.deepEqual([...toInt32(i64([-3n, 2147483647n, -2147483648n]))], [
    -3,
    2147483647,
    -2147483648,
  ]);
  assert.throws(
    () => toInt32(i64([0n, 2147483648n]), "input.tokens"),
    /^Error: Cannot convert "input.tokens" to int32: element 1 is 2147483648, outside the int32 range$/,
  );
  assert.throws(
    () => toInt32(fromFloat32(new Float32Array([1]), [1]), "w"),
    /Cannot convert "w" to int32: F32 is not an integer dtype/,
  );
  const i32 = fromInt32(new Int32Array([5, -6]), [2]);
  assert.deepEqual([...toInt32(i32)], [5, -6]);
});

Deno.test("fromFloat32() rounds to F16 and BF16 to nearest even", () => {
  const bits = (t: SafeTensor) => [...new Uint16Array(t.data.slice().buffer)];
  const half = fromFloat32(
    new Float32Array([
      1,
      1 / 3,
      65504,
      65519, // rounds down to 65504
      65520, // the halfway point to 65536: ties to even, i.e. overflows to Infinity
      1 + 2 ** -11, // tie: stays at 1 (even)
      1 + 3 * 2 ** -11, // tie: goes up to the even 1 + 2^-9
      2 ** -25, // tie between 0 and the smallest subnormal: 0
      1.5 * 2 ** -25, // above the tie: smallest subnormal
      -0,
      NaN,
    ]),
    [11],
    "F16",
  );
  assert.deepEqual(bits(half), [
    0x3c00,
    0x3555,
    0x7bff,
    0x7bff,
    0x7c00,
    0x3c00,
    0x3c02,
    0x0000,
    0x0001,
    0x8000,
    0x7e00,
  ]);
  const bf = fromFloat32(
    new Float32Array([1, 0.1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2, Infinity, NaN]),
    [7],
    "BF16",
  );
  assert.deepEqual(bits(bf), [0x3f80, 0x3dcd, 0x3f80, 0x3f82, 0xc000, 0x7f80, 0x7fc0]);
  // Every F16 value survives F16 → F32 → F16.
  const all = new Uint16Array(65536).map((_, i) => i);
  const t: SafeTensor = { dtype: "F16", shape: [65536], data: new Uint8Array(all.buffer) };
  const back = bits(fromFloat32(toFloat32(t), [65536], "F16"));
  for (let i = 0; i < 65536; i++) {
    const isNan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    if (!isNan) assert.equal(back[i], i, `F16 bits 0x${i.toString(16)}`);
  }
});

Deno.test("fromFloat32() and fromInt32() reject a shape that does not match the values", () => {
  assert.throws(
    () => fromFloat32(new Float32Array(5), [2, 3]),
    /^Error: Cannot make F32 tensor: 5 values do not fill shape \[2, 3\] \(6 elements\)$/,
  );
  assert.throws(() => fromInt32(new Int32Array(1), [-1]), /shape \[-1\] is not a list/);
});

const BAD_CASES: [string, Uint8Array, RegExp][] = [
  ["a file shorter than 8 bytes", new Uint8Array(5), /file has 5 bytes, too short/],
  [
    "a header length larger than the file",
    rawFile({}, 0, 100),
    /header length 100 is larger than the 2 bytes after the length field/,
  ],
  [
    "a header that is not UTF-8",
    (() => {
      const b = rawFile("{}", 0);
      b.set([0xff, 0xfe], 8);
      return b;
    })(),
    /header is not valid UTF-8/,
  ],
  ["a header that is not JSON", rawFile("{not json", 0), /header is not valid JSON/],
  ["a header that is a JSON list", rawFile("[1, 2]", 0), /header is not a JSON object/],
  ["a header that is a JSON string", rawFile('"x"', 0), /header is not a JSON object/],
  [
    "__metadata__ that is a string",
    rawFile({ __metadata__: "x" }, 0),
    /__metadata__ is not a map of strings to strings/,
  ],
  [
    "__metadata__ with a number",
    rawFile({ __metadata__: { step: 3 } }, 0),
    /__metadata__ entry "step" is 3, expected a string/,
  ],
  [
    "a tensor entry that is not an object",
    rawFile({ a: [1, 2] }, 0),
    /tensor "a" has no \{dtype, shape, data_offsets\} entry/,
  ],
  [
    "an unknown dtype",
    rawFile({ a: { dtype: "F33", shape: [1], data_offsets: [0, 4] } }, 4),
    /tensor "a" has unknown dtype "F33"/,
  ],
  [
    "a negative dimension",
    rawFile({ a: { dtype: "F32", shape: [2, -1], data_offsets: [0, 4] } }, 4),
    /tensor "a" has shape \[2,-1\], expected a list of non-negative integers/,
  ],
  [
    "a fractional dimension",
    rawFile({ a: { dtype: "F32", shape: [1.5], data_offsets: [0, 4] } }, 4),
    /tensor "a" has shape \[1.5\]/,
  ],
  [
    "a shape that is not a list",
    rawFile({ a: { dtype: "F32", shape: 4, data_offsets: [0, 16] } }, 16),
    /tensor "a" has shape 4, expected a list/,
  ],
  [
    "data_offsets with one number",
    rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [4] } }, 4),
    /tensor "a" has data_offsets \[4\], expected \[begin, end\]/,
  ],
  [
    "data_offsets with a string",
    rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, "4"] } }, 4),
    /tensor "a" has data_offsets \[0,"4"\], expected \[begin, end\]/,
  ],
  [
    "missing data_offsets",
    rawFile({ a: { dtype: "F32", shape: [1] } }, 4),
    /tensor "a" has data_offsets undefined/,
  ],
  [
    "end before begin",
    rawFile(f32("a", [1], 8, 4), 8),
    /tensor "a" has data_offsets \[8, 4\]: end < begin/,
  ],
  [
    "a byte length that does not match the shape",
    rawFile(f32("a", [2, 4], 0, 24), 24),
    /^Cannot read checkpoint "bad.safetensors": tensor "a" has 24 bytes, expected 32 for F32 \[2, 4\]$/,
  ],
  [
    "offsets outside the data section (truncated file)",
    rawFile(f32("a", [2], 0, 8), 4),
    /tensor "a" has data_offsets \[0, 8\] outside the data section of 4 bytes/,
  ],
  [
    "overlapping tensors",
    rawFile({ ...f32("a", [2], 0, 8), ...f32("b", [2], 4, 12) }, 12),
    /tensor "b" \(bytes 4..12\) overlaps tensor "a" \(ends at 8\)/,
  ],
  [
    "two tensors on the same bytes",
    rawFile({ ...f32("a", [2], 0, 8), ...f32("b", [2], 0, 8) }, 8),
    /overlaps tensor "a"/,
  ],
  [
    "a gap between tensors",
    rawFile({ ...f32("a", [2], 0, 8), ...f32("b", [2], 12, 20) }, 20),
    /4 bytes before tensor "b" \(at 12\) belong to no tensor/,
  ],
  [
    "a gap before the first tensor",
    rawFile(f32("a", [2], 4, 12), 12),
    /4 bytes before tensor "a" \(at 4\) belong to no tensor/,
  ],
  [
    "trailing bytes after the last tensor",
    rawFile(f32("a", [2], 0, 8), 12),
    /4 bytes after the last tensor belong to no tensor/,
  ],
];

for (const [what, bytes, pattern] of BAD_CASES) {
  Deno.test(`parseSafetensors() rejects ${what} with one line naming the source`, () => {
    assert.throws(
      () => parseSafetensors(bytes, "bad.safetensors"),
      (e: Error) => {
        assert.ok(e.message.startsWith(`Cannot read checkpoint "bad.safetensors": `), e.message);
        assert.match(e.message, pattern);
        assert.ok(!e.message.includes("\n") && !e.message.endsWith("."), e.message);
        return true;
      },
    );
  });
}

Deno.test("parseSafetensors() accepts empty tensors, __metadata__ null and out-of-order entries", () => {
  const header = {
    b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
    __metadata__: null,
    empty: { dtype: "I64", shape: [0, 3], data_offsets: [0, 0] },
    a: { dtype: "I32", shape: [], data_offsets: [0, 4] },
  };
  const { tensors, metadata } = parseSafetensors(rawFile(header, 8));
  assert.deepEqual([...tensors.keys()], ["empty", "a", "b"]);
  assert.deepEqual(tensors.get("empty")!.shape, [0, 3]);
  assert.deepEqual(metadata, {});
  assert.deepEqual(parseSafetensors(rawFile({}, 0)).tensors.size, 0);
});

Deno.test("serializeSafetensors() rejects data that does not match dtype and shape", () => {
  assert.throws(
    () => serializeSafetensors({ a: { dtype: "F32", shape: [3], data: new Uint8Array(8) } }),
    /^Error: Cannot serialize safetensors: tensor "a" has 8 bytes, expected 12 for F32 \[3\]$/,
  );
  assert.throws(
    () => serializeSafetensors({ __metadata__: fromFloat32(new Float32Array(1), [1]) }),
    /"__metadata__" cannot be a tensor name/,
  );
});

Deno.test("readSafetensors() names the path when the file is missing or truncated", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_safetensors_" });
  try {
    const missing = `${dir}/nope.safetensors`;
    await assert.rejects(
      readSafetensors(missing),
      new Error(`Cannot read checkpoint "${missing}": file not found`),
    );
    const truncated = `${dir}/truncated.safetensors`;
    const full = serializeSafetensors({ w: fromFloat32(new Float32Array(16), [4, 4]) });
    await Deno.writeFile(truncated, full.subarray(0, full.length - 10));
    await assert.rejects(
      readSafetensors(truncated),
      new RegExp(`^Error: Cannot read checkpoint "${truncated}": tensor "w" has data_offsets`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("writeSafetensorsAtomic() writes the serialized bytes and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_safetensors_" });
  try {
    const path = `${dir}/ckpt.safetensors`;
    const tensors = {
      w: fromFloat32(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]),
      ids: fromInt32(new Int32Array([7, 8]), [2]),
    };
    await writeSafetensorsAtomic(path, tensors, { step: "1" });
    assert.deepEqual(await Deno.readFile(path), serializeSafetensors(tensors, { step: "1" }));
    // Overwrite in place.
    await writeSafetensorsAtomic(path, { w: tensors.w }, { step: "2" });
    const { tensors: back, metadata } = await readSafetensors(path);
    assert.deepEqual([...back.keys()], ["w"]);
    assert.deepEqual(metadata, { step: "2" });
    assert.deepEqual(await listDir(dir), ["ckpt.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensorsAtomic() that fails keeps the old file intact and removes its temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_safetensors_" });
  try {
    const path = `${dir}/ckpt.safetensors`;
    const old = { w: fromFloat32(new Float32Array([1, 2]), [2]) };
    await writeSafetensorsAtomic(path, old, { step: "1" });
    const before = await Deno.readFile(path);
    const next = { w: fromFloat32(new Float32Array([3, 4]), [2]) };

    // Interrupted after the temporary file was opened (abort checked before each chunk).
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(
      writeSafetensorsAtomic(path, next, { step: "2" }, { signal: controller.signal }),
      new Error(
        `Cannot write checkpoint "${path}": the write was aborted, the previous file is unchanged`,
      ),
    );
    assert.deepEqual(await Deno.readFile(path), before);
    assert.deepEqual(await listDir(dir), ["ckpt.safetensors"]);

    // Bad tensor: refused before anything is written.
    await assert.rejects(
      writeSafetensorsAtomic(path, { w: { dtype: "F32", shape: [3], data: new Uint8Array(4) } }),
      /^Error: Cannot write checkpoint ".*ckpt.safetensors": tensor "w" has 4 bytes, expected 12/,
    );
    assert.deepEqual(await Deno.readFile(path), before);

    // The destination is a directory: the rename fails after the data was written.
    const blocked = `${dir}/blocked.safetensors`;
    await Deno.mkdir(`${blocked}/inside`, { recursive: true });
    await assert.rejects(
      writeSafetensorsAtomic(blocked, next),
      /^Error: Cannot write checkpoint ".*blocked.safetensors": /,
    );
    assert.deepEqual(await listDir(dir), ["blocked.safetensors", "ckpt.safetensors"]);
    assert.deepEqual(await listDir(blocked), ["inside"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
