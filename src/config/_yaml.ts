/**
 * The one module that talks to the YAML library (`npm:js-yaml`, a YAML 1.2 core-schema
 * parser; `@std/yaml` is a port of it). Switching libraries is a change to this file only.
 * Not part of the `mod.ts` graph.
 *
 * @module
 */

// Full specifier on purpose: files imported by URL ignore the import map.
// deno-lint-ignore no-import-prefix
import * as jsYaml from "npm:js-yaml@5.5.0";
import { CONFIG_LIMITS } from "./limits.ts";
import { FloatLiteral } from "./schema.ts";

/** A YAML syntax error with its 1-based position when the parser gave one. */
export class YamlSyntaxError extends Error {
  /**
   * @param reason What is wrong, without position.
   * @param line 1-based line, or undefined.
   * @param column 1-based column, or undefined.
   */
  constructor(
    readonly reason: string,
    readonly line: number | undefined,
    readonly column: number | undefined,
  ) {
    super(line === undefined ? reason : `${reason} at line ${line}, column ${column}`);
    this.name = "YamlSyntaxError";
  }
}

// The core schema's float tag, except that integer-valued float literals (`6.0`, `1e3`) come
// back as FloatLiteral so integer keys can reject them. `1e-4` is a float in this schema,
// as in OmegaConf's loader.
const floatTag = jsYaml.defineScalarTag<number | FloatLiteral>(jsYaml.floatCoreTag.tagName, {
  implicit: jsYaml.floatCoreTag.implicit,
  matchByTagPrefix: jsYaml.floatCoreTag.matchByTagPrefix,
  implicitFirstChars: jsYaml.floatCoreTag.implicitFirstChars,
  identify: () => false,
  resolve(source, isExplicit, tagName) {
    const v = jsYaml.floatCoreTag.resolve(source, isExplicit, tagName);
    if (v === jsYaml.NOT_RESOLVED) return v;
    return Number.isInteger(v) ? new FloatLiteral(v, source) : v;
  },
});
const LOAD_SCHEMA = jsYaml.CORE_SCHEMA.withTags(floatTag);

/**
 * Parses one YAML document (YAML 1.2 core schema: `yes` is a string, `1e-4` a float).
 * Empty text or only comments gives `null`, as PyYAML does. Integer-valued float literals
 * come back as {@link FloatLiteral}.
 *
 * @param text YAML source.
 * @returns The parsed value.
 * @throws {YamlSyntaxError} On malformed YAML or more than one document.
 */
export function parseYaml(text: string): unknown {
  let docs: unknown[];
  try {
    // Aliases and nesting are bounded here, so an alias bomb is refused while parsing.
    docs = jsYaml.loadAll(text, {
      schema: LOAD_SCHEMA,
      maxAliases: CONFIG_LIMITS.yamlAliases,
      maxDepth: CONFIG_LIMITS.depth,
    });
  } catch (e) {
    const err = e as { reason?: unknown; mark?: { line?: unknown; column?: unknown } };
    const reason = typeof err.reason === "string" ? err.reason : String(e);
    const line = typeof err.mark?.line === "number" ? err.mark.line + 1 : undefined;
    const column = typeof err.mark?.column === "number" ? err.mark.column + 1 : undefined;
    throw new YamlSyntaxError(reason, line, column);
  }
  if (docs.length > 1) {
    throw new YamlSyntaxError(
      `expected one YAML document, found ${docs.length}`,
      undefined,
      undefined,
    );
  }
  return docs.length === 0 ? null : docs[0];
}

/**
 * Writes a string or a list of plain values as one line of YAML (flow style for lists),
 * quoting where the text would otherwise read as another type (`"123"`, `''`).
 *
 * @param value A string, or a list of strings, numbers and such lists.
 * @returns One line of YAML.
 */
export function yamlInline(value: unknown): string {
  const text = jsYaml.dump(value, { flowLevel: 0 }).trimEnd();
  return text.includes("\n") ? JSON.stringify(value) : text;
}
