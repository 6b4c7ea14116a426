// The folder import graph of src/: no cycles, and the lower layers never import the upper
// ones (scripts → train/inference → models → nn → gpu → kernels, io/core at the bottom).

import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const SRC = join(ROOT, "src");

/** Folder of src/ → folders it imports (from relative import specifiers). */
async function folderGraph(): Promise<Map<string, Set<string>>> {
  const graph = new Map<string, Set<string>>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts")) {
        const from = relative(SRC, dir).split("/")[0];
        const text = await Deno.readTextFile(path);
        const deps = graph.get(from) ?? new Set<string>();
        graph.set(from, deps);
        // Real imports only (the first column of a line), not the ones inside doc examples.
        for (
          const m of text.matchAll(/^(?:import|export)[^"'\n]*?(?:from\s*)?["'](\.[^"']+)["']/gm)
        ) {
          const target = relative(SRC, resolve(dir, m[1]));
          if (target.startsWith("..")) {
            if (!target.startsWith("../kernels/")) {
              throw new Error(`${relative(ROOT, path)} imports ${m[1]}, outside src/`);
            }
            continue;
          }
          const to = target.split("/")[0];
          if (to !== from) deps.add(to);
        }
      }
    }
  };
  await walk(SRC);
  return graph;
}

Deno.test("src/ folders import each other without a cycle", async () => {
  const graph = await folderGraph();
  const state = new Map<string, "open" | "done">();
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      assert.fail(`Import cycle between folders: ${[...path, f].join(" → ")}`);
    }
    state.set(f, "open");
    for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, "done");
  };
  for (const f of graph.keys()) visit(f, []);
});

Deno.test("lower layers of src/ never import upper ones", async () => {
  const graph = await folderGraph();
  const upper = ["train", "inference", "conformance", "dist", "judge"];
  const lower = ["io", "core", "gpu", "nn", "models", "tokenizers", "data", "config", "cpu"];
  for (const f of lower) {
    for (const d of graph.get(f) ?? []) {
      assert.ok(!upper.includes(d), `src/${f} imports src/${d}`);
    }
  }
  for (const f of ["io", "core", "gpu", "nn"]) {
    assert.ok(!graph.get(f)?.has("models"), `src/${f} imports src/models`);
  }
  assert.ok(!graph.get("gpu")?.has("nn"), "src/gpu imports src/nn");
});
