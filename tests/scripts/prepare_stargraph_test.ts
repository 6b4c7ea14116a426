import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../../scripts/prepare_stargraph.ts", import.meta.url));
const fixture = fileURLToPath(new URL("../fixtures/graph_2_5_sample_20.txt", import.meta.url));

async function prepare(dir: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-read=${dir}`, `--allow-write=${dir}`, script, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("prepare:stargraph writes the reference's file with write access to its directory only", async () => {
  const dir = await Deno.makeTempDir();
  const r = await prepare(dir, [
    "--num_samples",
    "20",
    "--num_paths",
    "2",
    "--path_length",
    "5",
    "--max_nodes",
    "50",
    "--data_dir",
    dir,
  ]);
  assert.equal(r.code, 0, r.stderr);
  // stdout: the path only; the progress bar goes to stderr.
  assert.equal(r.stdout, `${dir}/graph_2_5_sample_20.txt\n`);
  assert.match(r.stderr, /\|█+\| 100\.0% 20\/20/);
  assert.deepEqual(
    await Deno.readFile(`${dir}/graph_2_5_sample_20.txt`),
    await Deno.readFile(fixture),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("prepare:stargraph --help lists the flags; bad arguments exit 2 with one line", async () => {
  const dir = await Deno.makeTempDir();
  const help = await prepare(dir, ["--help"]);
  assert.equal(help.code, 0);
  for (
    const flag of ["--num_samples", "--num_paths", "--path_length", "--max_nodes", "--data_dir"]
  ) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const bad = await prepare(dir, ["--num_paths", "20", "--data_dir", dir]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  assert.match(bad.stderr, /needs num_paths\*\(path_length-1\)\+1 = 81 nodes/);
  const bad2 = [
    [
      ["--num_samples", "many"],
      /^error: --num_samples must be a positive integer, got "many" \(see --help\)$/,
    ],
    [
      ["--num_samples", "0"],
      /^error: --num_samples must be a positive integer, got "0" \(see --help\)$/,
    ],
    [
      ["--num_samples", "-5"],
      /^error: Option '--num_samples' argument is ambiguous \(see --help\)$/,
    ],
    [["--bogus", "1"], /^error: Unknown option '--bogus' \(see --help\)$/],
    [["extra"], /^error: Unexpected argument 'extra'/],
  ] as const;
  for (const [args, want] of bad2) {
    const r = await prepare(dir, [...args, "--data_dir", dir]);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stdout, "");
    assert.match(r.stderr.trimEnd(), want);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  }
  // A directory it may not write: exit 1, one line naming the file, no bar drawn.
  const denied = await prepare(dir, ["--num_samples", "2", "--data_dir", "/nonexistent/x"]);
  assert.equal(denied.code, 1);
  assert.match(
    denied.stderr,
    /^error: Cannot write star-graph file "\/nonexistent\/x\/graph_5_5_sample_2\.txt": .*\n$/,
  );
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});
