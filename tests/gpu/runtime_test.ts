import assert from "node:assert/strict";
import { getGpu, NO_ADAPTER_MESSAGE } from "../../src/gpu/device.ts";
import {
  compiledShaders,
  getPipeline,
  packParams,
  planDispatch,
  run,
  shaderSource,
  textureInputsWgsl,
} from "../../src/gpu/kernel.ts";
import {
  BufferPool,
  createTensor,
  readTensor,
  readTensorI32,
  uploadTensor,
  writeTensor,
} from "../../src/gpu/tensor.ts";

Deno.test("getGpu() returns one shared device with the adapter's limits", async () => {
  const a = await getGpu();
  const b = await getGpu();
  assert.equal(a, b);
  assert.ok(a.info.description.length > 0);
  assert.equal(
    a.limits.maxStorageBufferBindingSize,
    Number(a.adapter.limits.maxStorageBufferBindingSize),
  );
  assert.match(NO_ADAPTER_MESSAGE, /mesa-vulkan-drivers/);
});

Deno.test("createTensor() names the label when a request exceeds the adapter's limits", async () => {
  const gpu = await getGpu();
  const n = gpu.limits.maxStorageBufferBindingSize / 4 + 1;
  assert.throws(
    () => createTensor(gpu, [n], "test.too_big"),
    /Cannot create buffer "test\.too_big": \d+ bytes exceeds the adapter's maxStorageBufferBindingSize/,
  );
});

Deno.test("tensors check lengths, dtypes and view alignment with messages naming them", async () => {
  const gpu = await getGpu();
  const t = uploadTensor(gpu, new Float32Array([1, 2, 3, 4]), [2, 2], "test.t");
  assert.throws(() => writeTensor(gpu, t, new Float32Array(3)), /3 elements into "test\.t"/);
  await assert.rejects(() => readTensorI32(gpu, t), /Cannot read "test\.t" as i32/);
  assert.throws(() => t.reshape([3]), /Cannot reshape "test\.t"/);
  assert.throws(() => t.rows(1, 1), /byte offset 8 is not a multiple of 256/);
  const big = uploadTensor(gpu, new Float32Array(256).map((_, i) => i), [4, 64], "test.big");
  assert.deepEqual([...(await readTensor(gpu, big.rows(1, 1)))].slice(0, 3), [64, 65, 66]);
});

Deno.test("BufferPool reuses released buffers of the same size", async () => {
  const gpu = await getGpu();
  const pool = new BufferPool(gpu);
  const a = pool.acquire([100], "test.pool.a");
  pool.release(a);
  const b = pool.acquire([90], "test.pool.b");
  assert.equal(b.buffer, a.buffer);
  assert.equal(b.label, "test.pool.b");
  assert.equal(pool.live, 1);
  const c = pool.acquire([1000], "test.pool.c");
  assert.notEqual(c.buffer, a.buffer);
});

Deno.test("pipeline and bind group errors become Errors naming the label", async () => {
  const gpu = await getGpu();
  await assert.rejects(
    () => getPipeline(gpu, { code: "fn main( {", label: "test.bad_wgsl" }),
    /Cannot compile WGSL of kernel "bad_wgsl" \(variant none, label test\.bad_wgsl, hash [0-9a-f]{14}\) at line 1:/,
  );
  const code = `
    struct P { n: u32 }
    @group(0) @binding(0) var<uniform> p: P;
    @group(0) @binding(1) var<storage, read_write> x: array<f32>;
    @compute @workgroup_size(1) fn main() { x[0] = f32(p.n); }`;
  const t = createTensor(gpu, [4], "test.x");
  await assert.rejects(
    () =>
      planDispatch(gpu, {
        label: "test.extra_binding",
        code,
        params: [1],
        bindings: [t, t],
        workgroups: [1],
      }),
    /create bind group "test\.extra_binding"/,
  );
  assert.throws(() => packParams([-1]), /must be a u32/);
});

Deno.test("textureInputsWgsl() reads the chosen read-only arrays from textures, leaving mixed-type bindings buffers", () => {
  const code = [
    "@group(0) @binding(1) var<storage, read_write> out: array<f32>;",
    "@group(0) @binding(2) var<storage, read> x: array<f32>;",
    "@group(0) @binding(3) var<storage, read> ids: array<i32>;",
    "@group(0) @binding(4) var<storage, read> v: array<vec4<f32>>;",
    "@group(0) @binding(5) var<storage, read> a: array<f32>;",
    "@group(0) @binding(5) var<storage, read> b: array<i32>;",
    "fn f(i: u32) { out[i] = x[i + u32(ids[x2[i]])] + v[i].y + a[0] + x [ 1 ]; }",
  ].join("\n");
  const r = textureInputsWgsl(code, [2, 3, 4, 5]);
  assert.deepEqual([...r.formats], [[2, "r32float"], [3, "r32sint"], [4, "rgba32float"]]);
  assert.match(r.code, /var x__tex: texture_2d<f32>;/);
  assert.match(r.code, /var ids__tex: texture_2d<i32>;/);
  assert.match(
    r.code,
    /out\[i\] = x__at\(u32\(i \+ u32\(ids__at\(u32\(x2\[i\]\)\)\)\)\) \+ v__at\(u32\(i\)\)\.y/,
  );
  assert.match(r.code, /a\[0\] \+ x__at\(u32\( 1 \)\)/);
  assert.match(r.code, /fn v__at\(i: u32\) -> vec4<f32>/);
  assert.deepEqual([...textureInputsWgsl(code, []).formats], []);
});

Deno.test("planDispatch() with textureInputs uploads those tensors on a CPU adapter and computes the same", async () => {
  const gpu = await getGpu();
  const code = `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<i32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < p.n) { out[g.x] = 2.0 * x[u32(idx[g.x])]; }
}`;
  const n = 3000; // three rows of a flat texture
  const x = uploadTensor(gpu, Float32Array.from({ length: n }, (_, i) => i / 7), [n], "t.x");
  const idx = uploadTensor(gpu, Int32Array.from({ length: n }, (_, i) => (i * 37) % n), [n], "t.i");
  const out = createTensor(gpu, [n], "t.out");
  const d = await planDispatch(gpu, {
    label: "t.texin",
    code,
    params: [n],
    bindings: [out, x, idx],
    textureInputs: [2, 3],
    workgroups: [Math.ceil(n / 64)],
  });
  assert.equal(d.uploads?.length ?? 0, gpu.info.isFallbackAdapter ? 2 : 0);
  await run(gpu, [d]);
  const got = await readTensor(gpu, out);
  for (let i = 0; i < n; i++) {
    assert.equal(got[i], Math.fround(2 * Math.fround(((i * 37) % n) / 7)));
  }
});

Deno.test("a compile error names the kernel, its variant, the line and its text, and how to write the source", async () => {
  const gpu = await getGpu();
  const code = [
    "@group(0) @binding(1) var<storage, read_write> x: array<f32>;",
    "@compute @workgroup_size(1) fn main() {",
    "  let a: u32 = 1.5;",
    "  x[0] = f32(a);",
    "}",
  ].join("\n");
  const err = await getPipeline(gpu, { code, label: "test.sub.broken", variant: "v8x8" })
    .then(() => undefined, (e: Error) => e);
  assert.ok(err, "the broken kernel compiled");
  const source = compiledShaders().find((s) => s.code === code)!;
  assert.equal(source.kernel, "broken");
  assert.equal(source.variant, "v8x8");
  assert.ok(
    err.message.startsWith(
      `Cannot compile WGSL of kernel "broken" (variant v8x8, label test.sub.broken, hash ` +
        `${source.hash}) at line 3:7 (\`let a: u32 = 1.5;\`): `,
    ),
    err.message,
  );
  assert.match(err.message, /u32/);
  assert.match(err.message, /write the source with: deno task wgsl broken/);
  assert.ok(!err.message.includes("\n"), err.message);
});

Deno.test("shaderSource() is what createShaderModule gets: the texture rewrite included, recorded per kernel name and entry point", async () => {
  const gpu = await getGpu();
  const seen: string[] = [];
  const create = gpu.device.createShaderModule.bind(gpu.device);
  gpu.device.createShaderModule = (d: GPUShaderModuleDescriptor) => {
    seen.push(d.code);
    return create(d);
  };
  try {
    // A source no other test compiles (the process caches modules by source).
    const code = `
    struct P { n: u32 }
    @group(0) @binding(0) var<uniform> p: P;
    @group(0) @binding(1) var<storage, read_write> y: array<f32>;
    @group(0) @binding(2) var<storage, read> x: array<f32>;
    @compute @workgroup_size(1) fn first() { y[0] = x[p.n] + 1.25; }
    @compute @workgroup_size(1) fn second() { y[1] = x[p.n] + 2.5; }`;
    const y = createTensor(gpu, [4], "test.y");
    const x = createTensor(gpu, [4], "test.x");
    const plan = (label: string, entryPoint: string) =>
      planDispatch(gpu, {
        label,
        code,
        entryPoint,
        params: [1],
        bindings: [y, x],
        textureInputs: [2],
        workgroups: [1],
      });
    await plan("test.a.one_kernel", "first");
    await plan("test.b.other_kernel", "second");
    assert.equal(seen.length, 1);
    const source = compiledShaders().find((s) => s.code === seen[0])!;
    assert.ok(source, "the module handed to createShaderModule was not recorded");
    assert.deepEqual(source.kernels, ["one_kernel", "other_kernel"]);
    assert.deepEqual(source.entryPoints, ["first", "second"]);
    assert.equal(source.label, "test.a.one_kernel");
    if (gpu.info.isFallbackAdapter) {
      assert.equal(source.variant, "tex_inputs_2");
      assert.match(source.code, /x__at\(u32\(p\.n\)\)/);
    } else {
      assert.equal(source.code, code);
    }
    assert.equal(shaderSource({ code: source.code, label: "z.k" }), source);
  } finally {
    gpu.device.createShaderModule = create;
  }
});
