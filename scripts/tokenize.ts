/**
 * `deno task tokenize [--tokenizer FILE] [--decode]`: a filter for checking data with a
 * Hugging Face BPE tokenizer. Each line of stdin becomes one line of stdout: a JSON array of
 * token ids, or with `--decode` a JSON array of ids back to its text as a JSON string.
 *
 * Permissions (`-P=tokenize`): none for the shipped TinyStories tokenizer (a text import);
 * read under `./data` for `--tokenizer`. For a tokenizer file elsewhere run
 * `deno run --allow-read=FILE scripts/tokenize.ts --tokenizer FILE`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { HfTokenizer } from "../src/tokenizers/hf_bpe.ts";
import { tinyStoriesTokenizer } from "../src/tokenizers/tinystories.ts";

const USAGE =
  `Usage: deno task tokenize [--tokenizer FILE] [--decode] [--skip_special_tokens] [--fim]

Reads lines on stdin and writes one line per input line on stdout:
  encode (default): the line's token ids as a JSON array, e.g. [352, 361, 180, 319]
  --decode:         each line must be a JSON array of ids; writes the text as a JSON string

  --tokenizer FILE        a Hugging Face tokenizer.json (default: the reference's TinyStories
                          tokenizer shipped with the project, vocabulary 1000)
  --decode                ids to text (ByteLevel decoding, then transformers' clean-up of
                          spaces before punctuation; "##" stays, as in the reference)
  --skip_special_tokens   with --decode: leave out <|eos|>, <|pad|>, <|fim|>
  --fim                   add the special token <|fim|> (id 1000 for TinyStories), as the
                          reference's fill-in-the-middle baseline does
  -h, --help              this text

A line is the text between newlines, less one trailing carriage return. No special tokens
are added around a line; "<|eos|>" written in a line becomes its id. The task may read
tokenizer files under ./data only; for one elsewhere run
  deno run --allow-read=FILE scripts/tokenize.ts --tokenizer FILE`;

function fail(message: string, code: number): never {
  console.error(`error: ${message}`);
  Deno.exit(code);
}

function parseFlags() {
  try {
    return parseArgs({
      options: {
        help: { type: "boolean", short: "h" },
        tokenizer: { type: "string" },
        decode: { type: "boolean" },
        skip_special_tokens: { type: "boolean" },
        fim: { type: "boolean" },
      },
    }).values;
  } catch (e) {
    // parseArgs explains some mistakes over several lines: keep the first, point to --help.
    fail(`${(e as Error).message.split("\n")[0].replace(/\.$/, "")} (see --help)`, 2);
  }
}
const values = parseFlags();
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (values.skip_special_tokens && !values.decode) {
  fail("--skip_special_tokens only applies with --decode (see --help)", 2);
}

let tok: HfTokenizer;
if (values.tokenizer === undefined) {
  tok = tinyStoriesTokenizer();
} else {
  const path = values.tokenizer;
  let json: string;
  try {
    json = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) {
      fail(
        `Cannot read tokenizer "${path}": the task may read under ./data only; run ` +
          `deno run --allow-read=${path} scripts/tokenize.ts --tokenizer ${path}`,
        2,
      );
    }
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    fail(`Cannot read tokenizer "${path}": ${why}`, 2);
  }
  try {
    tok = HfTokenizer.fromJSON(json);
  } catch (e) {
    fail(`Tokenizer "${path}": ${(e as Error).message}`, 2);
  }
}
if (values.fim) tok.addSpecialTokens(["<|fim|>"]);

const decodeOptions = { skipSpecialTokens: values.skip_special_tokens ?? false };
const encoder = new TextEncoder();
let pending = "";
let lineNumber = 0;

/** One output line for one input line (without its newline). */
function convert(line: string): string {
  lineNumber++;
  if (line.endsWith("\r")) line = line.slice(0, -1);
  if (!values.decode) return JSON.stringify(tok.encode(line));
  let ids: unknown;
  try {
    ids = JSON.parse(line);
  } catch {
    ids = undefined;
  }
  if (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id))) {
    const shown = line.length > 40 ? `${line.slice(0, 37)}...` : line;
    throw new Error(`Line ${lineNumber} is not a JSON array of token ids: ${shown}`);
  }
  return JSON.stringify(tok.decode(ids, decodeOptions));
}

/** Writes all of `text` to stdout. */
async function write(text: string): Promise<void> {
  const bytes = encoder.encode(text);
  for (let done = 0; done < bytes.length;) {
    done += await Deno.stdout.write(bytes.subarray(done));
  }
}

try {
  let out = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let start = 0;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n", start)) {
      out += convert(pending.slice(start, nl)) + "\n";
      start = nl + 1;
    }
    pending = pending.slice(start);
    if (out.length >= 1 << 16) {
      await write(out);
      out = "";
    }
  }
  if (pending.length > 0) out += convert(pending) + "\n";
  await write(out);
} catch (e) {
  fail((e as Error).message, 1);
}
