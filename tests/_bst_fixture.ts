/** The `bst_tiny` PyTorch fixture (tests/fixtures/bst_tiny.safetensors) and its config. */

import type { BstConfig } from "../src/models/bst_config.ts";
import { bstConfigFromMetadata } from "../src/conformance/conformance.ts";
import { parseSafetensors, type SafetensorsFile } from "../src/io/safetensors.ts";

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
  return bstConfigFromMetadata(fixture.metadata);
}
