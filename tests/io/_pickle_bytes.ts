/** Hand-assembled bytes for reader tests: pickles, and tiny `.pt` archives around them. */

import { concatBytes, zipStored } from "../../src/io/zip.ts";

/** Bytes from parts: numbers as bytes, strings as their char codes (ASCII/latin1). */
export function pk(...parts: (readonly (number | readonly number[])[] | string)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "string") { for (const ch of p) out.push(ch.charCodeAt(0)); }
    else for (const x of p.flat()) out.push(x);
  }
  return new Uint8Array(out);
}

/** Bytes from a hex string (as Python's `bytes.hex()` prints them). */
export function hex(text: string): Uint8Array {
  return new Uint8Array(text.match(/../g)!.map((h) => parseInt(h, 16)));
}

/** A `.pt` archive: `archive/data.pkl` and the given storage records `archive/data/<key>`. */
export function ptArchive(
  pickleBytes: Uint8Array,
  storages: Record<string, Uint8Array> = {},
): Uint8Array {
  return concatBytes(zipStored([
    { name: "archive/data.pkl", data: pickleBytes },
    ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data })),
    { name: "archive/version", data: new TextEncoder().encode("3\n") },
  ]));
}
