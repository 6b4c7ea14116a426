/**
 * The star-graph tokenizer of microsoft/BST (`data/stargraph.py`): node ids 0..max_nodes−1,
 * then `|` = max_nodes, `=` = max_nodes+1, `/` = max_nodes+2, `$` (pad) = max_nodes+3 and EOS
 * = max_nodes+4; commas are skipped; every line gets an EOS appended; vocab = max_nodes + 6.
 *
 * @module
 */

/** Tokenizer for star-graph lines with `maxNodes` node ids. */
export class StarGraphTokenizer {
  readonly pipe: number;
  readonly equals: number;
  readonly slash: number;
  readonly pad: number;
  readonly eosTokenId: number;
  /** max_nodes + 6, as the reference sets `vocab_size`. */
  readonly vocabSize: number;

  constructor(readonly maxNodes: number) {
    if (!Number.isInteger(maxNodes) || maxNodes < 1) {
      throw new Error(`max_nodes must be a positive integer, got ${maxNodes}`);
    }
    this.pipe = maxNodes;
    this.equals = maxNodes + 1;
    this.slash = maxNodes + 2;
    this.pad = maxNodes + 3;
    this.eosTokenId = maxNodes + 4;
    this.vocabSize = maxNodes + 6;
  }

  /**
   * Tokens of `text` (no EOS added). Throws a message naming the symbol (and `where`, e.g.
   * `"data.txt" line 3`) for an unknown symbol or a node id ≥ max_nodes.
   */
  encode(text: string, where = "input"): number[] {
    const out: number[] = [];
    let i = 0;
    while (i < text.length) {
      const ch = text[i];
      if (ch === ",") {
        i++;
        continue;
      }
      if (ch >= "0" && ch <= "9") {
        let j = i;
        while (j < text.length && text[j] >= "0" && text[j] <= "9") j++;
        const id = Number(text.slice(i, j));
        if (id >= this.maxNodes) {
          throw new Error(`${where}: node id ${id} is not below max_nodes ${this.maxNodes}`);
        }
        out.push(id);
        i = j;
        continue;
      }
      const t = ch === "|"
        ? this.pipe
        : ch === "="
        ? this.equals
        : ch === "/"
        ? this.slash
        : ch === "$"
        ? this.pad
        : -1;
      if (t < 0) {
        throw new Error(`${where}: unknown symbol ${JSON.stringify(ch)} at column ${i + 1}`);
      }
      out.push(t);
      i++;
    }
    return out;
  }

  /** `encode(line)` plus EOS: the reference's `tokenize`. */
  tokenize(line: string, where?: string): number[] {
    const t = this.encode(line, where);
    t.push(this.eosTokenId);
    return t;
  }

  /**
   * Text of `ids`: node ids and symbols, commas between consecutive node ids (as the files
   * write them), EOS and pad dropped.
   */
  decode(ids: ArrayLike<number>): string {
    let s = "";
    let prevNode = false;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < this.maxNodes) {
        if (prevNode) s += ",";
        s += String(id);
        prevNode = true;
        continue;
      }
      prevNode = false;
      if (id === this.pipe) s += "|";
      else if (id === this.equals) s += "=";
      else if (id === this.slash) s += "/";
      else if (id === this.pad || id === this.eosTokenId) continue;
      else {throw new Error(
          `Token id ${id} is outside the star-graph vocabulary of ${this.vocabSize}`,
        );}
    }
    return s;
  }
}
