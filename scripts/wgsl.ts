/**
 * `deno task wgsl (NAME... | --all) [--out DIR] [--list] [--config FILE] [key=value ...]`:
 * writes the WGSL that this adapter compiles, exactly as handed to `createShaderModule`.
 *
 * Most of the WGSL that runs is not in `kernels/`: the matmul and attention tiles are generated
 * per variant (`src/gpu/matmul_wgsl.ts`, `attention_wgsl.ts`), helpers are appended to the
 * files that use them, and on CPU adapters read-only arrays are rewritten into texture loads.
 * To see the final text, this task runs what `deno task train` runs with the same config — a
 * model, two optimizer steps and one validation (with path accuracy's greedy decoding) — and
 * writes every module compiled on the way, as `src/gpu/kernel.ts`'s `shaderSource()` recorded
 * it: `<kernel>.<variant>.<hash>.wgsl`, one file per kernel name a module serves, and
 * `index.txt` listing them. A compile error names the kernel, its variant and the line in
 * that file.
 *
 * Permissions (`-P=wgsl`): read; write `out/` (the files) and `data/` (the demo's star graph,
 * generated when missing, as `deno task train` does); the env variables Mesa and wgpu read.
 *
 * @module
 */

import { loadConfig } from "../src/config/load.ts";
import { getGpu } from "../src/gpu/device.ts";
import { compiledShaders, type ShaderSource } from "../src/gpu/kernel.ts";
import { writeTextFileAtomic } from "../src/io/atomic.ts";
import { loadTrainData } from "../src/train/data.ts";
import { createRun } from "../src/train/trainer.ts";
import { parseCli, runMain, UsageError } from "./_cli.ts";
import { createParquetTextReader } from "./_parquet.ts";

const DEFAULT_CONFIG = "config/stargraph_cpu.yaml";
const DEFAULT_OUT = "out/wgsl";
/** Optimizer steps run: the first logs (its figures read back), the second does not. */
const STEPS = 2;

const { values, positionals } = parseCli({
  usage: "deno task wgsl (NAME... | --all) [--out DIR] [--list] [--config FILE] [key=value ...]",
  about: `Writes the WGSL this adapter compiles for each kernel and variant, exactly as compiled
(generated, rewritten for CPU adapters, helpers appended). It runs what deno task train runs
with the same config (default ${DEFAULT_CONFIG}): the model, ${STEPS} optimizer steps and one
validation, and writes each shader module compiled on the way as DIR/<kernel>.<variant>.<hash>.wgsl
plus DIR/index.txt. NAME picks kernels by name (the last part of a dispatch label, e.g.
linear_forward, attention_forward, norm_dx) or variant (e.g. 128x128_t16x16_k8).`,
  flags: {
    all: { type: "boolean", help: "every kernel the run compiles" },
    out: {
      type: "string",
      arg: "DIR",
      default: DEFAULT_OUT,
      help: `folder (default ${DEFAULT_OUT})`,
    },
    list: { type: "boolean", help: "print the kernels without writing files" },
    config: {
      type: "string",
      short: "c",
      file: true,
      help: `config file (default ${DEFAULT_CONFIG}, the demo of deno task train)`,
    },
  },
  positionals: { name: "NAME or key=value" },
  notes: `A compile error of any task names the kernel, its variant and the line; this task with
that kernel's name and the failing run's config writes the file the line refers to (the file is
written before the compiler sees it). The star graph of the default config is generated into
data/ when missing, as deno task train does.`,
});

const names = positionals.filter((p) => !p.includes("="));
const overrides = positionals.filter((p) => p.includes("="));

/** File name of a module for one of its kernel names (letters, digits, `_`, `.`, `-`). */
function fileName(s: ShaderSource, kernel: string): string {
  const part = (x: string) => x.replace(/[^A-Za-z0-9_-]+/g, "-");
  return [part(kernel), s.variant ? part(s.variant) : "", s.hash, "wgsl"].filter(Boolean).join(".");
}

/** The modules and kernel names `names` select (all with `all`). */
function select(shaders: ShaderSource[]): { s: ShaderSource; kernel: string }[] {
  const picked: { s: ShaderSource; kernel: string }[] = [];
  for (const s of shaders) {
    for (const kernel of s.kernels) {
      const variants = s.variant.split("+");
      if (
        values.all || names.some((n) => n === kernel || n === s.variant || variants.includes(n))
      ) {
        picked.push({ s, kernel });
      }
    }
  }
  return picked;
}

/** Runs the config's model as deno task train would: steps and one validation. */
async function runDemo(): Promise<void> {
  const configFile = values.config ?? DEFAULT_CONFIG;
  const config = await loadConfig({ configFile, overrides });
  const data = await loadTrainData(config, { generate: true, parquet: createParquetTextReader() });
  const gpu = await getGpu({ log: true });
  const run = await createRun(gpu, config, data);
  for (let step = 0; step < STEPS; step++) {
    const s = await run.step(step, step === 0);
    await s.figures?.();
  }
  await run.validate();
}

await runMain(async () => {
  if (!values.all && names.length === 0) {
    throw new UsageError("Name kernels to write, or give --all");
  }
  let failure: Error | undefined;
  try {
    await runDemo();
  } catch (e) {
    // A kernel that fails to compile was recorded before the compiler saw it: write it.
    failure = e as Error;
  }
  const shaders = compiledShaders();
  const picked = select(shaders);
  if (picked.length === 0) {
    if (failure) throw failure;
    const known = [...new Set(shaders.flatMap((s) => s.kernels))].sort().join(", ");
    throw new Error(`No compiled kernel is named ${names.join(", ")}; the run compiled: ${known}`);
  }
  const rows = picked.map(({ s, kernel }) => ({
    file: fileName(s, kernel),
    kernel,
    variant: s.variant || "-",
    entries: s.entryPoints.join(","),
    lines: String(s.code.split("\n").length),
    label: s.label,
  }));
  const header = { file: "file", kernel: "kernel", variant: "variant", entries: "entry points" };
  const cols = ["file", "kernel", "variant", "entries", "lines", "label"] as const;
  const table = [{ ...header, lines: "lines", label: "first label" }, ...rows];
  const width = (c: typeof cols[number]) => Math.max(...table.map((r) => r[c].length));
  const text = table.map((r) => cols.map((c) => r[c].padEnd(width(c))).join("  ").trimEnd())
    .join("\n") + "\n";
  if (!values.list) {
    await Deno.mkdir(values.out, { recursive: true });
    for (const { s, kernel } of picked) {
      await writeTextFileAtomic(`${values.out}/${fileName(s, kernel)}`, s.code);
    }
    await writeTextFileAtomic(`${values.out}/index.txt`, text);
    console.error(
      `Wrote ${picked.length} files (${new Set(picked.map((p) => p.s)).size} modules) ` +
        `and index.txt to ${values.out}/`,
    );
  }
  console.log(text.trimEnd());
  if (failure) throw failure;
});
