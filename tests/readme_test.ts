import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkCommands, helpFlags, repoProject, shellCommands } from "./_readme_commands.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const project = await repoProject(root);
const { tasks, help } = project;

/** Markdown files whose commands a user runs: README.md and docs/*.md. */
function documents(): string[] {
  const docs = [...Deno.readDirSync(`${root}/docs`)].filter((e) => e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`).sort();
  return ["README.md", ...docs];
}

Deno.test("every shell command of README.md and docs/ names tasks, flags, overrides and files that exist", async () => {
  const problems: string[] = [];
  let count = 0;
  for (const doc of documents()) {
    const text = await Deno.readTextFile(`${root}/${doc}`);
    count += shellCommands(text).length;
    problems.push(...await checkCommands(text, project, doc));
  }
  assert.ok(count > 20, `only ${count} commands found`);
  assert.deepEqual(problems, []);
});

Deno.test("checkCommands() fails on a wrong task, flag, override, file or a path outside the repository", async () => {
  const bad = [
    "# Demo",
    "",
    "```sh",
    "deno task trian                                        # no such task",
    "deno task train --epochs 3                             # no such flag",
    "deno task train trainer.train_bathces=3                # no such config key",
    "deno task train --config config/nonexistent.yaml",
    "deno task bench --tokenizer ../shared/stories.txt",
    "mkdir -p data/x && cp tests/fixtures/missing.txt data/x/",
    "deno task test --fast",
    "deno run --allow-read=. scripts/judge.ts --file1 a.jsonl",
    "```",
    "",
    "```sh",
    "OPENAI_API_KEY=none deno run --allow-net=gpu-box:8000 scripts/judge.ts --file1_path a.jsonl \\",
    "  --file2_path b.jsonl --base_url http://gpu-box:8000/v1",
    "deno task train --config config/stargraph_cpu.yaml trainer.train_batches=3 \\",
    "  'data.goal_range=[10,20]'",
    "deno task bench --tokenizer tests/fixtures/tinystories/stories_sample.txt",
    "deno task infer --checkpoint_path out/<run>/ckpt_iter_800.safetensors --sampling_mode AR",
    "```",
  ].join("\n");
  const problems = await checkCommands(bad, project, "bad.md");
  assert.deepEqual(problems.map((p) => p.replace(/: .*/, "")), [
    "bad.md:4",
    "bad.md:5",
    "bad.md:6",
    "bad.md:7",
    "bad.md:8",
    "bad.md:9",
    "bad.md:10",
    "bad.md:11",
  ]);
  assert.match(problems[0], /"deno task trian" is not a task of deno\.json/);
  assert.match(problems[1], /deno task train has no flag --epochs/);
  assert.match(problems[2], /trainer\.train_bathces/);
  assert.match(problems[3], /file "config\/nonexistent\.yaml" does not exist/);
  assert.match(problems[4], /"\.\.\/shared\/stories\.txt" points outside the repository/);
  assert.match(problems[5], /file "tests\/fixtures\/missing\.txt" does not exist/);
  assert.match(problems[6], /deno task test takes no arguments/);
  assert.match(problems[7], /deno task judge has no flag --file1$/);
});

Deno.test("helpFlags() lists the flags of a --help text's options, not those its prose names", () => {
  const flags = helpFlags([
    "Usage: deno task x [--config FILE] [--old]",
    "",
    "Runs x; see also --retune.",
    "",
    "Options:",
    "  -c, --config FILE  config",
    "  --all              every",
    "  -h, --help         this text",
    "",
    "Notes naming --later.",
  ].join("\n"));
  assert.deepEqual([...flags].sort(), ["--all", "--config", "--help", "-c", "-h"]);
});

Deno.test("every task has a description, and README's task table has one row per task whose command is the first line of the task's usage", async () => {
  const readme = await Deno.readTextFile(`${root}/README.md`);
  const rows = new Map<string, string>();
  for (const m of readme.matchAll(/^\| `(deno task ([\w:]+)[^`]*)` +\|/gm)) {
    rows.set(m[2], m[1].replace(/\\\|/g, "|"));
  }
  for (const [name, t] of tasks) {
    assert.ok(t.description && t.description.length > 10, `deno task ${name} has no description`);
    const row = rows.get(name);
    assert.ok(row, `README's task table has no row for deno task ${name}`);
    if (!t.script) continue;
    const usage = /^Usage: (.*)$/m.exec(await help(name))![1];
    assert.equal(row, usage, `deno task ${name}`);
  }
  assert.deepEqual([...rows.keys()].filter((n) => !tasks.has(n)), []);
});
