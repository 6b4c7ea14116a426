/**
 * Seeded fuzzing of every parser of outside input: safetensors checkpoints (header, metadata,
 * tensors), config YAML files and `key=value` overrides, star-graph data lines. Each input is
 * either rejected with an `Error` of one short line that names its source, or accepted and
 * valid — never a TypeError, RangeError or SyntaxError from inside, a hang or an OOM. The
 * case counts keep each target to about a second on a 2-core CPU; the seeds make any failure
 * reproducible (the failing case's index is in the assertion message). `FUZZ_SEED=N` shifts
 * every seed, for longer local runs: `for s in 1 2 3; do FUZZ_SEED=$s deno test -P=test
 * tests/fuzz/; done`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { configToYaml, loadCheckpointConfig, loadConfig } from "../../src/config/load.ts";
import { checkConsistency, checkRanges } from "../../src/config/ranges.ts";
import { CONFIG_KEYS, type ConfigKeySpec } from "../../src/config/schema.ts";
import { parseStarGraph } from "../../src/data/stargraph.ts";
import { PairSampler } from "../../src/models/bst_pairs.ts";
import {
  validateCheckpointMetadata,
  validateCheckpointTensors,
} from "../../src/train/checkpoint_validate.ts";
import { CheckpointManager, STATE_KEY } from "../../src/train/checkpoints.ts";
import { buildParamTable, paramsFromSafetensors } from "../../src/core/param_table.ts";
import { storedConfig } from "../../src/train/run.ts";
import { fromFloat32, parseSafetensors, serializeSafetensors } from "../../src/io/safetensors.ts";
import { rng } from "../_util.ts";
import { assertClean, JSON_VALUES, pick, SEED } from "./_fuzz.ts";

// ---------------------------------------------------------------------------------------------
// Safetensors checkpoints

const TABLE = buildParamTable([
  { name: "encoder.w", shape: [2, 3] },
  { name: "encoder.b", shape: [3] },
]);

async function baseCheckpoint(): Promise<Uint8Array> {
  const config = await loadConfig({ overrides: ["model.n_layer=1", "model.n_embd=32"] });
  const sampler = new PairSampler({
    eosTokenId: 11,
    blockSize: 8,
    contextLength: 3,
    pairMinimumGap: 1,
    pairMaximumGap: -1,
    pairSubsampleRate: 1,
    singleGapPredictionMode: "eos",
  }, 1);
  const zeros = new Float32Array(TABLE.size);
  return serializeSafetensors({
    "encoder.w": fromFloat32(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]),
    "encoder.b": fromFloat32(new Float32Array([0, 0.5, -1]), [3]),
    "optimizer.exp_avg": fromFloat32(zeros, [TABLE.size]),
    "optimizer.exp_avg_sq": fromFloat32(zeros, [TABLE.size]),
  }, {
    model: "bst",
    step: "7",
    config: JSON.stringify(storedConfig(config)),
    pair_sampler: JSON.stringify(sampler.getState()),
    "checkpoint.kind": "validation",
    "checkpoint.step": "7",
    [STATE_KEY]: JSON.stringify({
      latest: "ckpt_iter_7.safetensors",
      best: "ckpt_iter_7.safetensors",
      bestValLoss: 2.5,
      recovery: null,
      keep: [],
      last: "ckpt_iter_7.safetensors",
    }),
  });
}

function headerOf(bytes: Uint8Array): Record<string, unknown> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
}

function withHeader(bytes: Uint8Array, header: unknown): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + n), 8 + json.length);
  return out;
}

/** One mutation of a valid checkpoint, chosen by `r`. */
function mutateCheckpoint(base: Uint8Array, r: () => number): Uint8Array {
  const kind = Math.floor(r() * 6);
  if (kind <= 1) {
    // A field of the header (tensor entry or metadata) replaced by a stressing value.
    const header = headerOf(base);
    const name = pick(r, Object.keys(header));
    const entry = header[name] as Record<string, unknown>;
    const field = pick(r, Object.keys(entry));
    if (name === "__metadata__" && r() < 0.7) {
      // Metadata values are strings: stressing JSON as text, or the old text mutated.
      const old = entry[field] as string;
      const i = Math.floor(r() * (old.length + 1));
      entry[field] = r() < 0.5
        ? JSON.stringify(pick(r, JSON_VALUES))
        : old.slice(0, i) + pick(r, ['"', "}", "]", ",", "-", "9", "null", "1e999", ""]) +
          old.slice(i + 1);
    } else {
      entry[field] = pick(r, JSON_VALUES);
    }
    if (r() < 0.2) header[pick(r, ["__proto__", "constructor", "x"])] = pick(r, JSON_VALUES);
    return withHeader(base, header);
  }
  const bytes = base.slice();
  if (kind === 2) {
    // Random bytes flipped anywhere (header or data; data flips make NaN and Infinity).
    for (let k = 1 + Math.floor(r() * 4); k > 0; k--) {
      bytes[Math.floor(r() * bytes.length)] = pick(r, [0x00, 0xff, 0x7f, 0x22, 0x7d, 0x5b]);
    }
    return bytes;
  }
  if (kind === 3) return bytes.subarray(0, Math.floor(r() * bytes.length));
  if (kind === 4) {
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, pick(r, [0n, 1n, 7n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n]), true);
    return bytes;
  }
  // Data of one tensor set to non-finite or negative floats.
  const data = bytes.subarray(bytes.length - 4 * (2 * TABLE.size + 9));
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  view.setFloat32(4 * Math.floor(r() * (data.byteLength / 4)), pick(r, [NaN, -Infinity, -1]), true);
  return bytes;
}

/** The checks `loadCheckpoint` and a resuming run apply, in their order. */
async function loadLikeResume(bytes: Uint8Array, source: string): Promise<void> {
  const file = parseSafetensors(bytes, source);
  validateCheckpointMetadata(file.metadata, source);
  if (Object.hasOwn(file.metadata, STATE_KEY)) {
    CheckpointManager.resume(
      "out",
      "run1",
      {
        saveLast: true,
        saveBest: true,
        alwaysSave: false,
        recoveryEvery: 0,
        keepSteps: [],
      },
      file.metadata,
      source,
    );
  }
  validateCheckpointTensors(file, source, { kind: "bst", optimizerSize: TABLE.size });
  const flat = paramsFromSafetensors(TABLE, file.tensors, source, {
    ignore: (n) => n.startsWith("optimizer."),
  });
  // Accepted means valid: finite weights, and metadata the run can use as it is.
  assert.ok(flat.every(Number.isFinite));
  if (file.metadata.pair_sampler !== undefined) {
    new PairSampler({
      eosTokenId: 11,
      blockSize: 8,
      contextLength: 3,
      pairMinimumGap: 1,
      pairMaximumGap: -1,
      pairSubsampleRate: 1,
      singleGapPredictionMode: "eos",
    }, 1).setState(JSON.parse(file.metadata.pair_sampler));
  }
  if (file.metadata.config !== undefined) await loadCheckpointConfig(file.metadata, source);
}

Deno.test("fuzz: mutated safetensors checkpoints are rejected cleanly or load valid", async () => {
  const base = await baseCheckpoint();
  await loadLikeResume(base, "base.safetensors");
  const r = rng(SEED + 20261127);
  let accepted = 0;
  const started = performance.now();
  for (let i = 0; i < 3000; i++) {
    const bytes = mutateCheckpoint(base, r);
    const source = `fuzz-${i}.safetensors`;
    try {
      await loadLikeResume(bytes, source);
      accepted++;
    } catch (e) {
      assertClean(e, source, () => new TextDecoder().decode(bytes.subarray(0, 400)));
    }
  }
  assert.ok(accepted > 0 && accepted < 3000, `accepted ${accepted}`);
  assert.ok(performance.now() - started < 20_000);
});

// ---------------------------------------------------------------------------------------------
// Config YAML and overrides

/** YAML value texts that stress the loader: types, extremes, aliases, tags, broken syntax. */
const YAML_VALUES = [
  "-1",
  "0",
  "1",
  "2147483648",
  "9007199254740993",
  "1e309",
  ".inf",
  "-.inf",
  ".nan",
  "0x10",
  "0o17",
  "1_000",
  "6.0",
  "1e-4",
  "-0.0",
  "null",
  "~",
  "",
  "true",
  "yes",
  "abc",
  '"quoted"',
  "'single'",
  "[1, 2]",
  "[30, 20]",
  "[]",
  "{}",
  "{a: 1}",
  "[a.npy, [b.npy, -1]]",
  "[[a.npy, 0.5]]",
  "&a [1, 2]",
  "*a",
  "[&a [1], *a, *a]",
  "!!str 5",
  "!!int x",
  "!!binary aGVsbG8=",
  "!!timestamp 2001-12-14",
  "!!js/function 'f'",
  "? a",
  "[",
  "{",
  "]",
  "a: b: c",
  "- 1",
  "|\n  text",
  "'unterminated",
  "\u0000",
  "x\ny",
  "é",
  "x".repeat(5000),
  `[${"[".repeat(30)}${"]".repeat(30)}]`,
];

const KEYS = Object.keys(CONFIG_KEYS);

/** A value of the key's type, often in range: accepted inputs need exercising too. */
function plausibleValue(r: () => number, spec: ConfigKeySpec): string {
  const byType: Record<string, string[]> = {
    int: ["1", "2", "8", "64", "-1", "0"],
    float: ["0.5", "1e-3", "0", "1"],
    "float|null": ["null", "1.0", "0.5"],
    bool: ["true", "false"],
    string: ["out", "data/x.txt", '""'],
    "string|null": ["null", '""', "tok.json"],
    "int[]": ["[]", "[100, 200]"],
    int_pair: ["[10, 20]", "[25, 75]"],
    data_files: ["[]", "[a.npy, [b.npy, 0.5]]"],
    enum: [...(spec.values ?? [])],
  };
  return pick(r, byType[spec.type]);
}

function overrideItem(r: () => number): string {
  const key = r() < 0.8 ? pick(r, KEYS) : pick(r, [
    "model",
    "trainer",
    "toString",
    "model.__proto__",
    "constructor.prototype",
    "a.b.c.d.e.f.g.h.i",
    "model.n_layer.x",
    "",
    "9abc",
    "model..n_layer",
    "m".repeat(200),
  ]);
  let value = r() < 0.4 && Object.hasOwn(CONFIG_KEYS, key)
    ? plausibleValue(r, CONFIG_KEYS[key as keyof typeof CONFIG_KEYS])
    : pick(r, YAML_VALUES);
  if (r() < 0.2) {
    const i = Math.floor(r() * (value.length + 1));
    value = value.slice(0, i) + pick(r, ["&", "*", "[", "]", "{", ":", ",", "#", "!", "'"]) +
      value.slice(i);
  }
  return r() < 0.05 ? key : `${key}=${value}`;
}

/** Accepted means valid: ranges and cross-key checks hold and the YAML dump loads back. */
async function assertValidConfig(dir: string, config: Awaited<ReturnType<typeof loadConfig>>) {
  checkConsistency(checkRanges(config, "fuzz"), "fuzz");
  const dump = join(dir, "dump.yaml");
  await Deno.writeTextFile(dump, configToYaml(config));
  assert.deepEqual(await loadConfig({ configFile: dump }), config);
}

Deno.test("fuzz: config overrides are rejected cleanly or give a valid config", async () => {
  const dir = await Deno.makeTempDir();
  const r = rng(SEED + 1337);
  let accepted = 0;
  try {
    for (let i = 0; i < 600; i++) {
      const items = [overrideItem(r), ...(r() < 0.3 ? [overrideItem(r)] : [])];
      try {
        const config = await loadConfig({ overrides: items });
        accepted++;
        if (accepted % 10 === 1) await assertValidConfig(dir, config);
      } catch (e) {
        assertClean(e, "verride", () => JSON.stringify(items));
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(accepted > 30 && accepted < 600, `accepted ${accepted}`);
});

Deno.test("fuzz: mutated config YAML files are rejected cleanly or give a valid config", async () => {
  const dir = await Deno.makeTempDir();
  const defaults = await Deno.readTextFile(new URL("../../config/defaults.yaml", import.meta.url));
  const lines = defaults.split("\n");
  const r = rng(SEED + 42);
  let accepted = 0;
  try {
    for (let i = 0; i < 300; i++) {
      const text = [...lines];
      for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
        const at = Math.floor(r() * text.length);
        const op = Math.floor(r() * 5);
        if (op === 0) text.splice(at, 1);
        else if (op === 1) text.splice(at, 0, text[Math.floor(r() * text.length)]);
        else if (op === 2) text[at] = text[at].replace(/:.*$/, `: ${pick(r, YAML_VALUES)}`);
        else if (op === 3) text[at] = ` ${text[at]}`;
        else {
          const j = Math.floor(r() * (text[at].length + 1));
          text[at] = text[at].slice(0, j) + pick(r, ["&a ", "*a", "[", "{", ":", "-", "\t", "!!"]) +
            text[at].slice(j);
        }
      }
      const file = join(dir, `fuzz-${i}.yaml`);
      await Deno.writeTextFile(file, text.join("\n"));
      try {
        const config = await loadConfig({ configFile: file });
        accepted++;
        if (accepted % 10 === 1) await assertValidConfig(dir, config);
      } catch (e) {
        assertClean(e, file, () => text.join("\n"));
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(accepted > 10 && accepted < 300, `accepted ${accepted}`);
});

// ---------------------------------------------------------------------------------------------
// Star-graph data lines

Deno.test("fuzz: mutated star-graph lines are rejected cleanly or tokenize validly", async () => {
  const base = await Deno.readTextFile(
    new URL("../fixtures/graph_2_5_sample_20.txt", import.meta.url),
  );
  const r = rng(SEED + 7);
  const pieces = ["0", "9", ",", "|", "/", "=", "$", "\n", "\r\n", " ", "-", "a", "\u0000", "é"];
  let accepted = 0;
  for (let i = 0; i < 4000; i++) {
    let text = base;
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const at = Math.floor(r() * (text.length + 1));
      const op = Math.floor(r() * 4);
      if (op === 0) text = text.slice(0, at) + pick(r, pieces) + text.slice(at + 1);
      else if (op === 1) text = text.slice(0, at) + pick(r, pieces) + text.slice(at);
      else if (op === 2) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 20));
      else {text = text.slice(0, at) + pick(r, ["99999999999999999999", "", "\n\n"]) +
          text.slice(at);}
    }
    const maxNodes = pick(r, [50, 49, 1, 1000]);
    const source = `fuzz-${i}.txt`;
    try {
      const ds = parseStarGraph(text, maxNodes, source);
      accepted++;
      assert.equal(ds.tokens.length, ds.rows * ds.blockSize);
      assert.ok(ds.contextLength < ds.blockSize);
      assert.ok(ds.tokens.every((t) => t >= 0 && t < ds.vocabSize));
    } catch (e) {
      assertClean(e, source, () => text);
    }
  }
  assert.ok(accepted > 0 && accepted < 4000, `accepted ${accepted}`);
});
