/**
 * WebGPU device acquisition: one device per process, shared by every caller and never
 * destroyed (destroying a device with live buffers has hung in past Deno versions).
 *
 * The adapter's real limits are requested instead of WebGPU's small defaults, GPU errors
 * raised inside {@linkcode withErrorScope} become thrown `Error`s naming the object's label,
 * and a lost device is reported once on stderr.
 *
 * @module
 */

/** What a run logs about the adapter it uses. */
export interface AdapterSummary {
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Vendor string or id as the adapter reports it. */
  vendor: string;
  /** Architecture string (often empty). */
  architecture: string;
  /** True for software or otherwise degraded adapters. */
  isFallbackAdapter: boolean;
  /** Limits that were granted to the device (numbers, not BigInts). */
  limits: GpuLimits;
  /** Optional features enabled on the device. */
  features: string[];
}

/** Device limits the project relies on, as plain numbers. */
export interface GpuLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
}

/** The process-wide GPU: adapter, device and what was granted. */
export interface Gpu {
  adapter: GPUAdapter;
  device: GPUDevice;
  queue: GPUQueue;
  info: AdapterSummary;
  limits: GpuLimits;
}

/** Options for {@linkcode getGpu}; only the first call's options take effect. */
export interface GetGpuOptions {
  /** Print the adapter description (and a fallback warning) on stderr. Default false. */
  log?: boolean;
}

const LIMIT_NAMES: (keyof GpuLimits)[] = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "minStorageBufferOffsetAlignment",
  "minUniformBufferOffsetAlignment",
];

/** Message shown when no WebGPU adapter exists on this machine. */
export const NO_ADAPTER_MESSAGE = "No WebGPU adapter found: install a GPU driver with Vulkan " +
  "support, or Mesa's software Vulkan driver for a CPU adapter " +
  "(Debian/Ubuntu: apt-get install mesa-vulkan-drivers); set DENO_WEBGPU_BACKEND=vulkan to pin " +
  "the backend";

let pending: Promise<Gpu> | undefined;

/**
 * Returns the process-wide GPU, creating it on first use.
 *
 * @param options logging; only the first call's options matter.
 * @returns the shared adapter, device and granted limits.
 * @throws Error with {@linkcode NO_ADAPTER_MESSAGE} when no adapter exists.
 *
 * @example Get the device (needs a WebGPU adapter)
 * ```ts ignore
 * import { getGpu } from "./device.ts";
 * const gpu = await getGpu({ log: true });
 * console.log(gpu.info.description);
 * ```
 */
export function getGpu(options: GetGpuOptions = {}): Promise<Gpu> {
  pending ??= createGpu(options).catch((e) => {
    pending = undefined;
    throw e;
  });
  return pending;
}

/**
 * On Linux, pins Deno's wgpu instance to the Vulkan backend (sets `DENO_WEBGPU_BACKEND=vulkan`)
 * unless the variable is already set, e.g. to `gl` on purpose. Must run before the first
 * `requestAdapter()`: Deno reads the variable once, when it creates the wgpu instance.
 *
 * Why: with the variable unset, wgpu also initialises its GL backend, which loads libglvnd's
 * libEGL.so.1 and Mesa's EGL/swrast driver even though the Vulkan adapter is the one used. At
 * process exit libEGL's destructor (run by `exit()` on the main thread) frees its state while
 * `deno test`'s tokio worker threads that touched EGL are still exiting and flushing their
 * malloc caches into the same arena. That race corrupted the heap after all tests had passed
 * in ~3-8% of `deno test` runs (`malloc_consolidate(): invalid chunk size`, `corrupted size vs.
 * prev_size in fastbins`, SIGSEGV in `unlink_chunk`; gdb showed `_dl_fini` → libEGL.so.1 →
 * `free` on the main thread against `tcache_thread_shutdown` on a "tokio-runtime-w" thread).
 * (`deno run` was unaffected: there EGL is touched by the thread that calls `exit()`.) With GL
 * never initialised libEGL is never loaded: 0/240 crashes vs 10/120 before under the same load.
 * The project needs a Vulkan driver anyway (see {@linkcode NO_ADAPTER_MESSAGE}).
 *
 * Only done when env access to the variable is already granted, so it never prompts.
 */
function preferVulkanBackend(): void {
  if (typeof Deno === "undefined" || Deno.build.os !== "linux") return;
  const name = "DENO_WEBGPU_BACKEND";
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return;
  if (Deno.env.get(name) === undefined) Deno.env.set(name, "vulkan");
}

async function createGpu(options: GetGpuOptions): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new Error(NO_ADAPTER_MESSAGE);
  }
  preferVulkanBackend();
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error(NO_ADAPTER_MESSAGE);

  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    // Deno 2.0 returned BigInts here; Number() handles both.
    requiredLimits[name] = Number((adapter.limits as unknown as Record<string, number>)[name]);
  }
  const wanted: GPUFeatureName[] = ["shader-f16", "timestamp-query"];
  const listed = wanted.filter((f) => adapter.features.has(f));
  const request = (requiredFeatures: GPUFeatureName[]) =>
    adapter.requestDevice({ label: "bst.device", requiredLimits, requiredFeatures });
  // `subgroups` (used by some attention variants) is asked for even when the adapter does not
  // list it: Deno's adapters grant it on request without listing it. Refused: without it.
  const device = await request([...listed, "subgroups" as GPUFeatureName]).catch(() =>
    request(listed)
  );
  const features: string[] = [...wanted, "subgroups" as GPUFeatureName].filter((f) =>
    device.features.has(f)
  );
  const limits = {} as GpuLimits;
  for (const name of LIMIT_NAMES) {
    limits[name] = Number((device.limits as unknown as Record<string, number>)[name]);
  }
  const info = adapter.info;
  const summary: AdapterSummary = {
    description: info.description || info.device || "unknown adapter",
    vendor: info.vendor,
    architecture: info.architecture,
    isFallbackAdapter: Boolean(
      (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
        (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ),
    limits,
    features,
  };
  device.lost.then((lost) => {
    if (lost.reason !== "destroyed") {
      console.error(`WebGPU device lost (${lost.reason}): ${lost.message}`);
    }
  });
  if (options.log) logAdapter(summary);
  return { adapter, device, queue: device.queue, info: summary, limits };
}

/** Prints the adapter line (and a warning for a fallback adapter) on stderr. */
export function logAdapter(info: AdapterSummary): void {
  console.error(`WebGPU adapter: ${info.description}`);
  if (info.isFallbackAdapter) {
    console.error(
      "warning: this is a fallback (software) adapter: everything works, but slowly",
    );
  }
}

/**
 * Runs `fn` inside validation and out-of-memory error scopes and throws an `Error` naming
 * `label` if the GPU reports one.
 *
 * @param gpu the shared GPU.
 * @param label the object's label, used in the message.
 * @param what what is being done, e.g. "create buffer".
 * @param fn the work; its result is returned.
 * @returns what `fn` returns.
 */
export async function withErrorScope<T>(
  gpu: Gpu,
  label: string,
  what: string,
  fn: () => T,
): Promise<T> {
  gpu.device.pushErrorScope("out-of-memory");
  gpu.device.pushErrorScope("validation");
  let result: T;
  try {
    result = fn();
  } finally {
    const validation = await gpu.device.popErrorScope();
    const oom = await gpu.device.popErrorScope();
    const err = oom ?? validation;
    if (err) {
      const kind = oom ? "out of GPU memory" : "GPU validation error";
      // deno-lint-ignore no-unsafe-finally
      throw new Error(`Cannot ${what} "${label}": ${kind}: ${err.message.trim()}`);
    }
  }
  return result;
}
