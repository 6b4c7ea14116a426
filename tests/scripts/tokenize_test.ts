import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../../scripts/tokenize.ts", import.meta.url));
const shipped = fileURLToPath(
  new URL("../../src/tokenizers/tinystories_tokenizer.json", import.meta.url),
);

/** Runs the tokenize script with `flags` (Deno permissions) and `args`, `input` on stdin. */
async function tokenize(flags: string[], args: string[], input: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, script, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("tokenize encodes each stdin line to JSON ids with no permissions, and --decode reverses it", async () => {
  // Expected ids and texts from the official tokenizers library.
  const input = "Once upon a time, 12 cats.\n<|eos|>Hi\r\n\nlast line no newline";
  const r = await tokenize([], [], input);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.equal(lines.pop(), "");
  assert.deepEqual(lines.map((l) => JSON.parse(l)), [
    [352, 361, 180, 319, 13, 95, 18, 19, 382, 103, 15],
    [1, 229, 99],
    [],
    [453, 271, 197, 735, 467, 465, 108, 735],
  ]);
  const back = await tokenize([], ["--decode"], r.stdout);
  assert.equal(back.code, 0, back.stderr);
  assert.deepEqual(back.stdout.trim().split("\n").map((l) => JSON.parse(l)), [
    " Once upon a time, 12 cat##s.",
    "<|eos|> H##i",
    "",
    " la##st l##ine no new##l##ine",
  ]);
  const skipped = await tokenize([], ["--decode", "--skip_special_tokens"], "[1, 236, 0]\n");
  assert.equal(skipped.stdout, `" \\""\n`);
});

Deno.test("tokenize --tokenizer reads the file it may read; --fim adds <|fim|> = 1000", async () => {
  const r = await tokenize(
    [`--allow-read=${shipped}`],
    ["--tokenizer", shipped, "--fim"],
    "a<|fim|>b\n",
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "[180,1000,186]\n");
});

Deno.test("tokenize --help lists the flags; bad arguments and input give one line", async () => {
  const help = await tokenize([], ["--help"], "");
  assert.equal(help.code, 0);
  for (const flag of ["--tokenizer", "--decode", "--skip_special_tokens", "--fim"]) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const cases: [string[], string[], string, number, RegExp][] = [
    [[], ["--bogus"], "", 2, /^error: Unknown option '--bogus' \(see --help\)$/],
    [[], ["--tokenizer"], "", 2, /^error: Option '--tokenizer <value>' argument missing/],
    [[], ["--skip_special_tokens"], "", 2, /only applies with --decode/],
    [[], ["--tokenizer", shipped], "", 2, /the task may read under \.\/data only; run deno run/],
    [["--allow-read"], ["--tokenizer", "missing.json"], "", 2, /"missing\.json": no such file$/],
    [[`--allow-read=${script}`], ["--tokenizer", script], "", 2, /Invalid tokenizer\.json/],
    [
      [],
      ["--decode"],
      "[1]\n[1, x]\n",
      1,
      /^error: Line 2 is not a JSON array of token ids: \[1, x\]$/,
    ],
    [[], ["--decode"], "[1.5]\n", 1, /Line 1 is not a JSON array of token ids/],
  ];
  for (const [flags, args, input, code, message] of cases) {
    const r = await tokenize(flags, args, input);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trim(), message);
  }
});
