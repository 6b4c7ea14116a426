import assert from "node:assert/strict";
import { join } from "node:path";
import {
  validateCheckpointMetadata,
  validateCheckpointTensors,
} from "../../src/train/checkpoint_validate.ts";
import { loadCheckpoint } from "../../src/train/checkpoints.ts";
import {
  fromFloat32,
  fromInt32,
  type SafeTensor,
  serializeSafetensors,
} from "../../src/io/safetensors.ts";

const PATH = "out/run1/ckpt_iter_3.safetensors";
const SAMPLER = JSON.stringify({
  avgValidPairs: 6,
  avgSampledPairs: 6,
  nItersAveraged: 4,
  rng: [1, 2, 3, 4],
});

function throwsLine(f: () => unknown, pattern: RegExp): void {
  assert.throws(f, (e) => {
    assert.ok(e instanceof Error && !(e instanceof TypeError) && !(e instanceof SyntaxError));
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n") && e.message.length < 300, e.message);
    return true;
  });
}

Deno.test("validateCheckpointMetadata() accepts what training writes and foreign metadata", () => {
  validateCheckpointMetadata({
    model: "bst",
    step: "3",
    config: "{}",
    pair_sampler: SAMPLER,
    "checkpoint.kind": "recovery",
    "checkpoint.step": "3",
    rng: "anything",
  }, PATH);
  validateCheckpointMetadata({}, PATH);
  validateCheckpointMetadata({ format: "pt" }, PATH);
});

Deno.test("validateCheckpointMetadata() names the file and field of each malformed value", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ config: "null" }, /metadata field "config" is "null", expected a JSON object$/],
    [{ config: "[1,2]" }, /"config" is "\[1,2\]", expected a JSON object/],
    [{ config: "{not json" }, /"config" is "\{not json", expected a JSON object/],
    [{ step: "-3" }, /metadata field "step" is "-3", expected a non-negative integer/],
    [{ step: "1e3" }, /"step" is "1e3"/],
    [{ step: "99999999999999999999" }, /"step" is "99999999999999999999"/],
    [{ model: "llama" }, /"model" is "llama", expected "bst" or "gpt"/],
    [{ "checkpoint.kind": "best" }, /"checkpoint.kind" is "best"/],
    [{ "checkpoint.step": "" }, /"checkpoint.step" is ""/],
    [{ pair_sampler: "{" }, /"pair_sampler" is "\{", expected the JSON state of the pair sampler/],
    [{ pair_sampler: "null" }, /"pair_sampler" is "null", expected .* \(an object\)/],
    [
      { pair_sampler: SAMPLER.replace("[1,2,3,4]", "[0,0,0,0]") },
      /rng must be 4 unsigned 32-bit integers, not all zero/,
    ],
    [
      { pair_sampler: SAMPLER.replace('"nItersAveraged":4', '"nItersAveraged":-1') },
      /nItersAveraged must be a non-negative integer/,
    ],
    [
      { pair_sampler: SAMPLER.replace('"avgValidPairs":6', '"avgValidPairs":null') },
      /the averages must be null exactly when nItersAveraged is 0/,
    ],
    [{ config: "x".repeat(100_000) }, /"config" is "x{60}…", expected a JSON object/],
  ];
  for (const [metadata, pattern] of cases) {
    throwsLine(() => validateCheckpointMetadata(metadata, PATH), pattern);
    throwsLine(
      () => validateCheckpointMetadata(metadata, PATH),
      /^Cannot load checkpoint "out\/run1\/ckpt_iter_3\.safetensors": metadata field /,
    );
  }
});

function file(tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}) {
  return { tensors: new Map(Object.entries(tensors)), metadata };
}

const w = (values: number[]) => fromFloat32(new Float32Array(values), [values.length]);

Deno.test("validateCheckpointTensors() refuses optimizer moments of the wrong dtype or shape", () => {
  const ok = {
    "encoder.w": w([1, 2]),
    "optimizer.exp_avg": w([0, 0]),
    "optimizer.exp_avg_sq": w([0, 1]),
  };
  validateCheckpointTensors(file(ok), PATH, { optimizerSize: 2 });
  throwsLine(
    () =>
      validateCheckpointTensors(
        file({ ...ok, "optimizer.exp_avg": fromInt32(new Int32Array(2), [2]) }),
        PATH,
        { optimizerSize: 2 },
      ),
    /^Cannot load checkpoint ".*": tensor "optimizer\.exp_avg" is I32, expected F32 \[2\]$/,
  );
  throwsLine(
    () => validateCheckpointTensors(file(ok), PATH, { optimizerSize: 3 }),
    /tensor "optimizer\.exp_avg" has shape \[2\], expected F32 \[3\]/,
  );
  const { "optimizer.exp_avg_sq": _, ...noV } = ok;
  throwsLine(
    () => validateCheckpointTensors(file(noV), PATH, { optimizerSize: 2 }),
    /no optimizer state \(tensor "optimizer\.exp_avg_sq" is missing\)/,
  );
  throwsLine(
    () =>
      validateCheckpointTensors(file({ ...ok, "optimizer.exp_avg_sq": w([0, -1]) }), PATH, {
        optimizerSize: 2,
      }),
    /tensor "optimizer\.exp_avg_sq" holds -1 at element 1; AdamW second moments are >= 0/,
  );
});

Deno.test("validateCheckpointTensors() refuses NaN and Infinity unless allowNonFinite", () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const f = file({ "encoder.w": w([1, 2, bad]) });
    throwsLine(
      () => validateCheckpointTensors(f, PATH, {}),
      new RegExp(`tensor "encoder\\.w" holds ${bad} at element 2 .*--allow-non-finite`),
    );
    validateCheckpointTensors(f, PATH, { allowNonFinite: true });
  }
  // F16 infinity (0x7c00) is caught too.
  const half: SafeTensor = { dtype: "F16", shape: [1], data: new Uint8Array([0x00, 0x7c]) };
  throwsLine(() => validateCheckpointTensors(file({ h: half }), PATH, {}), /"h" holds Infinity/);
  // Loading weights only does not read the optimizer state.
  validateCheckpointTensors(file({ "encoder.w": w([1]), "optimizer.exp_avg": w([NaN]) }), PATH, {});
});

Deno.test("validateCheckpointTensors() refuses a checkpoint of the other model kind", () => {
  throwsLine(
    () => validateCheckpointTensors(file({}, { model: "gpt" }), PATH, { kind: "bst" }),
    /metadata field "model" is "gpt" but the config trains a bst \(use_bst: true\)/,
  );
  validateCheckpointTensors(file({}, { model: "bst" }), PATH, { kind: "bst" });
});

Deno.test("loadCheckpoint() refuses malformed metadata naming the file and field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "ckpt_iter_3.safetensors");
    const cases: [Record<string, string>, RegExp][] = [
      [{ config: "null" }, /metadata field "config" is "null"/],
      [{ pair_sampler: "{]" }, /metadata field "pair_sampler"/],
      [{ "checkpoint.state": "[]" }, /checkpoint\.state is not an object/],
      [{ "checkpoint.state": "{" }, /checkpoint\.state is not JSON/],
    ];
    for (const [metadata, pattern] of cases) {
      await Deno.writeFile(path, serializeSafetensors({ w: w([1]) }, metadata));
      await assert.rejects(loadCheckpoint(path), (e: Error) => {
        assert.ok(e.message.includes(path), e.message);
        assert.match(e.message, pattern);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
