import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { ShaderSource } from "../../src/gpu/kernel.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const env = { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" };

async function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd: root, env }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deno task wgsl --all writes every shader module that a short run of the default demo compiles, byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  // The default config with a smaller star graph (same vocabulary and rows), a short run.
  const data = `data.stargraph_data_path=${dir}/graph_2_3_sample_1000.txt`;
  const perms = [`--allow-read=${root},${dir}`, `--allow-write=${dir}`, "--allow-env"];
  const trained = await deno([
    "run",
    ...perms,
    "tests/scripts/_train_shaders.ts",
    data,
    `trainer.out_dir=${dir}/out`,
    "trainer.train_batches=3",
    "trainer.val_interval=3",
    "trainer.log_interval=1",
  ]);
  assert.equal(trained.code, 0, trained.stderr);
  const compiled: ShaderSource[] = JSON.parse(trained.stdout.trim().split("\n").at(-1)!);
  assert.ok(compiled.some((s) => s.kernels.includes("attention_forward")));
  assert.ok(compiled.some((s) => s.kernels.includes("adamw")));

  const dump = await deno([
    "run",
    ...perms,
    "scripts/wgsl.ts",
    "--all",
    "--out",
    `${dir}/wgsl`,
    data,
  ]);
  assert.equal(dump.code, 0, dump.stderr);
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(`${dir}/wgsl`)) {
    if (e.name.endsWith(".wgsl")) {
      files.set(e.name, await Deno.readTextFile(`${dir}/wgsl/${e.name}`));
    }
  }
  for (const s of compiled) {
    for (const kernel of s.kernels) {
      const name = [...files.keys()].find((f) => f.startsWith(`${kernel}.`) && f.includes(s.hash));
      assert.ok(name, `no file for kernel ${kernel} (${s.variant}, ${s.hash})`);
      assert.equal(files.get(name), s.code, `${name} differs from the compiled source`);
    }
  }
  const index = await Deno.readTextFile(`${dir}/wgsl/index.txt`);
  assert.equal(index.trim().split("\n").length, files.size + 1);

  // By name: only that kernel's files; an unknown name is one error line naming what exists.
  const one = await deno([
    "run",
    ...perms,
    "scripts/wgsl.ts",
    "norm_dx",
    "--list",
    data,
  ]);
  assert.equal(one.code, 0, one.stderr);
  const rows = one.stdout.trim().split("\n").slice(1);
  assert.ok(rows.length >= 1 && rows.every((r) => r.startsWith("norm_dx.")), one.stdout);
  const none = await deno(["run", ...perms, "scripts/wgsl.ts", "no_such_kernel", data]);
  assert.equal(none.code, 1);
  assert.match(
    none.stderr,
    /^error: No compiled kernel is named no_such_kernel; the run compiled: .*norm_dx/m,
  );
  const neither = await deno(["run", ...perms, "scripts/wgsl.ts"]);
  assert.equal(neither.code, 2);
  assert.equal(neither.stderr.trim(), "error: Name kernels to write, or give --all (see --help)");
  await Deno.remove(dir, { recursive: true });
});
