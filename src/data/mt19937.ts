/**
 * MT19937 exactly as CPython's `random` module and numpy's legacy `RandomState` use it, so
 * data generated here is byte-identical to the reference's Python scripts.
 *
 * - {@linkcode PyRandom}: `random.seed(int)` (init_by_array over the 32-bit words of |seed|),
 *   `getrandbits(k ≤ 32)`, `_randbelow(n)` (rejection on `getrandbits(n.bit_length())`) and
 *   `shuffle(list)`.
 * - {@linkcode numpyPermutation}: `RandomState(seed).permutation(n)` (init_genrand(seed),
 *   Fisher–Yates from the end with numpy's masked rejection `random_interval`).
 *
 * @module
 */

const N = 624;
const M = 397;

let base19650218: Int32Array | undefined;

/**
 * The MT19937 core: 624 words of state and the tempered 32-bit output.
 *
 * @example
 * ```ts
 * import { MT19937 } from "./mt19937.ts";
 * const mt = new MT19937();
 * mt.initGenrand(5489); // the reference implementation's default seed
 * console.log(mt.nextUint32()); // 3499211612
 * ```
 *
 * The state is regenerated lazily: word k of a new block needs only words k, k+1 and k+397
 * of the old one, so the first 227 outputs after a re-seed cost 227 updates instead of 624.
 * The star-graph generator re-seeds for every sample and draws ~100 numbers, so this and the
 * cached `init_genrand(19650218)` state make seeding most of its cost. The outputs are the
 * same as the eager algorithm's.
 */
export class MT19937 {
  readonly mt = new Int32Array(N);
  mti = N + 1;
  /** Words below this index of the current block are already regenerated. */
  #fresh = N;

  /** `init_genrand(s)`. */
  initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.mti = N;
    this.#fresh = N;
  }

  /** `init_by_array(key)` (CPython's seeding of integers). */
  initByArray(key: ArrayLike<number>): void {
    const mt = this.mt;
    if (!base19650218) {
      this.initGenrand(19650218);
      base19650218 = mt.slice();
    }
    mt.set(base19650218);
    let i = 1;
    let j = 0;
    const len = key.length;
    for (let k = Math.max(N, len); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= len) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    this.mti = N;
    this.#fresh = N;
  }

  /** `genrand_uint32()`: the next tempered 32-bit output. */
  nextUint32(): number {
    const mt = this.mt;
    if (this.mti >= N) {
      if (this.mti === N + 1) this.initGenrand(5489);
      // Finish the previous lazy block before starting a new one.
      for (let kk = this.#fresh; kk < N; kk++) {
        const y = (mt[kk] & 0x80000000) | (mt[(kk + 1) % N] & 0x7fffffff);
        mt[kk] = mt[(kk + M) % N] ^ (y >>> 1) ^ ((y & 1) ? 0x9908b0df : 0);
      }
      this.mti = 0;
      this.#fresh = 0;
    }
    // Regenerate words of the new block in order up to the one needed: word k reads old
    // words k+1 and k+M (mod N) exactly where the eager twist reads old ones, and already
    // regenerated words where it reads new ones, so the outputs are identical.
    const i = this.mti;
    if (this.#fresh <= i) {
      let kk = this.#fresh;
      for (; kk <= i; kk++) {
        const y = (mt[kk] & 0x80000000) | (mt[(kk + 1) % N] & 0x7fffffff);
        mt[kk] = mt[(kk + M) % N] ^ (y >>> 1) ^ ((y & 1) ? 0x9908b0df : 0);
      }
      this.#fresh = kk;
    }
    let y = mt[this.mti++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

/**
 * The 32-bit words of |seed|, least significant first (CPython's `random.seed(int)` key).
 *
 * @param seed any integer (the sign is dropped, as CPython does).
 * @returns the key for {@linkcode MT19937.initByArray}; `[0]` for 0.
 *
 * @example
 * ```ts
 * import { seedKey } from "./mt19937.ts";
 * console.log(seedKey(2 ** 32 + 5)); // [5, 1]
 * ```
 */
export function seedKey(seed: number | bigint): number[] {
  if (typeof seed === "number" && !Number.isSafeInteger(seed)) {
    throw new Error(`Seed must be a safe integer or a bigint, got ${seed}`);
  }
  if (typeof seed === "number" && Math.abs(seed) <= 0xffffffff) return [Math.abs(seed)];
  let a = BigInt(seed);
  if (a < 0n) a = -a;
  const key: number[] = [];
  while (a > 0n) {
    key.push(Number(a & 0xffffffffn));
    a >>= 32n;
  }
  return key.length ? key : [0];
}

/**
 * CPython's `random.Random` for the calls the reference's data scripts make.
 *
 * @example
 * ```ts
 * import { PyRandom } from "./mt19937.ts";
 * // Python: r = random.Random(3); l = list(range(10)); r.shuffle(l)
 * const l = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
 * new PyRandom(3).shuffle(l);
 * console.log(l); // [1, 5, 6, 0, 9, 4, 7, 2, 8, 3]
 * ```
 */
export class PyRandom {
  readonly #mt = new MT19937();

  /** A generator seeded as `random.Random(seed)`. */
  constructor(seed: number | bigint = 0) {
    this.seed(seed);
  }

  /** `random.seed(int)`. */
  seed(seed: number | bigint): void {
    this.#mt.initByArray(seedKey(seed));
  }

  /** `getrandbits(k)` for 1 ≤ k ≤ 32. */
  getrandbits(k: number): number {
    if (!(k >= 1 && k <= 32)) throw new Error(`getrandbits(${k}) supports 1..32 bits only`);
    return this.#mt.nextUint32() >>> (32 - k);
  }

  /** `_randbelow(n)` for 1 ≤ n < 2³²: uniform in [0, n) by rejection. */
  randbelow(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n <= 0xffffffff)) {
      throw new Error(`randbelow(${n}) supports 1..2^32-1 only`);
    }
    return this.#below(n);
  }

  /** `_randbelow(n)` without the argument check (the shuffle's hot path). */
  #below(n: number): number {
    const shift = Math.clz32(n); // 32 − n.bit_length(): getrandbits(k) is the top k bits
    let r = this.#mt.nextUint32() >>> shift;
    while (r >= n) r = this.#mt.nextUint32() >>> shift;
    return r;
  }

  /** `random.shuffle(x)` in place. */
  shuffle<T>(x: T[] | Int32Array): void {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.#below(i + 1);
      const t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
  }
}

/**
 * numpy's `RandomState(seed).permutation(n)`: an integer seed is numpy's legacy seeding
 * (`init_genrand(seed)`), an array of 32-bit words is `init_by_array` (what
 * `RandomState([a, b])` does); then Fisher–Yates from the end with `random_interval`
 * (masked rejection on 32-bit draws).
 *
 * @param n length of the permutation of 0..n−1.
 * @param seed an integer in [0, 2³²) or a non-empty array of them.
 * @returns the permutation.
 *
 * @example
 * ```ts
 * import { numpyPermutation } from "./mt19937.ts";
 * // Python: numpy.random.RandomState(42).permutation(20)[:4]
 * console.log([...numpyPermutation(20, 42).subarray(0, 4)]); // [0, 17, 15, 1]
 * ```
 */
export function numpyPermutation(n: number, seed: number | readonly number[]): Int32Array {
  const words = typeof seed === "number" ? [seed] : seed;
  if (
    words.length === 0 || !words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)
  ) {
    throw new Error(`Seed must be an integer in [0, 2^32) or an array of them, got ${seed}`);
  }
  if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) {
    throw new Error(`Permutation size must be an integer in [0, 2^31), got ${n}`);
  }
  const mt = new MT19937();
  if (typeof seed === "number") mt.initGenrand(seed);
  else mt.initByArray(words);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    let mask = i;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    let j: number;
    do {
      j = (mt.nextUint32() & mask) >>> 0;
    } while (j > i);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}
