/**
 * Paths that stay where they were meant to go. Deno's permissions check the path a program
 * asks for, not where its symbolic links lead, so a link inside `out/` or `data/`
 * (`out/run1 -> /elsewhere`) would carry writes outside the folders a task may write. Each
 * output and data path is therefore resolved with its links followed and must stay inside
 * its root:
 *
 * - when the path (as written, made absolute) lies inside one of the task's allowed
 *   folders (`out`, `data`), that folder is the root;
 * - otherwise the user named the place explicitly (`trainer.out_dir=/scratch/run`), and the
 *   path itself is the root: what is written beneath it must stay beneath it.
 *
 * A root may itself be a link (`out -> /mnt/big/out`): its target is where the user keeps
 * outputs. A part of the path that does not exist yet, or that the task may not read, is
 * taken as written. An output folder is also checked for writability before any long work
 * starts ({@linkcode checkOutputDir}).
 *
 * @module
 */

import { dirname, join, relative, resolve, sep } from "node:path";

/** The folders `deno task train` may write (its permission set): outputs and data. */
export const TRAIN_OUTPUT_ROOTS: readonly string[] = ["out", "data"];

/** The folder data files are read from and generated in. */
export const DATA_ROOTS: readonly string[] = ["data"];

/**
 * Whether `path` is `root` or lies inside it (both absolute and normalised).
 *
 * @param path An absolute path.
 * @param root An absolute path.
 * @returns True when `path` is `root` or below it.
 *
 * @example
 * ```ts
 * import { isInside } from "./safe_paths.ts";
 * console.log(isInside("/a/out/run1", "/a/out"), isInside("/a/outside", "/a/out")); // true false
 * ```
 */
export function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep));
}

/**
 * The absolute path with every symbolic link followed, as far as the path exists and may be
 * read; the rest is appended as written.
 *
 * Requires `--allow-read` for the path (or the part that exists).
 *
 * @param path Any path.
 * @returns The resolved absolute path.
 */
export async function resolveLinks(path: string): Promise<string> {
  let head = resolve(path);
  let tail: string[] = [];
  // A dangling link is followed by hand (realPath fails on it); 40 hops as Linux allows.
  for (let hops = 0; hops <= 40;) {
    try {
      return join(await Deno.realPath(head), ...tail);
    } catch (e) {
      const parent = dirname(head);
      const missing = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory;
      if (!missing || parent === head) return join(head, ...tail);
      const target = await danglingTarget(head);
      if (target !== null) {
        hops++;
        head = resolve(parent, target);
        continue;
      }
      tail = [head.slice(parent.length).replace(/^[/\\]+/, ""), ...tail];
      head = parent;
    }
  }
  throw new Error(`Cannot resolve "${path}": too many levels of symbolic links`);
}

/** The target of `path` when it is a symbolic link, else `null`. */
async function danglingTarget(path: string): Promise<string | null> {
  try {
    return (await Deno.lstat(path)).isSymlink ? await Deno.readLink(path) : null;
  } catch {
    return null;
  }
}

/** Options of {@linkcode resolveContained}. */
export interface ContainedOptions {
  /** The task's allowed folders, relative to the working directory (e.g. `["out", "data"]`). */
  roots: readonly string[];
  /** The config key or flag that named the path, for the error (e.g. `trainer.out_dir`). */
  key: string;
}

/**
 * Resolves `path` with links followed and checks that it stays inside its root (see the
 * module description).
 *
 * @param path The path as configured.
 * @param options The allowed folders and the key naming the path.
 * @returns The resolved absolute path.
 * @throws One line naming the key, the path and where it leads when a link carries it out.
 *
 * @example
 * ```ts ignore
 * import { resolveContained } from "./safe_paths.ts";
 * await resolveContained("out/run1", { roots: ["out", "data"], key: "trainer.out_dir" });
 * // with out/run1 -> /elsewhere:
 * // trainer.out_dir "out/run1" leads outside "out" through a symbolic link (to "/elsewhere")
 * ```
 */
export async function resolveContained(path: string, options: ContainedOptions): Promise<string> {
  const abs = resolve(path);
  const named = options.roots.find((r) => isInside(abs, resolve(r))) ?? path;
  const [realRoot, real] = [await resolveLinks(named), await resolveLinks(abs)];
  if (!isInside(real, realRoot)) {
    throw new Error(
      `${options.key} "${path}" leads outside "${named}" through a symbolic link ` +
        `(to "${real}")`,
    );
  }
  return real;
}

/**
 * Checks that `path`, resolved with links followed, stays inside `parent` resolved the
 * same way — for paths a program builds under a checked folder (a run directory under
 * `out_dir`, a metrics file in the run directory).
 *
 * @param path The path built under `parent`.
 * @param parent The folder it must stay in.
 * @param what What `path` is, for the error (e.g. `Run directory`).
 * @throws One line naming `path` and where it leads.
 *
 * @example
 * ```ts ignore
 * import { checkBeneath } from "./safe_paths.ts";
 * await checkBeneath("out/run1", "out", "Run directory");
 * ```
 */
export async function checkBeneath(path: string, parent: string, what: string): Promise<void> {
  const [real, realParent] = [await resolveLinks(path), await resolveLinks(parent)];
  if (!isInside(real, realParent)) {
    throw new Error(
      `${what} "${path}" leads outside "${parent}" through a symbolic link (to "${real}")`,
    );
  }
}

/**
 * Checks an output folder before any long work: it stays inside its root (see
 * {@linkcode resolveContained}), it exists or can be created, and a file can be created and
 * removed in it.
 *
 * Requires `--allow-read` and `--allow-write` for the folder.
 *
 * @param dir The folder as configured.
 * @param options The allowed folders and the key naming it.
 * @throws One line naming the key and the folder.
 *
 * @example
 * ```ts ignore
 * import { checkOutputDir, TRAIN_OUTPUT_ROOTS } from "./safe_paths.ts";
 * await checkOutputDir("out", { roots: TRAIN_OUTPUT_ROOTS, key: "trainer.out_dir" });
 * ```
 */
export async function checkOutputDir(dir: string, options: ContainedOptions): Promise<void> {
  await resolveContained(dir, options);
  const fail = (e: unknown): never => {
    const why = e instanceof Deno.errors.NotCapable
      ? "the task's permissions do not allow writing there"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (e as Error).message;
    throw new Error(`${options.key} "${dir}" is not writable: ${why}`, { cause: e });
  };
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    fail(e);
  }
  const random = crypto.getRandomValues(new Uint8Array(4));
  const suffix = [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
  const probe = join(dir, `.write-check.tmp-${Deno.pid}-${suffix}`);
  try {
    (await Deno.open(probe, { write: true, createNew: true })).close();
  } catch (e) {
    fail(e);
  }
  await Deno.remove(probe).catch(fail);
}
