/**
 * Tokenizer throughput for `deno task bench --tokenizer FILE`: the shipped TinyStories
 * tokenizer encodes every story of FILE (stories separated by lines equal to
 * `<|endoftext|>`, each trimmed, empty ones skipped, as the TinyStoriesV2 text layout; a file
 * without separators is one story), one story at a time.
 *
 * `first_pass_mb_s` is the first pass of the process (JIT compilation and an empty word
 * cache included); `mb_s` is the median of `repeats` further passes, each with a fresh
 * tokenizer (so an empty word cache every time). MB/s counts the file's bytes, 10⁶ per MB,
 * over wall time; `cpu_mb_s` is the same median over the process's CPU time, a figure that
 * other jobs on a shared machine disturb less.
 *
 * @module
 */

import process from "node:process";
import { tinyStoriesTokenizer } from "../src/tokenizers/tinystories.ts";

/** Stories of a TinyStoriesV2-style text. */
export function splitStories(text: string): string[] {
  return text.split(/^<\|endoftext\|>\r?$/m).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Encodes the stories of `path` `1 + repeats` times and reports the throughput. */
export async function benchTokenizer(path: string, repeats: number) {
  const bytes = (await Deno.stat(path)).size;
  const stories = splitStories(await Deno.readTextFile(path));
  const pass = () => {
    const tok = tinyStoriesTokenizer();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let tokens = 0;
    for (const story of stories) tokens += tok.encode(story).length;
    const cpu = process.cpuUsage(cpu0);
    return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, tokens };
  };
  const first = pass();
  const times: number[] = [];
  const cpuTimes: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const { ms, cpuMs } = pass();
    times.push(ms);
    cpuTimes.push(cpuMs);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // null when the time is below the clock's resolution (a tiny file).
  const mbs = (ms: number) => ms > 0 ? Number((bytes / 1e3 / ms).toFixed(2)) : null;
  return {
    file: path,
    bytes,
    stories: stories.length,
    tokens: first.tokens,
    first_pass_ms: Number(first.ms.toFixed(1)),
    first_pass_mb_s: mbs(first.ms),
    median_ms: Number(median(times).toFixed(1)),
    mb_s: mbs(median(times)),
    cpu_mb_s: mbs(median(cpuTimes)),
  };
}
