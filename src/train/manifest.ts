/**
 * The run manifest `run.json` in the run directory: what produced the run — the
 * merged config, seed, WebGPU adapter, Deno version, lockfile hash, command line — and when
 * it started and ended. Written atomically at the start (`status: "running"`) and rewritten
 * at the end with the end time and final status.
 *
 * @module
 */

import { join } from "node:path";
import { writeTextFileAtomic } from "../io/atomic.ts";

/** File name of the manifest in the run directory. */
export const MANIFEST_FILE = "run.json";

/** How a run ended (`"running"` until {@linkcode RunManifest.finish}). */
export type RunStatus = "running" | "completed" | "interrupted" | "failed";

/** The contents of `run.json`. */
export interface RunManifestData {
  /** Format version of this file. */
  manifest_version: 1;
  /** The run directory's name. */
  run_name: string;
  /** Running or how it ended. */
  status: RunStatus;
  /** ISO 8601 start time. */
  start_time: string;
  /** ISO 8601 end time, `null` while running. */
  end_time: string | null;
  /** The seed every random choice derives from. */
  seed: number;
  /** The merged config (defaults ← file ← overrides). */
  config: unknown;
  /** The WebGPU adapter summary the caller passed (vendor, architecture, limits, …). */
  adapter: unknown;
  /** `Deno.version`: deno, v8, typescript. */
  deno: { deno: string; v8: string; typescript: string };
  /** The lockfile and its SHA-256 (hex), or `null` when it could not be read. */
  lockfile: { path: string; sha256: string | null };
  /** The main module and its arguments. */
  command: { main_module: string; args: string[] };
  /** The checkpoint this run resumed from, or `null`. */
  resumed_from: string | null;
  /** The optimizer steps taken at the end, `null` while running. */
  final_step: number | null;
  /** Extra fields given at the end (final losses, the error message of a failed run, …). */
  result: Record<string, unknown> | null;
}

/** What {@linkcode RunManifest.start} needs. */
export interface RunManifestInit {
  /** The run directory's name. */
  runName: string;
  /** The merged config. */
  config: unknown;
  /** The seed. */
  seed: number;
  /** An adapter summary (JSON-serialisable). */
  adapter: unknown;
  /** Lockfile to hash; default `"deno.lock"` (relative to the working directory). */
  lockfile?: string;
  /** The checkpoint the run resumes from. */
  resumedFrom?: string | null;
  /** Command line; default `{ main_module: Deno.mainModule, args: Deno.args }`. */
  command?: { main_module: string; args: string[] };
  /** Start time; default now. */
  startTime?: Date;
}

/** What {@linkcode RunManifest.finish} records. */
export interface RunManifestEnd {
  /** How the run ended. */
  status: Exclude<RunStatus, "running">;
  /** Optimizer steps taken. */
  finalStep?: number | null;
  /** Extra JSON-serialisable results. */
  result?: Record<string, unknown> | null;
  /** End time; default now. */
  endTime?: Date;
}

/**
 * SHA-256 of a file as lowercase hex, or `null` when it cannot be read (missing, or no read
 * permission).
 *
 * @param path The file.
 * @returns The digest or `null`.
 *
 * @example
 * ```ts ignore
 * import { sha256File } from "./manifest.ts";
 * console.log(await sha256File("deno.lock"));
 * ```
 */
export async function sha256File(path: string): Promise<string | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    return null;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A run's `run.json`.
 *
 * Requires `--allow-write` for the run directory and `--allow-read` for the lockfile (without
 * it the hash is `null`).
 *
 * @example
 * ```ts ignore
 * import { RunManifest } from "./manifest.ts";
 * const manifest = await RunManifest.start("out/run1", {
 *   runName: "run1", config, seed: config.seed, adapter: adapterSummary,
 * });
 * // … train …
 * await manifest.finish({ status: "completed", finalStep: 5000 });
 * ```
 */
export class RunManifest {
  /** Path of `run.json`. */
  readonly path: string;
  #data: RunManifestData;

  private constructor(path: string, data: RunManifestData) {
    this.path = path;
    this.#data = data;
  }

  /**
   * Writes `run.json` in `dir` (created if missing) with `status: "running"`.
   *
   * @param dir The run directory.
   * @param init Config, seed, adapter and optional overrides.
   * @returns The manifest, for {@linkcode finish}.
   * @throws One line naming the file when it cannot be written, or when `config` or
   * `adapter` is not JSON-serialisable.
   */
  static async start(dir: string, init: RunManifestInit): Promise<RunManifest> {
    const lockfile = init.lockfile ?? "deno.lock";
    const data: RunManifestData = {
      manifest_version: 1,
      run_name: init.runName,
      status: "running",
      start_time: (init.startTime ?? new Date()).toISOString(),
      end_time: null,
      seed: init.seed,
      config: init.config,
      adapter: init.adapter,
      deno: { ...Deno.version },
      lockfile: { path: lockfile, sha256: await sha256File(lockfile) },
      command: init.command ?? { main_module: Deno.mainModule, args: [...Deno.args] },
      resumed_from: init.resumedFrom ?? null,
      final_step: null,
      result: null,
    };
    const m = new RunManifest(join(dir, MANIFEST_FILE), data);
    await Deno.mkdir(dir, { recursive: true });
    await m.#write();
    return m;
  }

  /** A copy of the current contents. */
  get data(): RunManifestData {
    return structuredClone(this.#data);
  }

  /**
   * Rewrites `run.json` with the end time, status, final step and results.
   *
   * @param end How the run ended.
   * @throws One line naming the file when it cannot be written.
   */
  async finish(end: RunManifestEnd): Promise<void> {
    this.#data.status = end.status;
    this.#data.end_time = (end.endTime ?? new Date()).toISOString();
    this.#data.final_step = end.finalStep ?? null;
    this.#data.result = end.result ?? null;
    await this.#write();
  }

  async #write(): Promise<void> {
    let text: string;
    try {
      text = JSON.stringify(this.#data, null, 2) + "\n";
    } catch (e) {
      throw new Error(`Cannot write "${this.path}": ${(e as Error).message}`, { cause: e });
    }
    await writeTextFileAtomic(this.path, text);
  }
}
