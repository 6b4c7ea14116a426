/**
 * Worker for {@linkcode generateStarGraphFile}: formats a range of samples and posts the
 * UTF-8 bytes back (transferred). Messages: `{ id, spec, start, end }` in,
 * `{ id, bytes }` or `{ id, error }` out.
 *
 * @module
 */

import { PyRandom } from "./mt19937.ts";
import { starGraphBytes, StarGraphScratch, type StarGraphSpec } from "./stargraph_generate.ts";

interface Job {
  id: number;
  spec: StarGraphSpec;
  start: number;
  end: number;
}

const rng = new PyRandom();
let scratch: StarGraphScratch | undefined;

/** The worker's global scope, typed for the two members used here. */
const scope = self as unknown as {
  onmessage: (e: MessageEvent<Job>) => void;
  postMessage: (message: unknown, transfer: Transferable[]) => void;
};

scope.onmessage = (e: MessageEvent<Job>) => {
  const { id, spec, start, end } = e.data;
  try {
    if (!scratch || JSON.stringify(scratch.spec) !== JSON.stringify(spec)) {
      scratch = new StarGraphScratch(spec);
    }
    const bytes = starGraphBytes(spec, start, end, rng, scratch).slice();
    scope.postMessage({ id, bytes }, [bytes.buffer]);
  } catch (err) {
    scope.postMessage({ id, error: (err as Error).message }, []);
  }
};
