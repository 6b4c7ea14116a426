/**
 * Ctrl-C during training: the first SIGINT asks the trainer to stop — it
 * finishes or drops the current step, writes a recovery checkpoint and exits with
 * {@linkcode INTERRUPT_EXIT_CODE} — and a second SIGINT exits at once with the same code.
 *
 * @module
 */

/** Exit status of an interrupted run (128 + SIGINT, as shells report it). */
export const INTERRUPT_EXIT_CODE = 130;

/** The handle {@linkcode installInterrupt} returns. */
export interface Interrupt {
  /** true once the first SIGINT arrived: stop at the next safe point. */
  readonly requested: boolean;
  /** Aborted on the first SIGINT, for code that takes an `AbortSignal`. */
  readonly signal: AbortSignal;
  /** Removes the listener; later SIGINTs get Deno's default (exit at once). */
  dispose(): void;
}

/** Options of {@linkcode installInterrupt}. */
export interface InterruptOptions {
  /** Prints the notice of the first SIGINT; default: a line on stderr. */
  log?: (text: string) => void;
  /** Called on the second SIGINT; default `Deno.exit(INTERRUPT_EXIT_CODE)`. */
  exit?: (code: number) => void;
  /**
   * The signals that interrupt (default SIGINT). Under `mpirun` add SIGTERM: on Ctrl-C
   * `mpirun` sends SIGTERM to every rank, then SIGKILL `odls_base_sigkill_timeout` seconds later.
   */
  signals?: Deno.Signal[];
}

/** The line printed on the first SIGINT. */
export const INTERRUPT_NOTICE: string =
  "Interrupted: stopping after the current step and writing a recovery checkpoint " +
  "(press Ctrl-C again to quit at once)";

/**
 * Installs the SIGINT listener of a training run.
 *
 * @param options Overrides for the notice and the immediate exit (tests).
 * @returns The handle: poll `requested` between steps, `dispose()` when done.
 *
 * @example
 * ```ts ignore
 * import { INTERRUPT_EXIT_CODE, installInterrupt } from "./interrupt.ts";
 * const stop = installInterrupt();
 * for (let step = 0; step < total && !stop.requested; step++) trainStep(step);
 * if (stop.requested) {
 *   await checkpoints.saveRecovery(step, tensors, meta);
 *   Deno.exit(INTERRUPT_EXIT_CODE);
 * }
 * stop.dispose();
 * ```
 */
export function installInterrupt(options: InterruptOptions = {}): Interrupt {
  const log = options.log ?? ((text: string) => console.error(text));
  const exit = options.exit ?? ((code: number) => Deno.exit(code));
  const controller = new AbortController();
  let count = 0;
  let installed = true;
  const listener = () => {
    count++;
    if (count === 1) {
      controller.abort(new Error("Interrupted by SIGINT"));
      log(INTERRUPT_NOTICE);
    } else {
      exit(INTERRUPT_EXIT_CODE);
    }
  };
  const signals = options.signals ?? ["SIGINT"];
  for (const s of signals) Deno.addSignalListener(s, listener);
  return {
    get requested() {
      return count > 0;
    },
    signal: controller.signal,
    dispose() {
      if (!installed) return;
      installed = false;
      for (const s of signals) Deno.removeSignalListener(s, listener);
    },
  };
}
