/**
 * bst-webgpu: the Belief State Transformer (Hu et al., ICLR 2025) on WebGPU with hand-written
 * WGSL kernels, for Deno.
 *
 * This module graph is npm-free and uses relative imports only, so it can be imported from a
 * URL. WGSL kernels arrive as text imports: no read permission is needed.
 *
 * @example Acquire the GPU and run a kernel (needs a WebGPU adapter)
 * ```ts ignore
 * import { getGpu, planScale, readTensor, run, uploadTensor } from "./mod.ts";
 * const gpu = await getGpu({ log: true });
 * const t = uploadTensor(gpu, new Float32Array([1, 2, 3]), [3], "example.t");
 * await run(gpu, [await planScale(gpu, t, 2)]);
 * console.log(await readTensor(gpu, t)); // Float32Array [2, 4, 6]
 * ```
 *
 * @module
 */

export * from "./src/gpu/device.ts";
export * from "./src/gpu/tensor.ts";
export * from "./src/gpu/kernel.ts";
export * from "./src/gpu/index_lists.ts";
export * from "./src/gpu/elementwise.ts";
export * from "./src/train/safetensors.ts";
export * from "./src/train/param_table.ts";
export * from "./src/config/schema.ts";
export * from "./src/config/merge.ts";
