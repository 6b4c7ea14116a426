/**
 * PyTorch `.pt` files (`torch.save`, the zip format of torch ≥ 1.6) read and written from
 * bytes, without running pickle code and without `Deno.*`, so the browser can use it too.
 *
 * Layout of such a file: a zip archive of stored entries under one folder `<name>/`:
 * `data.pkl` (the pickled object), `data/<key>` (the raw bytes of each storage, little-endian),
 * `version`, and in newer torch `byteorder`. Tensors in the pickle are calls of
 * `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` whose storage is a
 * persistent id `("storage", torch.FloatStorage, key, location, numel)`.
 *
 * The reader's allow-list is what state dicts need: `collections.OrderedDict`,
 * `torch._utils._rebuild_tensor_v2` (and the older `_rebuild_tensor`),
 * `torch._utils._rebuild_parameter` (and `_rebuild_parameter_with_state`), and the typed
 * storages `torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage`. Any
 * other global is refused with one line naming it. Tensors come back contiguous
 * ({@linkcode TorchTensor}, the same shape as a safetensors tensor): views with strides and
 * offsets are gathered; a view reaching outside its storage, a storage whose entry has a
 * different size than it claims, or overlapping views (`expand`) are refused.
 *
 * The writer stores each tensor in its own storage, contiguous, under `archive/` as torch 2
 * does, and writes `byteorder` and `version` records; `torch.load` (weights-only or not)
 * reads the result.
 *
 * @module
 */

import { type Fail, readZip, zipStored } from "./zip.ts";
import {
  describePy,
  pickle,
  PyGlobal,
  PyOrderedDict,
  PyPersistent,
  PyReduce,
  PyTuple,
  type PyValue,
  unpickle,
} from "./pickle.ts";
import { type SafeTensor, SAFETENSORS_DTYPE_BYTES, type SafetensorsDtype } from "./safetensors.ts";

/**
 * A tensor read from (or to write to) a `.pt` file: contiguous, row-major, little-endian —
 * the same fields as a safetensors tensor, so `toFloat32` and `loadSafetensors` take it.
 *
 * @example
 * ```ts
 * import { TorchTensor } from "./torch_pt.ts";
 * import { toFloat32 } from "./safetensors.ts";
 * const t = new TorchTensor("F32", [2], new Uint8Array(new Float32Array([0.5, 2]).buffer));
 * console.log(toFloat32(t)); // Float32Array(2) [ 0.5, 2 ]
 * ```
 */
export class TorchTensor implements SafeTensor {
  constructor(
    readonly dtype: SafetensorsDtype,
    readonly shape: number[],
    readonly data: Uint8Array,
  ) {}
}

/** The typed storage classes torch pickles, by dtype. */
const STORAGES: Partial<Record<SafetensorsDtype, string>> = {
  F32: "FloatStorage",
  F16: "HalfStorage",
  BF16: "BFloat16Storage",
  F64: "DoubleStorage",
  I64: "LongStorage",
  I32: "IntStorage",
  I16: "ShortStorage",
  I8: "CharStorage",
  U8: "ByteStorage",
  BOOL: "BoolStorage",
};
const STORAGE_DTYPE = new Map(
  Object.entries(STORAGES).map(([d, s]) => [s, d as SafetensorsDtype]),
);

/** Most dimensions of a tensor read. */
const MAX_DIMS = 64;

/** A storage type global (`torch.FloatStorage`) with its dtype. */
class StorageType extends PyGlobal {
  constructor(readonly dtype: SafetensorsDtype) {
    super("torch", STORAGES[dtype]!);
  }
}

/** A storage: its dtype, element count and bytes. */
class Storage {
  constructor(
    readonly key: string,
    readonly dtype: SafetensorsDtype,
    readonly numel: number,
    readonly bytes: Uint8Array,
  ) {}
}

/** The legacy (torch < 1.6) format starts with a pickled magic number: PROTO 2, LONG1 10. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a];
const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/**
 * Whether `bytes` look like a `torch.save` file (a zip archive, or the legacy format that
 * {@linkcode parseTorchCheckpoint} refuses with a clear line).
 *
 * @example
 * ```ts
 * import { isTorchCheckpoint } from "./torch_pt.ts";
 * console.log(isTorchCheckpoint(new Uint8Array([0x50, 0x4b, 3, 4, 0]))); // true
 * ```
 */
export function isTorchCheckpoint(bytes: Uint8Array): boolean {
  return startsWith(bytes, ZIP_MAGIC) || startsWith(bytes, LEGACY_MAGIC);
}

function toInt(v: PyValue, what: string, fail: Fail): bigint {
  if (typeof v !== "bigint") fail(`${what} is ${describePy(v)}, expected an int`);
  return v as bigint;
}

function intTuple(v: PyValue, what: string, fail: Fail): bigint[] {
  if (!(v instanceof PyTuple) && !Array.isArray(v)) {
    fail(`${what} is ${describePy(v)}, expected a tuple of ints`);
  }
  const items = v instanceof PyTuple ? v.items : v as PyValue[];
  if (items.length > MAX_DIMS) fail(`${what} has ${items.length} dimensions (at most ${MAX_DIMS})`);
  return items.map((x, i) => toInt(x, `${what}[${i}]`, fail));
}

/**
 * A contiguous copy of the view (offset, size, stride) of a storage, with the checks that
 * keep a hostile file from reading outside the storage or allocating more than it holds.
 */
function gather(
  storage: Storage,
  offsetV: PyValue,
  sizeV: PyValue,
  strideV: PyValue,
  fail: Fail,
): TorchTensor {
  const what = `tensor in storage "${storage.key}"`;
  const offset = toInt(offsetV, `${what}: storage offset`, fail);
  const size = intTuple(sizeV, `${what}: size`, fail);
  const stride = intTuple(strideV, `${what}: stride`, fail);
  if (size.length !== stride.length) {
    fail(`${what} has ${size.length} sizes but ${stride.length} strides`);
  }
  if (offset < 0n) fail(`${what} has storage offset ${offset}`);
  let numel = 1n;
  let last = offset; // the highest element the view touches
  for (let i = 0; i < size.length; i++) {
    if (size[i] < 0n || stride[i] < 0n) {
      fail(`${what} has size ${size[i]} and stride ${stride[i]} in dimension ${i}`);
    }
    numel *= size[i];
    if (size[i] > 0n) last += (size[i] - 1n) * stride[i];
  }
  const shape = size.map(Number);
  const es = SAFETENSORS_DTYPE_BYTES[storage.dtype];
  if (numel === 0n) return new TorchTensor(storage.dtype, shape, new Uint8Array(0));
  if (last >= BigInt(storage.numel)) {
    fail(
      `${what}: the view (offset ${offset}, size [${size.join(", ")}], stride ` +
        `[${stride.join(", ")}]) reaches element ${last} of a storage of ${storage.numel} ` +
        `elements (a size that lies)`,
    );
  }
  if (numel > BigInt(storage.numel)) {
    fail(
      `${what} has ${numel} elements, more than its storage's ${storage.numel}: overlapping ` +
        `views (expand) are not read`,
    );
  }
  const n = Number(numel);
  const off = Number(offset);
  const st = stride.map(Number);
  const out = new Uint8Array(n * es);
  // Row-major strides: one copy.
  let contiguous = true;
  for (let i = shape.length - 1, s = 1; i >= 0; s *= shape[i], i--) {
    if (shape[i] !== 1 && st[i] !== s) contiguous = false;
  }
  if (contiguous) {
    out.set(storage.bytes.subarray(off * es, (off + n) * es));
    return new TorchTensor(storage.dtype, shape, out);
  }
  // General view: walk the index in row-major order, copying runs along the last dimension.
  const d = shape.length;
  const idx = new Array<number>(d).fill(0);
  const inner = shape[d - 1];
  const innerStride = st[d - 1];
  let base = off;
  for (let o = 0; o < n; o += inner) {
    if (innerStride === 1) {
      out.set(storage.bytes.subarray(base * es, (base + inner) * es), o * es);
    } else {
      for (let j = 0; j < inner; j++) {
        const src = (base + j * innerStride) * es;
        out.set(storage.bytes.subarray(src, src + es), (o + j) * es);
      }
    }
    for (let k = d - 2; k >= 0; k--) {
      idx[k]++;
      base += st[k];
      if (idx[k] < shape[k]) break;
      base -= idx[k] * st[k];
      idx[k] = 0;
    }
  }
  return new TorchTensor(storage.dtype, shape, out);
}

/**
 * Parses a `.pt` file written by `torch.save`: the unpickled object, with tensors as
 * {@linkcode TorchTensor}s, dicts as `Map`s (see `pickle.ts` for the value mapping).
 *
 * @param bytes The whole file.
 * @param source What to call the file in errors (usually its path).
 * @returns The object `torch.load` would return, in TypeScript values.
 * @throws One line `Cannot read checkpoint "<source>": …` on a malformed or hostile file.
 *
 * @example
 * ```ts
 * import { parseTorchCheckpoint, serializeTorchCheckpoint, TorchTensor } from "./torch_pt.ts";
 * import { PyDict } from "./pickle.ts";
 * import { concatBytes } from "./zip.ts";
 * const w = new TorchTensor("F32", [2], new Uint8Array(new Float32Array([1, 2]).buffer));
 * const bytes = concatBytes(serializeTorchCheckpoint(new PyDict([["w", w], ["step", 3n]])));
 * const back = parseTorchCheckpoint(bytes, "x.pt") as PyDict;
 * console.log(back.get("step"), (back.get("w") as TorchTensor).shape); // 3n [ 2 ]
 * ```
 */
export function parseTorchCheckpoint(bytes: Uint8Array, source = "<bytes>"): PyValue {
  const fail: Fail = (why) => {
    // names and keys come from the file: one line, and short
    const line = why.replace(/[\r\n\u2028\u2029]/g, " ");
    throw new Error(
      `Cannot read checkpoint "${source}": ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`,
    );
  };
  if (startsWith(bytes, LEGACY_MAGIC)) {
    fail(
      "it is in torch's legacy format (written by torch < 1.6 or with " +
        "_use_new_zipfile_serialization=False), which is not read: load it in Python and " +
        "torch.save it again",
    );
  }
  if (!startsWith(bytes, ZIP_MAGIC)) {
    fail("it is not a torch.save file (no zip signature)");
  }
  const entries = readZip(bytes, fail);
  const pkl = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl.length !== 1) {
    const script = [...entries.keys()].some((n) => /^[^/]+\/(constants\.pkl|code\/)/.test(n));
    fail(
      script
        ? "it is a TorchScript archive (torch.jit.save), not a torch.save checkpoint"
        : pkl.length === 0
        ? "the archive has no <name>/data.pkl (not a torch.save checkpoint)"
        : `the archive has ${pkl.length} data.pkl records`,
    );
  }
  const prefix = pkl[0].slice(0, -"data.pkl".length);
  const order = entries.get(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(order).trim() !== "little") {
    fail(`it was written on a big-endian machine (byteorder "${new TextDecoder().decode(order)}")`);
  }
  const storages = new Map<string, Storage>();
  const loadStorage = (pid: PyValue): Storage => {
    const items = pid instanceof PyTuple ? pid.items : [];
    const [tag, type, key, , numelV] = items;
    if (items.length !== 5 || tag !== "storage" || !(type instanceof StorageType)) {
      fail(`a persistent id is ${describePy(pid)}, not a ("storage", type, key, location, numel)`);
    }
    if (typeof key !== "string") fail(`a storage key is ${describePy(key)}, expected a str`);
    const k = key as string;
    const dtype = (type as StorageType).dtype;
    const known = storages.get(k);
    if (known) {
      if (known.dtype !== dtype) fail(`storage "${k}" is read as ${known.dtype} and as ${dtype}`);
      return known;
    }
    const numel = toInt(numelV, `storage "${k}": element count`, fail);
    const data = entries.get(`${prefix}data/${k}`);
    if (!data) fail(`storage "${k}" has no record ${prefix}data/${k} (truncated archive?)`);
    const want = numel * BigInt(SAFETENSORS_DTYPE_BYTES[dtype]);
    if (BigInt(data!.length) !== want) {
      fail(
        `storage "${k}" claims ${numel} ${dtype} elements (${want} bytes) but its record ` +
          `holds ${data!.length} bytes (a size that lies)`,
      );
    }
    const s = new Storage(k, dtype, Number(numel), data!);
    storages.set(k, s);
    return s;
  };
  const asStorage = (v: PyValue): Storage => {
    if (!(v instanceof Storage)) fail(`a tensor's storage is ${describePy(v)}`);
    return v as Storage;
  };
  const asTensor = (v: PyValue, what: string): TorchTensor => {
    if (!(v instanceof TorchTensor)) fail(`${what} is ${describePy(v)}, not a tensor`);
    return v as TorchTensor;
  };
  const rebuildV2 = new PyGlobal("torch._utils", "_rebuild_tensor_v2", (a) => {
    if (a.length < 6 || a.length > 7) {
      fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${a.length}`);
    }
    return gather(asStorage(a[0]), a[1], a[2], a[3], fail);
  });
  const rebuild = new PyGlobal("torch._utils", "_rebuild_tensor", (a) => {
    if (a.length !== 4) fail(`_rebuild_tensor takes 4 arguments, got ${a.length}`);
    return gather(asStorage(a[0]), a[1], a[2], a[3], fail);
  });
  const parameter = new PyGlobal("torch._utils", "_rebuild_parameter", (a) => {
    if (a.length !== 3) fail(`_rebuild_parameter takes 3 arguments, got ${a.length}`);
    return asTensor(a[0], "a parameter's data");
  });
  const parameterWithState = new PyGlobal(
    "torch._utils",
    "_rebuild_parameter_with_state",
    (a) => {
      if (a.length !== 4) fail(`_rebuild_parameter_with_state takes 4 arguments, got ${a.length}`);
      return asTensor(a[0], "a parameter's data");
    },
  );
  const orderedDict = new PyGlobal("collections", "OrderedDict", (a) => {
    if (a.length !== 0) fail("OrderedDict is called with arguments");
    return new PyOrderedDict();
  });
  const allowed = new Map<string, PyGlobal>(
    [rebuildV2, rebuild, parameter, parameterWithState, orderedDict].map((g) => [
      g.qualifiedName,
      g,
    ]),
  );
  for (const dtype of STORAGE_DTYPE.values()) {
    const t = new StorageType(dtype);
    allowed.set(t.qualifiedName, t);
  }
  return unpickle(entries.get(pkl[0])!, {
    findGlobal: (module, name) => allowed.get(`${module}.${name}`),
    persistentLoad: loadStorage,
  }, (why) => fail(`${pkl[0]}: ${why}`));
}

/**
 * A `.pt` file of `value` as `torch.save` would write it: chunks of a zip archive under
 * `archive/` (the pickle, one storage per {@linkcode TorchTensor}, `byteorder`, `version`).
 * Module state dicts should be {@linkcode PyOrderedDict}s, ints `bigint`s, floats `number`s.
 *
 * @param value The object to save.
 * @returns The file's chunks, in order (write them, or join them).
 * @throws When `value` holds something that is not a pickle value or a tensor.
 *
 * @example
 * ```ts
 * import { serializeTorchCheckpoint, TorchTensor } from "./torch_pt.ts";
 * import { PyOrderedDict } from "./pickle.ts";
 * import { concatBytes } from "./zip.ts";
 * const sd = new PyOrderedDict([["w", new TorchTensor("F32", [1], new Uint8Array(4))]]);
 * const bytes = concatBytes(serializeTorchCheckpoint(sd));
 * console.log(bytes[0] === 0x50 && bytes[1] === 0x4b); // true: a zip archive
 * ```
 */
export function serializeTorchCheckpoint(value: PyValue): Uint8Array[] {
  const storages: { key: string; data: Uint8Array }[] = [];
  const rebuild = new PyGlobal("torch._utils", "_rebuild_tensor_v2");
  const types = new Map<SafetensorsDtype, PyGlobal>();
  const reduce = (v: object): PyReduce | undefined => {
    if (!(v instanceof TorchTensor)) return undefined;
    const name = STORAGES[v.dtype];
    if (!name) throw new Error(`Cannot write a ${v.dtype} tensor to a .pt file`);
    const numel = v.shape.reduce((a, b) => a * b, 1);
    if (v.data.length !== numel * SAFETENSORS_DTYPE_BYTES[v.dtype]) {
      throw new Error(`Cannot write a ${v.dtype} [${v.shape}] tensor of ${v.data.length} bytes`);
    }
    const key = String(storages.length);
    storages.push({ key, data: v.data });
    let type = types.get(v.dtype);
    if (!type) types.set(v.dtype, type = new PyGlobal("torch", name));
    const stride: bigint[] = [];
    for (let i = v.shape.length - 1, s = 1; i >= 0; s *= v.shape[i], i--) stride[i] = BigInt(s);
    const storage = new PyPersistent(
      new PyTuple(["storage", type, key, "cpu", BigInt(numel)]),
    );
    return new PyReduce(rebuild, [
      storage,
      0n,
      new PyTuple(v.shape.map(BigInt)),
      new PyTuple(stride),
      false,
      new PyOrderedDict(),
    ]);
  };
  const data = pickle(value, { reduce });
  const text = new TextEncoder();
  return zipStored([
    { name: "archive/data.pkl", data },
    { name: "archive/byteorder", data: text.encode("little") },
    ...storages.map((s) => ({ name: `archive/data/${s.key}`, data: s.data })),
    { name: "archive/version", data: text.encode("3\n") },
  ]);
}
