// mod.ts exports the API a user needs, not internals, and every exported function and class
// carries a runnable @example (deno test --doc runs them).

import assert from "node:assert/strict";

interface DocTag {
  kind: string;
}
interface DocSymbol {
  name: string;
  declarations: { kind: string; jsDoc?: { doc?: string; tags?: DocTag[] } }[];
}

async function modSymbols(): Promise<DocSymbol[]> {
  const root = new URL("../../", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", "mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const doc = JSON.parse(new TextDecoder().decode(out.stdout));
  const [mod] = Object.values(doc.nodes) as { symbols: DocSymbol[] }[];
  return mod.symbols;
}

Deno.test("mod.ts exports a curated API: every function and class has an @example", async () => {
  const symbols = await modSymbols();
  assert.ok(symbols.length <= 90, `mod.ts exports ${symbols.length} symbols`);
  const missing = symbols.filter((s) =>
    s.declarations.some((d) =>
      (d.kind === "function" || d.kind === "class") &&
      !(d.jsDoc?.tags ?? []).some((t) => t.kind === "example")
    )
  ).map((s) => s.name);
  assert.deepEqual(missing, [], `exports without an @example: ${missing.join(", ")}`);
  const undocumented = symbols.filter((s) => !s.declarations.some((d) => d.jsDoc?.doc))
    .map((s) => s.name);
  assert.deepEqual(undocumented, [], `exports without documentation: ${undocumented.join(", ")}`);
});
