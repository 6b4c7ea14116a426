/**
 * What crashed or killed runs leave behind, found and dealt with when the next run starts
 * in the same output directory:
 *
 * - **Temporary files.** Every file is written atomically: to `<target>.tmp-<pid>-<hex>`
 *   beside the target, then renamed over it. A process killed mid-write leaves the
 *   temporary file (as large as a checkpoint). {@linkcode cleanLeftovers} removes those in
 *   `out_dir` and its run directories that are older than the current process and belong
 *   to no live run, and reports them.
 * - **Run status.** `run.json` says `"running"` from the start of a run until it ends; a
 *   killed run never rewrites it. A run holds an exclusive advisory lock on
 *   `<run dir>/run.<pid>.lock` ({@linkcode RunLock}) while it runs; the operating system
 *   drops the lock when the process dies, however it dies. A `run.json` still `"running"`
 *   whose lock is free (or absent) belongs to a process that is gone: it is rewritten with
 *   `"status": "interrupted"`.
 *
 * Requires `--allow-read` and `--allow-write` for `out_dir`.
 *
 * @module
 */

import { basename, join } from "node:path";
import { checkBeneath } from "../io/safe_paths.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { METRICS_CSV, METRICS_JSONL } from "./metrics.ts";

/** `<target>.tmp-<pid>-<hex>`, the name this project's atomic writers use. */
const TEMP_FILE = /^.+\.tmp-([0-9]{1,10})-[0-9a-f]{1,32}$/;

/** `run.<pid>.lock`, held by a running training process. */
const LOCK_FILE = /^run\.([0-9]{1,10})\.lock$/;

/** The run manifest's file name (as in `manifest.ts`). */
const MANIFEST = "run.json";

/** Largest `run.json` read back (a manifest is a few kilobytes). */
const MAX_MANIFEST_BYTES = 1 << 20;

/** What {@linkcode cleanLeftovers} did. */
export interface LeftoverReport {
  /** Temporary files removed, with their sizes in bytes. */
  removed: { path: string; bytes: number }[];
  /** Run directories whose `run.json` was changed from `running` to `interrupted`. */
  interrupted: string[];
}

/** Options of {@linkcode cleanLeftovers}. */
export interface CleanLeftoversOptions {
  /**
   * Files modified at or after this time (ms since the epoch) are kept. Default: the start
   * of the current process (`performance.timeOrigin`).
   */
  startedAt?: number;
  /** Where to report what was done; default stderr. Pass `null` for silence. */
  log?: ((line: string) => void) | null;
}

async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  try {
    const entries: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e);
    return entries;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return [];
    throw new Error(`Cannot list "${dir}": ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Whether the lock file is held by a live process. A free lock is taken and released at
 * once (so this never blocks).
 */
async function isHeld(path: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new Error(`Cannot open run lock "${path}": ${(e as Error).message}`, { cause: e });
  }
  try {
    if (!(await file.tryLock(true))) return true;
    await file.unlock();
    return false;
  } finally {
    file.close();
  }
}

async function readManifest(path: string): Promise<Record<string, unknown> | null> {
  try {
    const info = await Deno.lstat(path);
    if (!info.isFile || info.size > MAX_MANIFEST_BYTES) return null;
    const data = JSON.parse(await Deno.readTextFile(path));
    return typeof data === "object" && data !== null && !Array.isArray(data) ? data : null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return null;
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Removes the temporary files that interrupted writes left in `outDir` and in its run
 * directories, and marks runs whose process is gone as interrupted in their `run.json`.
 * Symbolic links are neither followed nor removed. A temporary file is removed only when
 * its process id is not the current process's, no live run in the same directory has that
 * id, and it was last modified before `startedAt`.
 *
 * @param outDir `trainer.out_dir`; a missing directory has nothing to clean.
 * @param options `startedAt` and `log`.
 * @returns The files removed and the runs marked.
 * @throws One line naming the file or directory that cannot be read or removed.
 *
 * @example
 * ```ts ignore
 * import { cleanLeftovers } from "./leftovers.ts";
 * const { removed, interrupted } = await cleanLeftovers("out");
 * // stderr: Removed 1 temporary file (4.3 MB) left by interrupted writes: out/run1/…
 * ```
 */
export async function cleanLeftovers(
  outDir: string,
  options: CleanLeftoversOptions = {},
): Promise<LeftoverReport> {
  const startedAt = options.startedAt ?? performance.timeOrigin;
  const log = options.log === undefined ? (l: string) => console.error(l) : options.log;
  const report: LeftoverReport = { removed: [], interrupted: [] };
  const top = await listDir(outDir);
  const dirs = [outDir, ...top.filter((e) => e.isDirectory).map((e) => join(outDir, e.name))];
  const listing = new Map<string, Deno.DirEntry[]>();
  // Process ids of live runs: all of them (their pointer writes land in outDir), and per
  // run directory (a run.json is "running" for real only when its directory has one).
  const live = new Set<number>();
  const liveIn = new Set<string>();
  for (const dir of dirs) {
    const entries = await listDir(dir);
    listing.set(dir, entries);
    for (const e of entries) {
      const m = LOCK_FILE.exec(e.name);
      if (!m || !e.isFile) continue;
      const lock = join(dir, e.name);
      if (await isHeld(lock)) {
        live.add(Number(m[1]));
        liveIn.add(dir);
      } else {
        await Deno.remove(lock).catch(() => {});
      }
    }
  }
  for (const dir of dirs) {
    const entries = listing.get(dir)!;
    for (const e of entries) {
      const m = TEMP_FILE.exec(e.name);
      if (!m || !e.isFile) continue;
      const pid = Number(m[1]);
      if (pid === Deno.pid || live.has(pid)) continue;
      const path = join(dir, e.name);
      let info: Deno.FileInfo;
      try {
        info = await Deno.lstat(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw err;
      }
      if ((info.mtime?.getTime() ?? 0) >= startedAt) continue;
      try {
        await Deno.remove(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw new Error(
          `Cannot remove leftover temporary file "${path}": ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      report.removed.push({ path, bytes: info.size });
    }
    if (dir !== outDir && !liveIn.has(dir) && entries.some((e) => e.name === MANIFEST)) {
      if (await markInterrupted(join(dir, MANIFEST), startedAt)) report.interrupted.push(dir);
    }
  }
  if (log) {
    const n = report.removed.length;
    if (n > 0) {
      const bytes = report.removed.reduce((a, r) => a + r.bytes, 0);
      const names = report.removed.slice(0, 3).map((r) => r.path).join(", ");
      log(
        `Removed ${n} temporary file${n === 1 ? "" : "s"} (${formatBytes(bytes)}) left by ` +
          `interrupted writes: ${names}${n > 3 ? `, and ${n - 3} more` : ""}`,
      );
    }
    for (const dir of report.interrupted) {
      log(
        `Marked run ${basename(dir)} as interrupted in ${join(dir, MANIFEST)}: its process is gone`,
      );
    }
  }
  return report;
}

/** Rewrites a `running` manifest older than `startedAt` as `interrupted`; true if it did. */
async function markInterrupted(path: string, startedAt: number): Promise<boolean> {
  const info = await Deno.lstat(path).catch(() => null);
  if (info === null || !info.isFile || (info.mtime?.getTime() ?? 0) >= startedAt) return false;
  const data = await readManifest(path);
  if (data === null || data.status !== "running") return false;
  data.status = "interrupted";
  data.result = {
    error: `the process ended without finishing the run (killed or crashed); found by process ` +
      `${Deno.pid} at ${new Date().toISOString()}`,
  };
  await writeTextFileAtomic(path, JSON.stringify(data, null, 2) + "\n");
  return true;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(1)} GB`;
}

/**
 * Opens a run directory for writing: checks that it and the metrics files appended in it
 * stay inside `outDir` when symbolic links are followed (checkpoints, pointers and
 * `run.json` are renamed into place, which replaces a link rather than following it), then
 * takes the run's {@linkcode RunLock}.
 *
 * @param outDir `trainer.out_dir`.
 * @param runDir The run directory under it.
 * @returns The held lock; release it after the final `run.json` is written.
 * @throws One line when a link leads out, or another live process uses the directory.
 */
export async function openRunDir(outDir: string, runDir: string): Promise<RunLock> {
  await checkBeneath(runDir, outDir, "Run directory");
  for (const name of [METRICS_CSV, METRICS_JSONL]) {
    await checkBeneath(join(runDir, name), runDir, "Metrics file");
  }
  return await RunLock.acquire(runDir);
}

/**
 * The lock a training process holds on its run directory while it runs: an exclusive
 * advisory lock on `<run dir>/run.<pid>.lock`, dropped by the operating system when the
 * process ends in any way. {@linkcode cleanLeftovers} reads it to tell live runs from dead
 * ones.
 *
 * @example
 * ```ts ignore
 * import { RunLock } from "./leftovers.ts";
 * const lock = await RunLock.acquire("out/run1");
 * // … train, write run.json …
 * await lock.release();
 * ```
 */
export class RunLock {
  /** The lock file. */
  readonly path: string;
  #file: Deno.FsFile | null;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /**
   * Creates the run directory if needed and locks it for this process.
   *
   * @param runDir The run directory.
   * @returns The held lock.
   * @throws One line when another live process holds a lock on the same run directory, or
   * the lock file cannot be created.
   */
  static async acquire(runDir: string): Promise<RunLock> {
    for (const e of await listDir(runDir)) {
      const m = LOCK_FILE.exec(e.name);
      if (m && Number(m[1]) !== Deno.pid && e.isFile && await isHeld(join(runDir, e.name))) {
        throw new Error(
          `Run directory "${runDir}" is in use by process ${m[1]} (it holds ${e.name})`,
        );
      }
    }
    const path = join(runDir, `run.${Deno.pid}.lock`);
    let file: Deno.FsFile;
    try {
      await Deno.mkdir(runDir, { recursive: true });
      // Empty: the name carries the process id and the lock carries the liveness.
      file = await Deno.open(path, { read: true, write: true, create: true });
    } catch (e) {
      throw new Error(`Cannot create run lock "${path}": ${(e as Error).message}`, { cause: e });
    }
    if (!(await file.tryLock(true))) {
      file.close();
      throw new Error(`Run directory "${runDir}" is in use by this process (${path} is held)`);
    }
    return new RunLock(path, file);
  }

  /** Releases the lock and removes the lock file. Safe to call twice. */
  async release(): Promise<void> {
    const file = this.#file;
    if (file === null) return;
    this.#file = null;
    await Deno.remove(this.path).catch(() => {});
    try {
      await file.unlock();
    } finally {
      file.close();
    }
  }
}
