import assert from "node:assert/strict";
import { MT19937, numpyPermutation, PyRandom, seedKey } from "../../src/data/mt19937.ts";

// Expected values printed by CPython 3.11 (`random`) and numpy 2.4 (`RandomState`).

Deno.test("MT19937 init_genrand(5489) gives the reference implementation's first output", () => {
  const mt = new MT19937();
  mt.initGenrand(5489);
  assert.equal(mt.nextUint32(), 3499211612);
});

Deno.test("PyRandom matches CPython for small, large and negative seeds", () => {
  const r = new PyRandom(0);
  assert.deepEqual(
    [r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)],
    [3626764237, 1654615998, 3255389356],
  );
  const big = new PyRandom(12345678901234); // two 32-bit key words
  assert.deepEqual([big.getrandbits(32), big.randbelow(50)], [107551873, 35]);
  const wide = new PyRandom(2 ** 32 + 5);
  assert.deepEqual(
    [wide.getrandbits(32), wide.getrandbits(32), wide.randbelow(1000), wide.randbelow(2 ** 32 - 1)],
    [675479763, 2085189291, 289, 3822202474],
  );
  const neg = new PyRandom(-7); // CPython seeds with |seed|
  assert.deepEqual([neg.getrandbits(32), neg.getrandbits(5)], [1390851128, 30]);
  const z = new PyRandom(0);
  assert.deepEqual([z.randbelow(1), z.randbelow(2), z.randbelow(7)], [0, 1, 0]);
});

Deno.test("PyRandom.shuffle() matches CPython's random.shuffle", () => {
  const l = Array.from({ length: 10 }, (_, i) => i);
  new PyRandom(3).shuffle(l);
  assert.deepEqual(l, [1, 5, 6, 0, 9, 4, 7, 2, 8, 3]);
  const typed = new Int32Array(10).map((_, i) => i);
  new PyRandom(3).shuffle(typed);
  assert.deepEqual([...typed], l);
});

Deno.test("seedKey() splits |seed| into 32-bit words, least significant first", () => {
  assert.deepEqual(seedKey(0), [0]);
  assert.deepEqual(seedKey(-5), [5]);
  assert.deepEqual(seedKey(2 ** 32 + 5), [5, 1]);
  assert.deepEqual(seedKey(2n ** 64n + 3n), [3, 0, 1]);
  assert.throws(() => seedKey(1.5), /Seed must be a safe integer or a bigint, got 1.5/);
});

Deno.test("PyRandom rejects arguments outside what it implements", () => {
  const r = new PyRandom(1);
  assert.throws(() => r.getrandbits(33), /getrandbits\(33\) supports 1..32 bits only/);
  assert.throws(() => r.randbelow(0), /randbelow\(0\) supports 1..2\^32-1 only/);
  assert.throws(() => r.randbelow(2 ** 32), /randbelow/);
});

Deno.test("numpyPermutation() matches RandomState with integer and array seeds", () => {
  assert.deepEqual(
    [...numpyPermutation(20, 42).subarray(0, 12)],
    [0, 17, 15, 1, 8, 5, 11, 3, 18, 16, 13, 2],
  );
  // numpy.random.RandomState([1337, e]).permutation(18): init_by_array seeding
  assert.deepEqual(
    [...numpyPermutation(18, [1337, 0])],
    [4, 12, 13, 0, 2, 3, 7, 11, 10, 1, 5, 17, 9, 14, 6, 16, 8, 15],
  );
  assert.deepEqual(
    [...numpyPermutation(18, [1337, 1])],
    [11, 0, 14, 15, 8, 9, 3, 2, 1, 12, 6, 4, 5, 7, 17, 16, 10, 13],
  );
  assert.deepEqual([...numpyPermutation(0, 42)], []);
  assert.deepEqual([...numpyPermutation(1, 42)], [0]);
  assert.throws(() => numpyPermutation(5, -1), /Seed must be an integer in \[0, 2\^32\)/);
  assert.throws(() => numpyPermutation(5, []), /Seed must be/);
  assert.throws(() => numpyPermutation(1.5, 1), /Permutation size must be an integer/);
});
