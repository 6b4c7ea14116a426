import assert from "node:assert/strict";
import { StarGraphTokenizer } from "../../src/tokenizers/stargraph.ts";

Deno.test("StarGraphTokenizer ids follow the reference: nodes, |, =, /, $, EOS; vocab max_nodes + 6", () => {
  const tok = new StarGraphTokenizer(50);
  assert.deepEqual(
    [tok.pipe, tok.equals, tok.slash, tok.pad, tok.eosTokenId, tok.vocabSize],
    [50, 51, 52, 53, 54, 56],
  );
  assert.throws(() => new StarGraphTokenizer(0), /max_nodes must be a positive integer, got 0/);
});

Deno.test("StarGraphTokenizer.tokenize() skips commas and appends EOS like the reference", () => {
  const tok = new StarGraphTokenizer(50);
  const line = "12,15|13,1/12,8=12,13,1,8";
  assert.deepEqual(tok.tokenize(line), [12, 15, 50, 13, 1, 52, 12, 8, 51, 12, 13, 1, 8, 54]);
  assert.deepEqual(tok.encode("0,49$"), [0, 49, 53]);
  assert.deepEqual(tok.encode(",,7,,"), [7]);
  assert.deepEqual(tok.tokenize(""), [54]);
});

Deno.test("StarGraphTokenizer.encodeBytes() counts past the room it has and writes in place", () => {
  const tok = new StarGraphTokenizer(50);
  const bytes = new TextEncoder().encode("xx1,2|3,4xx");
  const out = new Int32Array(6).fill(-1);
  assert.equal(tok.encodeBytes(bytes, 2, 9, out, 1, 3), 5);
  assert.deepEqual([...out], [-1, 1, 2, -1, -1, -1]);
});

Deno.test("StarGraphTokenizer.encode() errors name the place, the symbol and its column", () => {
  const tok = new StarGraphTokenizer(50);
  const cases: [string, string][] = [
    ["1,2#3", `unknown symbol "#" at column 4`],
    ["1, 2", `unknown symbol " " at column 3`],
    ["1,é", `unknown symbol "é" at column 3`],
    ["é,#", `unknown symbol "é" at column 1`],
    ["1,50", `node id 50 at column 3 is not below max_nodes 50`],
    [
      "1,99999999999999999999999",
      `node id 99999999999999999999999 at column 3 is not below max_nodes 50`,
    ],
    ["1,07", `node id 07 at column 3 has a leading zero`],
  ];
  for (const [text, why] of cases) {
    assert.throws(() => tok.encode(text, "x.txt line 4"), (e: Error) => {
      assert.equal(e.message, `x.txt line 4: ${why}`);
      return true;
    });
  }
  assert.throws(() => tok.encode("#"), /^Error: Input: unknown symbol "#" at column 1$/);
});

Deno.test("StarGraphTokenizer.decode() inverts tokenize on generated lines", () => {
  const tok = new StarGraphTokenizer(50);
  for (const line of ["12,15|13,1/12,8=12,13,1,8", "/6,6=6", "1,2$3", "0,0"]) {
    assert.equal(tok.decode(tok.tokenize(line)), line);
  }
  assert.equal(tok.decode([1, 54, 2]), "1,2"); // EOS does not glue node ids together
  assert.equal(tok.decode(new Int32Array([24, 48, 26, 54])), "24,48,26");
  assert.throws(
    () => tok.decode([55]),
    /Token id 55 is outside the star-graph vocabulary \(0..54\)/,
  );
  assert.throws(() => tok.decode([-1]), /Token id -1 is outside/);
});
