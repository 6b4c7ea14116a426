/**
 * Star-graph datasets: a generated file tokenized into fixed-length rows, with the sizes the
 * reference's `update_config` derives from it (vocab size, block size, context length).
 *
 * @module
 */

import { StarGraphTokenizer } from "../tokenizers/stargraph.ts";

/** A tokenized star-graph file. */
export interface StarGraphDataset {
  /** (rows, blockSize) token ids, one line (plus EOS) per row, in file order. */
  tokens: Int32Array;
  rows: number;
  /** Tokens of a full line plus EOS (the reference's `block_size`). */
  blockSize: number;
  /**
   * The reference's `context_length`: tokens of the prefix through `=`, plus EOS, minus 2 —
   * the position of `=`, where pairs start.
   */
  contextLength: number;
  vocabSize: number;
  eosTokenId: number;
  tokenizer: StarGraphTokenizer;
}

/** Tokenizes star-graph text (the file's contents); `source` names it in errors. */
export function parseStarGraph(text: string, maxNodes: number, source: string): StarGraphDataset {
  const tok = new StarGraphTokenizer(maxNodes);
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  if (lines.length === 0 || (lines.length === 1 && lines[0].trim() === "")) {
    throw new Error(`Star-graph data file "${source}" is empty`);
  }
  const first = tok.tokenize(lines[0].trim(), `"${source}" line 1`);
  const T = first.length;
  const eq = first.indexOf(tok.equals);
  if (eq < 0) throw new Error(`"${source}" line 1: no "=" between the graph and the path`);
  const tokens = new Int32Array(lines.length * T);
  for (let i = 0; i < lines.length; i++) {
    const where = `"${source}" line ${i + 1}`;
    const t = i === 0 ? first : tok.tokenize(lines[i].trim(), where);
    if (t.length !== T) {
      throw new Error(`${where}: ${t.length} tokens, but line 1 has ${T}`);
    }
    tokens.set(t, i * T);
  }
  return {
    tokens,
    rows: lines.length,
    blockSize: T,
    // Prefix through "=" is eq + 1 tokens; + EOS − 2 = eq.
    contextLength: eq,
    vocabSize: tok.vocabSize,
    eosTokenId: tok.eosTokenId,
    tokenizer: tok,
  };
}

/** Reads and tokenizes a star-graph file; missing, empty or malformed files are one-line errors. */
export async function loadStarGraph(path: string, maxNodes: number): Promise<StarGraphDataset> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`Star-graph data file "${path}" not found`);
    }
    throw new Error(`Cannot read star-graph data file "${path}": ${(e as Error).message}`);
  }
  return parseStarGraph(text, maxNodes, path);
}
