// A tiny path-like task shared by the trainer tests: 3 random "edge" tokens, "=", then the
// reversed edges, EOS (vocabulary 12, rows of 8), held in memory as a token table.

import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
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

/**
 * The config the trainer tests start from: a 1-layer, 32-wide BST, 6 steps of 4 rows in 2
 * micro-batches, validation every 3 steps on 1 batch, a log line every step. `extra`
 * overrides come last, so they win.
 */
export async function tinyConfig(outDir: string, extra: string[] = []): Promise<Config> {
  return await loadConfig({
    overrides: [
      "model.n_layer=1",
      "model.n_head=2",
      "model.n_embd=32",
      "data.effective_batch_size=4",
      "data.gradient_accum_steps=2",
      "data.dataset=stargraph",
      "trainer.train_batches=6",
      "trainer.val_interval=3",
      "trainer.val_batches=1",
      "trainer.log_interval=1",
      "optimizer.learning_rate=0.01",
      "lr_scheduler.decay_lr=false",
      `trainer.out_dir=${outDir}`,
      ...extra,
    ],
  });
}
