import assert from "node:assert/strict";
import { asyncBufferFromFsFile, createParquetTextReader } from "../../scripts/_parquet.ts";
import { holdOutLast, openStorySource } from "../../src/data/tinystories_sources.ts";

const FIX = new URL("../fixtures/parquet/", import.meta.url).pathname;

async function expected(name: string, col: number): Promise<string[]> {
  const rows = JSON.parse(await Deno.readTextFile(`${FIX}${name}.json`)) as unknown[][];
  return rows.map((r) => r[col] as string);
}

async function readAll(
  column: string,
  path: string,
  start: number,
  end: number,
): Promise<string[][]> {
  const out: string[][] = [];
  for await (const b of createParquetTextReader({ column }).readText(path, start, end)) {
    out.push(b);
  }
  return out;
}

Deno.test("createParquetTextReader() reads every string column of the fixture files", async () => {
  const cases: [string, string, number][] = [
    ["alpha", "id", 0],
    ["dictionary_offset_indexed", "country", 1],
    ["strings", "bytes", 0],
    ["strings", "c_utf8", 1],
    ["strings", "l_utf8", 2],
  ];
  for (const [name, column, col] of cases) {
    const path = `${FIX}${name}.parquet`;
    const want = await expected(name, col);
    const reader = createParquetTextReader({ column });
    assert.equal(await reader.rowCount(path), want.length, name);
    assert.deepEqual((await readAll(column, path, 0, want.length)).flat(), want, name);
  }
});

Deno.test("createParquetTextReader() reads a row range one row group at a time", async () => {
  const path = `${FIX}alpha.parquet`;
  const want = await expected("alpha", 0);
  const batches = await readAll("id", path, 95, 305);
  assert.deepEqual(batches.map((b) => b.length), [5, 100, 100, 5]);
  assert.deepEqual(batches.flat(), want.slice(95, 305));
  assert.deepEqual(await readAll("id", path, 676, 676), []);
  await assert.rejects(
    readAll("id", path, 600, 700),
    /rows \[600, 700\) of ".*alpha\.parquet": it has 676/,
  );
});

Deno.test("createParquetTextReader() names the file for a missing column, a non-string column or a bad file", async () => {
  await assert.rejects(
    readAll("text", `${FIX}alpha.parquet`, 0, 1),
    /alpha\.parquet": it has no column "text" \(columns: id\)/,
  );
  await assert.rejects(
    readAll("id", `${FIX}dictionary_offset_indexed.parquet`, 0, 1),
    /row 0 of column "id" is bigint, not a string/,
  );
  await assert.rejects(
    createParquetTextReader().rowCount(`${FIX}alpha.json`),
    /Cannot read ".*alpha\.json" as parquet/,
  );
  await assert.rejects(createParquetTextReader().rowCount(`${FIX}nope.parquet`), /nope\.parquet/);
});

Deno.test("openStorySource() reads a folder of real parquet files through the reader", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(`${FIX}alpha.parquet`, `${dir}/b.parquet`);
    await Deno.copyFile(`${FIX}alpha.parquet`, `${dir}/a.parquet`);
    const src = await openStorySource(dir, createParquetTextReader({ column: "id" }));
    const want = await expected("alpha", 0);
    assert.equal(await src.count(), 1352);
    const { train, val } = await holdOutLast(src);
    const got: string[] = [];
    for await (const s of val.stories()) got.push(s);
    assert.deepEqual(got, want.slice(676 - 13));
    assert.equal(await train.count(), 1352 - 13);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("asyncBufferFromFsFile() serves concurrent slices correctly", async () => {
  const path = `${FIX}alpha.parquet`;
  const bytes = await Deno.readFile(path);
  const file = await Deno.open(path);
  try {
    const buf = asyncBufferFromFsFile(file, bytes.length);
    const ranges: [number, number | undefined][] = [[0, 4], [100, 900], [-8, undefined], [
      3000,
      9999,
    ]];
    const got = await Promise.all(ranges.map(([s, e]) => buf.slice(s, e)));
    got.forEach((ab, i) => {
      const [s, e] = ranges[i];
      assert.deepEqual(new Uint8Array(ab), bytes.slice(s, e), `${s}..${e}`);
    });
  } finally {
    file.close();
  }
});

/** A copy of a fixture with bytes replaced (`offset → value`), in a temporary file. */
async function mutatedFixture(name: string, edits: Record<number, number>): Promise<string> {
  const bytes = await Deno.readFile(`${FIX}${name}`);
  for (const [at, value] of Object.entries(edits)) bytes[Number(at)] = value;
  const path = await Deno.makeTempFile({ suffix: ".parquet" });
  await Deno.writeFile(path, bytes);
  return path;
}

Deno.test("createParquetTextReader() rejects a page header without its counts instead of spinning", async () => {
  // Byte 78 is inside the first data page header of column c_utf8: 0x15 → 0x05 turns the
  // header into a v2 data page header without level lengths, on which hyparquet 1.31.5's read
  // loop never ends (it was found by tests/fuzz/data_fuzz_test.ts).
  const path = await mutatedFixture("strings.parquet", { 78: 0x05 });
  try {
    await assert.rejects(
      readAll("c_utf8", path, 0, 4),
      (e: Error) =>
        e.message === `Cannot read rows [0, 4) of "${path}": the page header at byte 0 of a ` +
            "column chunk has a data page v2 header without valid counts",
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("createParquetTextReader() rejects row groups that disagree with the row count", async () => {
  // Bytes 242 and 395 hold the file's num_rows and its row group's (4, as zigzag 0x08).
  for (const [at, message] of [[242, "hold 4 rows, its metadata says 5"], [395, "hold 5 rows"]]) {
    const path = await mutatedFixture("strings.parquet", { [at]: 0x0a });
    try {
      await assert.rejects(
        createParquetTextReader({ column: "c_utf8" }).rowCount(path),
        (e: Error) =>
          e.message.startsWith(`Cannot read "${path}" as parquet: its row groups `) &&
          e.message.includes(message as string),
      );
    } finally {
      await Deno.remove(path);
    }
  }
});
