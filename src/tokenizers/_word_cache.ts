/**
 * A bounded cache from words (byte strings) to their token ids, looked up straight from a
 * byte range of the text: no string is built per word (that, and hashing it in a `Map`, cost
 * more than the whole rest of the tokenizer). Open addressing with linear probing over
 * FNV-1a hashes; every hit is confirmed byte by byte, so the cache never changes a result.
 * Once it holds `maxEntries` words it stops storing new ones (as the Rust library's cache).
 *
 * @module
 */

/** Word → ids cache for {@linkcode HfTokenizer}'s `encode`. */
export class WordCache {
  /** Words longer than this many bytes are not stored. */
  readonly maxWordBytes: number;
  readonly #maxEntries: number;
  /** Slot → entry index + 1 (0: empty); twice as many slots as entries. */
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #hash: Int32Array;
  readonly #keyStart: Int32Array;
  readonly #keyLength: Int32Array;
  readonly #idStart: Int32Array;
  readonly #idLength: Int32Array;
  #keys = new Uint8Array(1 << 16);
  #keysUsed = 0;
  #ids = new Int32Array(1 << 14);
  #idsUsed = 0;
  #count = 0;

  /**
   * @param maxEntries Most words held (rounded up to a power of two).
   * @param maxWordBytes Longest word stored, in bytes.
   */
  constructor(maxEntries = 1 << 16, maxWordBytes = 255) {
    let n = 1;
    while (n < maxEntries) n *= 2;
    this.#maxEntries = n;
    this.maxWordBytes = maxWordBytes;
    this.#slots = new Int32Array(2 * n);
    this.#mask = 2 * n - 1;
    this.#hash = new Int32Array(n);
    this.#keyStart = new Int32Array(n);
    this.#keyLength = new Int32Array(n);
    this.#idStart = new Int32Array(n);
    this.#idLength = new Int32Array(n);
  }

  /** Number of words held. */
  get size(): number {
    return this.#count;
  }

  /** FNV-1a hash of `b[start, end)`. */
  static hash(b: Uint8Array, start: number, end: number): number {
    let h = 0x811c9dc5 | 0;
    for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193);
    return h;
  }

  /**
   * Pushes the ids of the word `b[start, end)` (hash `h`) to `out` and returns true, or
   * returns false when the word is not held.
   */
  pushIds(b: Uint8Array, start: number, end: number, h: number, out: number[]): boolean {
    const length = end - start;
    const slots = this.#slots, hashes = this.#hash, lengths = this.#keyLength;
    const keys = this.#keys, mask = this.#mask;
    for (let slot = h & mask;; slot = (slot + 1) & mask) {
      const e = slots[slot] - 1;
      if (e < 0) return false;
      if (hashes[e] !== h || lengths[e] !== length) continue;
      const k = this.#keyStart[e] - start;
      let i = start;
      while (i < end && keys[k + i] === b[i]) i++;
      if (i < end) continue;
      const ids = this.#ids;
      const stop = this.#idStart[e] + this.#idLength[e];
      for (let j = this.#idStart[e]; j < stop; j++) out.push(ids[j]);
      return true;
    }
  }

  /** Stores the ids of the word `b[start, end)` (hash `h`, not held yet) if there is room. */
  store(b: Uint8Array, start: number, end: number, h: number, ids: readonly number[]): void {
    const length = end - start;
    if (this.#count >= this.#maxEntries || length > this.maxWordBytes) return;
    if (this.#keysUsed + length > this.#keys.length) {
      const grown = new Uint8Array(2 * (this.#keys.length + length));
      grown.set(this.#keys.subarray(0, this.#keysUsed));
      this.#keys = grown;
    }
    if (this.#idsUsed + ids.length > this.#ids.length) {
      const grown = new Int32Array(2 * (this.#ids.length + ids.length));
      grown.set(this.#ids.subarray(0, this.#idsUsed));
      this.#ids = grown;
    }
    const e = this.#count++;
    this.#hash[e] = h;
    this.#keyStart[e] = this.#keysUsed;
    this.#keyLength[e] = length;
    this.#keys.set(b.subarray(start, end), this.#keysUsed);
    this.#keysUsed += length;
    this.#idStart[e] = this.#idsUsed;
    this.#idLength[e] = ids.length;
    this.#ids.set(ids, this.#idsUsed);
    this.#idsUsed += ids.length;
    let slot = h & this.#mask;
    while (this.#slots[slot] !== 0) slot = (slot + 1) & this.#mask;
    this.#slots[slot] = e + 1;
  }
}
