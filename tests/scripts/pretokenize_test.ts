import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
// Test-only: writes the parquet files the fake Hub serves.
// deno-lint-ignore no-import-prefix
import { parquetWriteBuffer } from "npm:hyparquet-writer@0.17.0";
import { pretokenizeSplit } from "../../src/data/pretokenize.ts";
import { storiesFromStrings, textFileSource } from "../../src/data/tinystories_sources.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const script = `${root}scripts/pretokenize.ts`;
const sample = fileURLToPath(new URL("../fixtures/tinystories/stories_40.txt", import.meta.url));
const tokenizerJson = await Deno.readTextFile(`${root}src/tokenizers/tinystories_tokenizer.json`);

async function run(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The shard bytes the library writes for `source` (the reference's bytes: see pretokenize_test). */
async function expectedShards(
  split: string,
  source: Parameters<typeof pretokenizeSplit>[0]["source"],
  shardTokens: number,
): Promise<Uint8Array[]> {
  const dir = await Deno.makeTempDir();
  try {
    const r = await pretokenizeSplit({
      split,
      source,
      sourceInfo: [],
      tokenizerJson,
      eosId: 1,
      outputDir: dir,
      prefix: "tinystories2",
      shardTokens,
      workers: 0,
    });
    return await Promise.all(r.record.shards.map((s) => Deno.readFile(`${dir}/${s.file}`)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readShards(dir: string, split: string): Promise<Uint8Array[]> {
  const names = [...Deno.readDirSync(dir)].map((e) => e.name)
    .filter((n) => n.startsWith(`tinystories2_${split}_`)).sort();
  return await Promise.all(names.map((n) => Deno.readFile(`${dir}/${n}`)));
}

Deno.test("pretokenize --train/--val writes both splits' shards, a summary, and skips them on a re-run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const args = [
      `--allow-read=${root}src,${sample},${dir}`,
      `--allow-write=${dir}`,
      script,
      "--train",
      sample,
      "--val",
      sample,
      "--output_dir",
      dir,
      "--shard_tokens",
      "3000",
    ];
    const r = await run(args);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 3, r.stdout);
    assert.match(lines[0], /^train: 3 shards \(3 written, 0 kept\), 40 stories, 8205 tokens; /);
    assert.match(lines[1], /^val: 3 shards \(3 written, 0 kept\), 40 stories, 8205 tokens; /);
    assert.equal(lines[2], `${dir}/tinystories2_manifest.json`);
    assert.match(r.stderr, /train: \|█+\| 100\.0% 40 stories/);
    const want = await expectedShards("train", textFileSource(sample), 3000);
    assert.deepEqual(await readShards(dir, "train"), want);
    assert.deepEqual(await readShards(dir, "val"), want);

    const again = await run(args);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^train: 3 shards \(0 written, 3 kept\)/);
    assert.match(again.stderr, /train: 3 shards up to date, skipped\nval: 3 shards up to date/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretokenize --train alone holds out the last 1% of the stories (at least one) for validation", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run([
      `--allow-read=${root}src,${sample},${dir}`,
      `--allow-write=${dir}`,
      script,
      "--train",
      sample,
      "--output_dir",
      dir,
      "--quiet",
      "--workers",
      "1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /^train: 1 shards \(1 written, 0 kept\), 39 stories/);
    assert.match(r.stdout, /\nval: 1 shards \(1 written, 0 kept\), 1 stories/);
    const stories: string[] = [];
    for await (const s of textFileSource(sample).stories()) stories.push(s);
    const last = storiesFromStrings("last", stories.slice(39));
    assert.deepEqual(await readShards(dir, "val"), await expectedShards("val", last, 1e8));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretokenize without sources downloads the Hugging Face dataset (HF_ENDPOINT) and tokenizes both splits", async () => {
  const dir = await Deno.makeTempDir();
  const stories: string[] = [];
  for await (const s of textFileSource(sample).stories()) stories.push(s);
  const parquet = (texts: string[]) =>
    new Uint8Array(
      parquetWriteBuffer({ columnData: [{ name: "text", data: texts, type: "STRING" }] }),
    );
  const files: Record<string, Uint8Array> = {
    "train-00000-of-00001-x.parquet": parquet(stories.slice(0, 30)),
    "validation-00000-of-00001-y.parquet": parquet(stories.slice(30)),
  };
  const repo = "cyrilzhang/TinyStories2-ascii";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === `/api/datasets/${repo}/tree/main/data`) {
      return Response.json(
        Object.entries(files).map(([name, data]) => ({
          type: "file",
          path: `data/${name}`,
          size: data.length,
          oid: "0".repeat(40),
        })),
      );
    }
    const name = url.pathname.replace(`/datasets/${repo}/resolve/main/data/`, "");
    return files[name] ? new Response(files[name].slice()) : new Response("", { status: 404 });
  });
  try {
    const r = await run([
      `--allow-read=${root}src,.`,
      "--allow-write=.",
      "--allow-net=127.0.0.1",
      "--allow-env=HF_ENDPOINT",
      script,
      "--quiet",
    ], { cwd: dir, env: { HF_ENDPOINT: `http://127.0.0.1:${server.addr.port}` } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^train: 1 shards \(1 written, 0 kept\), 30 stories/);
    assert.match(r.stdout, /\nval: 1 shards \(1 written, 0 kept\), 10 stories/);
    assert.match(
      r.stdout,
      /\ndata\/tinystories\/tinystories2-ascii\/tinystories2_manifest\.json\n$/,
    );
    const out = `${dir}/data/tinystories/tinystories2-ascii`;
    const train = storiesFromStrings("t", stories.slice(0, 30));
    const val = storiesFromStrings("v", stories.slice(30));
    assert.deepEqual(await readShards(out, "train"), await expectedShards("train", train, 1e8));
    assert.deepEqual(await readShards(out, "val"), await expectedShards("val", val, 1e8));
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretokenize: missing sources, --val without --train and a tokenizer without EOS are usage errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const perms = [`--allow-read=${root}src,${sample},${dir}`, `--allow-write=${dir}`, script];
    const noEos = JSON.parse(tokenizerJson);
    noEos.added_tokens = noEos.added_tokens.filter((t: { content: string }) =>
      t.content !== "<|eos|>"
    );
    delete noEos.model.vocab["<|eos|>"];
    await Deno.writeTextFile(`${dir}/tok.json`, JSON.stringify(noEos));
    const cases: [string[], RegExp][] = [
      [
        ["--train", `${dir}/nope.txt`],
        /^error: --train path ".*nope\.txt" not found \(see --help\)$/,
      ],
      [["--val", sample], /^error: --val needs --train \(see --help\)$/],
      [
        ["--train", sample, "--tokenizer", `${dir}/tok.json`, "--output_dir", dir],
        /^error: Tokenizer ".*tok\.json" has no <\|eos\|> or <\|endoftext\|> token: give --eos_id \(see --help\)$/,
      ],
      [
        ["--train", "/etc/hostname"],
        /^error: Cannot read "\/etc\/hostname": the task may read under/,
      ],
    ];
    for (const [args, want] of cases) {
      const r = await run([...perms, ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(r.stderr.trim(), want);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
