/**
 * Compute pipelines and dispatches.
 *
 * Kernels are planned once and encoded many times: {@linkcode planDispatch} compiles (or
 * takes from the cache) the pipeline for a WGSL source + entry point + `override` constants,
 * writes the kernel's uniform parameters, and builds the bind group. A training step is then
 * a list of {@linkcode Dispatch}es encoded into one compute pass — no allocation, no
 * read-back.
 *
 * Binding convention for every kernel in `kernels/`: `@group(0) @binding(0)` is a uniform
 * `Params` struct; storage buffers follow at bindings 1, 2, … in the order the wrapper passes
 * them.
 *
 * @module
 */

import { type Gpu, withErrorScope } from "./device.ts";
import { roundUp, Tensor } from "./tensor.ts";

/** One planned compute dispatch. */
export interface Dispatch {
  label: string;
  /** The uniform `Params` buffer (rewrite with {@linkcode writeParams} between steps). */
  params: GPUBuffer;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: readonly [number, number, number];
  /** Floating-point operations of one run, where the planner counts them (matmul, attention). */
  flops?: number;
  /**
   * Copies into the textures the dispatch reads, encoded right before it (outside the compute
   * pass): the texture-operand matmul of CPU adapters.
   */
  uploads?: readonly TextureUpload[];
}

/**
 * A copy of a tensor's bytes into a texture viewed as a flat array: whole rows of `width`
 * texels, then `lastWidth` texels of one more row (see `matmul_tex_wgsl.ts`).
 */
export interface TextureUpload {
  src: GPUBuffer;
  srcOffset: number;
  texture: GPUTexture;
  /** Bytes per texel (16 for rgba32float, 4 for r32float). */
  texelBytes: number;
  width: number;
  /** Whole rows. */
  rows: number;
  /** Texels in the partial row after them (0 for none). */
  lastWidth: number;
}

/** Texels per row of a flat texture (a power of two; 16 KiB rows for rgba32float). */
export const TEX_WIDTH = 1024;

/**
 * WGSL of `fn texel(t: u32) -> vec2<u32>`: the coordinates of texel t of a flat texture
 * ({@linkcode flatTexture}).
 */
export const TEXEL_WGSL =
  `// Texel t of a flat texture (${TEX_WIDTH} texels a row, in storage order).
fn texel(t: u32) -> vec2<u32> {
  return vec2<u32>(t & ${TEX_WIDTH - 1}u, t >> ${Math.log2(TEX_WIDTH)}u);
}
`;

/** Formats of flat textures: 4 f32, 1 f32, 1 i32 or 1 u32 per texel. */
export type FlatTextureFormat = "rgba32float" | "r32float" | "r32sint" | "r32uint";

/** How a read-only storage array of each element type is read from a flat texture instead. */
const TEXTURE_ELEMENTS: Record<
  string,
  { format: FlatTextureFormat; texture: string; pick: string }
> = {
  "f32": { format: "r32float", texture: "texture_2d<f32>", pick: ".x" },
  "i32": { format: "r32sint", texture: "texture_2d<i32>", pick: ".x" },
  "u32": { format: "r32uint", texture: "texture_2d<u32>", pick: ".x" },
  "vec4<f32>": { format: "rgba32float", texture: "texture_2d<f32>", pick: "" },
};

const DECLARATION =
  /@group\(0\)\s*@binding\((\d+)\)\s*var<storage,\s*read>\s+(\w+)\s*:\s*array<(.+?)>\s*;/g;

/**
 * Rewrites WGSL so that the read-only storage arrays declared at `bindings` are read from flat
 * textures ({@linkcode flatTexture}) instead: each declaration `var<storage, read> x:
 * array<T>` becomes `var x__tex: texture_2d<…>` and every `x[i]` becomes `x__at(u32(i))`, a
 * `textureLoad` of texel i. Element types f32, i32, u32 and vec4<f32>. For CPU adapters, where a
 * storage load costs a loop over the SIMD lanes and a texture load is a vector gather.
 *
 * @returns the new code and, per rewritten binding, the texture format it needs (a binding
 *   declared with two element types in the file is left a buffer).
 * @throws Error when a rewritten array's element type has no texture format. (Other uses than
 *   indexing, such as `arrayLength`, make the shader fail to compile.)
 */
export function textureInputsWgsl(
  code: string,
  bindings: readonly number[],
): { code: string; formats: Map<number, FlatTextureFormat> } {
  const formats = new Map<number, FlatTextureFormat>();
  const names: { name: string; pick: string; ret: string }[] = [];
  // A binding number that entry points declare with different element types stays a buffer
  // (which declaration the dispatch's entry point uses is not known here).
  const types = new Map<number, Set<string>>();
  for (const m of code.matchAll(DECLARATION)) {
    const b = Number(m[1]);
    types.set(b, (types.get(b) ?? new Set()).add(m[3].replace(/\s+/g, "")));
  }
  let out = code.replace(DECLARATION, (decl, b: string, name: string, elem: string) => {
    const binding = Number(b);
    if (!bindings.includes(binding) || types.get(binding)!.size > 1) return decl;
    const e = TEXTURE_ELEMENTS[elem.replace(/\s+/g, "")];
    if (!e) throw new Error(`Cannot read array<${elem}> "${name}" from a texture`);
    formats.set(binding, e.format);
    names.push({ name, pick: e.pick, ret: elem });
    return `@group(0) @binding(${binding}) var ${name}__tex: ${e.texture};`;
  });
  // Other uses of a rewritten name (arrayLength, a pointer) no longer compile: the shader's
  // compile error names them. Comments and locals of the same name are left alone.
  for (const { name } of names) out = replaceIndexing(out, name);
  if (names.length === 0) return { code, formats };
  const loaders = names.map(({ name, pick, ret }) =>
    `fn ${name}__at(i: u32) -> ${ret} {\n  return textureLoad(${name}__tex, texel(i), 0)${pick};\n}\n`
  );
  return { code: `${out}\n${TEXEL_WGSL}\n${loaders.join("\n")}`, formats };
}

/** Replaces every `name[expr]` (brackets balanced) by `name__at(u32(expr))`. */
function replaceIndexing(code: string, name: string): string {
  const re = new RegExp(`(?<![\\w.])${name}\\s*\\[`, "g");
  let result = "";
  let last = 0;
  for (let m = re.exec(code); m !== null; m = re.exec(code)) {
    let depth = 1;
    let k = m.index + m[0].length;
    for (; k < code.length && depth > 0; k++) {
      if (code[k] === "[") depth++;
      else if (code[k] === "]") depth--;
    }
    const inner = code.slice(m.index + m[0].length, k - 1);
    result += `${code.slice(last, m.index)}${name}__at(u32(${replaceIndexing(inner, name)}))`;
    last = k;
    re.lastIndex = k;
  }
  return result + code.slice(last);
}

/** Elements of a flat texture's format per texel. */
function perTexel(format: FlatTextureFormat): number {
  return format === "rgba32float" ? 4 : 1;
}

/** Rows of {@linkcode TEX_WIDTH} texels a flat texture of `elements` elements needs. */
function flatTextureHeight(elements: number, format: FlatTextureFormat): number {
  return Math.max(1, Math.ceil(Math.ceil(elements / perTexel(format)) / TEX_WIDTH));
}

/**
 * Whether {@linkcode flatTexture} can hold `elements` elements of `t` in `format`: the texture
 * is no taller than the adapter allows and the tensor's offset is a multiple of the texel size.
 */
export function flatTextureFits(
  gpu: Gpu,
  t: Tensor,
  elements: number,
  format: FlatTextureFormat,
): boolean {
  return flatTextureHeight(elements, format) <= gpu.device.limits.maxTextureDimension2D &&
    t.offset % (4 * perTexel(format)) === 0;
}

/**
 * A texture holding the first `elements` elements of `t` in storage order, row after row of
 * {@linkcode TEX_WIDTH} texels (4 elements per texel for rgba32float, else 1), and the upload
 * that fills it; put the upload in the `uploads` of each dispatch reading it. Kernels on CPU
 * adapters read operands this way: on llvmpipe a texture load is a vector gather, a storage
 * load a loop over the lanes (see `matmul_tex_wgsl.ts`).
 *
 * @throws Error when the texture would be taller than the adapter allows, or the tensor's
 *   offset is not a multiple of the texel size.
 */
export function flatTexture(
  gpu: Gpu,
  t: Tensor,
  elements: number,
  format: FlatTextureFormat,
  label: string,
): { view: GPUTextureView; upload: TextureUpload } {
  const per = perTexel(format);
  const texels = Math.ceil(elements / per);
  const rows = Math.floor(texels / TEX_WIDTH);
  const lastWidth = texels - rows * TEX_WIDTH;
  const height = flatTextureHeight(elements, format);
  const max = gpu.device.limits.maxTextureDimension2D;
  if (!flatTextureFits(gpu, t, elements, format)) {
    throw new Error(
      `Cannot plan "${label}" as a texture: ${elements} elements need ${height} rows of ` +
        `${TEX_WIDTH} texels (the adapter allows ${max}) at a ${4 * per}-byte-aligned offset`,
    );
  }
  const texture = gpu.device.createTexture({
    label,
    size: [TEX_WIDTH, height],
    format,
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
  });
  return {
    view: texture.createView(),
    upload: {
      src: t.buffer,
      srcOffset: t.offset,
      texture,
      texelBytes: 4 * per,
      width: TEX_WIDTH,
      rows,
      lastWidth,
    },
  };
}

/** Encodes the copies of `uploads` (outside any pass). */
export function encodeUploads(encoder: GPUCommandEncoder, uploads: readonly TextureUpload[]): void {
  for (const u of uploads) {
    const bytesPerRow = u.width * u.texelBytes;
    if (u.rows > 0) {
      encoder.copyBufferToTexture(
        { buffer: u.src, offset: u.srcOffset, bytesPerRow },
        { texture: u.texture },
        [u.width, u.rows],
      );
    }
    if (u.lastWidth > 0) {
      encoder.copyBufferToTexture(
        { buffer: u.src, offset: u.srcOffset + u.rows * bytesPerRow },
        { texture: u.texture, origin: [0, u.rows] },
        [u.lastWidth, 1],
      );
    }
  }
}

/**
 * A buffer-to-buffer copy inside a step (ends the current compute pass). Offsets and size
 * must be multiples of 4 bytes, unlike storage bindings, which need 256-byte-aligned offsets.
 */
export interface BufferCopy {
  label: string;
  copy: {
    src: GPUBuffer;
    srcOffset: number;
    dst: GPUBuffer;
    dstOffset: number;
    size: number;
  };
}

/** One step of a planned sequence: a compute dispatch or a buffer copy. */
export type Op = Dispatch | BufferCopy;

/**
 * Plans a copy of `rows` rows of width `width` from `src` starting at row `srcRow` to `dst`
 * starting at row `dstRow` (both f32/i32 tensors of that width).
 */
export function planCopyRows(
  src: Tensor,
  srcRow: number,
  dst: Tensor,
  dstRow: number,
  rows: number,
  width: number,
): BufferCopy {
  const size = rows * width * 4;
  const srcOffset = src.offset + srcRow * width * 4;
  const dstOffset = dst.offset + dstRow * width * 4;
  if (
    srcOffset + size > src.offset + src.byteLength || dstOffset + size > dst.offset + dst.byteLength
  ) {
    throw new Error(
      `Cannot copy ${rows} rows of width ${width} from "${src.label}" row ${srcRow} to ` +
        `"${dst.label}" row ${dstRow}: out of range`,
    );
  }
  return {
    label: `${dst.label}.copy_rows`,
    copy: { src: src.buffer, srcOffset, dst: dst.buffer, dstOffset, size },
  };
}

/** A field of a uniform `Params` struct: a plain number is a u32. */
export type ParamField = number | { f32: number } | { i32: number };

/** Marks a uniform field as f32. */
export function f32(x: number): { f32: number } {
  return { f32: x };
}

/** Marks a uniform field as i32. */
export function i32(x: number): { i32: number } {
  return { i32: x };
}

/** Packs uniform fields (4 bytes each, in order) into a 16-byte-padded buffer. */
export function packParams(fields: readonly ParamField[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, roundUp(fields.length * 4, 16)));
  const view = new DataView(buf);
  fields.forEach((f, i) => {
    if (typeof f === "number") {
      if (!Number.isInteger(f) || f < 0 || f > 0xffffffff) {
        throw new Error(`Uniform field ${i} must be a u32, got ${f}`);
      }
      view.setUint32(i * 4, f, true);
    } else if ("f32" in f) view.setFloat32(i * 4, f.f32, true);
    else view.setInt32(i * 4, f.i32, true);
  });
  return buf;
}

/** Creates a uniform buffer holding `fields`. */
export function createParams(gpu: Gpu, label: string, fields: readonly ParamField[]): GPUBuffer {
  const data = packParams(fields);
  const buffer = gpu.device.createBuffer({
    label: `${label}.params`,
    size: data.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  gpu.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** Overwrites a uniform buffer made by {@linkcode createParams}. */
export function writeParams(gpu: Gpu, buffer: GPUBuffer, fields: readonly ParamField[]): void {
  gpu.queue.writeBuffer(buffer, 0, packParams(fields));
}

const modules = new Map<string, GPUShaderModule>();
const pipelines = new Map<string, Promise<GPUComputePipeline>>();
const codeIds = new Map<string, number>();

/** Specification of a compute pipeline. */
export interface PipelineSpec {
  /** WGSL source, usually from `import src from "../../kernels/x.wgsl" with { type: "text" }`. */
  code: string;
  /** Entry point name (default "main"). */
  entryPoint?: string;
  /** `override` constants set at pipeline creation. */
  constants?: Record<string, number>;
  /** Label for messages, e.g. "matmul". */
  label: string;
  /**
   * Which generated or rewritten form of its kernel `code` is (a matmul tile such as
   * `128x128_t16x16_k8`, `tex_inputs_2`), for messages and `deno task wgsl`.
   */
  variant?: string;
}

/**
 * One WGSL module exactly as this process handed it to `createShaderModule`: what
 * `deno task wgsl` writes out.
 */
export interface ShaderSource {
  /** The kernel: the last segment of the first dispatch label that compiled it (`norm_dx`). */
  kernel: string;
  /** The variant of the first pipeline that compiled it ("" for none). */
  variant: string;
  /** The full label of that dispatch (`transformer_f.h.0.ln_1.norm`). */
  label: string;
  /** The WGSL. */
  code: string;
  /** 14 hex digits hashing `code` (53-bit, for file names; not cryptographic). */
  hash: string;
  /** Every kernel name that planned a pipeline from this module, in first-use order. */
  kernels: string[];
  /** Every entry point compiled from it, in first-use order. */
  entryPoints: string[];
}

const shaderSources = new Map<string, ShaderSource>();

/** The kernel name of a dispatch label: its last dot-separated segment. */
export function kernelName(label: string): string {
  return label.slice(label.lastIndexOf(".") + 1);
}

/**
 * The final WGSL of a pipeline, recorded for {@linkcode compiledShaders}: the one path from a
 * spec to the source given to `createShaderModule`. `spec.code` arrives as its planner made
 * it: a `kernels/*.wgsl` file with its appended helpers, a generated tile (`matmul_wgsl.ts`,
 * `attention_wgsl.ts`), or either rewritten for texture inputs on CPU adapters
 * ({@linkcode textureInputsWgsl}, applied by {@linkcode planDispatch}). Any further
 * adapter-specific step belongs here, so that `deno task wgsl` and the compile cannot differ.
 */
export function shaderSource(spec: PipelineSpec): ShaderSource {
  const code = spec.code;
  let s = shaderSources.get(code);
  if (!s) {
    s = {
      kernel: kernelName(spec.label),
      variant: spec.variant ?? "",
      label: spec.label,
      code,
      hash: hash53(code),
      kernels: [],
      entryPoints: [],
    };
    shaderSources.set(code, s);
  }
  const kernel = kernelName(spec.label);
  if (!s.kernels.includes(kernel)) s.kernels.push(kernel);
  const entry = spec.entryPoint ?? "main";
  if (!s.entryPoints.includes(entry)) s.entryPoints.push(entry);
  return s;
}

/** Every shader module this process compiled or tried to compile, in first-use order. */
export function compiledShaders(): ShaderSource[] {
  return [...shaderSources.values()];
}

/** cyrb53 (a 53-bit string hash) as 14 hex digits. */
function hash53(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}

/**
 * Returns the cached compute pipeline for `spec`, compiling it on first use inside error
 * scopes so a WGSL or validation error becomes an `Error` naming the label.
 */
export function getPipeline(gpu: Gpu, spec: PipelineSpec): Promise<GPUComputePipeline> {
  const source = shaderSource(spec);
  const entryPoint = spec.entryPoint ?? "main";
  let id = codeIds.get(source.code);
  if (id === undefined) {
    id = codeIds.size;
    codeIds.set(source.code, id);
  }
  const constants = spec.constants ?? {};
  const key = `${id}|${entryPoint}|${
    Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",")
  }`;
  let p = pipelines.get(key);
  if (!p) {
    p = compile(gpu, spec, source, entryPoint, constants, key);
    pipelines.set(key, p);
    p.catch(() => pipelines.delete(key));
  }
  return p;
}

/**
 * The one-line message of a WGSL compile error: the kernel, its variant and hash, the line in
 * the source that `deno task wgsl` writes, the compiler's first line, and how to dump it.
 */
function compileErrorMessage(
  source: ShaderSource,
  error: { line?: number; column?: number; message: string },
): string {
  const lines = source.code.split("\n");
  const at = error.line
    ? ` at line ${error.line}:${error.column ?? 1} (\`${lines[error.line - 1]?.trim() ?? ""}\`)`
    : "";
  return `Cannot compile WGSL of kernel "${source.kernel}" (variant ${source.variant || "none"}, ` +
    `label ${source.label}, hash ${source.hash})${at}: ${error.message}; write the source ` +
    `with: deno task wgsl ${source.kernel} [--config FILE] [key=value ...] (the run's config)`;
}

/** Line, column and first message line of a compiler error as wgpu (Naga) reports it. */
function parseCompileError(message: string): { line?: number; column?: number; message: string } {
  const at = /wgsl:(\d+):(\d+)/.exec(message);
  const first = message.split("\n")[0].trim()
    .replace(/^Cannot compile shader "[^"]*": GPU validation error: /, "")
    .replace(/^Shader '[^']*' /, "");
  return at ? { line: Number(at[1]), column: Number(at[2]), message: first } : { message: first };
}

async function compile(
  gpu: Gpu,
  spec: PipelineSpec,
  source: ShaderSource,
  entryPoint: string,
  constants: Record<string, number>,
  key: string,
): Promise<GPUComputePipeline> {
  let module = modules.get(source.code);
  if (!module) {
    try {
      module = await withErrorScope(
        gpu,
        spec.label,
        "compile shader",
        () => gpu.device.createShaderModule({ label: spec.label, code: source.code }),
      );
    } catch (e) {
      throw new Error(
        compileErrorMessage(source, parseCompileError((e as Error).message)),
      );
    }
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0) {
      const m = errors[0];
      throw new Error(
        compileErrorMessage(source, {
          line: m.lineNum,
          column: m.linePos,
          message: m.message,
        }),
      );
    }
    modules.set(source.code, module);
  }
  try {
    return await withErrorScope(
      gpu,
      spec.label,
      "create pipeline",
      () =>
        gpu.device.createComputePipeline({
          label: `${spec.label}[${key}]`,
          layout: "auto",
          compute: { module: module!, entryPoint, constants },
        }),
    );
  } catch (e) {
    throw new Error(
      `Cannot create pipeline "${spec.label}" (entry ${entryPoint}): ${(e as Error).message}`,
    );
  }
}

/** Arguments of {@linkcode planDispatch}. */
export interface PlanSpec extends PipelineSpec {
  /** Uniform `Params` fields, bound at binding 0. */
  params: readonly ParamField[];
  /**
   * Storage buffers (or texture views) bound at 1, 2, … in order; `null` leaves that binding
   * number out (for a binding the entry point does not use, e.g. a bias under an `override`
   * flag).
   */
  bindings: readonly (Tensor | GPUBufferBinding | GPUTextureView | null)[];
  /** Workgroup counts; use {@linkcode grid} for 1-D work larger than 65535 groups. */
  workgroups: readonly [number, number?, number?];
  /**
   * Binding numbers of read-only storage arrays to read from flat textures on a fallback (CPU)
   * adapter ({@linkcode textureInputsWgsl}; each tensor is uploaded before every run). Ignored
   * on other adapters, and for a tensor too large for a texture.
   */
  textureInputs?: readonly number[];
}

const rewritten = new Map<string, ReturnType<typeof textureInputsWgsl>>();

/**
 * Plans one dispatch: pipeline from the cache, a uniform buffer for `params`, and the bind
 * group. Binding errors (wrong dtype usage, unused binding) are thrown naming the label.
 */
export async function planDispatch(gpu: Gpu, spec: PlanSpec): Promise<Dispatch> {
  if (spec.textureInputs?.length && gpu.info.isFallbackAdapter) {
    // The format is known only after the rewrite: fit the widest texel's alignment (16 bytes)
    // and the tallest texture (one element a texel).
    const fits = spec.textureInputs.filter((b) => {
      const t = spec.bindings[b - 1];
      return t instanceof Tensor && t.offset % 16 === 0 && t.numel > 0 &&
        flatTextureFits(gpu, t, t.numel, "r32float");
    });
    const key = `${fits.join(",")}|${spec.code}`;
    let r = rewritten.get(key);
    if (!r) {
      r = textureInputsWgsl(spec.code, fits);
      rewritten.set(key, r);
    }
    const bindings = [...spec.bindings];
    const uploads: TextureUpload[] = [];
    for (const [b, format] of r.formats) {
      const t = bindings[b - 1] as Tensor;
      const { view, upload } = flatTexture(gpu, t, t.numel, format, `${spec.label}.${t.label}`);
      bindings[b - 1] = view;
      uploads.push(upload);
    }
    const variant = r.formats.size === 0
      ? spec.variant
      : [spec.variant, `tex_inputs_${[...r.formats.keys()].join("_")}`].filter(Boolean).join("+");
    const d = await planDispatch(gpu, {
      ...spec,
      code: r.code,
      variant,
      bindings,
      textureInputs: [],
    });
    return uploads.length > 0 ? { ...d, uploads: [...uploads, ...(d.uploads ?? [])] } : d;
  }
  const pipeline = await getPipeline(gpu, spec);
  const params = createParams(gpu, spec.label, spec.params);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: params } }];
  spec.bindings.forEach((b, i) => {
    if (b === null) return;
    const resource = b instanceof Tensor ? b.binding() : b;
    entries.push({ binding: i + 1, resource });
  });
  const bindGroup = await withErrorScope(
    gpu,
    spec.label,
    "create bind group",
    () =>
      gpu.device.createBindGroup({
        label: spec.label,
        layout: pipeline.getBindGroupLayout(0),
        entries,
      }),
  );
  const [x, y = 1, z = 1] = spec.workgroups;
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (x > max || y > max || z > max) {
    throw new Error(
      `Cannot dispatch "${spec.label}": workgroups [${x}, ${y}, ${z}] exceed the adapter's ` +
        `limit of ${max} per dimension`,
    );
  }
  return { label: spec.label, params, pipeline, bindGroup, workgroups: [x, y, z] };
}

/**
 * Splits `groups` 1-D workgroups into an (x, y) grid within the per-dimension limit. Kernels
 * recover the linear id as `wid.x + wid.y * nwg.x` and return when it is past the end.
 */
export function grid(gpu: Gpu, groups: number): [number, number, number] {
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [Math.max(1, groups), 1, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y, 1];
}

/**
 * Encodes ops in order into `encoder`: consecutive dispatches share one compute pass; a copy
 * ends the pass and the next dispatch opens a new one.
 */
export function encodeDispatches(encoder: GPUCommandEncoder, list: readonly Op[]): void {
  let pass: GPUComputePassEncoder | undefined;
  for (const op of list) {
    if ("copy" in op) {
      pass?.end();
      pass = undefined;
      const c = op.copy;
      if (c.size > 0) encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
      continue;
    }
    if (op.uploads) {
      pass?.end();
      pass = undefined;
      encodeUploads(encoder, op.uploads);
    }
    pass ??= encoder.beginComputePass();
    pass.setPipeline(op.pipeline);
    pass.setBindGroup(0, op.bindGroup);
    pass.dispatchWorkgroups(op.workgroups[0], op.workgroups[1], op.workgroups[2]);
  }
  pass?.end();
}

/** Encodes and submits ops as one command buffer. Does not wait. */
export function submit(gpu: Gpu, list: readonly Op[], label = "bst.step"): void {
  const encoder = gpu.device.createCommandEncoder({ label });
  encodeDispatches(encoder, list);
  gpu.queue.submit([encoder.finish()]);
}

/**
 * Submits ops (planned dispatches and copies) as one command buffer and waits until the GPU
 * has finished all submitted work. Inside a training step, append ops to one list and call
 * this once: every wait costs at least one device poll.
 *
 * @example
 * ```ts
 * import { BST, getGpu, readTensor, run } from "../../mod.ts";
 * const gpu = await getGpu();
 * const cfg = {
 *   vocabSize: 8, eosTokenId: 7, nLayer: 1, nHead: 2, nEmbd: 32, blockSize: 4, bias: false,
 *   contextLength: 0, pairMinimumGap: 1, pairMaximumGap: -1, pairSubsampleRate: 1,
 *   singleGapPredictionMode: "eos" as const,
 * };
 * const model = await BST.create(gpu, cfg);
 * const enc = await model.encoders(1, 4);
 * enc.setTokens(new Int32Array([1, 2, 3, 7]));
 * await run(gpu, enc.forward); // both encoders, one submission
 * console.log((await readTensor(gpu, enc.outF)).length); // (4 + 1) * 32 = 160
 * ```
 */
export async function run(gpu: Gpu, list: readonly Op[], label?: string): Promise<void> {
  submit(gpu, list, label);
  await gpu.queue.onSubmittedWorkDone();
}
