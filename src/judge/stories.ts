/**
 * The inputs of the judge: two JSON-lines files written by `deno task infer` (or microsoft/BST's
 * `inference.py`) for the same validation stories in the same order, one object per line with
 * `prompt`, `generated`, `goal` and `original`. The reference's separator lines
 * (`--------------------- NEW SESSION --------------------`, written when inference appends to
 * an existing file) and blank lines are skipped, so the n-th story of one file pairs with the
 * n-th story of the other.
 *
 * Files are read in chunks: memory stays bounded whatever their size.
 *
 * Requires `--allow-read` for both files.
 *
 * @module
 */

/** One story as the judge uses it. */
export interface StoryRecord {
  /** 1-based line number in its file. */
  line: number;
  prompt: string;
  generated: string;
  goal: string;
  original: unknown;
}

/** Two records of the same story, one from each file. */
export interface StoryPair {
  /** 0-based index among the stories (separator lines not counted). */
  index: number;
  a: StoryRecord;
  b: StoryRecord;
}

const SEPARATOR = /^-+ NEW SESSION -+$/;

/**
 * The lines of a text file with their 1-based numbers, read 64 KiB at a time.
 *
 * @throws One line naming the file when it cannot be opened.
 */
async function* readLines(path: string): AsyncGenerator<{ line: number; text: string }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`);
  }
  const decoder = new TextDecoder();
  const chunk = new Uint8Array(1 << 16);
  let pending = "";
  let line = 0;
  try {
    for (;;) {
      const n = await file.read(chunk);
      if (n === null) break;
      pending += decoder.decode(chunk.subarray(0, n), { stream: true });
      let start = 0;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n", start)) {
        yield { line: ++line, text: pending.slice(start, nl) };
        start = nl + 1;
      }
      pending = pending.slice(start);
    }
    pending += decoder.decode();
    if (pending.length > 0) yield { line: ++line, text: pending };
  } finally {
    file.close();
  }
}

/**
 * The story records of an inference file, separator and blank lines skipped.
 *
 * @param path The JSON-lines file.
 * @throws One line naming the file and line when a line is not a JSON object with string
 *   `prompt`, `generated` and `goal` and an `original`.
 *
 * @example
 * ```ts
 * import { readStoryRecords } from "./stories.ts";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * await Deno.writeTextFile(
 *   path,
 *   '{"prompt": "A", "generated": "b", "goal": "C", "original": "AbC"}\n' +
 *     "--------------------- NEW SESSION --------------------\n",
 * );
 * for await (const r of readStoryRecords(path)) console.log(r.line, r.prompt + r.generated + r.goal);
 * // 1 AbC
 * await Deno.remove(path);
 * ```
 */
export async function* readStoryRecords(path: string): AsyncGenerator<StoryRecord> {
  for await (const { line, text } of readLines(path)) {
    const trimmed = text.trim();
    if (trimmed === "" || SEPARATOR.test(trimmed)) continue;
    let json;
    try {
      json = JSON.parse(trimmed);
    } catch (e) {
      throw new Error(`Line ${line} of "${path}" is not JSON: ${(e as Error).message}`);
    }
    if (json === null || typeof json !== "object" || Array.isArray(json)) {
      throw new Error(`Line ${line} of "${path}" is not a JSON object`);
    }
    for (const key of ["prompt", "generated", "goal"]) {
      if (typeof json[key] !== "string") {
        throw new Error(
          `Line ${line} of "${path}" has no "${key}" string (is it an inference output file?)`,
        );
      }
    }
    if (!("original" in json)) {
      throw new Error(`Line ${line} of "${path}" has no "original" story`);
    }
    yield {
      line,
      prompt: json.prompt,
      generated: json.generated,
      goal: json.goal,
      original: json.original,
    };
  }
}

/**
 * The stories of two inference files in step, at most `limit` of them (−1: all), as the
 * reference's `zip` reads them: pairing stops where the shorter file ends.
 *
 * @param pathA The first model's file.
 * @param pathB The second model's file.
 * @param limit How many pairs at most; −1 for all.
 * @throws One line naming both files and lines when a pair's `original` stories differ, or as
 *   {@linkcode readStoryRecords}.
 *
 * @example
 * ```ts
 * import { readStoryPairs } from "./stories.ts";
 * const a = await Deno.makeTempFile();
 * const b = await Deno.makeTempFile();
 * await Deno.writeTextFile(a, '{"prompt": "A", "generated": "b", "goal": "C", "original": "x"}\n');
 * await Deno.writeTextFile(b, '{"prompt": "A", "generated": "d", "goal": "C", "original": "x"}\n');
 * for await (const p of readStoryPairs(a, b, -1)) console.log(p.index, p.a.generated, p.b.generated);
 * // 0 b d
 * await Deno.remove(a);
 * await Deno.remove(b);
 * ```
 */
export async function* readStoryPairs(
  pathA: string,
  pathB: string,
  limit: number,
): AsyncGenerator<StoryPair> {
  const ia = readStoryRecords(pathA);
  const ib = readStoryRecords(pathB);
  try {
    for (let index = 0; limit < 0 || index < limit; index++) {
      const ra = await ia.next();
      if (ra.done) break;
      const rb = await ib.next();
      if (rb.done) break;
      const a = ra.value;
      const b = rb.value;
      if (JSON.stringify(a.original) !== JSON.stringify(b.original)) {
        throw new Error(
          `Story ${index} differs between the files: "original" on line ${a.line} of "${pathA}" ` +
            `is not the one on line ${b.line} of "${pathB}" (both files must sample the same ` +
            `stories in the same order)`,
        );
      }
      yield { index, a, b };
    }
  } finally {
    await ia.return(undefined);
    await ib.return(undefined);
  }
}
