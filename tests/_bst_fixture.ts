/** The `bst_tiny` PyTorch fixture (tests/fixtures/bst_tiny.safetensors) and its config. */

import type { BstConfig } from "../src/models/bst_config.ts";
import { parseSafetensors, type SafetensorsFile } from "../src/train/safetensors.ts";

let cached: SafetensorsFile | undefined;

/** Parses the fixture once per process. */
export async function bstTiny(): Promise<SafetensorsFile> {
  cached ??= parseSafetensors(
    await Deno.readFile(new URL("./fixtures/bst_tiny.safetensors", import.meta.url)),
    "tests/fixtures/bst_tiny.safetensors",
  );
  return cached;
}

/** The fixture's model config as a {@linkcode BstConfig}. */
export function tinyConfig(fixture: SafetensorsFile): BstConfig {
  const c = JSON.parse(fixture.metadata.config);
  return {
    vocabSize: c.vocab_size,
    eosTokenId: c.eos_token_id,
    nLayer: c.n_layer,
    nHead: c.n_head,
    nEmbd: c.n_embd,
    blockSize: c.block_size,
    bias: c.bias,
    contextLength: c.context_length,
    pairMinimumGap: c.bst_pair_minimum_gap,
    pairMaximumGap: c.bst_pair_maximum_gap,
    pairSubsampleRate: 1,
    singleGapPredictionMode: c.bst_single_gap_prediction_mode,
  };
}
