import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { checkCommands, repoProject } from "../_readme_commands.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

async function profile(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: ["scripts/gpu_profile.sh", ...args],
    cwd: root,
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("scripts/gpu_profile.sh --dry-run prints deno tasks whose flags, overrides and files exist, and writes nothing", async () => {
  const dir = `${await Deno.makeTempDir()}/results`;
  const r = await profile([dir, "--dry-run"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(dir), "--dry-run created the results folder");
  const commands = r.stdout.trim().split("\n");
  assert.deepEqual(commands.map((c) => c.split(" ").slice(0, 3).join(" ")), [
    "deno task adapter",
    "deno task bench",
    "deno task bench",
    "deno task bench",
    "deno task train",
    "deno task train",
    "deno task conformance",
    "deno task test",
  ]);
  assert.match(commands[1], /--profile paper --batch 256 --retune$/);
  const problems = await checkCommands(
    ["```sh", ...commands, "```"].join("\n"),
    await repoProject(root),
    "gpu_profile.sh",
  );
  assert.deepEqual(problems, []);

  const quick = await profile([dir, "--dry-run", "--quick", "--skip", "train16 test"]);
  assert.equal(quick.code, 0, quick.stderr);
  assert.match(quick.stdout, /--profile paper --batch 4\n/);
  assert.match(quick.stdout, /trainer\.train_batches=2 .*data\.effective_batch_size=8/);
  assert.ok(!/trainer\.precision=16-mixed|deno task test|--repeats/.test(quick.stdout));
});

Deno.test("scripts/gpu_profile.sh answers --help, and a missing folder or unknown option with one line and exit 2", async () => {
  const help = await profile(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^GPU measurements in one command/);
  assert.match(help.stdout, /bash scripts\/gpu_profile\.sh DIR/);
  for (
    const [args, want] of [
      [[], "error: name the folder for the results (see --help)"],
      [["x", "--bogus"], "error: unknown option --bogus (see --help)"],
      [["x", "--batch", "0"], 'error: "0" is not a positive integer (see --help)'],
    ] as const
  ) {
    const r = await profile([...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stderr.trim(), want);
  }
});
