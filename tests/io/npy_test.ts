import assert from "node:assert/strict";
import {
  decodeNpy,
  encodeNpy,
  encodeNpyHeader,
  NpyReader,
  NpyWriter,
  parseNpyHeader,
  readNpy,
  writeNpy,
} from "../../src/io/npy.ts";

const FIX = new URL("../fixtures/npy/", import.meta.url);
const fixture = (name: string) => new URL(name, FIX).pathname;

/** Magic + version + uint16 length, then the dict, spaces and a newline, as numpy writes. */
function handMadeV1(dict: string, total: number): Uint8Array {
  const hlen = total - 10;
  const text = dict.padEnd(hlen - 1, " ") + "\n";
  return new Uint8Array([
    0x93,
    ...new TextEncoder().encode("NUMPY"),
    1,
    0,
    hlen & 0xff,
    hlen >> 8,
    ...new TextEncoder().encode(text),
  ]);
}

async function assertRejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
}

Deno.test("encodeNpyHeader() writes numpy's bytes for a 1-d uint16 array", () => {
  const expected = handMadeV1("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }", 128);
  assert.deepEqual(encodeNpyHeader("u2", [3]), expected);
});

Deno.test("encodeNpyHeader() keeps the header length when the first dimension grows", () => {
  const small = encodeNpyHeader("u2", [0]);
  const big = encodeNpyHeader("u2", [100_000_000_000]);
  assert.equal(small.length, big.length);
  assert.equal(encodeNpyHeader("i4", [5, 1000]).length, encodeNpyHeader("i4", [0, 1000]).length);
});

Deno.test("encodeNpyHeader() pads a 0-d array without room to grow, as numpy", () => {
  const expected = handMadeV1("{'descr': '<i4', 'fortran_order': False, 'shape': (), }", 128);
  assert.deepEqual(encodeNpyHeader("i4", []), expected);
});

Deno.test("encodeNpy() is byte-identical to numpy's files of each version and dtype", async () => {
  const cases: [string, Parameters<typeof encodeNpy>][] = [
    ["u2_v1.npy", [new Uint16Array([0, 1, 65535, 300, 7])]],
    ["u1_v2.npy", [new Uint8Array([0, 1, 255]), undefined, { version: 2 }]],
    ["i8_v3.npy", [new BigInt64Array([-1n, 2n ** 40n, 3n]), undefined, { version: 3 }]],
    ["i4_2d_v1.npy", [Int32Array.from({ length: 12 }, (_, i) => i - 3), [3, 4]]],
    ["f4_v1.npy", [new Float32Array([0.5, -2.25, 1e-3])]],
  ];
  for (const [name, args] of cases) {
    assert.deepEqual(encodeNpy(...args), await Deno.readFile(fixture(name)), name);
  }
});

Deno.test("readNpy() loads numpy's files of each version and dtype", async () => {
  const u2 = await readNpy(fixture("u2_v1.npy"), { rank: 1 });
  assert.equal(u2.dtype, "u2");
  assert.deepEqual([...u2.data], [0, 1, 65535, 300, 7]);
  const u1 = await readNpy(fixture("u1_v2.npy"));
  assert.equal(u1.dtype, "u1");
  assert.deepEqual([...u1.data], [0, 1, 255]);
  const i8 = await readNpy(fixture("i8_v3.npy"));
  assert.equal(i8.dtype, "i8");
  assert.deepEqual([...i8.data], [-1n, 2n ** 40n, 3n]);
  const i4 = await readNpy(fixture("i4_2d_v1.npy"), { rank: 2 });
  assert.deepEqual(i4.shape, [3, 4]);
  assert.deepEqual([...i4.data], Array.from({ length: 12 }, (_, i) => i - 3));
  const f4 = await readNpy(fixture("f4_v1.npy"));
  assert.deepEqual([...f4.data], [...new Float32Array([0.5, -2.25, 1e-3])]);
});

Deno.test("readNpy() names the file and the problem for unsupported files", async () => {
  await assertRejects(readNpy(fixture("fortran.npy")), /fortran\.npy.*Fortran-order/);
  await assertRejects(readNpy(fixture("big_endian.npy")), /big_endian\.npy.*dtype '>u2'/);
  await assertRejects(readNpy(fixture("f8.npy")), /f8\.npy.*unsupported dtype '<f8'/);
  await assertRejects(readNpy(fixture("truncated.npy")), /truncated\.npy.*truncated body/);
  await assertRejects(
    readNpy(fixture("i4_2d_v1.npy"), { rank: 1 }),
    /i4_2d_v1\.npy.*expected a 1-d array, found shape \(3, 4\)/,
  );
  await assertRejects(readNpy(fixture("missing.npy")), /Cannot read ".*missing\.npy"/);
});

Deno.test("parseNpyHeader() rejects bad magic, versions, keys and literals", () => {
  const bad = (bytes: Uint8Array, pattern: RegExp) =>
    assert.throws(() => parseNpyHeader(bytes, "x.npy"), (e: Error) => {
      assert.match(e.message, /^Cannot read "x\.npy": /);
      assert.match(e.message, pattern);
      return true;
    });
  const good = encodeNpyHeader("u2", [3]);
  bad(new TextEncoder().encode("PK\x03\x04 not numpy at all"), /bad magic/);
  const v4 = good.slice();
  v4[6] = 4;
  bad(v4, /unsupported \.npy format version 4\.0/);
  bad(handMadeV1("{'descr': '<u2', 'shape': (3,), }", 128), /keys are descr, shape/);
  bad(handMadeV1("{'descr': '<u2', 'fortran_order': False, 'shape': (3,) ", 128), /bad header/);
  bad(handMadeV1("{'descr': '<u2', 'fortran_order': 0, 'shape': (3,), }", 128), /fortran_order/);
  bad(handMadeV1("{'descr': '<u2', 'fortran_order': False, 'shape': (-3,), }", 128), /shape/);
  bad(
    handMadeV1("{'descr': [('a', '<u2')], 'fortran_order': False, 'shape': (3,), }", 128),
    /structured/,
  );
  assert.equal(parseNpyHeader(good.subarray(0, 40), "x.npy"), undefined);
});

Deno.test("parseNpyHeader() accepts other key orders and spacing", () => {
  const h = parseNpyHeader(
    handMadeV1("{ 'shape' : (2,3) , 'fortran_order':False,'descr':'|u1'}", 128),
    "x.npy",
  );
  assert.deepEqual(h, { version: 1, dtype: "u1", shape: [2, 3], dataOffset: 128 });
});

Deno.test("decodeNpy() rejects a body shorter than the shape", () => {
  const bytes = encodeNpy(new Int32Array([1, 2, 3]));
  assert.throws(
    () => decodeNpy(bytes.subarray(0, bytes.length - 1), "y.npy"),
    /Cannot read "y\.npy": truncated body: shape \(3,\) needs 12 bytes of data, found 11/,
  );
});

Deno.test("NpyWriter() streams rows into numpy's exact bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/out.npy`;
    const w = await NpyWriter.create(path, "u2");
    await w.append(new Uint16Array([0, 1, 65535]));
    await w.append(new Uint16Array([]));
    await w.append(new Uint16Array([300, 7]));
    assert.equal(w.rows, 5);
    await assert.rejects(Deno.stat(path)); // nothing at `path` before close
    await w.close();
    assert.deepEqual(await Deno.readFile(path), await Deno.readFile(fixture("u2_v1.npy")));
    const w2 = await NpyWriter.create(`${dir}/m.npy`, "i4", { rowShape: [4] });
    await w2.append(Int32Array.from({ length: 6 }, (_, i) => i - 3));
    await w2.append(Int32Array.from({ length: 6 }, (_, i) => i + 3));
    await w2.close();
    const want = await Deno.readFile(fixture("i4_2d_v1.npy"));
    assert.deepEqual(await Deno.readFile(`${dir}/m.npy`), want);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["m.npy", "out.npy"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NpyWriter.close() fails on a partial row and leaves no file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const w = await NpyWriter.create(`${dir}/p.npy`, "f4", { rowShape: [3] });
    await w.append(new Float32Array(4));
    await assert.rejects(w.close(), /p\.npy.*1 elements left over after 1 rows of 3/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    const w2 = await NpyWriter.create(`${dir}/q.npy`, "u2");
    await assert.rejects(w2.append(new Int32Array(2)), /appended i4 data to a u2 file/);
    await w2.abort();
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeNpy() replaces a file atomically and leaves it on failure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/a.npy`;
    await writeNpy(path, new Uint16Array([1, 2, 3]));
    await writeNpy(path, new Uint16Array([4]));
    assert.deepEqual([...(await readNpy(path)).data], [4]);
    assert.throws(() => encodeNpy(new Uint16Array(4), [3]), /does not match 4 elements/);
    await assert.rejects(writeNpy(`${dir}/nope/b.npy`, new Uint16Array(1)), /Cannot write/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.npy"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NpyReader.readRows() reads any row range of a large file by position", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/big.npy`;
    const rows = 50_000;
    const w = await NpyWriter.create(path, "i4", { rowShape: [7] });
    for (let r = 0; r < rows; r += 10_000) {
      await w.append(Int32Array.from({ length: 10_000 * 7 }, (_, i) => r * 7 + i));
    }
    await w.close();
    const reader = await NpyReader.open(path, { rank: 2 });
    try {
      assert.equal(reader.rows, rows);
      assert.equal(reader.rowLength, 7);
      for (const [a, b] of [[0, 1], [12_345, 12_349], [rows - 2, rows], [7, 7]]) {
        const got = await reader.readRows(a, b);
        assert.deepEqual([...got], Array.from({ length: (b - a) * 7 }, (_, i) => a * 7 + i));
      }
      await assert.rejects(reader.readRows(rows - 1, rows + 1), /it has 50000 rows/);
    } finally {
      reader.close();
    }
    // A file cut short after opening is caught at read time too.
    const r2 = await NpyReader.open(path);
    await Deno.truncate(path, 1000);
    await assert.rejects(r2.readRows(rows - 1, rows), /truncated body/);
    r2.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NpyReader.open() reads a header longer than its first read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/long.npy`;
    const header = handMadeV1("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", 1024);
    const file = new Uint8Array(header.length + 4);
    file.set(header);
    file.set([5, 0, 6, 0], header.length);
    await Deno.writeFile(path, file);
    const r = await NpyReader.open(path);
    assert.equal(r.header.dataOffset, 1024);
    assert.deepEqual([...await r.readRows(0, 2)], [5, 6]);
    r.close();
    await Deno.writeFile(path, header.subarray(0, 700));
    await assertRejects(NpyReader.open(path), /long\.npy": truncated header/);
    await Deno.writeFile(path, new Uint8Array());
    await assertRejects(NpyReader.open(path), /long\.npy": empty file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readNpy(), NpyReader and encodeNpy() agree with numpy for every dtype in format 1.0, 2.0 and 3.0", async () => {
  const values: Record<string, number[] | bigint[]> = {
    u1: [0, 1, 7, 200, 255],
    u2: [0, 1, 7, 300, 65535],
    i4: [-5, 0, 7, 300, 2 ** 31 - 1],
    i8: [-5n, 0n, 7n, 2n ** 40n, -(2n ** 62n)],
    f4: [...new Float32Array([-5.5, 0.0, 0.125, 300.0, 1e-3])],
  };
  const arrays: Record<string, Parameters<typeof encodeNpy>[0]> = {
    u1: Uint8Array.from(values.u1 as number[]),
    u2: Uint16Array.from(values.u2 as number[]),
    i4: Int32Array.from(values.i4 as number[]),
    i8: BigInt64Array.from(values.i8 as bigint[]),
    f4: Float32Array.from(values.f4 as number[]),
  };
  for (const dtype of Object.keys(values)) {
    for (const version of [1, 2, 3] as const) {
      const name = `versions/${dtype}_v${version}.npy`;
      const got = await readNpy(fixture(name), { rank: 1 });
      assert.equal(got.dtype, dtype, name);
      assert.deepEqual(got.shape, [5], name);
      assert.deepEqual([...got.data], values[dtype], name);
      const reader = await NpyReader.open(fixture(name), { rank: 1 });
      assert.equal(reader.header.version, version, name);
      assert.deepEqual([...await reader.readRows(3, 5)], values[dtype].slice(3), name);
      reader.close();
      const bytes = encodeNpy(arrays[dtype], undefined, { version });
      assert.deepEqual(bytes, await Deno.readFile(fixture(name)), name);
    }
  }
});

/** A `.npy` file (format 2.0) whose header is `text`, padded as numpy pads, and no data. */
function withHeaderText(text: string): Uint8Array {
  const header = new TextEncoder().encode(text + "\n");
  const out = new Uint8Array(12 + header.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
  new DataView(out.buffer).setUint32(8, header.length, true);
  out.set(header, 12);
  return out;
}

Deno.test("parseNpyHeader() refuses deep nesting in one line instead of overflowing the stack", () => {
  const text = `{'descr': ${"[".repeat(20_000)}, 'fortran_order': False, 'shape': (1,), }`;
  assert.throws(
    () => parseNpyHeader(withHeaderText(text), "deep.npy"),
    (e: Error) =>
      !(e instanceof RangeError) && e.message.startsWith(
        'Cannot read "deep.npy": bad header ' +
          "(nesting deeper than 16 at character ",
      ) && e.message.length < 300,
  );
});

Deno.test("parseNpyHeader() reads a long header without a RangeError and quotes a short excerpt", () => {
  const shape = `(${"7".repeat(300_000)},)`;
  const text = `{'descr': '<u2', 'fortran_order': False, 'shape': ${shape}, 'x': }`;
  assert.throws(
    () => parseNpyHeader(withHeaderText(text), "long.npy"),
    (e: Error) =>
      !(e instanceof RangeError) && /^Cannot read "long\.npy": bad header \(unexpected value/
        .test(e.message) &&
      e.message.endsWith('777..."') && e.message.length < 300,
  );
  const padded = `{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }${" ".repeat(300_000)}`;
  assert.deepEqual(parseNpyHeader(withHeaderText(padded), "padded.npy")?.shape, [3]);
});

Deno.test("parseNpyHeader() refuses a header length over 1 MiB before reading it", async () => {
  const bytes = withHeaderText("{}");
  new DataView(bytes.buffer).setUint32(8, 0xffffffff, true);
  assert.throws(
    () => parseNpyHeader(bytes, "huge.npy"),
    /Cannot read "huge\.npy": header of 4294967295 bytes is longer than the limit of 1048576$/,
  );
  const path = await Deno.makeTempFile({ suffix: ".npy" });
  try {
    await Deno.writeFile(path, bytes);
    await assert.rejects(NpyReader.open(path), /header of 4294967295 bytes is longer/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("parseNpyHeader() refuses more than 64 dimensions and keeps messages on one line", () => {
  const dims = `(${"1, ".repeat(65)})`;
  const text = `{'descr': '<u2', 'fortran_order': False, 'shape': ${dims}, }`;
  assert.throws(
    () => parseNpyHeader(withHeaderText(text), "dims.npy"),
    /Cannot read "dims\.npy": bad header: shape has 65 dimensions \(numpy allows 64\)$/,
  );
  const keys = `{'descr': '<u2', 'fortran_order': False, 'shape': (1,), 'a\nb': 1, }`;
  assert.throws(
    () => parseNpyHeader(withHeaderText(keys), "keys.npy"),
    (e: Error) => !e.message.includes("\n") && e.message.includes("a\\nb"),
  );
});
