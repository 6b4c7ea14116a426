/**
 * Seeded fuzzing of the `.pt` reader (zip, pickle, tensors, the reference layout): every input
 * is either read or rejected with an `Error` of one short line naming its source — never a
 * TypeError, RangeError or SyntaxError from inside, a hang or an OOM, and never a call of
 * anything outside the allow-list (the reader has no way to make one). Mutations hit the
 * pickle inside a valid archive (its CRC recomputed, so the pickle reader is reached), the
 * archive's records, and random opcode streams. `FUZZ_SEED=N` shifts the seeds (see
 * fuzz_test.ts).
 */

import { parseTorchCheckpoint } from "../../src/io/torch_pt.ts";
import { parseCheckpoint } from "../../src/train/torch_checkpoint.ts";
import { concatBytes, readZip, zipStored } from "../../src/io/zip.ts";
import { rng } from "../_util.ts";
import { assertClean, pick, SEED } from "./_fuzz.ts";

const dir = new URL("../fixtures/torch/", import.meta.url);
const fail = (why: string): never => {
  throw new Error(why);
};

/** The archive's entries, to be rewritten with one of them changed. */
async function entries(name: string): Promise<[string, Uint8Array][]> {
  return [...readZip(await Deno.readFile(new URL(name, dir)), fail)];
}

function rezip(list: [string, Uint8Array][]): Uint8Array {
  return concatBytes(zipStored(list.map(([name, data]) => ({ name, data }))));
}

/** Bytes a pickle is made of: opcodes with small arguments, and what state dicts hold. */
const PIECES: number[][] = [
  [0x80, 2],
  [0x28], // MARK
  [0x29], // EMPTY_TUPLE
  [0x5d], // EMPTY_LIST
  [0x7d], // EMPTY_DICT
  [0x4e],
  [0x88],
  [0x89],
  [0x4b, 3],
  [0x4d, 0xff, 0xff],
  [0x4a, 0xff, 0xff, 0xff, 0x7f],
  [0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 0x80],
  [0x47, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],
  [0x58, 3, 0, 0, 0, 0x61, 0x62, 0x63],
  [0x58, 0xff, 0xff, 0xff, 0xff],
  [0x8c, 1, 0x30],
  [0x71, 0],
  [0x72, 0xff, 0xff, 0xff, 0x7f],
  [0x68, 0],
  [0x6a, 1, 0, 0, 0],
  [0x94],
  [0x61], // APPEND
  [0x65], // APPENDS
  [0x73], // SETITEM
  [0x75], // SETITEMS
  [0x74], // TUPLE
  [0x85],
  [0x86],
  [0x87],
  [0x52], // REDUCE
  [0x62], // BUILD
  [0x51], // BINPERSID
  [0x30],
  [0x31],
  [0x32],
  [0x93], // STACK_GLOBAL
  [...new TextEncoder().encode("ctorch._utils\n_rebuild_tensor_v2\n")],
  [...new TextEncoder().encode("ccollections\nOrderedDict\n")],
  [...new TextEncoder().encode("ctorch\nFloatStorage\n")],
  [...new TextEncoder().encode("cposix\nsystem\n")],
  [0x2e],
];

Deno.test("fuzz: the pickle of a reference .pt mutated inside a valid archive", async () => {
  for (const name of ["gpt_compiled.pt", "views.pt"]) {
    const base = await entries(name);
    const at = base.findIndex(([n]) => n.endsWith("/data.pkl"));
    const pkl = base[at][1];
    const r = rng(1234 + SEED);
    for (let i = 0; i < 400; i++) {
      const bytes = pkl.slice();
      const kind = Math.floor(r() * 4);
      let mutated: Uint8Array = bytes;
      if (kind === 0) {
        for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
          bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
        }
      } else if (kind === 1) {
        mutated = bytes.subarray(0, Math.floor(r() * bytes.length));
      } else if (kind === 2) {
        // a small integer (sizes, strides, offsets, ids) changed: BININT1/BININT2 arguments
        const ints = [...bytes.keys()].filter((j) => bytes[j] === 0x4b);
        if (ints.length) bytes[pick(r, ints) + 1] = pick(r, [0, 1, 2, 255, 100, 64]);
      } else {
        const j = Math.floor(r() * bytes.length);
        mutated = concatBytes([
          bytes.subarray(0, j),
          new Uint8Array(pick(r, PIECES)),
          bytes.subarray(j),
        ]);
      }
      const list = base.slice();
      list[at] = [base[at][0], mutated];
      const source = `${name}#${i}`;
      const archive = rezip(list);
      for (const read of [parseTorchCheckpoint, parseCheckpoint]) {
        try {
          read(archive, source);
        } catch (e) {
          assertClean(e, source, () => `${name} case ${i} kind ${kind}`);
        }
      }
    }
  }
});

Deno.test("fuzz: random opcode streams", () => {
  const r = rng(99 + SEED);
  for (let i = 0; i < 2000; i++) {
    const parts: number[] = [0x80, 2];
    for (let k = Math.floor(r() * 30); k > 0; k--) parts.push(...pick(r, PIECES));
    if (r() < 0.8) parts.push(0x2e);
    const source = `stream#${i}`;
    const archive = rezip([["archive/data.pkl", new Uint8Array(parts)]]);
    try {
      parseCheckpoint(archive, source);
    } catch (e) {
      assertClean(e, source, () => parts.map((b) => b.toString(16)).join(" "));
    }
  }
});

Deno.test("fuzz: the archive's bytes mutated (records, sizes, offsets, truncation)", async () => {
  const base = await Deno.readFile(new URL("views.pt", dir));
  const r = rng(7 + SEED);
  for (let i = 0; i < 600; i++) {
    const bytes = base.slice();
    const kind = Math.floor(r() * 3);
    let input: Uint8Array = bytes;
    if (kind === 0) {
      // header fields: the last kilobyte holds the central directory and end records
      const from = Math.max(0, bytes.length - 1200);
      for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
        bytes[from + Math.floor(r() * (bytes.length - from))] = pick(r, [0, 0xff, 8, 1, 0x50]);
      }
    } else if (kind === 1) {
      input = bytes.subarray(0, Math.floor(r() * bytes.length));
    } else {
      bytes[Math.floor(r() * bytes.length)] ^= 1 << Math.floor(r() * 8);
    }
    const source = `views.pt#${i}`;
    try {
      parseCheckpoint(input, source);
    } catch (e) {
      assertClean(e, source, () => `case ${i} kind ${kind}`);
    }
  }
});
