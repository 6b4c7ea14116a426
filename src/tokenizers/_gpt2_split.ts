/**
 * The GPT-2 pre-tokenizer pattern as a hand-written scanner over UTF-8 bytes (a regular
 * expression with Unicode classes on strings runs at a fraction of the speed the tokenizer
 * needs). The pattern, with `\s` meaning Unicode White_Space as in Oniguruma (the Rust
 * library's regex engine, where U+0085 is a space and U+FEFF is not):
 *
 * ```
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * ```
 *
 * {@linkcode GPT2_PATTERN} is that expression for JavaScript strings; the tests check that the
 * scanner cuts every text exactly as it does.
 *
 * @module
 */

/** The GPT-2 pattern as a JavaScript expression (`\s` as Unicode White_Space). */
export const GPT2_PATTERN: RegExp =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

const LETTER = 0, NUMBER = 1, SPACE = 2, OTHER = 3, UNKNOWN = 255;

function classify(cp: number): number {
  const c = String.fromCodePoint(cp);
  if (/\p{L}/u.test(c)) return LETTER;
  if (/\p{N}/u.test(c)) return NUMBER;
  if (/\p{White_Space}/u.test(c)) return SPACE;
  return OTHER;
}

/** Class of each BMP code point (letter, number, space, other), filled on first sight. */
const BMP_CLASS = new Uint8Array(65536).fill(UNKNOWN);
for (let c = 0; c < 128; c++) BMP_CLASS[c] = classify(c);
/** Classes of the code points above U+FFFF met so far. */
const ASTRAL_CLASS = new Map<number, number>();

/** Class of the (valid UTF-8) character whose lead byte `x` ≥ 0x80 is at `b[i]`. */
function wideClass(b: Uint8Array, i: number, x: number): number {
  let cp: number;
  if (x < 0xe0) cp = ((x & 0x1f) << 6) | (b[i + 1] & 0x3f);
  else if (x < 0xf0) cp = ((x & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f);
  else {
    cp = ((x & 0x07) << 18) | ((b[i + 1] & 0x3f) << 12) | ((b[i + 2] & 0x3f) << 6) |
      (b[i + 3] & 0x3f);
    let c = ASTRAL_CLASS.get(cp);
    if (c === undefined) ASTRAL_CLASS.set(cp, c = classify(cp));
    return c;
  }
  let c = BMP_CLASS[cp];
  if (c === UNKNOWN) c = BMP_CLASS[cp] = classify(cp);
  return c;
}

/** Class of the character starting at `b[i]`. */
function classAt(b: Uint8Array, i: number): number {
  const x = b[i];
  return x < 0x80 ? BMP_CLASS[x] : wideClass(b, i, x);
}

/** Bytes of the UTF-8 character with lead byte `x`. */
function charLength(x: number): number {
  return x < 0x80 ? 1 : x < 0xe0 ? 2 : x < 0xf0 ? 3 : 4;
}

/** End of the run of characters of class `cls` starting at `b[i]`, before `end`. */
function runEnd(b: Uint8Array, i: number, end: number, cls: number): number {
  while (i < end) {
    const x = b[i];
    if (x < 0x80) {
      if (BMP_CLASS[x] !== cls) break;
      i++;
    } else {
      if (wideClass(b, i, x) !== cls) break;
      i += charLength(x);
    }
  }
  return i;
}

const APOSTROPHE = 0x27, SPACE_BYTE = 0x20;

/**
 * End (exclusive) of the GPT-2 pattern's match that starts at `b[start]` in the valid UTF-8
 * text `b[…, end)`. The pattern matches every character, so calling this from the start with
 * each end in turn cuts the whole text into words.
 *
 * @example
 * ```ts
 * import { gpt2WordEnd } from "./_gpt2_split.ts";
 * const bytes = new TextEncoder().encode("I'm 42  ok!");
 * const words = [];
 * for (let i = 0; i < bytes.length;) {
 *   const end = gpt2WordEnd(bytes, i, bytes.length);
 *   words.push(new TextDecoder().decode(bytes.subarray(i, end)));
 *   i = end;
 * }
 * console.log(words); // ["I", "'m", " 42", " ", " ok", "!"]
 * ```
 */
export function gpt2WordEnd(b: Uint8Array, start: number, end: number): number {
  const x = b[start];
  if (x === APOSTROPHE && start + 1 < end) {
    // 's|'t|'re|'ve|'m|'ll|'d
    const a = b[start + 1];
    if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) return start + 2; // s t m d
    const c = start + 2 < end ? b[start + 2] : 0;
    if ((a === 0x72 || a === 0x76) && c === 0x65) return start + 3; // re ve
    if (a === 0x6c && c === 0x6c) return start + 3; // ll
  }
  if (x === SPACE_BYTE && start + 1 < end) {
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space takes the run after it along.
    const after = classAt(b, start + 1);
    if (after !== SPACE) return runEnd(b, start + 1, end, after);
  } else {
    const cls = x < 0x80 ? BMP_CLASS[x] : wideClass(b, start, x);
    if (cls !== SPACE) return runEnd(b, start, end, cls);
  }
  // `\s+(?!\S)|\s+`: a run of spaces, less its last character when a non-space follows
  // (that one goes with the next word), unless the run is a single character.
  const stop = runEnd(b, start, end, SPACE);
  if (stop === end) return stop;
  let last = stop - 1;
  while ((b[last] & 0xc0) === 0x80) last--;
  return last > start ? last : stop;
}
