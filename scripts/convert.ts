/**
 * `deno task convert IN OUT [--config FILE] [key=value ...]`: converts a checkpoint between
 * microsoft/BST's `.pt` (what its `save_checkpoint` writes) and this project's
 * `.safetensors`, either way: model weights, AdamW moments and step. The kind of IN is read
 * from its bytes; the kind of OUT from its name (`.pt`, `.pth`, `.ckpt` or `.safetensors`).
 *
 * - `.pt` → `.safetensors`: names, moments and step as `src/train/torch_checkpoint.ts` maps
 *   them; with `--config`, the config is stored in OUT (so `infer` and `evaluate` need no
 *   `--config` later) and checked against the model.
 * - `.safetensors` → `.pt`: the reference's layout, loadable by its `load_checkpoint`
 *   (strict); the optimizer's `param_groups` come from the `.pt` the file was converted from,
 *   else from the config (`--config`, else the one stored in IN). This project's metadata rides
 *   along under the key `bst_webgpu`, so converting back loses nothing.
 *
 * Tensors are copied bit for bit (a bf16 `.pt` stays bf16 in the `.safetensors`). The last
 * stdout line is one JSON object describing the conversion.
 *
 * Permissions (`-P=convert`): read (IN, the config); write `./out` only.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { loadCheckpointConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/schema.ts";
import { writeFileAtomic } from "../src/io/atomic.ts";
import { isInside, resolveContained } from "../src/io/safe_paths.ts";
import { writeSafetensorsAtomic } from "../src/io/safetensors.ts";
import { serializeTorchCheckpoint } from "../src/io/torch_pt.ts";
import { loadCheckpoint } from "../src/train/checkpoints.ts";
import { storedConfig } from "../src/train/run.ts";
import {
  checkModelConfig,
  modelShapeOf,
  TORCH_OPTIMIZER_KEY,
  torchOptimizerSettings,
  toTorchCheckpoint,
} from "../src/train/torch_checkpoint.ts";
import { parseCli, runMain, UsageError } from "./_cli.ts";

const { values, positionals } = parseCli({
  usage: "deno task convert IN OUT [--config FILE] [key=value ...]",
  about: `Converts a checkpoint between microsoft/BST's .pt and this project's .safetensors, either
way: model weights, AdamW moments and step, tensors bit for bit. IN may be either kind (read
from its bytes); OUT's name says which to write: .pt (also .pth, .ckpt) or .safetensors. OUT
must be under out/.`,
  flags: {
    config: {
      type: "string",
      short: "c",
      file: true,
      help: "run config: stored in a .safetensors OUT, the optimizer settings of a .pt OUT",
    },
  },
  positionals: { name: "IN OUT", min: 2 },
  notes: `key=value overrides apply to the config (--config, else the one stored in IN).
A .pt has no config: without --config the .safetensors written from it needs --config in infer
and evaluate. A .pt is written loadable by the reference's load_checkpoint (strict), with this
project's metadata kept under an extra key that Lightning's fabric.load leaves alone.`,
});

await runMain(async () => {
  const [input, output, ...overrides] = positionals;
  for (const o of overrides) {
    if (!o.includes("=")) throw new UsageError(`"${o}" is not a key=value override`);
  }
  if (!isInside(resolve(output), resolve("out"))) {
    throw new UsageError(`OUT "${output}" must be under out/ (the only folder this task writes)`);
  }
  const toPt = /\.(pt|pth|ckpt)$/.test(output);
  if (!toPt && !output.endsWith(".safetensors")) {
    throw new UsageError(`OUT "${output}" must end in .pt, .pth, .ckpt or .safetensors`);
  }
  try {
    if ((await Deno.stat(input)).isDirectory) {
      throw new UsageError(`IN "${input}" is a directory, not a file`);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`IN "${input}" not found`);
    if (e instanceof UsageError) throw e;
  }
  const out = await resolveContained(output, { roots: ["out"], key: "OUT" });
  const file = await loadCheckpoint(input);
  const model = [...file.tensors].filter(([n]) => !n.startsWith("optimizer."));
  const shape = modelShapeOf(new Map(model.map(([n, t]) => [n, t.shape])), input);
  const moments = file.tensors.has("optimizer.exp_avg");
  const step = Number(file.metadata.step ?? 0);
  const needConfig = values.config !== undefined || overrides.length > 0 ||
    (toPt && moments && file.metadata[TORCH_OPTIMIZER_KEY] === undefined);
  let config: Config | undefined;
  if (needConfig) {
    config = await loadCheckpointConfig(file.metadata, input, {
      configFile: values.config,
      overrides,
    });
    checkModelConfig(shape, config, input);
  }
  await Deno.mkdir(dirname(out), { recursive: true });
  if (toPt) {
    const settings = config && torchOptimizerSettings(config, step);
    await writeFileAtomic(out, serializeTorchCheckpoint(toTorchCheckpoint(file, input, settings)));
  } else {
    const metadata = { ...file.metadata };
    if (config) metadata.config = JSON.stringify(storedConfig(config));
    await writeSafetensorsAtomic(out, file.tensors, metadata);
    if (!metadata.config) {
      console.error(
        `note: ${output} has no config; pass --config to infer and evaluate (or convert again ` +
          `with --config to store one)`,
      );
    }
  }
  console.log(JSON.stringify({
    input,
    output,
    model: shape.kind,
    parameters: shape.specs.length,
    step,
    optimizer: moments,
    format: toPt ? "pt" : "safetensors",
  }));
});
