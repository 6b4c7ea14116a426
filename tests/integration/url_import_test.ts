import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { serveDir } from "../_serve.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("mod.ts imports by URL with no read permission and runs a WGSL kernel", async () => {
  const server = serveDir(root);
  try {
    const url = `http://127.0.0.1:${server.port}/mod.ts`;
    const code = `
      const m = await import(${JSON.stringify(url)});
      const gpu = await m.getGpu();
      const cfg = { vocabSize: 5, eosTokenId: 4, nLayer: 1, nHead: 1, nEmbd: 32, blockSize: 3,
        bias: false, mode: "next_token", fimTokenId: -1 };
      const gpt = await m.GPT.create(gpu, cfg, { seed: 1 });
      const logits = await gpt.logits(new Int32Array([4, 1, 2]), 1, 3);
      console.log(JSON.stringify({ exports: Object.keys(m).length, out: logits.length,
        finite: logits.every(Number.isFinite) }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--no-config",
        "--no-lock",
        `--allow-import=127.0.0.1:${server.port}`,
        code,
      ],
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `import failed:\n${stderr}`);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assert.ok(result.exports > 5);
    assert.equal(result.out, 15);
    assert.equal(result.finite, true);
  } finally {
    await server.close();
  }
});

Deno.test("mod.ts module graph is npm-free with only file:// modules", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const specifiers: string[] = info.modules.map((m: { specifier: string }) => m.specifier);
  assert.ok(specifiers.length > 3);
  for (const s of specifiers) assert.ok(s.startsWith("file://"), `non-file module ${s}`);
  // `npmPackages` lists the lockfile's packages, not the graph: check every import instead.
  for (const m of info.modules as { specifier: string; dependencies?: { specifier: string }[] }[]) {
    for (const d of m.dependencies ?? []) {
      assert.ok(/^\.\.?\//.test(d.specifier), `${m.specifier} imports "${d.specifier}"`);
    }
  }
});

/** Runs `deno <args>` and returns its exit code and output. */
async function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("mod.ts's @example trains a step when mod.ts is imported by URL", async () => {
  const text = await Deno.readTextFile(`${root}/mod.ts`);
  const block = text.match(/```ts ignore\n([\s\S]*?)```/)![1].replace(/^ \* ?/gm, "");
  const server = serveDir(root);
  try {
    const url = `http://127.0.0.1:${server.port}/mod.ts`;
    const code = block.replace('"./mod.ts"', JSON.stringify(url));
    const r = await deno([
      "eval",
      "--no-config",
      "--no-lock",
      `--allow-import=127.0.0.1:${server.port}`,
      code,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = r.stdout.match(/loss ([\d.]+) grad norm ([\d.]+)/);
    assert.ok(m, r.stdout);
    assert.ok(Number(m[1]) > 1 && Number(m[1]) < 5, `loss ${m[1]}`);
  } finally {
    await server.close();
  }
});

Deno.test("scripts/conformance.ts runs by URL with read access to the fixture only", async () => {
  const server = serveDir(root);
  const fixture = `${root}/tests/fixtures/bst_tiny.safetensors`;
  try {
    const r = await deno([
      "run",
      "--no-config",
      "--no-lock",
      `--allow-import=127.0.0.1:${server.port}`,
      `--allow-read=${fixture}`,
      `http://127.0.0.1:${server.port}/scripts/conformance.ts`,
      fixture,
    ]);
    const lines = r.stdout.trim().split("\n");
    const checks = lines.slice(0, -1).map((l) => JSON.parse(l));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(checks.length > 70);
    assert.ok(checks.every((c) => c.ok));
    assert.match(lines.at(-1)!, /^conformance: \d+ passed, 0 failed$/);
  } finally {
    await server.close();
  }
});
