/**
 * The project's own seeded PRNG for the random choices the reference makes with torch's global
 * generator (pair subsampling, weight initialisation): xoshiro128** (Blackman & Vigna, 2018),
 * seeded through the splitmix32 / murmur3 finaliser.
 *
 * Torch's Philox/MT19937 streams cannot be reproduced here (they depend on the device, the
 * kernel launch layout and every other draw made in the run), so our runs are reproducible
 * among themselves — same seed, same numbers — but do not draw the reference's numbers.
 *
 * The whole state is four 32-bit words, so it can be saved in a checkpoint and restored.
 *
 * @module
 */

/** The state of a {@linkcode Xoshiro128}: four unsigned 32-bit words, not all zero. */
export type Xoshiro128State = [number, number, number, number];

const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M53 = 2 ** -53;

/**
 * xoshiro128**: a 32-bit generator with 128 bits of state and period 2^128 − 1.
 *
 * @example
 * ```ts
 * import { Xoshiro128 } from "./rng.ts";
 * const rng = Xoshiro128.fromState([1, 2, 3, 4]);
 * console.log(rng.nextUint32(), rng.nextUint32(), rng.nextUint32()); // 11520 0 5927040
 * ```
 */
export class Xoshiro128 {
  #s: Uint32Array;

  private constructor(state: Xoshiro128State) {
    this.#s = new Uint32Array(4);
    this.setState(state);
  }

  /**
   * A generator seeded from an integer seed and a stream number: the four state words are
   * four successive outputs of splitmix32 started at `seed XOR (stream+1)·0x9e3779b9`, so
   * different streams of one seed are unrelated.
   *
   * @param seed any integer (taken modulo 2^32).
   * @param stream which independent stream of that seed (default 0).
   */
  static fromSeed(seed: number, stream = 0): Xoshiro128 {
    if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(stream)) {
      throw new Error(`Random seed and stream must be integers, got ${seed} and ${stream}`);
    }
    let x = ((seed >>> 0) ^ Math.imul((stream >>> 0) + 1, 0x9e3779b9)) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      words.push((z ^ (z >>> 16)) >>> 0);
    }
    // the finaliser is a bijection and the four inputs differ, so at most one word is zero
    return new Xoshiro128(words as Xoshiro128State);
  }

  /** A generator that continues from a saved state (see {@linkcode Xoshiro128.getState}). */
  static fromState(state: Xoshiro128State): Xoshiro128 {
    return new Xoshiro128(state);
  }

  /** A copy of the state: restoring it replays the same numbers. */
  getState(): Xoshiro128State {
    return [this.#s[0], this.#s[1], this.#s[2], this.#s[3]];
  }

  /** Replaces the state; throws unless it is four unsigned 32-bit integers, not all zero. */
  setState(state: Xoshiro128State): void {
    if (
      !Array.isArray(state) || state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)
    ) {
      throw new Error(
        `Random generator state must be 4 unsigned 32-bit integers, got ${JSON.stringify(state)}`,
      );
    }
    if (state.every((w) => w === 0)) {
      throw new Error("Random generator state must not be all zeros");
    }
    this.#s.set(state);
  }

  /** The next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.#s;
    const s1 = s[1];
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /**
   * A uniform float32 in [0, 1) with 24 random bits (the top 24 bits of one draw), the same
   * grid as torch's float32 `rand`.
   */
  nextFloat32(): number {
    return (this.nextUint32() >>> 8) * TWO_POW_M24;
  }

  /** A uniform double in [0, 1) with 53 random bits (two draws). */
  nextFloat64(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) * TWO_POW_M53;
  }

  /**
   * Two independent standard normals by Box–Muller from two {@linkcode nextFloat64} draws:
   * `r = sqrt(−2 ln(1 − u1))`, returns `[r cos(2π u2), r sin(2π u2)]`.
   */
  nextNormalPair(): [number, number] {
    const u1 = 1 - this.nextFloat64(); // (0, 1]: the log is finite
    const u2 = this.nextFloat64();
    const r = Math.sqrt(-2 * Math.log(u1));
    const a = 2 * Math.PI * u2;
    return [r * Math.cos(a), r * Math.sin(a)];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
