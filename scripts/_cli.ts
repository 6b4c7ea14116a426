/**
 * Command lines of the tasks in `scripts/`: each script declares its flags once (type, help
 * text, default, range, choices, "must name an existing file") and gets back typed values, a
 * generated `--help`, and the same answers to mistakes everywhere:
 *
 * - `-h`/`--help` prints the usage line, the description and the options on stdout, exit 0;
 * - an unknown flag, a flag without its value, a value that is not a number of the allowed
 *   range or choice, a wrong positional argument, or a file that does not exist is one line
 *   `error: <what> (see --help)` on stderr, exit 2, before anything slow (a GPU) starts;
 * - a failure of the task itself is one line `error: <message>` on stderr (and an optional
 *   `hint:` line), exit 1 ({@linkcode runMain}).
 *
 * Built on `node:util` `parseArgs` only, so scripts that run by URL (`conformance.ts`) keep an
 * npm-free module graph. Checking that a file exists needs read permission for it; where that
 * permission is missing the check is left to the code that reads the file.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One flag `--name`: how its value is read and what `--help` says about it. */
export interface Flag {
  /** `boolean` takes no value; `string` any text; `integer` a whole number. */
  type: "boolean" | "string" | "integer";
  /** One line for `--help`. */
  help: string;
  /** Placeholder of the value in `--help` (default `FILE` for files, `N` for integers, `VALUE`). */
  arg?: string;
  /** One-letter form, e.g. `c` for `-c`. */
  short?: string;
  /** A second long name for the same flag (listed in `--help`); giving both is an error. */
  alias?: string;
  /** Value when the flag is absent (booleans default to false). */
  default?: string | number | boolean;
  /** The flag must be given. */
  required?: boolean;
  /** Smallest allowed integer. */
  min?: number;
  /** The allowed values of a string flag. */
  choices?: readonly string[];
  /** The value must name an existing file (not a directory). */
  file?: boolean;
  /**
   * A string flag taking one or more values: `--name A B C` (the arguments after it up to the
   * next flag, as argparse's `nargs="+"`), and `--name A --name B` adds to the list. The value
   * is a `string[]`, empty when the flag is absent.
   */
  multiple?: boolean;
}

/** What a task accepts besides flags. Without it, any positional argument is an error. */
export interface Positionals {
  /** Name in messages, e.g. `FILE` or `key=value`. */
  name: string;
  /** Fewest arguments (default 0). */
  min?: number;
  /** Most arguments (default unlimited). */
  max?: number;
  /** Every argument must name an existing file. */
  file?: boolean;
  /** Returns what is wrong with one argument, or undefined when it is fine. */
  check?: (arg: string) => string | undefined;
}

/** A task's command line: usage line, description, flags, positional arguments, notes. */
export interface Cli<F extends Record<string, Flag> = Record<string, Flag>> {
  /** The command after `Usage: `, e.g. `deno task train [--config FILE] [key=value ...]`. */
  usage: string;
  /** What the task does: the paragraph(s) between the usage line and the options. */
  about: string;
  /** The flags by long name (`--help`/`-h` is added). */
  flags: F;
  /** Positional arguments; absent: none allowed. */
  positionals?: Positionals;
  /** Paragraph(s) printed after the options. */
  notes?: string;
}

type FlagValue<T extends Flag> = T["type"] extends "boolean" ? boolean
  : T["type"] extends "integer" ? number
  : T extends { multiple: true } ? string[]
  : string;
type Always<T extends Flag> = T extends { type: "boolean" } ? true
  : T extends { multiple: true } ? true
  : T extends { default: string | number } ? true
  : T extends { required: true } ? true
  : false;

/** The parsed flags: each flag's value, `undefined` where an optional flag was not given. */
export type FlagValues<F extends Record<string, Flag>> = {
  [K in keyof F]: Always<F[K]> extends true ? FlagValue<F[K]> : FlagValue<F[K]> | undefined;
};

/** A parsed command line. */
export interface Parsed<F extends Record<string, Flag>> {
  values: FlagValues<F>;
  positionals: string[];
}

/** A mistake on the command line: reported as `error: <message> (see --help)`, exit 2. */
export class UsageError extends Error {
  /** @param message what is wrong, sentence case, no final period. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Positional arguments of the `key=value` config overrides (train, evaluate, infer). */
export const OVERRIDES: Positionals = {
  name: "key=value",
  check: (arg) => arg.includes("=") ? undefined : `"${arg}" is not a key=value override`,
};

/** `--config FILE` of the tasks that read a checkpoint: a config instead of its stored one. */
export const CHECKPOINT_CONFIG_FLAG = {
  type: "string",
  short: "c",
  file: true,
  help: "config instead of the one stored in the checkpoint",
} as const satisfies Flag;

/** `--allow-non-finite` of the tasks that load weights. */
export const ALLOW_NON_FINITE_FLAG = {
  type: "boolean",
  help: "load weights holding NaN or Infinity (refused otherwise)",
} as const satisfies Flag;

/**
 * The `--help` text of a task: usage line, description, options (with `-h, --help`), notes.
 *
 * @param cli the task's command line.
 * @returns the text, without a final newline.
 * @example
 * ```ts
 * import { helpText } from "./_cli.ts";
 * const text = helpText({
 *   usage: "deno task demo [--steps N]",
 *   about: "Runs the demo.",
 *   flags: { steps: { type: "integer", help: "steps to run (default 3)", default: 3 } },
 * });
 * if (!/\n {2}--steps N +steps to run \(default 3\)\n/.test(text)) throw new Error(text);
 * ```
 */
export function helpText(cli: Cli): string {
  const rows: [string, string][] = [];
  for (const [name, flag] of Object.entries(cli.flags)) {
    const arg = flag.type === "boolean" ? "" : ` ${placeholder(flag)}${flag.multiple ? "..." : ""}`;
    const left = `${flag.short ? `-${flag.short}, ` : ""}--${name}${arg}`;
    rows.push([left, flag.help]);
    if (flag.alias) rows.push([`--${flag.alias}${arg}`, `the same as --${name}`]);
  }
  rows.push(["-h, --help", "this text"]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 4;
  const options = rows.map(([left, help]) => `  ${left.padEnd(width - 2)}${help}`).join("\n");
  return [`Usage: ${cli.usage}`, cli.about, `Options:\n${options}`, cli.notes]
    .filter((part) => part !== undefined && part !== "")
    .join("\n\n");
}

/**
 * Parses `args` against `cli` without printing or exiting: the pure half of
 * {@linkcode parseCli}, for tests.
 *
 * @param cli the task's command line.
 * @param args the arguments (no script name).
 * @returns `"help"` when `-h`/`--help` is among the flags, else the values and positionals.
 * @throws {UsageError} naming the first mistake.
 * @example
 * ```ts
 * import { parseCommandLine, UsageError } from "./_cli.ts";
 * const cli = {
 *   usage: "deno task demo [--steps N]",
 *   about: "Runs the demo.",
 *   flags: { steps: { type: "integer", help: "steps", default: 3, min: 1 } },
 * } as const;
 * const parsed = parseCommandLine(cli, ["--steps", "7"]);
 * if (parsed === "help" || parsed.values.steps !== 7) throw new Error("not parsed");
 * try {
 *   parseCommandLine(cli, ["--steps", "0"]);
 *   throw new Error("accepted 0");
 * } catch (e) {
 *   if (!(e instanceof UsageError)) throw e;
 *   console.log(e.message); // --steps must be a positive integer, got "0"
 * }
 * ```
 */
export function parseCommandLine<const F extends Record<string, Flag>>(
  cli: Cli<F>,
  args: string[],
): Parsed<F> | "help" {
  const end = args.indexOf("--");
  const flagArgs = end < 0 ? args : args.slice(0, end);
  if (flagArgs.includes("--help") || flagArgs.includes("-h")) return "help";

  type Option = { type: "boolean" | "string"; short?: string; multiple?: boolean };
  const options: Record<string, Option> = { help: { type: "boolean", short: "h" } };
  for (const [name, flag] of Object.entries(cli.flags)) {
    const type = flag.type === "boolean" ? "boolean" : "string";
    const multiple = flag.multiple === true && type === "string";
    options[name] = flag.short ? { type, short: flag.short, multiple } : { type, multiple };
    if (flag.alias) options[flag.alias] = { type, multiple };
  }
  let raw: Record<string, string | string[] | boolean | undefined>;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args, options, strict: true, allowPositionals: true, tokens: true });
    raw = parsed.values as Record<string, string | string[] | boolean | undefined>;
    positionals = [];
    // Arguments right after a multi-value flag belong to it, up to the next flag or `--`.
    // Values in command-line order: parseArgs lists a repeated flag's values first.
    for (const [name, option] of Object.entries(options)) {
      if (option.multiple && raw[name] !== undefined) raw[name] = [];
    }
    let owner: string | undefined;
    for (const token of parsed.tokens) {
      if (token.kind === "option") {
        owner = options[token.name]?.multiple ? token.name : undefined;
        if (owner && token.value !== undefined) (raw[owner] as string[]).push(token.value);
      } else if (token.kind === "positional") {
        if (owner) (raw[owner] as string[]).push(token.value);
        else positionals.push(token.value);
      } else {
        owner = undefined;
      }
    }
  } catch (e) {
    // parseArgs explains some mistakes over several sentences: keep the first.
    const first = (e as Error).message.split("\n")[0].split(". ")[0].replace(/\.$/, "");
    throw new UsageError(first);
  }

  const values: Record<string, string | string[] | number | boolean | undefined> = {};
  for (const [name, flag] of Object.entries(cli.flags)) {
    let given = raw[name];
    if (flag.alias && raw[flag.alias] !== undefined) {
      if (given !== undefined) {
        throw new UsageError(`--${name} and --${flag.alias} are the same flag: give one`);
      }
      given = raw[flag.alias];
    }
    if (flag.type === "boolean") {
      values[name] = given === undefined ? (flag.default ?? false) : given;
      continue;
    }
    if (flag.multiple && flag.type === "string") {
      const list = (given ?? []) as string[];
      if (flag.required && list.length === 0) throw new UsageError(`--${name} is required`);
      for (const v of list) if (flag.file) mustBeFile(v, `--${name} file`);
      values[name] = [...list];
      continue;
    }
    if (given === undefined) {
      if (flag.required) throw new UsageError(`--${name} is required`);
      values[name] = flag.default;
      continue;
    }
    const text = given as string;
    if (flag.type === "integer") {
      values[name] = integer(`--${name}`, text, flag.min);
      continue;
    }
    if (flag.choices && !flag.choices.includes(text)) {
      throw new UsageError(`--${name} must be one of ${flag.choices.join(", ")}, got "${text}"`);
    }
    if (flag.file) mustBeFile(text, `--${name} file`);
    values[name] = text;
  }

  const spec = cli.positionals;
  if (!spec) {
    if (positionals.length > 0) {
      throw new UsageError(
        `Unexpected argument '${positionals[0]}': this task takes no positional arguments`,
      );
    }
  } else {
    const min = spec.min ?? 0;
    const max = spec.max ?? Infinity;
    if (positionals.length < min) {
      throw new UsageError(`Expected at least ${min} ${spec.name} argument${min > 1 ? "s" : ""}`);
    }
    if (positionals.length > max) {
      throw new UsageError(
        `Unexpected argument '${positionals[max]}': at most ${max} ${spec.name}`,
      );
    }
    for (const arg of positionals) {
      const problem = spec.check?.(arg);
      if (problem) throw new UsageError(problem);
      if (spec.file) mustBeFile(arg, "File");
    }
  }
  return { values: values as FlagValues<F>, positionals };
}

/**
 * Parses `Deno.args` (or `args`) against `cli`. Prints `--help` and exits 0 when asked; prints
 * `error: <mistake> (see --help)` on stderr and exits 2 on a mistake.
 *
 * @param cli the task's command line.
 * @param args the arguments; default `Deno.args`.
 * @returns the typed flag values and the positional arguments.
 * @example
 * ```ts
 * import { parseCli } from "./_cli.ts";
 * const { values } = parseCli({
 *   usage: "deno task demo [--quiet]",
 *   about: "Runs the demo.",
 *   flags: { quiet: { type: "boolean", help: "no progress" } },
 * }, ["--quiet"]);
 * if (values.quiet !== true) throw new Error("not parsed");
 * ```
 */
export function parseCli<const F extends Record<string, Flag>>(
  cli: Cli<F>,
  args: string[] = Deno.args,
): Parsed<F> {
  let parsed: Parsed<F> | "help";
  try {
    parsed = parseCommandLine(cli, args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`error: ${e.message} (see --help)`);
    Deno.exit(2);
  }
  if (parsed === "help") {
    console.log(helpText(cli));
    Deno.exit(0);
  }
  return parsed;
}

/**
 * What the top-level error handler prints for `error` and the exit code it uses: a
 * {@linkcode UsageError} is `error: <message> (see --help)` and exit 2; anything else is
 * `error: <message>` (plus `hint: ...` when `hint` has one for that message) and exit 1.
 *
 * @param error what the task threw.
 * @param hint optional advice for a message, as one line.
 * @returns the stderr lines and the exit code.
 * @example
 * ```ts
 * import { errorReport } from "./_cli.ts";
 * const r = errorReport(new Error("Checkpoint \"x\" not found"));
 * if (r.code !== 1 || r.lines[0] !== 'error: Checkpoint "x" not found') throw new Error();
 * ```
 */
export function errorReport(
  error: unknown,
  hint?: (message: string) => string | undefined,
): { lines: string[]; code: number } {
  if (error instanceof UsageError) {
    return { lines: [`error: ${error.message} (see --help)`], code: 2 };
  }
  const message = error instanceof Error ? error.message : String(error);
  const lines = [`error: ${message}`];
  const advice = hint?.(message);
  if (advice) lines.push(`hint: ${advice}`);
  return { lines, code: 1 };
}

/**
 * Runs a task's body as its top-level error handler: a thrown error becomes the lines of
 * {@linkcode errorReport} on stderr and its exit code, never a stack trace. A number returned by
 * `body` is the exit code (`Deno.exit`); returning nothing lets the process end by itself.
 *
 * @param body the task.
 * @param options `hint`: advice for a failure message, printed as a `hint:` line.
 * @example
 * ```ts
 * import { runMain } from "./_cli.ts";
 * await runMain(async () => {
 *   console.log("done");
 * });
 * ```
 */
export async function runMain(
  body: () => Promise<number | void>,
  options: { hint?: (message: string) => string | undefined } = {},
): Promise<void> {
  let code: number | void;
  try {
    code = await body();
  } catch (e) {
    const report = errorReport(e, options.hint);
    for (const line of report.lines) console.error(line);
    Deno.exit(report.code);
  }
  if (typeof code === "number") Deno.exit(code);
}

function placeholder(flag: Flag): string {
  return flag.arg ?? (flag.file ? "FILE" : flag.type === "integer" ? "N" : "VALUE");
}

function integer(name: string, text: string, min: number | undefined): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n) || (min !== undefined && n < min)) {
    const kind = min === 1
      ? "a positive integer"
      : min === 0
      ? "a non-negative integer"
      : min === undefined
      ? "an integer"
      : `an integer ≥ ${min}`;
    throw new UsageError(`${name} must be ${kind}, got "${text}"`);
  }
  return n;
}

/** Throws a UsageError when `path` does not exist or is a directory (`what` names it). */
function mustBeFile(path: string, what: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`${what} "${path}" not found`);
    return; // No permission to look: the code that reads the file reports it.
  }
  if (info.isDirectory) throw new UsageError(`${what} "${path}" is a directory, not a file`);
}
