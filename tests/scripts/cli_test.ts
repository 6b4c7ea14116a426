import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type Cli,
  errorReport,
  helpText,
  OVERRIDES,
  parseCommandLine,
  type Parsed,
  UsageError,
} from "../../scripts/_cli.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

const demo = {
  usage: "deno task demo --input FILE [--steps N] [key=value ...]",
  about: "Runs the demo.",
  flags: {
    input: { type: "string", alias: "input_path", required: true, help: "input (required)" },
    steps: { type: "integer", min: 1, default: 3, help: "steps (default 3)" },
    offset: { type: "integer", help: "any integer" },
    mode: { type: "string", arg: "MODE", choices: ["a", "b"], help: "a or b" },
    quiet: { type: "boolean", short: "q", help: "no progress" },
    config: { type: "string", short: "c", file: true, help: "config file" },
  },
  positionals: OVERRIDES,
  notes: "Notes after the options.",
} as const satisfies Cli;

/** Parses `args` against `demo`, failing the test on "help". */
function parse(args: string[]): Parsed<typeof demo.flags> {
  const parsed = parseCommandLine(demo, args);
  assert.notEqual(parsed, "help");
  return parsed as Parsed<typeof demo.flags>;
}

/** The UsageError message `parseCommandLine(cli, args)` throws. */
function mistake(args: string[], cli: Cli = demo): string {
  try {
    parseCommandLine(cli, args);
  } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    return e.message;
  }
  throw new Error(`accepted ${args.join(" ")}`);
}

Deno.test("parseCommandLine() returns typed values with defaults when flags are absent", () => {
  const { values, positionals } = parse(["--input", "x", "a.b=1"]);
  assert.deepEqual({ ...values }, {
    input: "x",
    steps: 3,
    offset: undefined,
    mode: undefined,
    quiet: false,
    config: undefined,
  });
  assert.deepEqual(positionals, ["a.b=1"]);
  // The types follow the declarations: integers are numbers, optional flags may be undefined.
  const steps: number = values.steps;
  const input: string = values.input;
  const quiet: boolean = values.quiet;
  // @ts-expect-error an optional flag without a default may be undefined
  const offset: number = values.offset;
  assert.deepEqual([steps, input, quiet, offset], [3, "x", false, undefined]);
});

Deno.test("parseCommandLine() reads integers, choices, short flags, `=` values and an alias", () => {
  const { values } = parse([
    "--input_path=in",
    "--steps",
    "12",
    "--offset=-4",
    "-q",
    "--mode",
    "b",
  ]);
  assert.equal(values.input, "in");
  assert.equal(values.steps, 12);
  assert.equal(values.offset, -4);
  assert.equal(values.quiet, true);
  assert.equal(values.mode, "b");
});

Deno.test("parseCommandLine() returns help when -h or --help is among the flags, even beside mistakes", () => {
  assert.equal(parseCommandLine(demo, ["--help"]), "help");
  assert.equal(parseCommandLine(demo, ["--bogus", "-h"]), "help");
  // After `--` it is a positional argument, and a bad one.
  assert.equal(mistake(["--input", "x", "--", "--help"]), '"--help" is not a key=value override');
});

Deno.test("parseCommandLine() names unknown flags, missing values and flag misuse in one line", () => {
  const cases: [string[], string][] = [
    [["--definitely-not-a-flag"], "Unknown option '--definitely-not-a-flag'"],
    [["-z"], "Unknown option '-z'"],
    [["--input"], "Option '--input <value>' argument missing"],
    [["--input", "--steps", "2"], "Option '--input' argument is ambiguous"],
    [["--input", "x", "--quiet=yes"], "Option '-q, --quiet' does not take an argument"],
    [[], "--input is required"],
    [["--input", "a", "--input_path", "b"], "--input and --input_path are the same flag: give one"],
  ];
  for (const [args, want] of cases) {
    const message = mistake(args);
    assert.equal(message, want, args.join(" "));
    assert.ok(!message.includes("\n"));
  }
});

Deno.test("parseCommandLine() rejects numbers that are not integers in range and values not among the choices", () => {
  const cases: [string[], string][] = [
    [["--steps", "many"], '--steps must be a positive integer, got "many"'],
    [["--steps", "0"], '--steps must be a positive integer, got "0"'],
    [["--steps", "1.5"], '--steps must be a positive integer, got "1.5"'],
    [["--steps", "1e3"], '--steps must be a positive integer, got "1e3"'],
    [["--steps="], '--steps must be a positive integer, got ""'],
    [
      ["--offset", "99999999999999999999"],
      '--offset must be an integer, got "99999999999999999999"',
    ],
    [["--mode", "c"], '--mode must be one of a, b, got "c"'],
  ];
  for (const [args, want] of cases) assert.equal(mistake(["--input", "x", ...args]), want);
  const zero = { usage: "u", about: "a", flags: { k: { type: "integer", min: 0, help: "k" } } };
  assert.equal(mistake(["--k=-1"], zero as Cli), '--k must be a non-negative integer, got "-1"');
  const two = { usage: "u", about: "a", flags: { k: { type: "integer", min: 2, help: "k" } } };
  assert.equal(mistake(["--k", "1"], two as Cli), '--k must be an integer ≥ 2, got "1"');
});

Deno.test("parseCommandLine() checks positional arguments: none allowed, counts, key=value form", () => {
  const none: Cli = { usage: "u", about: "a", flags: {} };
  assert.equal(
    mistake(["extra"], none),
    "Unexpected argument 'extra': this task takes no positional arguments",
  );
  const files: Cli = {
    usage: "u",
    about: "a",
    flags: {},
    positionals: { name: "FILE", min: 1, max: 2 },
  };
  assert.equal(mistake([], files), "Expected at least 1 FILE argument");
  assert.equal(mistake(["a", "b", "c"], files), "Unexpected argument 'c': at most 2 FILE");
  assert.deepEqual((parseCommandLine(files, ["a", "b"]) as Parsed<never>).positionals, ["a", "b"]);
  assert.equal(
    mistake(["--input", "x", "model.n_layer"]),
    '"model.n_layer" is not a key=value override',
  );
});

Deno.test("parseCommandLine() reports a missing file or a directory given as a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/config.yaml`;
    await Deno.writeTextFile(file, "a: 1\n");
    assert.equal(parse(["--input", "x", "-c", file]).values.config, file);
    assert.equal(
      mistake(["--input", "x", "--config", `${dir}/none.yaml`]),
      `--config file "${dir}/none.yaml" not found`,
    );
    assert.equal(
      mistake(["--input", "x", "--config", dir]),
      `--config file "${dir}" is a directory, not a file`,
    );
    const files: Cli = {
      usage: "u",
      about: "a",
      flags: {},
      positionals: { name: "FILE", file: true },
    };
    assert.deepEqual((parseCommandLine(files, [file]) as Parsed<never>).positionals, [file]);
    assert.equal(
      mistake([file, `${dir}/x.safetensors`], files),
      `File "${dir}/x.safetensors" not found`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseCommandLine() gives a multi-value flag the arguments after it, repeated or not", () => {
  const cli = {
    usage: "deno task demo [--train PATH...] [--val PATH...]",
    about: "Demo.",
    flags: {
      train: { type: "string", multiple: true, arg: "PATH", help: "training files" },
      val: { type: "string", multiple: true, arg: "PATH", help: "validation files" },
      quiet: { type: "boolean", help: "quiet" },
    },
  } as const satisfies Cli;
  const parsed = parseCommandLine(cli, ["--train", "a", "b", "--val=c", "d", "--train", "e"]);
  assert.notEqual(parsed, "help");
  if (parsed === "help") return;
  assert.deepEqual(parsed.values.train, ["a", "b", "e"]);
  assert.deepEqual(parsed.values.val, ["c", "d"]);
  const none = parseCommandLine(cli, ["--quiet"]);
  if (none === "help") throw new Error("help");
  assert.deepEqual(none.values.train, []);
  // After a boolean flag or `--`, arguments are positionals again (none allowed here).
  assert.equal(
    mistake(["--train", "a", "--quiet", "b"], cli),
    "Unexpected argument 'b': this task takes no positional arguments",
  );
  assert.equal(
    mistake(["--train", "a", "--", "b"], cli),
    "Unexpected argument 'b': this task takes no positional arguments",
  );
  assert.match(mistake(["--val"], cli), /argument missing/);
  assert.match(helpText(cli), /\n {2}--train PATH\.\.\. +training files\n/);
});

Deno.test("helpText() prints usage, description, aligned options with aliases and help, then notes", () => {
  assert.equal(
    helpText(demo),
    `Usage: deno task demo --input FILE [--steps N] [key=value ...]

Runs the demo.

Options:
  --input VALUE       input (required)
  --input_path VALUE  the same as --input
  --steps N           steps (default 3)
  --offset N          any integer
  --mode MODE         a or b
  -q, --quiet         no progress
  -c, --config FILE   config file
  -h, --help          this text

Notes after the options.`,
  );
});

Deno.test("errorReport() gives exit 2 and a --help pointer for usage errors, exit 1 and a hint otherwise", () => {
  assert.deepEqual(errorReport(new UsageError("--x is required")), {
    lines: ["error: --x is required (see --help)"],
    code: 2,
  });
  const hint = (m: string) => m.includes("binding") ? "use smaller batches" : undefined;
  assert.deepEqual(errorReport(new Error("Buffer exceeds the binding limit"), hint), {
    lines: ["error: Buffer exceeds the binding limit", "hint: use smaller batches"],
    code: 1,
  });
  assert.deepEqual(errorReport(new Error("Other"), hint), { lines: ["error: Other"], code: 1 });
  assert.deepEqual(errorReport("a string"), { lines: ["error: a string"], code: 1 });
});

/** Runs `deno <args>` in the repository root; returns the exit code and output. */
async function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: {
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      DENO_WEBGPU_BACKEND: Deno.env.get("DENO_WEBGPU_BACKEND") ?? "vulkan",
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** stderr lines other than Deno's config-permissions warning and the adapter log lines. */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) =>
    l.trim() !== "" &&
    !/Permissions in the config file is an experimental feature/.test(l) &&
    !/^WebGPU adapter: /.test(l) &&
    !/^warning: this is a fallback \(software\) adapter/.test(l)
  );
}

Deno.test("runMain() prints one error line (and a hint), exits 1, and exits with a returned code", async () => {
  const cli = new URL("../../scripts/_cli.ts", import.meta.url).href;
  const failing = await deno([
    "eval",
    `import { runMain } from "${cli}";
     await runMain(async () => { throw new Error("Disk \\"x\\" is full"); }, { hint: () => "free space" });`,
  ]);
  assert.equal(failing.code, 1);
  assert.deepEqual(errorLines(failing.stderr), ['error: Disk "x" is full', "hint: free space"]);
  const usage = await deno([
    "eval",
    `import { runMain, UsageError } from "${cli}";
     await runMain(async () => { throw new UsageError("Bad mode"); });`,
  ]);
  assert.equal(usage.code, 2);
  assert.deepEqual(errorLines(usage.stderr), ["error: Bad mode (see --help)"]);
  const returned = await deno([
    "eval",
    `import { runMain } from "${cli}"; await runMain(async () => 3);`,
  ]);
  assert.equal(returned.code, 3);
  assert.equal(returned.stderr, "");
});

/** The `deno task` entries that run a script: name, permission set, script path. */
async function scriptTasks(): Promise<{ task: string; permissions: string; script: string }[]> {
  const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
  const out = [];
  for (const [task, entry] of Object.entries(config.tasks as Record<string, { command: string }>)) {
    const m = entry.command.match(/^deno run (?:-q )?-P=(\S+) (scripts\/\S+\.ts)$/);
    if (m) out.push({ task, permissions: m[1], script: m[2] });
  }
  return out;
}

/** Arguments naming a file that does not exist, for the tasks that read files. */
const MISSING_FILE: Record<string, string[][]> = {
  "scripts/train.ts": [["--config", "config/missing.yaml"]],
  "scripts/evaluate.ts": [["--checkpoint", "missing.safetensors"], [
    "--checkpoint_path",
    "missing.safetensors",
  ]],
  "scripts/infer.ts": [["--checkpoint_path", "missing.safetensors", "--sampling_mode", "AR"], [
    "--checkpoint",
    "missing.safetensors",
    "--sampling_mode",
    "AR",
  ]],
  "scripts/conformance.ts": [["missing.safetensors"]],
  "scripts/convert.ts": [["missing.safetensors", "out/x.safetensors"]],
};

Deno.test("every task script has a deno task that runs it", async () => {
  const tasks = new Set((await scriptTasks()).map((t) => t.script));
  const scripts = [...Deno.readDirSync(`${root}/scripts`)]
    .map((e) => `scripts/${e.name}`)
    .filter((p) => p.endsWith(".ts") && !p.startsWith("scripts/_"));
  assert.ok(scripts.length >= 7);
  for (const s of scripts) assert.ok(tasks.has(s), `${s} has no task in deno.json`);
  for (const s of Object.keys(MISSING_FILE)) assert.ok(tasks.has(s), s);
});

Deno.test("every task answers --help (exit 0), an unknown flag and a missing file (exit 2) without a stack trace", async () => {
  for (const { task, permissions, script } of await scriptTasks()) {
    const run = (args: string[]) => deno(["run", `-P=${permissions}`, script, ...args]);
    const help = await run(["--help"]);
    assert.equal(help.code, 0, `${task} --help: ${help.stderr}`);
    assert.ok(help.stdout.startsWith(`Usage: deno task ${task}`), `${task}: ${help.stdout}`);
    assert.match(help.stdout, /-h, --help/);
    assert.deepEqual(errorLines(help.stderr), []);
    const mistakes = [["--definitely-not-a-flag"], ...(MISSING_FILE[script] ?? [])];
    for (const args of mistakes) {
      const r = await run(args);
      const what = `${task} ${args.join(" ")}`;
      const lines = errorLines(r.stderr);
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, "", what);
      assert.ok(lines.length >= 1 && lines.length <= 2, `${what}: ${r.stderr}`);
      assert.match(lines[0], /^error: .* \(see --help\)$/, what);
      assert.ok(!r.stderr.includes("    at "), `${what} printed a stack trace: ${r.stderr}`);
      if (args[0] === "--definitely-not-a-flag") {
        assert.match(lines[0], /Unknown option '--definitely-not-a-flag'/, what);
      } else {
        assert.match(lines[0], /"(config\/missing\.yaml|missing\.safetensors)" not found/, what);
      }
    }
  }
});

Deno.test("evaluate and infer document --checkpoint and --checkpoint_path as one flag", async () => {
  for (const task of ["evaluate", "infer"]) {
    const help = await deno(["run", `-P=${task}`, `scripts/${task}.ts`, "--help"]);
    assert.equal(help.code, 0);
    assert.match(
      help.stdout,
      /--checkpoint_path FILE +(checkpoint written|the same as --checkpoint)/,
    );
    assert.match(
      help.stdout,
      /--checkpoint FILE +(checkpoint written|the same as --checkpoint_path)/,
    );
  }
});

Deno.test("evaluate: a file that is not a checkpoint fails with one line and exit 1", async () => {
  const r = await deno(["run", "-P=evaluate", "scripts/evaluate.ts", "--checkpoint", "deno.json"]);
  assert.equal(r.code, 1);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^error: Cannot read checkpoint "deno\.json": /);
});
