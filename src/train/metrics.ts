/**
 * Training metrics on disk: `metrics.csv` and `metrics.jsonl` in the run
 * directory, one row per logged step (the reference's Lightning `CSVLogger`, which writes
 * `metrics.csv` with `flush_logs_every_n_steps=1`).
 *
 * Column rule: `step`, `epoch`, then every other key seen in the file's rows, sorted (the
 * reference's logger sorts its keys too). The header is a function of the rows alone: when a
 * row brings a new key (the first validation adds `val_loss`), both files are rewritten
 * atomically with the wider header and empty cells for rows without the key. Rows are
 * otherwise appended and flushed one by one, so a killed run keeps every row it logged.
 *
 * Cell format: numbers as JavaScript prints them (shortest round-trip, `NaN`, `Infinity`),
 * strings as they are (quoted when they hold a comma, quote or line break), booleans as
 * `true`/`false`, missing values empty. In the JSONL file keys follow the same order and
 * non-finite numbers are written as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
 *
 * Resume: the JSONL file is the source of truth. Opening with `dropFromStep: S` keeps the
 * rows with `step < S` (a checkpoint at step S holds the state before step S runs, so rows
 * at S and later belong to work the resumed run redoes) and rewrites both files from them, so
 * a resumed run's files end up byte-identical to an uninterrupted run's.
 *
 * @module
 */

import { join } from "node:path";
import { writeTextFileAtomic } from "../io/atomic.ts";

/** File name of the CSV metrics in the run directory. */
export const METRICS_CSV = "metrics.csv";

/** File name of the JSON-lines metrics in the run directory. */
export const METRICS_JSONL = "metrics.jsonl";

/** A metrics value: a number, string or boolean; `null`/`undefined` mean "not logged". */
export type MetricValue = number | string | boolean | null | undefined;

/** One logged row: `step` and `epoch` plus any other metrics. */
export interface MetricsRow {
  /** The optimizer step the row belongs to. */
  step: number;
  /** The epoch (full passes over the training data). */
  epoch: number;
  /** Other metrics (`lr`, `train_loss`, `val_loss`, …). */
  [key: string]: MetricValue;
}

/** Options of {@linkcode MetricsLogger.open}. */
export interface MetricsOpenOptions {
  /**
   * Resuming: keep existing rows with `step < dropFromStep` and continue after them. Without
   * it, existing non-empty metrics files are an error (they belong to another run).
   */
  dropFromStep?: number;
}

const LEADING = ["step", "epoch"] as const;

function columnsOf(keys: Iterable<string>): string[] {
  const rest = [...new Set(keys)].filter((k) => k !== "step" && k !== "epoch").sort();
  return [...LEADING, ...rest];
}

function csvCell(v: MetricValue): string {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function jsonValue(v: MetricValue): MetricValue {
  return typeof v === "number" && !Number.isFinite(v) ? String(v) : v;
}

/** Keeps the defined keys, in column order. */
function normalize(
  row: Record<string, MetricValue>,
  columns: string[],
): Record<string, MetricValue> {
  const out: Record<string, MetricValue> = {};
  for (const c of columns) {
    const v = row[c];
    if (v !== null && v !== undefined) out[c] = jsonValue(v);
  }
  return out;
}

/**
 * Appends metric rows to `metrics.csv` and `metrics.jsonl` in a run directory (see the
 * module description for the column rule and resume).
 *
 * Requires `--allow-read` and `--allow-write` for the run directory.
 *
 * @example
 * ```ts ignore
 * import { MetricsLogger } from "./metrics.ts";
 * const metrics = await MetricsLogger.open("out/run1");
 * await metrics.log({ step: 10, epoch: 0, lr: 3e-4, train_loss: 2.85 });
 * ```
 */
export class MetricsLogger {
  /** The run directory. */
  readonly dir: string;
  /** Path of `metrics.csv`. */
  readonly csvPath: string;
  /** Path of `metrics.jsonl`. */
  readonly jsonlPath: string;
  #rows: Record<string, MetricValue>[];
  #columns: string[];

  private constructor(dir: string, rows: Record<string, MetricValue>[]) {
    this.dir = dir;
    this.csvPath = join(dir, METRICS_CSV);
    this.jsonlPath = join(dir, METRICS_JSONL);
    this.#rows = rows;
    this.#columns = columnsOf(rows.flatMap((r) => Object.keys(r)));
  }

  /**
   * Opens the metrics of a run directory (creating it), for a fresh run or a resumed one.
   *
   * @param dir The run directory.
   * @param options `dropFromStep` when resuming.
   * @returns The logger, with the files holding the kept rows.
   * @throws One line naming the file when a fresh run finds existing metrics, or the JSONL
   * file has a malformed line (other than a cut-off last line, which is dropped).
   */
  static async open(dir: string, options: MetricsOpenOptions = {}): Promise<MetricsLogger> {
    await Deno.mkdir(dir, { recursive: true });
    const jsonlPath = join(dir, METRICS_JSONL);
    const csvPath = join(dir, METRICS_CSV);
    const { dropFromStep } = options;
    if (dropFromStep === undefined) {
      for (const p of [jsonlPath, csvPath]) {
        const size = await fileSize(p);
        if (size !== null && size > 0) {
          throw new Error(
            `Cannot start metrics in "${p}": the file already exists (a fresh run needs a new ` +
              `run directory)`,
          );
        }
      }
      const logger = new MetricsLogger(dir, []);
      await logger.#rewrite();
      return logger;
    }
    const rows = (await readJsonl(jsonlPath)).filter((r) => (r.step as number) < dropFromStep);
    const logger = new MetricsLogger(dir, rows);
    await logger.#rewrite();
    return logger;
  }

  /** The current CSV columns. */
  get columns(): readonly string[] {
    return [...this.#columns];
  }

  /** The rows in the files, in order (JSONL form). */
  get rows(): readonly Record<string, MetricValue>[] {
    return this.#rows.map((r) => ({ ...r }));
  }

  /**
   * Appends a row to both files (flushed before returning). A row with a key not yet in the
   * header rewrites both files with the wider header.
   *
   * @param row `step` and `epoch` (non-negative integers) and other metrics.
   * @throws On a bad `step`/`epoch`, a value that is not a number, string or boolean, or a
   * write failure (naming the file).
   */
  async log(row: MetricsRow): Promise<void> {
    for (const k of LEADING) {
      const v = row[k];
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new Error(`Metrics row "${k}" must be a non-negative integer, got ${v}`);
      }
    }
    for (const [k, v] of Object.entries(row)) {
      if (v !== null && v !== undefined && !["number", "string", "boolean"].includes(typeof v)) {
        throw new Error(`Metrics value "${k}" must be a number, string or boolean`);
      }
    }
    const defined = Object.keys(row).filter((k) => row[k] !== null && row[k] !== undefined);
    const fresh = defined.filter((k) => !this.#columns.includes(k));
    if (fresh.length > 0) {
      this.#columns = columnsOf([...this.#columns, ...fresh]);
      this.#rows.push(normalize(row, this.#columns));
      await this.#rewrite();
      return;
    }
    const r = normalize(row, this.#columns);
    this.#rows.push(r);
    await appendText(this.jsonlPath, JSON.stringify(r) + "\n");
    await appendText(this.csvPath, this.#csvLine(r));
  }

  #csvLine(r: Record<string, MetricValue>): string {
    return this.#columns.map((c) => csvCell(r[c])).join(",") + "\n";
  }

  async #rewrite(): Promise<void> {
    const jsonl = this.#rows.map((r) => JSON.stringify(r) + "\n").join("");
    const csv = this.#columns.join(",") + "\n" + this.#rows.map((r) => this.#csvLine(r)).join("");
    await writeTextFileAtomic(this.jsonlPath, jsonl);
    await writeTextFileAtomic(this.csvPath, csv);
  }
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
  }
}

async function appendText(path: string, text: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, text, { append: true });
  } catch (e) {
    throw new Error(`Cannot write "${path}": ${(e as Error).message}`, { cause: e });
  }
}

async function readJsonl(path: string): Promise<Record<string, MetricValue>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
  }
  const lines = text.split("\n");
  // Drop what follows the last newline: "" normally, or the cut-off line of a run killed in
  // the middle of an append.
  lines.pop();
  const rows: Record<string, MetricValue>[] = [];
  lines.forEach((line, i) => {
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      r = undefined;
    }
    const o = r as Record<string, MetricValue>;
    if (
      typeof r !== "object" || r === null || Array.isArray(r) ||
      !Number.isSafeInteger(o.step) || !Number.isSafeInteger(o.epoch)
    ) {
      throw new Error(
        `Cannot resume metrics from "${path}": line ${i + 1} is not a metrics row with an ` +
          `integer step and epoch`,
      );
    }
    rows.push(o);
  });
  return rows;
}
