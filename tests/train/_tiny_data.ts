// A tiny path-like task shared by the trainer tests: 3 random "edge" tokens, "=", then the
// reversed edges, EOS (vocabulary 12, rows of 8), held in memory as a token table.

import { tableData, type TrainData } from "../../src/train/trainer.ts";

/** (n, 8) rows of the task, the same for the same n. */
export function tinyRows(n: number): Int32Array {
  const T = 8;
  const rows = new Int32Array(n * T);
  let x = 7;
  for (let r = 0; r < n; r++) {
    const a = [];
    for (let i = 0; i < 3; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      a.push((x >>> 8) % 9);
    }
    rows.set([...a, 9, a[2], a[1], a[0], 11], r * T);
  }
  return rows;
}

/** The task as training data: the first `nVal` rows validate, the rest train. */
export function tinyData(n: number, nVal = Math.ceil(n / 10), seed = 1337): TrainData {
  const T = 8;
  const rows = tinyRows(n);
  return tableData({
    seqLen: T,
    vocabSize: 12,
    eosTokenId: 11,
    contextLength: 3,
    train: rows.subarray(nVal * T),
    val: rows.subarray(0, nVal * T),
    pathTask: { prefixLen: 4, pathLen: 4 },
  }, seed);
}
