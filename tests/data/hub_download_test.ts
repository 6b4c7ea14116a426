import assert from "node:assert/strict";
import {
  downloadHubFile,
  downloadTinyStories,
  hubEndpoint,
  listHubFiles,
  Sha256,
} from "../../src/data/hub_download.ts";

const REPO = "someone/TinyStories-test";

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

interface FakeFile {
  data: Uint8Array;
  /** Size the listing announces (default: the real size). */
  listedSize?: number;
  /** sha256 the listing announces (default: the real one). */
  listedSha?: string;
  /** Break the connection after this many bytes, on the first `breaks` requests. */
  breakAt?: number;
  breaks?: number;
}

/** A fake Hub on 127.0.0.1: the tree API in two pages, and resolve with Range support. */
async function fakeHub(files: Record<string, FakeFile>) {
  const requests: { path: string; range: string | null }[] = [];
  const entries = await Promise.all(
    Object.entries(files).map(async ([path, f]) => ({
      type: "file",
      path: `data/${path}`,
      size: f.listedSize ?? f.data.length,
      oid: "0".repeat(40),
      lfs: { oid: f.listedSha ?? await sha256(f.data), size: f.data.length, pointerSize: 134 },
    })),
  );
  const pages = [
    [{ type: "directory", path: "data/extra", oid: "1".repeat(40) }, ...entries.slice(0, 1)],
    [...entries.slice(1), { type: "file", path: "data/README.md", size: 5, oid: "2".repeat(40) }],
  ];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    requests.push({ path: url.pathname + url.search, range: req.headers.get("range") });
    const tree = `/api/datasets/${REPO}/tree/main/data`;
    if (url.pathname === tree) {
      const page = Number(url.searchParams.get("cursor") ?? 0);
      const headers = new Headers({ "content-type": "application/json" });
      if (page + 1 < pages.length) {
        headers.set("link", `<${tree}?cursor=${page + 1}>; rel="next"`);
      }
      return new Response(JSON.stringify(pages[page]), { headers });
    }
    const prefix = `/datasets/${REPO}/resolve/main/data/`;
    if (!url.pathname.startsWith(prefix)) return new Response("not found", { status: 404 });
    const f = files[url.pathname.slice(prefix.length)];
    if (!f) return new Response("not found", { status: 404 });
    const m = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const from = m ? Number(m[1]) : 0;
    const body = f.data.subarray(from);
    const status = m ? 206 : 200;
    if (f.breakAt !== undefined && (f.breaks ?? 1) > 0) {
      f.breaks = (f.breaks ?? 1) - 1;
      const cut = Math.max(0, f.breakAt - from);
      // Announce the whole body, send part of it, end: the connection is cut short.
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(body.slice(0, cut));
          c.close();
        },
      });
      const headers = { "content-length": String(body.length) };
      return new Response(stream, { status, headers });
    }
    return new Response(body.slice(), { status });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

Deno.test("Sha256() matches WebCrypto for inputs of many lengths fed in pieces", async () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100_003]) {
    const data = bytes(n, n + 1);
    const h = new Sha256();
    for (let i = 0; i < n; i += 37) h.update(data.subarray(i, Math.min(i + 37, n)));
    assert.equal(h.hex(), await sha256(data), `length ${n}`);
  }
});

Deno.test("hubEndpoint() prefers the option, then HF_ENDPOINT, then the Hub", () => {
  const saved = Deno.env.get("HF_ENDPOINT");
  try {
    Deno.env.set("HF_ENDPOINT", "http://mirror.example/");
    assert.equal(hubEndpoint(), "http://mirror.example");
    assert.equal(hubEndpoint("http://127.0.0.1:9"), "http://127.0.0.1:9");
    Deno.env.delete("HF_ENDPOINT");
    assert.equal(hubEndpoint(), "https://huggingface.co");
  } finally {
    if (saved === undefined) Deno.env.delete("HF_ENDPOINT");
    else Deno.env.set("HF_ENDPOINT", saved);
  }
});

Deno.test("listHubFiles() follows pagination and keeps files with their sha256", async () => {
  const a = bytes(300, 1);
  const hub = await fakeHub({
    "train-0.parquet": { data: a },
    "validation-0.parquet": { data: a },
  });
  try {
    const files = await listHubFiles(REPO, "data", { endpoint: hub.endpoint });
    assert.deepEqual(files, [
      { path: "data/train-0.parquet", size: 300, sha256: await sha256(a) },
      { path: "data/validation-0.parquet", size: 300, sha256: await sha256(a) },
      { path: "data/README.md", size: 5 },
    ]);
    await assert.rejects(
      listHubFiles("nobody/none", "data", { endpoint: hub.endpoint }),
      /Cannot list nobody\/none at .*: HTTP 404/,
    );
  } finally {
    await hub.close();
  }
});

Deno.test("downloadTinyStories() downloads, verifies and then works offline", async () => {
  const dir = await Deno.makeTempDir();
  const files = {
    "train-00000-of-00002-a.parquet": { data: bytes(70_000, 2) },
    "train-00001-of-00002-b.parquet": { data: bytes(50_000, 3) },
    "validation-00000-of-00001-c.parquet": { data: bytes(9_000, 4) },
  };
  const hub = await fakeHub(files);
  try {
    const opts = { repo: REPO, dest: `${dir}/ts`, endpoint: hub.endpoint, progress: false };
    const got = await downloadTinyStories(opts);
    assert.deepEqual(got, {
      train: [
        `${dir}/ts/train-00000-of-00002-a.parquet`,
        `${dir}/ts/train-00001-of-00002-b.parquet`,
      ],
      validation: [`${dir}/ts/validation-00000-of-00001-c.parquet`],
    });
    for (const [name, f] of Object.entries(files)) {
      assert.deepEqual(await Deno.readFile(`${dir}/ts/${name}`), f.data);
    }
    const names = [...Deno.readDirSync(`${dir}/ts`)].map((e) => e.name).sort();
    assert.equal(names.filter((n) => n.endsWith(".part")).length, 0);
    await hub.close();
    // Everything is there: the saved listing is enough, no network needed.
    assert.deepEqual(await downloadTinyStories(opts), got);
  } finally {
    await hub.close().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downloadHubFile() resumes an interrupted transfer with a Range request", async () => {
  const dir = await Deno.makeTempDir();
  const data = bytes(200_000, 5);
  const files: Record<string, FakeFile> = {
    "train-0.parquet": { data, breakAt: 65_536, breaks: 1 },
  };
  const hub = await fakeHub(files);
  try {
    const url = `${hub.endpoint}/datasets/${REPO}/resolve/main/data/train-0.parquet`;
    const file = { path: "data/train-0.parquet", size: data.length, sha256: await sha256(data) };
    // A .part left by an earlier run: the first request resumes from it.
    await Deno.writeFile(`${dir}/t.parquet.part`, data.subarray(0, 10_000));
    await downloadHubFile(url, file, `${dir}/t.parquet`);
    assert.deepEqual(await Deno.readFile(`${dir}/t.parquet`), data);
    const ranges = hub.requests.map((r) => r.range);
    assert.equal(ranges[0], "bytes=10000-");
    assert.equal(ranges.length, 2);
    assert.match(ranges[1]!, /^bytes=\d+-$/);
    assert.ok(Number(/\d+/.exec(ranges[1]!)![0]) >= 10_000);
    await assert.rejects(Deno.stat(`${dir}/t.parquet.part`));
  } finally {
    await hub.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downloadHubFile() keeps the .part and says to run again after repeated interruptions", async () => {
  const dir = await Deno.makeTempDir();
  const data = bytes(100_000, 6);
  const hub = await fakeHub({ "x.parquet": { data, breakAt: 0, breaks: 10 } });
  try {
    const url = `${hub.endpoint}/datasets/${REPO}/resolve/main/data/x.parquet`;
    await assert.rejects(
      downloadHubFile(url, { path: "data/x.parquet", size: data.length }, `${dir}/x.parquet`),
      /interrupted after 0 of 100000 bytes .*run again to resume/,
    );
    assert.equal(hub.requests.length, 3);
  } finally {
    await hub.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downloadTinyStories() fails clearly on a size or checksum mismatch and keeps nothing", async () => {
  const dir = await Deno.makeTempDir();
  const hub = await fakeHub({
    "train-0.parquet": { data: bytes(5000, 7), listedSize: 4000 },
    "validation-0.parquet": { data: bytes(3000, 8), listedSha: "ab".repeat(32) },
  });
  try {
    const opts = { repo: REPO, dest: `${dir}/ts`, endpoint: hub.endpoint, progress: false };
    await assert.rejects(
      downloadTinyStories(opts),
      /train-0\.parquet": size mismatch: got \d+ bytes, expected 4000/,
    );
    const url = `${hub.endpoint}/datasets/${REPO}/resolve/main/data/validation-0.parquet`;
    await assert.rejects(
      downloadHubFile(url, { path: "v", size: 3000, sha256: "ab".repeat(32) }, `${dir}/v.parquet`),
      /v\.parquet": sha256 mismatch: got [0-9a-f]{64}, expected (ab){32}/,
    );
    const left = [...Deno.readDirSync(`${dir}/ts`)].map((e) => e.name);
    assert.deepEqual(left, [".hub_listing.json"]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["ts"]);
  } finally {
    await hub.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downloadTinyStories() offline names the files and how to use local ones", async () => {
  const dir = await Deno.makeTempDir();
  // A port that was just closed: connections are refused.
  const hub = await fakeHub({});
  const endpoint = hub.endpoint;
  await hub.close();
  try {
    await assert.rejects(
      downloadTinyStories({ dest: `${dir}/ts`, endpoint, progress: false }),
      (e: Error) => {
        assert.match(e.message, /^Cannot download the TinyStories data \(/);
        assert.match(e.message, /cyrilzhang\/TinyStories2-ascii\/data\/train-0000\{0\.\.4\}/);
        assert.match(e.message, /data\.tinystories_path=\.\.\. data\.tinystories_val_path=\.\.\./);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
