import assert from "node:assert/strict";
import { concatBytes as join, crc32, readZip, zipStored } from "../../src/io/zip.ts";

const enc = new TextEncoder();
const fail = (why: string): never => {
  throw new Error(`Cannot read checkpoint "x.pt": ${why}`);
};

/** Byte offset of the first occurrence of `needle` in `bytes`. */
function find(bytes: Uint8Array, needle: number[], from = 0): number {
  outer: for (let i = from; i <= bytes.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const CENTRAL = [0x50, 0x4b, 0x01, 0x02];

const ENTRIES = [
  { name: "archive/data.pkl", data: enc.encode("pickle bytes") },
  { name: "archive/data/0", data: new Uint8Array(37).map((_, i) => i * 7) },
  { name: "archive/data/1", data: [new Uint8Array([1, 2]), new Uint8Array([3])] },
  { name: "archive/version", data: enc.encode("3\n") },
];

Deno.test("crc32() matches the standard check value and continues across chunks", () => {
  assert.equal(crc32(enc.encode("123456789")), 0xcbf43926);
  const all = enc.encode("The quick brown fox jumps over the lazy dog");
  assert.equal(crc32(all), 0x414fa339);
  assert.equal(crc32(all.subarray(13), crc32(all.subarray(0, 13))), 0x414fa339);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("zipStored() then readZip() gives the entries back, data 64-byte aligned", () => {
  for (const forceZip64 of [false, true]) {
    const bytes = join(zipStored(ENTRIES, { forceZip64 }));
    const entries = readZip(bytes, fail);
    assert.deepEqual([...entries.keys()], ENTRIES.map((e) => e.name));
    assert.deepEqual(entries.get("archive/data/1"), new Uint8Array([1, 2, 3]));
    assert.deepEqual(entries.get("archive/data/0"), ENTRIES[1].data);
    for (const data of entries.values()) assert.equal(data.byteOffset % 64, 0);
  }
});

Deno.test("zipStored() writes the same bytes for the same entries", () => {
  assert.deepEqual(join(zipStored(ENTRIES)), join(zipStored(ENTRIES)));
});

Deno.test("readZip() refuses a compressed entry, naming it and the method", () => {
  const bytes = join(zipStored(ENTRIES));
  const at = find(bytes, CENTRAL, find(bytes, CENTRAL) + 1); // the second entry
  new DataView(bytes.buffer).setUint16(at + 10, 8, true); // method 8: deflate
  assert.throws(
    () => readZip(bytes, fail),
    /^Error: Cannot read checkpoint "x.pt": entry "archive\/data\/0" is compressed \(method 8, deflate\)/,
  );
});

Deno.test("readZip() refuses truncated archives with one line at every cut", () => {
  const bytes = join(zipStored(ENTRIES));
  for (let n = 0; n < bytes.length; n += 7) {
    assert.throws(() => readZip(bytes.subarray(0, n), fail), (e: Error) => {
      assert.match(e.message, /^Cannot read checkpoint "x.pt": /);
      assert.ok(!e.message.includes("\n"));
      return true;
    }, `cut at ${n}`);
  }
});

Deno.test("readZip() refuses sizes that lie, a bad CRC, duplicate names and encryption", () => {
  const cases: [string, (b: Uint8Array, v: DataView) => void, RegExp][] = [
    ["size past the directory", (b, v) => {
      const at = find(b, CENTRAL);
      v.setUint32(at + 20, 100000, true);
      v.setUint32(at + 24, 100000, true);
    }, /claims 100000 bytes .* \(truncated file or a size that lies\)/],
    ["stored sizes differ", (b, v) => {
      v.setUint32(find(b, CENTRAL) + 20, 3, true);
    }, /is stored but claims 3 bytes stored for 12 bytes/],
    ["corrupted data", (b) => {
      b[find(b, [...enc.encode("pickle")])] ^= 1;
    }, /entry "archive\/data.pkl" fails its CRC-32 check/],
    ["duplicate", (b) => {
      const at = find(b, [...enc.encode("archive/data/1")], find(b, CENTRAL));
      b.set(enc.encode("archive/data/0"), at);
    }, /entry "archive\/data\/0" appears twice/],
    ["encrypted", (b, v) => {
      v.setUint16(find(b, CENTRAL) + 8, 1, true);
    }, /is encrypted/],
    ["entry count lies", (b, v) => {
      v.setUint16(b.length - 22 + 10, 60000, true);
    }, /60000 entries cannot fit/],
  ];
  for (const [what, patch, want] of cases) {
    const bytes = join(zipStored(ENTRIES));
    patch(bytes, new DataView(bytes.buffer));
    assert.throws(() => readZip(bytes, fail), want, what);
  }
});

Deno.test("readZip() refuses what is not a zip archive", () => {
  assert.throws(() => readZip(new Uint8Array(10), fail), /too short for a zip archive/);
  assert.throws(() => readZip(new Uint8Array(100), fail), /no end-of-central-directory record/);
});
