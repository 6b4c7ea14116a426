import assert from "node:assert/strict";
import {
  MAX_PICKLE_DEPTH,
  pickle,
  PyDict,
  PyGlobal,
  PyOrderedDict,
  PyTuple,
  unpickle,
  type UnpickleOptions,
} from "../../src/io/pickle.ts";
import { hex, pk } from "./_pickle_bytes.ts";

const fail = (why: string): never => {
  throw new Error(`Cannot read checkpoint "x.pt": ${why}`);
};
const none: UnpickleOptions = { findGlobal: () => undefined };
const read = (bytes: Uint8Array, options = none) => unpickle(bytes, options, fail);

Deno.test("unpickle() reads what Python's pickle.dumps(protocol=2) writes", () => {
  // pickle.dumps({"a": [1, -2, 300, 70000, 2**40, 1.5, None, True, False], "t": (1, "é"),
  //   3: -(2**63)}, protocol=2), as Python 3.11 writes it
  const bytes = hex(
    "80027d71002858010000006171015d7102284b014afeffffff4d2c014a701101008a0600000000000147" +
      "3ff80000000000004e88896558010000007471034b015802000000c3a971048671054b038a0800000000" +
      "00000080752e",
  );
  const v = read(bytes) as PyDict;
  assert.deepEqual(v.get("a"), [1n, -2n, 300n, 70000n, 2n ** 40n, 1.5, null, true, false]);
  assert.deepEqual((v.get("t") as PyTuple).items, [1n, "é"]);
  assert.equal(v.get(3n), -(2n ** 63n));
});

Deno.test("pickle() writes what unpickle() reads back, ints and floats kept apart", () => {
  const value = new PyDict([
    ["ints", [0n, 255n, 256n, 65535n, 65536n, -1n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 31n]],
    ["more", [2n ** 63n - 1n, -(2n ** 63n), 128n * 2n ** 32n, -(2n ** 70n)]],
    ["floats", [0, -0, 0.1, 1e308, -Infinity, 1]],
    ["tuples", [new PyTuple([]), new PyTuple([1n]), new PyTuple([1n, 2n, 3n, 4n])]],
    ["od", new PyOrderedDict([["b", "é"], ["a", null]])],
    [7n, true],
  ]);
  const od = new PyGlobal("collections", "OrderedDict", () => new PyOrderedDict());
  const back = read(pickle(value), {
    findGlobal: (m, n) => (m === "collections" && n === "OrderedDict" ? od : undefined),
  }) as PyDict;
  assert.deepEqual([...back.keys()], ["ints", "more", "floats", "tuples", "od", 7n]);
  assert.deepEqual(back.get("ints"), value.get("ints"));
  assert.deepEqual(back.get("more"), value.get("more"));
  assert.deepEqual(back.get("floats"), [0, -0, 0.1, 1e308, -Infinity, 1]);
  assert.ok(Object.is((back.get("floats") as number[])[1], -0));
  assert.deepEqual(
    (back.get("tuples") as PyTuple[]).map((t) => t.items),
    [[], [1n], [1n, 2n, 3n, 4n]],
  );
  assert.ok(back.get("od") instanceof PyOrderedDict);
  assert.deepEqual([...(back.get("od") as PyDict)], [["b", "é"], ["a", null]]);
});

/** A pickle calling `module.name("arg")`: GLOBAL, the argument tuple, REDUCE. */
function call(module: string, name: string, arg = "id"): Uint8Array {
  return pk([0x80, 2, 0x63], `${module}\n${name}\n`, [0x58, arg.length, 0, 0, 0], arg, [
    0x85,
    0x52,
    0x2e,
  ]);
}

Deno.test("unpickle() refuses globals outside the allow-list, naming them, without calling", () => {
  let called = 0;
  const allow = new PyGlobal("collections", "OrderedDict", () => {
    called++;
    return new PyOrderedDict();
  });
  const options = {
    findGlobal: (_: string, n: string) => (n === "OrderedDict" ? allow : undefined),
  };
  for (const [module, name] of [["os", "system"], ["builtins", "eval"], ["posix", "system"]]) {
    assert.throws(
      () => read(call(module, name, "touch /tmp/pwned"), options),
      new RegExp(
        `^Error: Cannot read checkpoint "x.pt": the pickle names the global ${module}\\.${name}, ` +
          `which is not allowed`,
      ),
    );
  }
  // STACK_GLOBAL (protocol 4) is checked the same way.
  const stackGlobal = pk(
    [0x80, 4, 0x8c, 2],
    "os",
    [0x8c, 6],
    "system",
    [0x93, 0x8c, 2],
    "ls",
    [0x85, 0x52, 0x2e],
  );
  assert.throws(() => read(stackGlobal, options), /names the global os\.system/);
  assert.equal(called, 0);
});

Deno.test("unpickle() refuses REDUCE on what is not an allowed callable", () => {
  const type = new PyGlobal("torch", "FloatStorage"); // allowed as a name, not callable
  const options = { findGlobal: () => type };
  assert.throws(
    () => read(call("torch", "FloatStorage"), options),
    /REDUCE calls torch\.FloatStorage, which is not a callable of the allow-list/,
  );
  // REDUCE on a list (a callable smuggled through the stack)
  assert.throws(
    () => read(pk([0x80, 2, 0x5d, 0x29, 0x52, 0x2e])),
    /REDUCE calls a list of 0, which is not a callable/,
  );
});

Deno.test("unpickle() refuses opcodes a state dict never needs", () => {
  const cases: [Uint8Array, RegExp][] = [
    [pk([0x80, 2, 0x81, 0x2e]), /opcode NEWOBJ is not allowed/],
    [pk([0x80, 2, 0x69], "os\nsystem\n", [0x2e]), /opcode INST is not allowed/],
    [pk([0x80, 2, 0x6f, 0x2e]), /opcode OBJ is not allowed/],
    [pk([0x80, 2, 0x50], "1\n", [0x2e]), /opcode PERSID is not allowed/],
    [pk([0x80, 2, 0x82, 1, 0x2e]), /opcode EXT1 is not allowed/],
    [pk([0x80, 2, 0x8f, 0x2e]), /opcode EMPTY_SET is not allowed/],
    [pk([0x80, 2, 0xff, 0x2e]), /opcode 0xff is not allowed/],
  ];
  for (const [bytes, want] of cases) assert.throws(() => read(bytes), want);
});

Deno.test("unpickle() bounds nesting, memo indices and lengths", () => {
  // [[[[...]]]] built with EMPTY_LIST ... APPEND, one level past the limit
  const levels = MAX_PICKLE_DEPTH + 2;
  const deep = pk([0x80, 2], new Array(levels).fill(0x5d), new Array(levels - 1).fill(0x61), [
    0x2e,
  ]);
  assert.throws(() => read(deep), new RegExp(`nest deeper than ${MAX_PICKLE_DEPTH} levels`));
  const marks = pk([0x80, 2], new Array(100).fill(0x28), [0x2e]);
  assert.throws(() => read(marks), /MARKs nest deeper than/);
  const huge = pk([0x80, 2, 0x4e, 0x72, 0xf0, 0xff, 0xff, 0xff, 0x2e]);
  assert.throws(() => read(huge), /memo index 4294967280 is out of range for a 9-byte pickle/);
  assert.throws(() => read(pk([0x80, 2, 0x68, 5, 0x2e])), /memo index 5 was never stored/);
  assert.throws(
    () => read(pk([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e])),
    /BINUNICODE of 2147483647 bytes runs past the end of the pickle/,
  );
  assert.throws(
    () => read(pk([0x80, 2, 0x8a, 100], new Array(100).fill(1), [0x2e])),
    /an int of 100 bytes/,
  );
  // a list appended to itself: a cycle grows its depth until refused
  const cycle = pk([0x80, 2, 0x5d, 0x71, 0], new Array(40).fill([0x68, 0, 0x61]).flat(), [0x2e]);
  assert.throws(() => read(cycle), /nest deeper than/);
});

Deno.test("unpickle() refuses malformed streams with one line", () => {
  const cases: [Uint8Array, RegExp][] = [
    [pk([0x80, 2]), /ends without STOP/],
    [pk([0x80, 2, 0x4e, 0x4e, 0x2e]), /STOP with 2 values on the stack/],
    [pk([0x80, 2, 0x61, 0x2e]), /APPEND on an empty stack/],
    [pk([0x80, 2, 0x4e, 0x4e, 0x61, 0x2e]), /APPEND on None, not a list/],
    [pk([0x80, 2, 0x7d, 0x5d, 0x4e, 0x73, 0x2e]), /a dict key is a list of 0/],
    [pk([0x80, 2, 0x74, 0x2e]), /TUPLE without a MARK/],
    [pk([0x80, 9, 0x2e]), /protocol 9 is newer than 5/],
    [pk([0x80, 2, 0x5d, 0x4e, 0x62, 0x2e]), /BUILD on a list of 0 is not allowed/],
    [pk([0x80, 2, 0x4e, 0x51, 0x2e]), /BINPERSID in a pickle without storages/],
  ];
  for (const [bytes, want] of cases) {
    assert.throws(() => read(bytes), (e: Error) => {
      assert.match(e.message, want);
      assert.match(e.message, /^Cannot read checkpoint "x.pt": pickle byte \d+: /);
      return true;
    });
  }
});
