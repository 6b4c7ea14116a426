/**
 * Test helper: the shell commands of a Markdown document's fenced `sh` blocks, checked against
 * the project — every `deno task NAME` is a task of `deno.json`, its flags appear in the task's
 * `--help`, its `key=value` overrides load as config, and every argument that names a file in
 * the repository (under `config/`, `tests/`, `src/`, …) exists. Nothing may point outside the
 * repository (`../`). `readme_test.ts` runs it on README.md and docs/.
 *
 * @module
 */

import { existsSync } from "node:fs";
import { loadConfig } from "../src/config/load.ts";

/** One command of a fenced shell block: its words after quote removal, and where it is. */
export interface ShellCommand {
  words: string[];
  /** 1-based line of the block's first line of that command. */
  line: number;
}

/** What the check needs to know about the project. */
export interface Project {
  /** Task names of deno.json, with the script a task runs (absent for `test`, `ok`). */
  tasks: Map<string, Task>;
  /** The `--help` text of a task's script. */
  help(task: string): Promise<string>;
  /** Whether a path relative to the repository root exists. */
  exists(path: string): boolean;
  /** Throws when the overrides (with `--config FILE` when given) do not load as a config. */
  checkOverrides(overrides: string[], configFile: string | undefined): Promise<void>;
}

/** A task of deno.json. */
export interface Task {
  description?: string;
  /** The script it runs and its permission set (absent for `test`, `ok`). */
  script?: string;
  permissions?: string;
}

/**
 * The project in the repository at `root`: deno.json's tasks, their `--help` (run as
 * `deno task` runs it, once per task), files, and overrides loaded onto `--config FILE` or the
 * default `config/stargraph_cpu.yaml` of `deno task train`.
 */
export async function repoProject(root: string): Promise<Project> {
  const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
  const tasks = new Map<string, Task>();
  for (const [name, e] of Object.entries(config.tasks as Record<string, Record<string, string>>)) {
    const m = /^deno run (?:-q )?-P=(\S+) (scripts\/\S+\.ts)$/.exec(e.command);
    tasks.set(name, { description: e.description, script: m?.[2], permissions: m?.[1] });
  }
  const helps = new Map<string, Promise<string>>();
  const help = (task: string): Promise<string> => {
    let h = helps.get(task);
    if (!h) {
      const t = tasks.get(task)!;
      h = new Deno.Command(Deno.execPath(), {
        args: ["run", "-q", `-P=${t.permissions}`, t.script!, "--help"],
        cwd: root,
        env: { NO_COLOR: "1" },
      }).output().then((o) => {
        if (o.code !== 0) throw new Error(`deno task ${task} --help exited ${o.code}`);
        return new TextDecoder().decode(o.stdout);
      });
      helps.set(task, h);
    }
    return h;
  };
  return {
    tasks,
    help,
    exists: (path) => existsSync(`${root}/${path}`),
    checkOverrides: async (overrides, configFile) => {
      await loadConfig({ configFile: configFile ?? "config/stargraph_cpu.yaml", overrides });
    },
  };
}

/** Top-level names of the repository whose paths must exist when a command names them. */
const REPO_ROOTS = ["config/", "tests/", "src/", "scripts/", "kernels/", "docs/", ".ci/"];
const REPO_FILES = ["deno.json", "mod.ts", "README.md", ".deno-version"];
/** Tasks whose positional `key=value` arguments are config overrides. */
const OVERRIDE_TASKS = new Set(["train", "evaluate", "infer", "wgsl"]);

/** Splits shell text into words: quotes removed, `\`-newline joined, `#` comments dropped. */
function words(text: string): string[] {
  const out: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${text}`);
      word = (word ?? "") + text.slice(i + 1, end);
      i = end;
    } else if (c === "\\" && text[i + 1] === "\n") {
      i++;
    } else if (c === "#" && word === null) {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl - 1;
    } else if (/\s/.test(c)) {
      if (word !== null) out.push(word);
      word = null;
      if (c === "\n") out.push("\n");
    } else if (";|&()".includes(c)) {
      if (word !== null) out.push(word);
      word = null;
      out.push(";"); // a command separator (|, &&, ;, subshells) for this check
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) out.push(word);
  return out;
}

/** The commands of every fenced `sh`/`bash`/`shell` block of a Markdown text. */
export function shellCommands(markdown: string): ShellCommand[] {
  const commands: ShellCommand[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^\s*```(sh|bash|shell)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end])) end++;
    let line = start + 1;
    let current: string[] = [];
    let first = line;
    for (const w of words(lines.slice(start, end).join("\n"))) {
      if (w === "\n" || w === ";") {
        if (current.length > 0) commands.push({ words: current, line: first });
        current = [];
        if (w === "\n") line++;
        first = line;
        continue;
      }
      current.push(w);
    }
    if (current.length > 0) commands.push({ words: current, line: first });
    i = end;
  }
  return commands;
}

/**
 * Long and short flag names (`--config`, `-c`) of a `--help` text's option rows (lines that
 * start with two spaces and a flag), not flags its prose mentions.
 */
export function helpFlags(help: string): Set<string> {
  const flags = new Set<string>();
  for (const m of help.matchAll(/^ {2}(?:(-[A-Za-z]), )?(--[\w:-]+)/gm)) {
    if (m[1]) flags.add(m[1]);
    flags.add(m[2]);
  }
  return flags;
}

/** Whether a word names a path in the repository (and so must exist). */
function repoPath(word: string): string | undefined {
  const path = word.replace(/^\.\//, "");
  if (REPO_ROOTS.some((r) => path.startsWith(r)) || REPO_FILES.includes(path)) return path;
  return undefined;
}

/**
 * Problems of `markdown`'s shell commands against `project`, one line each (empty when every
 * command fits).
 */
export async function checkCommands(
  markdown: string,
  project: Project,
  source = "README.md",
): Promise<string[]> {
  const problems: string[] = [];
  for (const { words: ws, line } of shellCommands(markdown)) {
    const at = `${source}:${line}`;
    for (const w of ws) {
      const value = w.includes("=") && !w.startsWith("-") ? w.slice(w.indexOf("=") + 1) : w;
      for (const part of [w, value]) {
        if (/(^|[\s=:/])\.\.\//.test(part) || part.startsWith("../")) {
          problems.push(`${at}: "${w}" points outside the repository`);
          break;
        }
      }
      const path = repoPath(value.replace(/^--[\w-]+=/, ""));
      if (path && !project.exists(path)) problems.push(`${at}: file "${path}" does not exist`);
    }
    // `deno task NAME args`, or `deno run [flags] scripts/x.ts args` checked as x's task.
    const k = ws.findIndex((w, i) => w === "task" && ws[i - 1] === "deno");
    const r = ws.findIndex((w, i) =>
      /^scripts\/\w+\.ts$/.test(w) && ws.slice(0, i).includes("run")
    );
    if (k < 0 && r < 0) continue;
    const task = k >= 0 ? ws[k + 1] : [...project.tasks].find(([, t]) => t.script === ws[r])?.[0];
    const entry = task === undefined ? undefined : project.tasks.get(task);
    if (task === undefined || !entry) {
      problems.push(
        k >= 0
          ? `${at}: "deno task ${task ?? ""}" is not a task of deno.json`
          : `${at}: no task of deno.json runs ${ws[r]}`,
      );
      continue;
    }
    const args = ws.slice(k >= 0 ? k + 2 : r + 1);
    if (!entry.script) {
      if (args.length > 0) problems.push(`${at}: deno task ${task} takes no arguments`);
      continue;
    }
    const flags = helpFlags(await project.help(task));
    const overrides: string[] = [];
    let configFile: string | undefined;
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a.startsWith("-")) {
        const name = a.split("=")[0];
        if (!flags.has(name)) problems.push(`${at}: deno task ${task} has no flag ${name}`);
        if (name === "--config" || name === "-c") {
          configFile = a.includes("=") ? a.split("=")[1] : args[i + 1];
        }
      } else if (a.includes("=") && OVERRIDE_TASKS.has(task)) {
        overrides.push(a);
      }
    }
    if (overrides.length > 0) {
      try {
        await project.checkOverrides(overrides, configFile);
      } catch (e) {
        problems.push(`${at}: deno task ${task}: ${(e as Error).message}`);
      }
    }
  }
  return problems;
}
