/**
 * `deno task judge` as a subprocess against the OpenAI-compatible stub: stdout and cache files
 * identical to microsoft/BST's own judge on the same inputs and replies
 * (tests/fixtures/judge/reference_run.py), and the failure modes users meet.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startStub, type StubAnswer } from "./_stub.ts";

const script = fileURLToPath(new URL("../../scripts/judge.ts", import.meta.url));
const fixtures = fileURLToPath(new URL("../fixtures/judge/", import.meta.url));
const FILE_A = `${fixtures}a.jsonl`;
const FILE_B = `${fixtures}b.jsonl`;

/** The replies of reference_run.py, served in order. */
const REPLIES = [
  "Story 1 keeps the characters consistent.\nWinner: Story 1",
  "**Winner: Story 2**\nThe second flows better.",
  "Both are fine.\n\nWinner: None",
  "  Story 2 has fewer abrupt jumps.\n\nWinner: Story 2*  \n",
  "Winner: Story 1 (the first one)\nWinner: Story 2",
];

interface Expected {
  kwargs: Record<string, string | number | boolean>;
  start: [string, string[]] | null;
  requests: number;
  stdout: string;
  cache: Record<string, string>;
}
const expected = (name: string): Expected =>
  JSON.parse(Deno.readTextFileSync(`${fixtures}expected_${name}.json`));

/** The flags of a fixture run's judge_files keyword arguments. */
function flags(kwargs: Expected["kwargs"]): string[] {
  return Object.entries(kwargs).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, `${v}`]));
}

/** Runs the script in `cwd` with access to `cwd` and the loopback stub only. */
async function judge(
  cwd: string,
  args: string[],
  env: Record<string, string> = { OPENAI_API_KEY: "sk-test" },
) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${cwd},${fixtures}`,
      `--allow-write=${cwd}`,
      "--allow-env=OPENAI_API_KEY",
      "--allow-net=127.0.0.1",
      script,
      ...args,
    ],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Every file under `dir`, by path relative to `root`. */
function readTree(root: string, dir = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of Deno.readDirSync(`${root}/${dir}`)) {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory) Object.assign(out, readTree(root, rel));
    else out[rel] = Deno.readTextFileSync(`${root}/${rel}`);
  }
  return out;
}

/** stdout without its last line, and that line parsed. */
function splitSummary(stdout: string) {
  const lines = stdout.trimEnd().split("\n");
  const last = JSON.parse(lines.pop()!);
  return { body: lines.join("\n") + "\n", summary: last };
}

for (const name of ["v1", "v2_n3_j4", "v1_resume"]) {
  Deno.test(`judge prints and caches what the reference does (${name})`, async () => {
    const want = expected(name);
    const cwd = await Deno.makeTempDir();
    if (want.start) {
      const [from, leftOut] = want.start;
      for (const [path, text] of Object.entries(expected(from).cache)) {
        if (leftOut.some((l) => path.endsWith(`/${l}`))) continue;
        await Deno.mkdir(`${cwd}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
        await Deno.writeTextFile(`${cwd}/${path}`, text);
      }
    }
    const stub = startStub((i) => REPLIES[i % REPLIES.length]);
    const r = await judge(cwd, [
      "--file1_path",
      FILE_A,
      "--file2_path",
      FILE_B,
      "--base_url",
      stub.baseUrl,
      ...flags(want.kwargs),
    ]);
    await stub.close();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(stub.requests.length, want.requests);
    const { body, summary } = splitSummary(r.stdout);
    assert.equal(body, want.stdout);
    assert.deepEqual(readTree(cwd), want.cache);
    // The summary agrees with the votes printed.
    const votes = [...want.stdout.matchAll(/Votes: \{'\w+': (\d+), '\w+': (\d+), 'tie': (\d+)\}/g)];
    const sum = (k: number) => votes.reduce((s, m) => s + Number(m[k]), 0);
    assert.equal(summary.model1_wins, sum(1));
    assert.equal(summary.model2_wins, sum(2));
    assert.equal(summary.ties, sum(3));
    assert.equal(summary.judgements, sum(1) + sum(2) + sum(3));
    assert.equal(summary.requested, want.requests);
    await Deno.remove(cwd, { recursive: true });
  });
}

Deno.test("judge credits winners through swaps and counts ties; summary with Wilson intervals", async () => {
  const cwd = await Deno.makeTempDir();
  // Answer k: a tie when k % 5 == 4, else "Story 2" when k % 3 == 0, else "Story 1".
  const stub = startStub((k) =>
    k % 5 === 4 ? "Winner: None" : k % 3 === 0 ? "Winner: Story 2" : "Winner: Story 1"
  );
  const r = await judge(cwd, [
    "--file1_path",
    FILE_A,
    "--file2_path",
    FILE_B,
    "--base_url",
    stub.baseUrl,
    "--model1_name",
    "bst",
    "--model2_name",
    "gpt",
  ]);
  await stub.close();
  assert.equal(r.code, 0, r.stderr);
  // Expected from the reference's logic in Python (random.seed(42), a choice([True, False])
  // before each request, swaps kept within a story): bst 10, gpt 2, ties 3; without the swaps
  // it would be 8 / 4 / 3. Wilson 95% intervals of 10/15 and 2/15 computed in Python.
  const { summary } = splitSummary(r.stdout);
  const { model1_win_rate_ci95: ci1, model2_win_rate_ci95: ci2, ...rest } = summary;
  assert.deepEqual(rest, {
    model1: "bst",
    model2: "gpt",
    stories: 5,
    judgements: 15,
    model1_wins: 10,
    model2_wins: 2,
    ties: 3,
    invalid: 0,
    model1_win_rate: 10 / 15,
    model2_win_rate: 2 / 15,
    tie_rate: 3 / 15,
    cached: 0,
    requested: 15,
  });
  const close = (a: number[], b: number[]) => a.every((x, i) => Math.abs(x - b[i]) < 1e-12);
  assert.ok(close(ci1, [0.41713547738519774, 0.8482367556028526]), `${ci1}`);
  assert.ok(close(ci2, [0.03736125910306537, 0.37881982832322364]), `${ci2}`);
  await Deno.remove(cwd, { recursive: true });
});

const BASE = ["--file1_path", FILE_A, "--file2_path", FILE_B, "--model1_name", "bst"];

Deno.test("judge counts an answer without a verdict as invalid and keeps it in the cache", async () => {
  const cwd = await Deno.makeTempDir();
  const stub = startStub((k) => (k === 1 || k === 7 ? "I cannot decide." : "Winner: None"));
  const r = await judge(cwd, [...BASE, "--base_url", stub.baseUrl, "-n", "3"]);
  await stub.close();
  assert.equal(r.code, 0, r.stderr);
  const { body, summary } = splitSummary(r.stdout);
  assert.equal(summary.invalid, 2);
  assert.equal(summary.ties, 7);
  assert.equal(summary.judgements, 9);
  assert.equal(summary.tie_rate, 1);
  assert.equal(summary.model1_win_rate, 0);
  assert.match(body, /Votes: \{'bst': 0, 'model2': 0, 'tie': 2, 'invalid': 1\}/);
  assert.match(body, /\n0_2_0 2\n/); // the histogram keeps the reference's key for the valid votes
  const warnings = r.stderr.trimEnd().split("\n");
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[0],
    /^Story 0, judgement 1: no "Winner: Story 1\|Story 2\|None" in the answer \(.*\/1\.json\); counted as invalid$/,
  );
  const kept = Object.entries(readTree(cwd)).filter(([, t]) => t.includes("I cannot decide."));
  assert.equal(kept.length, 2);
  await Deno.remove(cwd, { recursive: true });
});

Deno.test("judge retries a 429 with a retry hint and a 500, and accepts finish_reason length", async () => {
  const cwd = await Deno.makeTempDir();
  const stub = startStub((k): StubAnswer => {
    if (k === 0) {
      return Response.json({ error: { message: "Please retry after 0 seconds" } }, {
        status: 429,
      });
    }
    if (k === 1) return new Response("Internal error", { status: 500 });
    if (k === 2) return { content: "Winner: Story 1 is lon", finishReason: "length" };
    return "Winner: Story 2";
  });
  const r = await judge(cwd, [
    ...BASE,
    "--base_url",
    stub.baseUrl,
    "-n",
    "1",
    "--retry_base_s",
    "0.01",
  ]);
  await stub.close();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(stub.requests.length, 5); // 2 failures + 3 judgements
  const log = r.stderr.trimEnd().split("\n");
  assert.match(
    log[0],
    /^judge: attempt 1 failed \(HTTP 429 from .*Please retry after 0 seconds\); retrying in 0 s$/,
  );
  assert.match(
    log[1],
    /^judge: attempt 2 failed \(HTTP 500 from .*: Internal error\); retrying in 0\.02 s$/,
  );
  assert.match(log[2], /reached max tokens/);
  const { summary } = splitSummary(r.stdout);
  assert.equal(summary.judgements, 3);
  assert.equal(summary.invalid, 0);
  await Deno.remove(cwd, { recursive: true });
});

Deno.test("judge answers a second run from the cache without a request", async () => {
  const cwd = await Deno.makeTempDir();
  const stub = startStub((k) => REPLIES[k % REPLIES.length]);
  const args = [...BASE, "--base_url", stub.baseUrl];
  const first = await judge(cwd, args);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(stub.requests.length, 15);
  const cache = readTree(cwd);
  const second = await judge(cwd, args);
  await stub.close();
  assert.equal(second.code, 0, second.stderr);
  assert.equal(stub.requests.length, 15);
  assert.equal(splitSummary(second.stdout).body, splitSummary(first.stdout).body);
  const s = splitSummary(second.stdout).summary;
  assert.deepEqual([s.cached, s.requested], [15, 0]);
  assert.deepEqual(readTree(cwd), cache);
  await Deno.remove(cwd, { recursive: true });
});

Deno.test("judge stops on mismatched stories or a malformed line before any request", async () => {
  const cwd = await Deno.makeTempDir();
  const lines = Deno.readTextFileSync(FILE_B).split("\n");
  const other = JSON.parse(lines[3]);
  other.original = "Another story.";
  lines[3] = JSON.stringify(other);
  Deno.writeTextFileSync(`${cwd}/b.jsonl`, lines.join("\n"));
  const broken = JSON.parse(lines[1]);
  delete broken.generated;
  Deno.writeTextFileSync(`${cwd}/c.jsonl`, [lines[0], JSON.stringify(broken)].join("\n"));
  const stub = startStub(() => "Winner: None");
  const cases = [
    [
      `${cwd}/b.jsonl`,
      /^error: Story 3 differs between the files: "original" on line 4 of ".*a\.jsonl" is not the one on line 4 of ".*b\.jsonl" \(both files must sample the same stories in the same order\)$/,
    ],
    [`${cwd}/c.jsonl`, /^error: Line 2 of ".*c\.jsonl" has no "generated" string/],
  ] as const;
  for (const [file2, want] of cases) {
    const r = await judge(cwd, [
      "--file1_path",
      FILE_A,
      "--file2_path",
      file2,
      "--base_url",
      stub.baseUrl,
    ]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), want);
  }
  await stub.close();
  assert.equal(stub.requests.length, 0);
  assert.ok(!Object.keys(readTree(cwd)).some((p) => p.startsWith("judge_cache")));
  // Only the first 3 stories are read with -n 3: the mismatch at story 3 is not reached.
  const stub2 = startStub(() => "Winner: None");
  const ok = await judge(cwd, [
    "--file1_path",
    FILE_A,
    "--file2_path",
    `${cwd}/b.jsonl`,
    "--base_url",
    stub2.baseUrl,
    "-n",
    "3",
  ]);
  await stub2.close();
  assert.equal(ok.code, 0, ok.stderr);
  await Deno.remove(cwd, { recursive: true });
});

Deno.test("judge --help lists the flags; bad arguments and a missing key exit 2 with one line", async () => {
  const cwd = await Deno.makeTempDir();
  const help = await judge(cwd, ["--help"]);
  assert.equal(help.code, 0);
  for (
    const flag of [
      "--file1_path",
      "--file2_path",
      "--n_stories",
      "--num_judges",
      "--prompt_ver",
      "--cache_without_prompt",
      "--model1_name",
      "--model2_name",
      "--deployment_name",
      "--base_url",
      "--cache_dir",
      "OPENAI_API_KEY",
      "--allow-net=HOST",
    ]
  ) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const files = ["--file1_path", FILE_A, "--file2_path", FILE_B];
  const bad = [
    [["--bogus", "1"], /^error: Unknown option '--bogus' \(see --help\)$/],
    [["--file2_path", FILE_B], /^error: --file1_path is required \(see --help\)$/],
    [
      ["--file1_path", `${cwd}/none.jsonl`, "--file2_path", FILE_B],
      /^error: No such file ".*none\.jsonl"/,
    ],
    [[...files, "--prompt_ver", "v3"], /^error: --prompt_ver must be v1 or v2, got "v3"/],
    [[...files, "--num_judges", "0"], /^error: --num_judges must be an integer ≥ 1, got "0"/],
    [[...files, "--n_stories", "0"], /^error: --n_stories must be -1 or ≥ 1, got "0"/],
    [[...files, "--model2_name", "model1"], /^error: --model1_name and --model2_name must differ/],
    [
      [...files, "--base_url", "http://example.com/v1"],
      /^error: No permission to reach example\.com: run the script with --allow-net=example\.com/,
    ],
    [
      [...files, "--cache_dir", "/nonexistent/cache"],
      /^error: No permission to write the cache "\/nonexistent\/cache": run the script with --allow-write=\/nonexistent\/cache/,
    ],
  ] as const;
  for (const [args, want] of bad) {
    const r = await judge(cwd, [...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), want);
  }
  const noKey = await judge(cwd, [...files, "--base_url", "http://127.0.0.1:9/v1"], {
    OPENAI_API_KEY: "",
  });
  assert.equal(noKey.code, 2);
  assert.equal(
    noKey.stderr,
    "error: OPENAI_API_KEY is not set (give any value to a server that needs no key) (see --help)\n",
  );
  await Deno.remove(cwd, { recursive: true });
});

Deno.test("judge leaves a consistent cache on Ctrl-C and a re-run asks only for the rest", async () => {
  const cwd = await Deno.makeTempDir();
  let asked = () => {};
  const third = new Promise<void>((r) => (asked = r));
  let release = () => {};
  const released = new Promise<void>((r) => (release = r));
  const stub = startStub(async (k): Promise<StubAnswer> => {
    if (k === 2) {
      asked();
      await released; // no answer until the child has been interrupted
    }
    return REPLIES[k % REPLIES.length];
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${cwd},${fixtures}`,
      `--allow-write=${cwd}`,
      "--allow-env=OPENAI_API_KEY",
      "--allow-net=127.0.0.1",
      script,
      ...BASE,
      "--base_url",
      stub.baseUrl,
    ],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", OPENAI_API_KEY: "k" },
  }).spawn();
  await third;
  child.kill("SIGINT");
  const out = await child.output();
  release();
  await stub.close();
  assert.equal(out.code, 130);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /^Interrupted: every answer received so far is in the cache/,
  );
  const cache = readTree(cwd);
  const paths = Object.keys(cache).sort();
  assert.equal(paths.length, 2, paths.join(", "));
  assert.ok(paths.every((p) => /\/[01]\.json$/.test(p)), paths.join(", "));
  for (const text of Object.values(cache)) assert.equal(typeof JSON.parse(text).result, "string");
  const stub2 = startStub((k) => REPLIES[k % REPLIES.length]);
  const r = await judge(cwd, [...BASE, "--base_url", stub2.baseUrl]);
  await stub2.close();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(stub2.requests.length, 13);
  const after = readTree(cwd);
  for (const p of paths) assert.equal(after[p], cache[p]);
  assert.equal(Object.keys(after).length, 15);
  await Deno.remove(cwd, { recursive: true });
});
