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

/** The 32-bit words of |seed|, least significant first (CPython's `random.seed(int)` key). */
export function seedKey(seed: number | bigint): number[] {
  let a = BigInt(seed);
  if (a < 0n) a = -a;
  const key: number[] = [];
  while (a > 0n) {
    key.push(Number(a & 0xffffffffn));
    a >>= 32n;
  }
  return key.length ? key : [0];
}

/** CPython's `random.Random` for the calls the reference's data scripts make. */
export class PyRandom {
  readonly #mt = new MT19937();

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
    const shift = Math.clz32(n); // 32 − n.bit_length(): getrandbits(k) is the top k bits
    let r = this.#mt.nextUint32() >>> shift;
    while (r >= n) r = this.#mt.nextUint32() >>> shift;
    return r;
  }

  /** `random.shuffle(x)` in place. */
  shuffle<T>(x: T[] | Int32Array): void {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
  }
}

/**
 * numpy's `RandomState(seed).permutation(n)` (legacy seeding: init_genrand(seed); shuffle
 * from the end with `random_interval`, masked rejection on 32-bit draws).
 */
export function numpyPermutation(n: number, seed: number): Int32Array {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`Seed must be an integer in [0, 2^32), got ${seed}`);
  }
  if (n > 0xffffffff) throw new Error(`Permutation size ${n} is too large`);
  const mt = new MT19937();
  mt.initGenrand(seed);
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
