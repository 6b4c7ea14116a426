/**
 * The star-graph tokenizer of microsoft/BST (`data/stargraph.py`): node ids 0..max_nodes−1,
 * then `|` = max_nodes, `=` = max_nodes+1, `/` = max_nodes+2, `$` (pad) = max_nodes+3 and EOS
 * = max_nodes+4; commas are skipped; every line gets an EOS appended; vocab = max_nodes + 6.
 *
 * One difference on purpose: where the reference fails with a bare `KeyError` (an unknown
 * symbol, a node id ≥ max_nodes, a number with a leading zero such as `07`), this tokenizer
 * throws one line that names the place (`where`), the symbol and its column.
 *
 * @module
 */

const COMMA = 0x2c, PIPE = 0x7c, EQUALS = 0x3d, SLASH = 0x2f, DOLLAR = 0x24;
const ZERO = 0x30, NINE = 0x39;
/** In the byte → token table: a comma (skipped); −1 means not a symbol. */
const SKIP = -2;

/**
 * Tokenizer for star-graph lines with `maxNodes` node ids.
 *
 * @example
 * ```ts
 * import { StarGraphTokenizer } from "./stargraph.ts";
 * const tok = new StarGraphTokenizer(50);
 * const ids = tok.tokenize("12,15|13,1/12,8=12,13,1,8");
 * console.log(ids); // [12, 15, 50, 13, 1, 52, 12, 8, 51, 12, 13, 1, 8, 54]
 * console.log(tok.decode(ids)); // "12,15|13,1/12,8=12,13,1,8"
 * ```
 */
export class StarGraphTokenizer {
  /** Token of `|` (between edges): max_nodes. */
  readonly pipe: number;
  /** Token of `=` (between the question and the path): max_nodes + 1. */
  readonly equals: number;
  /** Token of `/` (between the edges and the question): max_nodes + 2. */
  readonly slash: number;
  /** Token of `$` (padding; never in generated files): max_nodes + 3. */
  readonly pad: number;
  /** End of sequence, appended to every line: max_nodes + 4. */
  readonly eosTokenId: number;
  /** max_nodes + 6, as the reference sets `vocab_size` (one id above EOS is unused). */
  readonly vocabSize: number;
  /** Token of each non-digit byte: a symbol's id, {@linkcode SKIP} for a comma, else −1. */
  readonly #symbols = new Int32Array(256).fill(-1);

  /** A tokenizer for node ids 0..maxNodes−1 (the reference's `stargraph_max_nodes`). */
  constructor(readonly maxNodes: number) {
    if (!Number.isSafeInteger(maxNodes) || maxNodes < 1) {
      throw new Error(`max_nodes must be a positive integer, got ${maxNodes}`);
    }
    this.pipe = maxNodes;
    this.equals = maxNodes + 1;
    this.slash = maxNodes + 2;
    this.pad = maxNodes + 3;
    this.eosTokenId = maxNodes + 4;
    this.vocabSize = maxNodes + 6;
    this.#symbols[COMMA] = SKIP;
    this.#symbols[PIPE] = this.pipe;
    this.#symbols[EQUALS] = this.equals;
    this.#symbols[SLASH] = this.slash;
    this.#symbols[DOLLAR] = this.pad;
  }

  /**
   * Tokenizes the ASCII bytes `bytes[start, end)` (no EOS added) into `out` from `outStart`,
   * writing at most `outEnd − outStart` tokens but counting them all: the dataset's hot path,
   * which parses files as bytes without building strings.
   *
   * @param where names the input in errors, e.g. `Star-graph data file "x.txt" line 3` (a
   *   function is called only when there is an error).
   * @returns the number of tokens of the input (may exceed the room in `out`).
   * @throws One line naming `where`, the symbol and its column for an unknown symbol, a node
   *   id ≥ max_nodes or a number with a leading zero.
   *
   * @example
   * ```ts
   * import { StarGraphTokenizer } from "./stargraph.ts";
   * const bytes = new TextEncoder().encode("3,4|3,5/3,4=3,4");
   * const out = new Int32Array(16);
   * const n = new StarGraphTokenizer(10).encodeBytes(bytes, 0, bytes.length, out, 0, 16);
   * console.log(n, [...out.subarray(0, n)]); // 11 [3, 4, 10, 3, 5, 12, 3, 4, 11, 3, 4]
   * ```
   */
  encodeBytes(
    bytes: Uint8Array,
    start: number,
    end: number,
    out: Int32Array,
    outStart: number,
    outEnd: number,
    where: string | (() => string) = "Input",
  ): number {
    const symbols = this.#symbols;
    const maxNodes = this.maxNodes;
    let n = 0;
    let pos = outStart;
    let i = start;
    while (i < end) {
      const b = bytes[i];
      let t: number;
      if (b >= ZERO && b <= NINE) {
        const first = i;
        let id = 0;
        let c = b;
        do {
          // Past max_nodes the value only has to stay ≥ max_nodes: stop growing it.
          if (id < maxNodes) id = id * 10 + (c - ZERO);
          c = ++i < end ? bytes[i] : 0;
        } while (c >= ZERO && c <= NINE);
        if (b === ZERO && i - first > 1) {
          throw this.#error(where, bytes, start, first, i, "has a leading zero");
        }
        if (id >= maxNodes) {
          throw this.#error(where, bytes, start, first, i, `is not below max_nodes ${maxNodes}`);
        }
        t = id;
      } else {
        t = symbols[b];
        i++;
        if (t === SKIP) continue;
        if (t < 0) throw this.#error(where, bytes, start, i - 1, i - 1 + utf8Length(b), "");
      }
      if (pos < outEnd) out[pos++] = t;
      n++;
    }
    return n;
  }

  /**
   * One line naming the place, the text at `bytes[from, to)` and its column, e.g.
   * `{where}: node id 123 at column 7 is not below max_nodes 50`, or
   * `{where}: unknown symbol "#" at column 4` when `why` is empty.
   */
  #error(
    where: string | (() => string),
    bytes: Uint8Array,
    lineStart: number,
    from: number,
    to: number,
    why: string,
  ): Error {
    const dec = new TextDecoder();
    const column = dec.decode(bytes.subarray(lineStart, from)).length + 1;
    const text = dec.decode(bytes.subarray(from, Math.min(to, bytes.length)));
    const what = why === "" ? `unknown symbol ${JSON.stringify(text)}` : `node id ${text}`;
    const place = typeof where === "string" ? where : where();
    return new Error(`${place}: ${what} at column ${column}${why === "" ? "" : ` ${why}`}`);
  }

  /**
   * Tokens of `text` (no EOS added): the reference's `encode`.
   *
   * @param where names the input in errors (default `Input`).
   * @throws One line naming `where`, the symbol and its column for an unknown symbol, a node
   *   id ≥ max_nodes or a number with a leading zero.
   *
   * @example
   * ```ts
   * import { StarGraphTokenizer } from "./stargraph.ts";
   * console.log(new StarGraphTokenizer(50).encode("1,2|1,3")); // [1, 2, 50, 1, 3]
   * ```
   */
  encode(text: string, where = "Input"): number[] {
    const bytes = new TextEncoder().encode(text);
    const out = new Int32Array(bytes.length);
    const n = this.encodeBytes(bytes, 0, bytes.length, out, 0, out.length, where);
    return Array.from(out.subarray(0, n));
  }

  /**
   * `encode(line)` plus EOS: the reference's `tokenize` (one row of the dataset).
   *
   * @example
   * ```ts
   * import { StarGraphTokenizer } from "./stargraph.ts";
   * console.log(new StarGraphTokenizer(50).tokenize("1,2/1,2=1,2")); // [1, 2, 52, 1, 2, 51, 1, 2, 54]
   * ```
   */
  tokenize(line: string, where?: string): number[] {
    const t = this.encode(line, where);
    t.push(this.eosTokenId);
    return t;
  }

  /**
   * Text of `ids`: node ids and symbols, a comma between consecutive node ids (as the files
   * write them), `$` for pad; EOS decodes to nothing (the reference's decoder maps it to
   * "") and does not separate node ids, so `decode(tokenize(line)) === line` for every line
   * the tokenizer accepts without leading commas, doubled commas or a comma next to a symbol.
   *
   * @throws For an id outside the vocabulary (the unused id max_nodes + 5 included).
   *
   * @example
   * ```ts
   * import { StarGraphTokenizer } from "./stargraph.ts";
   * console.log(new StarGraphTokenizer(50).decode([1, 2, 51, 1, 2, 54])); // "1,2=1,2"
   * ```
   */
  decode(ids: ArrayLike<number>): string {
    let s = "";
    let prevNode = false;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (Number.isInteger(id) && id >= 0 && id < this.maxNodes) {
        if (prevNode) s += ",";
        s += String(id);
        prevNode = true;
        continue;
      }
      if (id === this.eosTokenId) continue;
      if (id === this.pipe) s += "|";
      else if (id === this.equals) s += "=";
      else if (id === this.slash) s += "/";
      else if (id === this.pad) s += "$";
      else {
        throw new Error(
          `Token id ${id} is outside the star-graph vocabulary (0..${this.eosTokenId})`,
        );
      }
      prevNode = false;
    }
    return s;
  }
}

/** Bytes of the UTF-8 sequence that starts with byte `b` (1 for ASCII or a stray byte). */
function utf8Length(b: number): number {
  return b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
}
