/**
 * A Python pickle reader that runs no code, and a writer, for the data of state dicts: the
 * opcodes of protocols 2 to 5 that `None`, booleans, ints, floats, strings, lists, tuples and
 * dicts need, plus `GLOBAL`, `REDUCE`, `BUILD` and `BINPERSID` — where every global is looked
 * up in the caller's allow-list and every call is a TypeScript function of that list. A
 * pickle naming anything else (`os.system`, `builtins.eval`, …) is refused with one line
 * naming it, before anything is called.
 *
 * Python values map to: `None` → `null`, `bool` → `boolean`, `int` → `bigint` (so ints and
 * floats stay distinct), `float` → `number`, `str` → `string`, `list` → `PyValue[]`, `tuple`
 * → {@linkcode PyTuple}, `dict` → `Map` ({@linkcode PyDict}; `collections.OrderedDict` →
 * {@linkcode PyOrderedDict}). Objects made by the allow-list are opaque to this module.
 *
 * Bounds, so a hostile pickle cannot exhaust memory or the stack: memo indices below the
 * pickle's length, containers nested at most {@linkcode MAX_PICKLE_DEPTH} deep, string
 * lengths within the bytes that remain, ints of at most 16 bytes. The reader is a loop over
 * the bytes, never recursive.
 *
 * @module
 */

/** How deep containers may nest (a state dict needs about 6). */
export const MAX_PICKLE_DEPTH = 32;

/** A Python tuple. */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A Python dict: insertion-ordered, keys `str`, `int`, `float`, `bool` or `None`. */
export class PyDict extends Map<PyKey, PyValue> {}

/** A `collections.OrderedDict` (what `nn.Module.state_dict()` returns). */
export class PyOrderedDict extends PyDict {}

/** A global (`module.name`) of the allow-list, and what calling it does. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    /** What `REDUCE` with this callable returns; absent: it cannot be called. */
    readonly call?: (args: PyValue[]) => PyValue,
  ) {}
  /** `module.name`. */
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** Writer input: `callable(*args)` as `REDUCE` (the reader's allow-list rebuilds it). */
export class PyReduce {
  constructor(readonly callable: PyGlobal, readonly args: PyValue[]) {}
}

/** Writer input: a persistent id (`BINPERSID`), e.g. the storage record of a tensor. */
export class PyPersistent {
  constructor(readonly pid: PyValue) {}
}

/** A dict key. */
export type PyKey = string | bigint | number | boolean | null;

/** A value read from, or written to, a pickle. `object` covers the allow-list's results. */
export type PyValue =
  | null
  | boolean
  | bigint
  | number
  | string
  | PyValue[]
  | PyTuple
  | PyDict
  | PyGlobal
  | PyReduce
  | PyPersistent
  | object;

/** What the reader may use: the allow-list and the persistent-id loader. */
export interface UnpickleOptions {
  /** The global `module.name`, or undefined to refuse the pickle. */
  findGlobal(module: string, name: string): PyGlobal | undefined;
  /** The object of a persistent id (`BINPERSID`); throws to refuse it. */
  persistentLoad?(pid: PyValue): PyValue;
}

const MARK = Symbol("mark");
type Slot = PyValue | typeof MARK;

/** Opcode names, for messages. */
const NAMES: Record<number, string> = {
  0x28: "MARK",
  0x2e: "STOP",
  0x30: "POP",
  0x31: "POP_MARK",
  0x32: "DUP",
  0x46: "FLOAT",
  0x49: "INT",
  0x4a: "BININT",
  0x4b: "BININT1",
  0x4c: "LONG",
  0x4d: "BININT2",
  0x4e: "NONE",
  0x50: "PERSID",
  0x51: "BINPERSID",
  0x52: "REDUCE",
  0x53: "STRING",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x56: "UNICODE",
  0x58: "BINUNICODE",
  0x61: "APPEND",
  0x62: "BUILD",
  0x63: "GLOBAL",
  0x64: "DICT",
  0x7d: "EMPTY_DICT",
  0x65: "APPENDS",
  0x67: "GET",
  0x68: "BINGET",
  0x69: "INST",
  0x6a: "LONG_BINGET",
  0x6c: "LIST",
  0x5d: "EMPTY_LIST",
  0x6f: "OBJ",
  0x70: "PUT",
  0x71: "BINPUT",
  0x72: "LONG_BINPUT",
  0x73: "SETITEM",
  0x74: "TUPLE",
  0x29: "EMPTY_TUPLE",
  0x75: "SETITEMS",
  0x47: "BINFLOAT",
  0x80: "PROTO",
  0x81: "NEWOBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x85: "TUPLE1",
  0x86: "TUPLE2",
  0x87: "TUPLE3",
  0x88: "NEWTRUE",
  0x89: "NEWFALSE",
  0x8a: "LONG1",
  0x8b: "LONG4",
  0x42: "BINBYTES",
  0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE",
  0x8d: "BINUNICODE8",
  0x8e: "BINBYTES8",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL",
  0x94: "MEMOIZE",
  0x95: "FRAME",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

/** A short description of a value for messages (never recursive). */
export function describePy(v: unknown): string {
  if (v === null) return "None";
  if (typeof v === "bigint") return `int ${v}`;
  if (typeof v === "number") return `float ${v}`;
  if (typeof v === "string") {
    return `str ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  }
  if (typeof v === "boolean") return v ? "True" : "False";
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof PyTuple) return `a tuple of ${v.items.length}`;
  if (v instanceof PyDict) return `a dict of ${v.size}`;
  if (v instanceof PyGlobal) return v.qualifiedName;
  return "an object";
}

/**
 * Reads a pickle without running code: only the allow-list of `options.findGlobal` is called.
 *
 * @param bytes The pickle.
 * @param options The allow-list and the persistent-id loader.
 * @param fail Raises the caller's one-line error (it names the file).
 * @returns The unpickled value.
 *
 * @example
 * ```ts
 * import { PyDict, unpickle } from "./pickle.ts";
 * // pickle.dumps({"a": [1, 2.5]}, protocol=2)
 * const bytes = new Uint8Array([
 *   0x80, 2, 0x7d, 0x71, 0, 0x58, 1, 0, 0, 0, 0x61, 0x71, 1, 0x5d, 0x71, 2, 0x28, 0x4b, 1,
 *   0x47, 0x40, 4, 0, 0, 0, 0, 0, 0, 0x65, 0x73, 0x2e,
 * ]);
 * const v = unpickle(bytes, { findGlobal: () => undefined }, (why) => { throw new Error(why); });
 * console.log((v as PyDict).get("a")); // [ 1n, 2.5 ]
 * ```
 */
export function unpickle(
  bytes: Uint8Array,
  options: UnpickleOptions,
  fail: (why: string) => never,
): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder("utf-8");
  const latin1 = new TextDecoder("latin1");
  const stack: Slot[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  const depth = new WeakMap<object, number>();
  let at = 0;
  let op = 0;
  let opAt = 0;

  const where = () => `pickle byte ${opAt}`;
  const need = (n: number, what: string) => {
    if (n < 0 || at + n > bytes.length) {
      fail(`${where()}: ${what} of ${n} bytes runs past the end of the pickle (truncated?)`);
    }
  };
  const u8 = () => {
    need(1, NAMES[op] ?? "argument");
    return bytes[at++];
  };
  const u16 = () => {
    need(2, NAMES[op]);
    const v = view.getUint16(at, true);
    at += 2;
    return v;
  };
  const u32 = () => {
    need(4, NAMES[op]);
    const v = view.getUint32(at, true);
    at += 4;
    return v;
  };
  const u64 = () => {
    need(8, NAMES[op]);
    const v = view.getBigUint64(at, true);
    at += 8;
    if (v > BigInt(bytes.length)) {
      fail(`${where()}: ${NAMES[op]} length ${v} is larger than the pickle`);
    }
    return Number(v);
  };
  const take = (n: number) => {
    need(n, NAMES[op]);
    const s = bytes.subarray(at, at + n);
    at += n;
    return s;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) fail(`${where()}: ${NAMES[op]} argument has no end of line (truncated?)`);
    const s = latin1.decode(bytes.subarray(at, end));
    at = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    const base = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= base) fail(`${where()}: ${NAMES[op]} on an empty stack`);
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    const base = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= base) fail(`${where()}: ${NAMES[op]} on an empty stack`);
    return stack[stack.length - 1] as PyValue;
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) fail(`${where()}: ${NAMES[op]} without a MARK`);
    return stack.splice(m!) as PyValue[];
  };
  const depthOf = (v: PyValue): number =>
    typeof v === "object" && v !== null ? depth.get(v) ?? 0 : 0;
  /** Records that `child` now sits inside `parent`, refusing nesting beyond the limit. */
  const nest = (parent: object, children: Iterable<PyValue>) => {
    let d = depth.get(parent) ?? 0;
    for (const c of children) d = Math.max(d, depthOf(c) + 1);
    if (d > MAX_PICKLE_DEPTH) {
      fail(`${where()}: containers nest deeper than ${MAX_PICKLE_DEPTH} levels`);
    }
    depth.set(parent, d);
  };
  const tuple = (items: PyValue[]) => {
    const t = new PyTuple(items);
    nest(t, items);
    return t;
  };
  const memoIndex = (i: number) => {
    if (i >= bytes.length) {
      fail(`${where()}: memo index ${i} is out of range for a ${bytes.length}-byte pickle`);
    }
    return i;
  };
  const get = (i: number) => {
    if (!memo.has(i)) fail(`${where()}: memo index ${i} was never stored`);
    stack.push(memo.get(i)!);
  };
  const key = (k: PyValue): PyKey => {
    if (
      typeof k === "string" || typeof k === "bigint" || typeof k === "number" ||
      typeof k === "boolean" || k === null
    ) {
      return k;
    }
    return fail(
      `${where()}: a dict key is ${describePy(k)}; only str, int and float keys are read`,
    );
  };
  const setItems = (d: PyValue, items: PyValue[]) => {
    if (!(d instanceof PyDict)) fail(`${where()}: ${NAMES[op]} on ${describePy(d)}, not a dict`);
    if (items.length % 2) fail(`${where()}: ${NAMES[op]} with an odd number of items`);
    const dict = d as PyDict;
    const values: PyValue[] = [];
    for (let i = 0; i < items.length; i += 2) {
      dict.set(key(items[i]), items[i + 1]);
      values.push(items[i + 1]);
    }
    nest(dict, values);
  };
  const append = (l: PyValue, items: PyValue[]) => {
    if (!Array.isArray(l)) fail(`${where()}: ${NAMES[op]} on ${describePy(l)}, not a list`);
    const list = l as PyValue[];
    for (const x of items) list.push(x); // not push(...items): no argument-count limit
    nest(list, items);
  };
  const global = (module: string, name: string) => {
    const g = options.findGlobal(module, name);
    if (!g) {
      fail(
        `the pickle names the global ${module}.${name}, which is not allowed in a checkpoint ` +
          `(refused without running it)`,
      );
    }
    stack.push(g!);
  };

  for (;;) {
    opAt = at;
    if (at >= bytes.length) fail(`${where()}: the pickle ends without STOP (truncated?)`);
    op = bytes[at++];
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail(`${where()}: pickle protocol ${bytes[at - 1]} is newer than 5`);
        break;
      case 0x95: // FRAME: an 8-byte length; frames need no special handling
        u64();
        break;
      case 0x2e: { // STOP
        if (marks.length) fail(`${where()}: STOP with a MARK still open`);
        if (stack.length !== 1) fail(`${where()}: STOP with ${stack.length} values on the stack`);
        return stack[0] as PyValue;
      }
      case 0x28: // MARK
        if (marks.length >= MAX_PICKLE_DEPTH) {
          fail(`${where()}: MARKs nest deeper than ${MAX_PICKLE_DEPTH} levels`);
        }
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (stack.length && marks.length && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4, "BININT");
        stack.push(BigInt(view.getInt32(at, true)));
        at += 4;
        break;
      case 0x4b: // BININT1
        stack.push(BigInt(u8()));
        break;
      case 0x4d: // BININT2
        stack.push(BigInt(u16()));
        break;
      case 0x8a: { // LONG1: n bytes, little-endian two's complement
        const n = u8();
        if (n > 16) fail(`${where()}: an int of ${n} bytes is larger than a checkpoint needs`);
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v);
        break;
      }
      case 0x47: // BINFLOAT: big-endian double
        need(8, "BINFLOAT");
        stack.push(view.getFloat64(at, false));
        at += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text.decode(take(u64())));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push(tuple([pop(), b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(tuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(tuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: { // LIST
        const l: PyValue[] = [];
        append(l, popMark());
        stack.push(l);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x64: { // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(memoIndex(u8()), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(memoIndex(u32()), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memoIndex(memo.size), top());
        break;
      case 0x68: // BINGET
        get(u8());
        break;
      case 0x6a: // LONG_BINGET
        get(u32());
        break;
      case 0x63: { // GLOBAL: "module\nname\n"
        const module = line();
        global(module, line());
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          fail(`${where()}: STACK_GLOBAL needs two strings`);
        }
        global(module as string, name as string);
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const callable = pop();
        if (!(callable instanceof PyGlobal) || !callable.call) {
          fail(
            `${where()}: REDUCE calls ${describePy(callable)}, which is not a callable of the ` +
              `allow-list`,
          );
        }
        if (!(args instanceof PyTuple)) fail(`${where()}: REDUCE arguments are not a tuple`);
        const result = (callable as PyGlobal).call!((args as PyTuple).items);
        if (typeof result === "object" && result !== null) nest(result, (args as PyTuple).items);
        stack.push(result);
        break;
      }
      case 0x62: { // BUILD: only the attribute dict of an OrderedDict (state_dict()._metadata)
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyOrderedDict) || !(state instanceof PyDict || state === null)) {
          fail(`${where()}: BUILD on ${describePy(obj)} is not allowed`);
        }
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail(`${where()}: BINPERSID in a pickle without storages`);
        stack.push(options.persistentLoad!(pid));
        break;
      }
      default: {
        const name = NAMES[op];
        fail(
          `${where()}: opcode ${name ?? `0x${op.toString(16).padStart(2, "0")}`} is not ` +
            `allowed in a checkpoint`,
        );
      }
    }
  }
}

/** Bytes of a pickle under construction. */
class Out {
  chunks: Uint8Array[] = [];
  buf = new Uint8Array(1 << 12);
  n = 0;
  view = new DataView(this.buf.buffer);
  room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    this.chunks.push(this.buf.slice(0, this.n));
    this.buf = new Uint8Array(Math.max(1 << 12, k));
    this.view = new DataView(this.buf.buffer);
    this.n = 0;
  }
  byte(...b: number[]): void {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  u32(x: number): void {
    this.room(4);
    this.view.setUint32(this.n, x, true);
    this.n += 4;
  }
  f64(x: number): void {
    this.room(8);
    this.view.setFloat64(this.n, x, false);
    this.n += 8;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  done(): Uint8Array {
    this.chunks.push(this.buf.slice(0, this.n));
    const total = this.chunks.reduce((a, c) => a + c.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * Writes a value as a protocol-2 pickle (what `torch.save` writes), memoizing globals.
 * Strings are written as `BINUNICODE`, ints as `BININT*`/`LONG1`, floats as `BINFLOAT`,
 * OrderedDicts as `collections.OrderedDict()` then `SETITEMS`.
 *
 * @param value What to write: the {@linkcode PyValue} kinds, {@linkcode PyReduce} and
 * {@linkcode PyPersistent} included.
 * @param options `reduce` turns any other object into a {@linkcode PyReduce} (tensors); an
 * object it leaves undefined is an error.
 * @returns The pickle.
 *
 * @example
 * ```ts
 * import { pickle, PyDict, unpickle } from "./pickle.ts";
 * const bytes = pickle(new PyDict([["a", [1n, 2.5]]]));
 * const back = unpickle(bytes, { findGlobal: () => undefined }, (w) => { throw new Error(w); });
 * console.log((back as PyDict).get("a")); // [ 1n, 2.5 ]
 * ```
 */
export function pickle(
  value: PyValue,
  options: { reduce?: (v: object) => PyReduce | undefined } = {},
): Uint8Array {
  const out = new Out();
  const enc = new TextEncoder();
  const globals = new Map<string, number>();
  const write = (v: PyValue, level: number): void => {
    if (level > MAX_PICKLE_DEPTH) {
      throw new Error(`Cannot pickle: containers nest deeper than ${MAX_PICKLE_DEPTH} levels`);
    }
    if (v === null) out.byte(0x4e);
    else if (v === true) out.byte(0x88);
    else if (v === false) out.byte(0x89);
    else if (typeof v === "bigint") writeInt(v);
    else if (typeof v === "number") {
      out.byte(0x47);
      out.f64(v);
    } else if (typeof v === "string") {
      const b = enc.encode(v);
      out.byte(0x58);
      out.u32(b.length);
      out.bytes(b);
    } else if (Array.isArray(v)) {
      out.byte(0x5d); // EMPTY_LIST
      if (v.length) {
        out.byte(0x28); // MARK
        for (const x of v) write(x, level + 1);
        out.byte(0x65); // APPENDS
      }
    } else if (v instanceof PyTuple) {
      const n = v.items.length;
      if (n === 0) out.byte(0x29);
      else if (n <= 3) {
        for (const x of v.items) write(x, level + 1);
        out.byte(0x84 + n); // TUPLE1..3
      } else {
        out.byte(0x28);
        for (const x of v.items) write(x, level + 1);
        out.byte(0x74); // TUPLE
      }
    } else if (v instanceof PyDict) {
      if (v instanceof PyOrderedDict) {
        writeGlobal(new PyGlobal("collections", "OrderedDict"));
        out.byte(0x29, 0x52); // EMPTY_TUPLE REDUCE
      } else {
        out.byte(0x7d); // EMPTY_DICT
      }
      if (v.size) {
        out.byte(0x28);
        for (const [k, x] of v) {
          write(k, level + 1);
          write(x, level + 1);
        }
        out.byte(0x75); // SETITEMS
      }
    } else if (v instanceof PyGlobal) writeGlobal(v);
    else if (v instanceof PyReduce) {
      writeGlobal(v.callable);
      write(new PyTuple(v.args), level + 1);
      out.byte(0x52);
    } else if (v instanceof PyPersistent) {
      write(v.pid, level + 1);
      out.byte(0x51);
    } else {
      const r = options.reduce?.(v);
      if (!r) throw new Error(`Cannot pickle ${describePy(v)}`);
      write(r, level);
    }
  };
  const writeInt = (v: bigint) => {
    if (v >= 0n && v < 256n) out.byte(0x4b, Number(v));
    else if (v >= 0n && v < 65536n) out.byte(0x4d, Number(v & 0xffn), Number(v >> 8n));
    else if (v >= -(2n ** 31n) && v < 2n ** 31n) {
      out.byte(0x4a);
      out.u32(Number(BigInt.asUintN(32, v)));
    } else {
      const b: number[] = [];
      let x = v;
      // Two's complement, little-endian, shortest that keeps the sign (as Python's encode_long).
      while (true) {
        b.push(Number(x & 0xffn));
        x >>= 8n;
        if ((x === 0n && !(b[b.length - 1] & 0x80)) || (x === -1n && b[b.length - 1] & 0x80)) {
          break;
        }
      }
      out.byte(0x8a, b.length, ...b);
    }
  };
  const writeGlobal = (g: PyGlobal) => {
    const k = `${g.module}\n${g.name}\n`;
    const memo = globals.get(k);
    if (memo !== undefined) {
      if (memo < 256) out.byte(0x68, memo);
      else {
        out.byte(0x6a);
        out.u32(memo);
      }
      return;
    }
    out.byte(0x63);
    out.bytes(enc.encode(k));
    const i = globals.size;
    globals.set(k, i);
    if (i < 256) out.byte(0x71, i);
    else {
      out.byte(0x72);
      out.u32(i);
    }
  };
  out.byte(0x80, 2);
  write(value, 0);
  out.byte(0x2e);
  return out.done();
}
