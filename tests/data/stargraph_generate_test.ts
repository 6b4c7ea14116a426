import assert from "node:assert/strict";
import { PyRandom } from "../../src/data/mt19937.ts";
import {
  generateStarGraphFile,
  parseStarGraphFileName,
  starGraphBytes,
  starGraphFileName,
  starGraphLine,
  StarGraphScratch,
  validateStarGraphSpec,
  writeStarGraphLine,
} from "../../src/data/stargraph_generate.ts";

const fixtureUrl = new URL("../fixtures/graph_2_5_sample_20.txt", import.meta.url);
const G25 = { numSamples: 20, numPaths: 2, pathLength: 5, maxNodes: 50 };

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("starGraphLine() reproduces the reference's 20-sample file line by line", async () => {
  const want = await Deno.readTextFile(fixtureUrl);
  const rng = new PyRandom();
  const scratch = new StarGraphScratch(G25);
  const got = Array.from({ length: 20 }, (_, x) => starGraphLine(x, G25, rng, scratch) + "\n");
  assert.equal(got.join(""), want);
});

Deno.test("starGraphBytes() and writeStarGraphLine() give the fixture's bytes", async () => {
  const want = await Deno.readFile(fixtureUrl);
  assert.deepEqual(starGraphBytes(G25, 0, 20), want);
  // A slice in the middle: samples 7..12 only.
  const lines = new TextDecoder().decode(want).split("\n");
  assert.equal(
    new TextDecoder().decode(starGraphBytes(G25, 7, 13)),
    lines.slice(7, 13).join("\n") + "\n",
  );
  const out = new Uint8Array(200);
  const end = writeStarGraphLine(3, G25, new PyRandom(), new StarGraphScratch(G25), out, 5);
  assert.equal(new TextDecoder().decode(out.subarray(5, end)), lines[3] + "\n");
});

Deno.test("generateStarGraphFile() matches the reference's sha256 for 5000 samples", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_stargraph_" });
  try {
    const spec = { numSamples: 5000, numPaths: 2, pathLength: 5, maxNodes: 50 };
    const want = "60a711d41001d6cbb9f0f1af6a784229d0cc5656969088a82ae63c6e8f3eb2ec";
    // With worker threads (the test may read src/data) and on this thread only.
    for (const workers of [2, 0]) {
      const path = `${dir}/w${workers}/${starGraphFileName(spec)}`;
      const seen: number[] = [];
      await generateStarGraphFile({ ...spec, path, workers, onProgress: (n) => seen.push(n) });
      assert.equal(seen.at(-1), 5000);
      assert.equal(await sha256(await Deno.readFile(path)), want, `workers: ${workers}`);
      // Nothing but the finished file: the temporary file was renamed.
      assert.deepEqual([...Deno.readDirSync(`${dir}/w${workers}`)].map((e) => e.name), [
        "graph_2_5_sample_5000.txt",
      ]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("starGraphBytes() matches the reference at other sizes", () => {
  // Whole files written by the reference's prepare.py with these arguments.
  const cases: [typeof G25, string[]][] = [
    [{ numSamples: 3, numPaths: 5, pathLength: 1, maxNodes: 10 }, ["/6,6=6", "/2,2=2", "/0,0=0"]],
    [{ numSamples: 3, numPaths: 1, pathLength: 2, maxNodes: 2 }, [
      "1,0/1,0=1,0",
      "0,1/0,1=0,1",
      "0,1/0,1=0,1",
    ]],
    [{ numSamples: 4, numPaths: 3, pathLength: 3, maxNodes: 1000 }, [
      "394,776|864,394|864,911|864,41|41,265|911,430/864,776=864,394,776",
      "137,821|821,782|137,64|64,261|582,867|137,582/137,867=137,582,867",
      "978,93|869,57|978,869|978,883|93,86|883,970/978,970=978,883,970",
      "606,557|133,378|243,606|243,937|243,133|937,618/243,557=243,606,557",
    ]],
  ];
  for (const [spec, lines] of cases) {
    const got = new TextDecoder().decode(starGraphBytes(spec, 0, spec.numSamples));
    assert.equal(got, lines.join("\n") + "\n", JSON.stringify(spec));
  }
});

Deno.test("validateStarGraphSpec() rejects impossible arguments with one line", () => {
  assert.throws(
    () => validateStarGraphSpec({ numSamples: 1, numPaths: 13, pathLength: 5, maxNodes: 50 }),
    (e: Error) =>
      e.message ===
        "A star graph with 13 paths of length 5 needs num_paths*(path_length-1)+1 = 53 nodes, " +
          "more than max_nodes 50",
  );
  assert.throws(
    () => validateStarGraphSpec({ numSamples: 0, numPaths: 2, pathLength: 5, maxNodes: 50 }),
    /^Error: num_samples must be a positive integer, got 0$/,
  );
  assert.throws(
    () => validateStarGraphSpec({ numSamples: 1, numPaths: 2, pathLength: 0, maxNodes: 50 }),
    /path_length must be a positive integer, got 0/,
  );
  assert.throws(
    () => validateStarGraphSpec({ numSamples: 1, numPaths: 2.5, pathLength: 5, maxNodes: 50 }),
    /num_paths must be a positive integer, got 2.5/,
  );
  // The largest graph that fits, and a path length of 1 (the reference writes "/s,s=s").
  validateStarGraphSpec({ numSamples: 1, numPaths: 7, pathLength: 8, maxNodes: 50 });
  validateStarGraphSpec({ numSamples: 1, numPaths: 5, pathLength: 1, maxNodes: 1 });
});

Deno.test("starGraphFileName() and parseStarGraphFileName() agree", () => {
  const spec = { numPaths: 5, pathLength: 5, numSamples: 8000000 };
  assert.equal(starGraphFileName(spec), "graph_5_5_sample_8000000.txt");
  assert.deepEqual(parseStarGraphFileName(`data/x/${starGraphFileName(spec)}`), spec);
  assert.equal(parseStarGraphFileName("data/graph.txt"), null);
});

Deno.test("generateStarGraphFile() names the file when it cannot write, and leaves nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bst_stargraph_" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    const path = `${dir}/file/graph_2_5_sample_20.txt`; // a file where a directory must be
    await assert.rejects(
      () => generateStarGraphFile({ ...G25, path }),
      (e: Error) => e.message.startsWith(`Cannot write star-graph file "${path}": `),
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["file"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
