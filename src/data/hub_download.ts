/**
 * Downloads the reference's default TinyStories dataset, the Hugging Face dataset
 * `cyrilzhang/TinyStories2-ascii` (parquet files with one `text` column: train
 * `data/train-0000{0..4}-of-00005-*.parquet`, about 2.7 M stories; validation
 * `data/validation-00000-of-00001-*.parquet`, about 27.5 k), into a local folder on first use.
 *
 * How, with the Hub's public HTTP API (the calls `huggingface_hub` makes):
 *
 * - List the files: `GET {endpoint}/api/datasets/{repo}/tree/{revision}/{folder}` returns a
 *   JSON array of `{ "type": "file" | "directory", "path", "size", "oid", "lfs"?: { "oid":
 *   <sha256>, "size", "pointerSize" } }`, more pages announced by a `Link: <url>;
 *   rel="next"` header. The listing is saved beside the data (`.hub_listing.json`), so later
 *   runs need no network once every file is there.
 * - Download each file from `{endpoint}/datasets/{repo}/resolve/{revision}/{path}` into
 *   `{name}.part`, resuming with an HTTP `Range: bytes={have}-` request when a `.part` is left
 *   from an interrupted run (and retrying an interrupted transfer a few times), check its size
 *   and, when the listing gives one, its sha256, then rename it to its final name. A progress
 *   bar goes to stderr when stderr is a terminal.
 * - The endpoint is `options.endpoint`, else the `HF_ENDPOINT` environment variable (as
 *   `huggingface_hub` reads it), else `https://huggingface.co`.
 *
 * When the Hub cannot be reached the error names the missing files and how to use local ones
 * instead (`data.tinystories_path=... data.tinystories_val_path=...`).
 *
 * Requires `--allow-net` for the endpoint's host and the hosts it redirects file downloads to,
 * `--allow-read` and `--allow-write` for the destination folder, and optionally
 * `--allow-env=HF_ENDPOINT`.
 *
 * @module
 */

/** The reference's dataset. */
export const TINYSTORIES_REPO = "cyrilzhang/TinyStories2-ascii";
/** The Hub's default endpoint. */
export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";
/** Where the dataset goes by default, relative to the working directory. */
export const DEFAULT_TINYSTORIES_DIR = "data/tinystories";

const LISTING_FILE = ".hub_listing.json";
const ATTEMPTS = 3;

/** A file of a Hub repository, as the tree API lists it. */
export interface HubFile {
  /** Path in the repository, e.g. `data/train-00000-of-00005-2b7e.parquet`. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** sha256 of the contents (hex), given for LFS files. */
  sha256?: string;
}

/** Options of {@linkcode downloadTinyStories}. */
export interface HubDownloadOptions {
  /** Dataset repository (default {@linkcode TINYSTORIES_REPO}). */
  repo?: string;
  /** Branch, tag or commit (default `main`). */
  revision?: string;
  /** Folder of the repository holding the parquet files (default `data`). */
  folder?: string;
  /** Local destination folder (default {@linkcode DEFAULT_TINYSTORIES_DIR}). */
  dest?: string;
  /** Hub endpoint (default: `HF_ENDPOINT`, else {@linkcode DEFAULT_HF_ENDPOINT}). */
  endpoint?: string;
  /** Draw a progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean;
}

/** The local dataset files. */
export interface TinyStoriesFiles {
  /** Training parquet files in name order. */
  train: string[];
  /** Validation parquet files in name order. */
  validation: string[];
}

// ---------------------------------------------------------------------------------------------
// SHA-256, incremental (WebCrypto digests only whole buffers; the files are ~200 MB).

// Int32Array, not Uint32Array: values stay small integers for the JIT (no doubles above 2³¹).
const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/**
 * Incremental SHA-256.
 *
 * @example
 * ```ts
 * import { Sha256 } from "./hub_download.ts";
 * const h = new Sha256();
 * h.update(new TextEncoder().encode("ab"));
 * h.update(new TextEncoder().encode("c"));
 * console.log(h.hex()); // ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
 * ```
 */
export class Sha256 {
  #h = new Int32Array([
    0x6a09e667,
    0xbb67ae85,
    0x3c6ef372,
    0xa54ff53a,
    0x510e527f,
    0x9b05688c,
    0x1f83d9ab,
    0x5be0cd19,
  ]);
  #block = new Uint8Array(64);
  #fill = 0;
  #length = 0; // bytes hashed
  #w = new Int32Array(64);
  #done = false;

  /** Adds bytes. */
  update(bytes: Uint8Array): void {
    if (this.#done) throw new Error("Sha256: update() after hex()");
    this.#length += bytes.length;
    let i = 0;
    if (this.#fill > 0) {
      const n = Math.min(64 - this.#fill, bytes.length);
      this.#block.set(bytes.subarray(0, n), this.#fill);
      this.#fill += n;
      i = n;
      if (this.#fill < 64) return;
      this.#compress(this.#block, 0);
      this.#fill = 0;
    }
    for (; i + 64 <= bytes.length; i += 64) this.#compress(bytes, i);
    if (i < bytes.length) {
      this.#block.set(bytes.subarray(i), 0);
      this.#fill = bytes.length - i;
    }
  }

  /** The digest as lowercase hex (finishes the hash). */
  hex(): string {
    if (!this.#done) {
      const bits = this.#length * 8;
      const pad = new Uint8Array(((this.#fill < 56 ? 56 : 120) - this.#fill) + 8);
      pad[0] = 0x80;
      const view = new DataView(pad.buffer);
      view.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
      view.setUint32(pad.length - 4, bits >>> 0);
      const length = this.#length;
      this.update(pad);
      this.#length = length;
      this.#done = true;
    }
    return [...this.#h].map((x) => (x >>> 0).toString(16).padStart(8, "0")).join("");
  }

  #compress(b: Uint8Array, at: number): void {
    const w = this.#w;
    for (let t = 0; t < 16; t++) {
      const j = at + 4 * t;
      w[t] = (b[j] << 24) | (b[j + 1] << 16) | (b[j + 2] << 8) | b[j + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    const h = this.#h;
    let a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t] + w[t]) | 0; // < 2⁵³: exact before the | 0
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & bb) ^ (a & c) ^ (bb & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = bb;
      bb = a;
      a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + bb) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0;
    h[5] = (h[5] + f) | 0;
    h[6] = (h[6] + g) | 0;
    h[7] = (h[7] + hh) | 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Listing

/**
 * The Hub endpoint to use: the option, else `HF_ENDPOINT`, else the default; no trailing `/`.
 *
 * @example
 * ```ts
 * import { hubEndpoint } from "./hub_download.ts";
 * console.log(hubEndpoint("http://127.0.0.1:8080/")); // http://127.0.0.1:8080
 * ```
 */
export function hubEndpoint(option?: string): string {
  let env: string | undefined;
  try {
    env = Deno.env.get("HF_ENDPOINT");
  } catch {
    env = undefined; // no env permission: as if unset
  }
  return (option ?? (env || DEFAULT_HF_ENDPOINT)).replace(/\/+$/, "");
}

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

function nextLink(header: string | null): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(",")) {
    const m = /<([^>]*)>\s*;\s*rel="?next"?/.exec(part);
    if (m) return m[1];
  }
  return undefined;
}

/** A network-level failure (no answer), as opposed to an HTTP error status. */
class Unreachable extends Error {}

async function get(url: string, headers: Record<string, string> = {}): Promise<Response> {
  try {
    return await fetch(url, { headers, redirect: "follow" });
  } catch (e) {
    throw new Unreachable(`cannot reach ${url} (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Lists the files under a folder of a Hub dataset (all pages).
 *
 * @param repo Dataset repository, `owner/name`.
 * @param folder Folder in the repository (`""` for the root).
 * @param options `endpoint`, `revision` (default `main`).
 * @returns The files (folders left out), in the order the Hub lists them.
 * @throws On an HTTP error or an unexpected response, one line naming the URL.
 *
 * @example
 * ```ts ignore
 * import { listHubFiles } from "./hub_download.ts";
 * const files = await listHubFiles("cyrilzhang/TinyStories2-ascii", "data");
 * console.log(files[0]); // { path: "data/train-00000-of-00005-….parquet", size: …, sha256: "…" }
 * ```
 */
export async function listHubFiles(
  repo: string,
  folder: string,
  options: { endpoint?: string; revision?: string } = {},
): Promise<HubFile[]> {
  const endpoint = hubEndpoint(options.endpoint);
  const revision = encodeURIComponent(options.revision ?? "main");
  let url: string | undefined = `${endpoint}/api/datasets/${repo}/tree/${revision}` +
    (folder ? `/${encodePath(folder)}` : "");
  const out: HubFile[] = [];
  while (url) {
    const res = await get(url);
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`Cannot list ${repo} at ${url}: HTTP ${res.status} ${res.statusText}`);
    }
    let items: unknown;
    try {
      items = await res.json();
    } catch {
      throw new Error(`Cannot list ${repo} at ${url}: the answer is not JSON`);
    }
    if (!Array.isArray(items)) throw new Error(`Cannot list ${repo} at ${url}: not a JSON array`);
    for (const item of items as Record<string, unknown>[]) {
      if (item?.type !== "file") continue;
      const { path, size } = item;
      if (typeof path !== "string" || !(typeof size === "number" && size >= 0)) {
        throw new Error(`Cannot list ${repo} at ${url}: a file entry lacks path or size`);
      }
      const lfs = item.lfs as Record<string, unknown> | undefined;
      const sha = typeof lfs?.oid === "string" && /^[0-9a-f]{64}$/.test(lfs.oid)
        ? lfs.oid
        : undefined;
      out.push(sha ? { path, size, sha256: sha } : { path, size });
    }
    const next = nextLink(res.headers.get("link"));
    url = next ? new URL(next, url).href : undefined;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Downloading

function formatMB(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** A one-line progress bar on stderr, redrawn at most every 200 ms. */
class ProgressBar {
  #last = 0;
  #start = performance.now();
  readonly #enc = new TextEncoder();
  constructor(readonly label: string, readonly total: number, readonly from: number) {}

  update(done: number, force = false): void {
    const now = performance.now();
    if (!force && now - this.#last < 200) return;
    this.#last = now;
    const frac = this.total > 0 ? done / this.total : 1;
    const width = 30;
    const full = Math.round(frac * width);
    const secs = Math.max((now - this.#start) / 1000, 1e-3);
    const rate = (done - this.from) / secs;
    const line = `\r${this.label} [${"#".repeat(full)}${".".repeat(width - full)}] ${
      (frac * 100).toFixed(0).padStart(3)
    }% ${formatMB(done)}/${formatMB(this.total)} MB ${formatMB(rate)} MB/s`;
    Deno.stderr.writeSync(this.#enc.encode(line));
  }

  end(done: number): void {
    this.update(done, true);
    Deno.stderr.writeSync(this.#enc.encode("\n"));
  }
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function hashFile(path: string): Promise<string> {
  const h = new Sha256();
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return h.hex();
}

/**
 * Downloads one file to `dest`: into `dest.part` (resuming from what it holds with an HTTP
 * Range request), checked for size and sha256, then renamed to `dest`. An interrupted
 * transfer is retried from where it stopped, up to 3 attempts in all; whatever arrived stays
 * in `dest.part` for the next run.
 *
 * @param url The file's URL.
 * @param file Its expected size (and sha256).
 * @param dest Local path.
 * @param options `progress`: draw a progress bar on stderr.
 * @throws One line naming the file: HTTP errors, a size or checksum mismatch (the `.part` is
 *   then removed), or the network failing (what arrived stays in the `.part`).
 *
 * @example
 * ```ts ignore
 * import { downloadHubFile } from "./hub_download.ts";
 * const url = "https://huggingface.co/datasets/cyrilzhang/TinyStories2-ascii/resolve/main/" +
 *   "data/validation-00000-of-00001-….parquet";
 * await downloadHubFile(url, { path: "data/validation-….parquet", size: 9_000_000 }, "val.parquet");
 * ```
 */
export async function downloadHubFile(
  url: string,
  file: HubFile,
  dest: string,
  options: { progress?: boolean } = {},
): Promise<void> {
  const part = `${dest}.part`;
  const name = dest.split("/").pop()!;
  const fail = async (why: string): Promise<never> => {
    await Deno.remove(part).catch(() => {});
    throw new Error(`Cannot download ${url} to "${dest}": ${why}`);
  };
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    let have = (await fileSize(part)) ?? 0;
    if (have > file.size) {
      await Deno.remove(part);
      have = 0;
    }
    if (have < file.size) {
      const res = await get(url, have > 0 ? { range: `bytes=${have}-` } : {});
      if (res.status === 416 || !(res.ok)) {
        await res.body?.cancel();
        if (res.status === 416) return fail(`the server refused to resume at byte ${have}`);
        throw new Error(`Cannot download ${url}: HTTP ${res.status} ${res.statusText}`);
      }
      if (have > 0 && res.status !== 206) have = 0; // the server sent the whole file
      const out = await Deno.open(part, { write: true, create: true });
      const bar = options.progress ? new ProgressBar(name, file.size, have) : undefined;
      let done = have;
      try {
        await out.truncate(have);
        await out.seek(have, Deno.SeekMode.Start);
        if (!res.body) throw new Error("empty response body");
        for await (const chunk of res.body) {
          let w = 0;
          while (w < chunk.length) w += await out.write(chunk.subarray(w));
          done += chunk.length;
          if (done > file.size) break;
          bar?.update(done);
        }
        await out.sync();
      } catch (e) {
        lastError = e as Error;
        bar?.end(done);
        continue; // interrupted: resume from what reached the disk
      } finally {
        out.close();
      }
      bar?.end(done);
    }
    const size = (await fileSize(part)) ?? 0;
    if (size !== file.size) return fail(`size mismatch: got ${size} bytes, expected ${file.size}`);
    if (file.sha256) {
      const sha = await hashFile(part);
      if (sha !== file.sha256) return fail(`sha256 mismatch: got ${sha}, expected ${file.sha256}`);
    }
    await Deno.rename(part, dest);
    return;
  }
  const have = (await fileSize(part)) ?? 0;
  throw new Unreachable(
    `${url}: interrupted after ${have} of ${file.size} bytes (${lastError?.message}); ` +
      `run again to resume`,
  );
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2) + "\n");
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write "${path}": ${(e as Error).message}`, { cause: e });
  }
}

async function readListing(path: string): Promise<HubFile[] | undefined> {
  try {
    const v = JSON.parse(await Deno.readTextFile(path));
    if (!Array.isArray(v?.files)) return undefined;
    return v.files as HubFile[];
  } catch {
    return undefined;
  }
}

function baseName(path: string): string {
  return path.split("/").pop()!;
}

function splitFiles(dir: string, files: HubFile[]): TinyStoriesFiles {
  const names = files.map((f) => baseName(f.path)).sort();
  return {
    train: names.filter((n) => n.startsWith("train")).map((n) => `${dir}/${n}`),
    validation: names.filter((n) => n.startsWith("validation")).map((n) => `${dir}/${n}`),
  };
}

/**
 * Makes sure the TinyStories parquet files are in the destination folder, downloading what is
 * missing, and returns their paths. Once every file is there (checked against the saved
 * listing by size), no network is used.
 *
 * Requires `--allow-net` for the Hub, `--allow-read`/`--allow-write` for the destination.
 *
 * @param options Repository, destination, endpoint, progress.
 * @returns The train and validation parquet files.
 * @throws One clear line: when the Hub cannot be reached it names the missing files and says
 *   how to point at local ones.
 *
 * @example
 * ```ts ignore
 * import { downloadTinyStories } from "./hub_download.ts";
 * const { train, validation } = await downloadTinyStories(); // into data/tinystories/
 * ```
 */
export async function downloadTinyStories(
  options: HubDownloadOptions = {},
): Promise<TinyStoriesFiles> {
  const repo = options.repo ?? TINYSTORIES_REPO;
  const revision = options.revision ?? "main";
  const folder = options.folder ?? "data";
  const dir = (options.dest ?? DEFAULT_TINYSTORIES_DIR).replace(/\/+$/, "");
  const endpoint = hubEndpoint(options.endpoint);
  const progress = options.progress ?? Deno.stderr.isTerminal();
  const listingPath = `${dir}/${LISTING_FILE}`;

  const offline = (what: string, cause: Error): Error =>
    new Error(
      `Cannot download the TinyStories data (${what}): ${cause.message}. Point at local ` +
        `copies instead (a .parquet file, a folder of them, or a TinyStoriesV2 .txt): ` +
        `data.tinystories_path=... data.tinystories_val_path=...`,
      { cause },
    );

  let files = await readListing(listingPath);
  if (!files) {
    try {
      files = (await listHubFiles(repo, folder, { endpoint, revision }))
        .filter((f) => f.path.endsWith(".parquet"));
    } catch (e) {
      if (e instanceof Unreachable) {
        throw offline(
          `${repo}/${folder}/train-0000{0..4}-of-00005-*.parquet and ` +
            `validation-00000-of-00001-*.parquet`,
          e,
        );
      }
      throw e;
    }
    const { train, validation } = splitFiles(dir, files);
    if (train.length === 0 || validation.length === 0) {
      throw new Error(
        `Cannot use ${repo}: ${endpoint} lists no train-*.parquet or validation-*.parquet ` +
          `files under ${folder}/`,
      );
    }
    await Deno.mkdir(dir, { recursive: true });
    await writeJsonAtomic(listingPath, { repo, revision, folder, files });
  }

  const missing: HubFile[] = [];
  for (const f of files) {
    if ((await fileSize(`${dir}/${baseName(f.path)}`)) !== f.size) missing.push(f);
  }
  for (let i = 0; i < missing.length; i++) {
    const f = missing[i];
    const url = `${endpoint}/datasets/${repo}/resolve/${encodeURIComponent(revision)}/${
      encodePath(f.path)
    }`;
    try {
      await downloadHubFile(url, f, `${dir}/${baseName(f.path)}`, { progress });
    } catch (e) {
      if (e instanceof Unreachable) {
        throw offline(missing.slice(i).map((m) => `${dir}/${baseName(m.path)}`).join(", "), e);
      }
      throw e;
    }
  }
  return splitFiles(dir, files);
}
