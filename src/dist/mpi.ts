/**
 * Open MPI through Deno's FFI (`Deno.dlopen`): the few calls data-parallel training needs
 * (`MPI_Allreduce` sum, `MPI_Allgather`, `MPI_Barrier`, `MPI_Abort`), for a process that
 * `mpirun` started. Outside `mod.ts` and the browser path: nothing here loads unless
 * `deno task train` runs under `mpirun`.
 *
 * **Library.** `BST_MPI_LIBRARY` when set, else `libmpi.so.40` (Open MPI 4 and 5 both use
 * that soname) or `libmpi.so` in the usual directories ({@linkcode MPI_LIBRARY_CANDIDATES}).
 * With a path-scoped `--allow-ffi` Deno resolves a bare name against the working directory,
 * so the candidates are absolute paths; only those the process may load are tried (no
 * permission prompt), and a bare name is tried last when FFI is granted without a path list.
 *
 * **Handles.** In Open MPI 4 and 5, `MPI_Comm`, `MPI_Datatype` and `MPI_Op` are pointers, and
 * the predefined handles are the addresses of exported global objects: `MPI_COMM_WORLD` is
 * `&ompi_mpi_comm_world`, `MPI_FLOAT` `&ompi_mpi_float`, `MPI_SUM` `&ompi_mpi_op_sum`. The
 * objects' sizes differ between the two versions (5 pads them), so the bindings take only
 * their addresses: a static declared `{ type: "pointer" }` in `Deno.dlopen` is the symbol's
 * address (checked on Deno 2.9: `ompi_mpi_comm_world` minus `ompi_mpi_comm_world_addr` equals
 * their distance in `nm -D libmpi.so.40`), which is exactly the handle. MPICH's integer
 * handles are not supported: its library has no `ompi_mpi_comm_world` and is refused with a
 * clear message.
 *
 * **Threads and timeouts.** Collectives run as non-blocking FFI calls (on Deno's blocking
 * thread pool), so the event loop stays free: signals are handled and a collective that does
 * not finish within `timeoutSeconds` (a peer stuck or gone) rejects, and the caller aborts
 * the job. MPI is initialised with `MPI_THREAD_MULTIPLE` (at least `MPI_THREAD_SERIALIZED`
 * is required: the pool's threads take turns calling MPI).
 *
 * Requires `--allow-ffi` for the library and `--allow-env` for `BST_MPI_LIBRARY`.
 *
 * @module
 */

/** Absolute paths tried, in order, when `BST_MPI_LIBRARY` is unset. */
export const MPI_LIBRARY_CANDIDATES: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libmpi.so.40", // Debian, Ubuntu (openmpi-bin)
  "/usr/lib/x86_64-linux-gnu/libmpi.so",
  "/usr/lib/aarch64-linux-gnu/libmpi.so.40",
  "/usr/lib/aarch64-linux-gnu/libmpi.so",
  "/usr/lib64/openmpi/lib/libmpi.so.40", // Fedora, RHEL (openmpi)
  "/usr/lib64/openmpi/lib/libmpi.so",
  "/usr/lib/libmpi.so.40", // Arch
  "/usr/lib/libmpi.so",
  "/usr/local/lib/libmpi.so.40", // built from source with the default prefix
  "/usr/local/lib/libmpi.so",
  "/opt/openmpi/lib/libmpi.so.40",
  "/opt/openmpi/lib/libmpi.so",
];

/** The standard names, for `dlopen`'s own search when FFI is granted without a path list. */
const MPI_LIBRARY_NAMES = ["libmpi.so.40", "libmpi.so"];

/** `MPI_THREAD_SERIALIZED` and `MPI_THREAD_MULTIPLE` in Open MPI's `mpi.h`. */
const MPI_THREAD_SERIALIZED = 2;
const MPI_THREAD_MULTIPLE = 3;
/** `MPI_MAX_PROCESSOR_NAME` in Open MPI's `mpi.h`. */
const MPI_MAX_PROCESSOR_NAME = 256;
/** Largest element count of one call (`int count`). */
const MAX_COUNT = 0x7fffffff;

const SYMBOLS = {
  ompi_mpi_comm_world: { type: "pointer" },
  ompi_mpi_float: { type: "pointer" },
  ompi_mpi_double: { type: "pointer" },
  ompi_mpi_byte: { type: "pointer" },
  ompi_mpi_op_sum: { type: "pointer" },
  MPI_Initialized: { parameters: ["buffer"], result: "i32" },
  MPI_Init_thread: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  MPI_Comm_rank: { parameters: ["pointer", "buffer"], result: "i32" },
  MPI_Comm_size: { parameters: ["pointer", "buffer"], result: "i32" },
  MPI_Get_processor_name: { parameters: ["buffer", "buffer"], result: "i32" },
  MPI_Allreduce: {
    parameters: ["buffer", "buffer", "i32", "pointer", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  MPI_Allgather: {
    parameters: ["buffer", "i32", "pointer", "buffer", "i32", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  MPI_Barrier: { parameters: ["pointer"], result: "i32", nonblocking: true },
  MPI_Abort: { parameters: ["pointer", "i32"], result: "i32" },
  MPI_Finalized: { parameters: ["buffer"], result: "i32" },
  MPI_Finalize: { parameters: [], result: "i32" },
} as const;

type MpiLibrary = Deno.DynamicLibrary<typeof SYMBOLS>;

/** Options of {@linkcode Mpi.init}. */
export interface MpiOptions {
  /** Library path; default `BST_MPI_LIBRARY`, then {@linkcode MPI_LIBRARY_CANDIDATES}. */
  library?: string;
  /** Seconds a collective may take before it rejects (a peer stuck or gone); default 600. */
  timeoutSeconds?: number;
}

function envGranted(name: string): string | undefined {
  const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
  return state === "granted" ? Deno.env.get(name) : undefined;
}

function ffiGranted(path?: string): boolean {
  return Deno.permissions.querySync(path ? { name: "ffi", path } : { name: "ffi" }).state ===
    "granted";
}

function open(path: string): MpiLibrary {
  return Deno.dlopen(path, SYMBOLS);
}

/** Loads the Open MPI library (see the module doc for the search); throws one clear line. */
export function loadMpiLibrary(library?: string): { lib: MpiLibrary; path: string } {
  const explicit = library ?? envGranted("BST_MPI_LIBRARY");
  if (explicit) {
    if (!ffiGranted(explicit)) {
      throw new Error(
        `BST_MPI_LIBRARY "${explicit}" is not in this task's FFI permissions: add it to ` +
          `permissions.train.ffi in deno.json (or run with --allow-ffi=${explicit})`,
      );
    }
    try {
      return { lib: open(explicit), path: explicit };
    } catch (e) {
      throw new Error(`Cannot load the MPI library "${explicit}": ${firstLine(e)}`);
    }
  }
  const tried: string[] = [];
  const candidates = [
    ...MPI_LIBRARY_CANDIDATES.filter((p) => ffiGranted(p)),
    ...(ffiGranted() ? MPI_LIBRARY_NAMES : []),
  ];
  if (candidates.length === 0) {
    throw new Error(
      "This process may not load Open MPI's library: run deno task train (its permissions " +
        "allow libmpi.so.40 in the usual directories) or add --allow-ffi=PATH",
    );
  }
  for (const path of candidates) {
    try {
      return { lib: open(path), path };
    } catch (e) {
      const message = firstLine(e);
      // A library that exists but is not Open MPI (e.g. MPICH's libmpi.so) is reported.
      if (/symbol/i.test(message)) {
        throw new Error(
          `"${path}" is not Open MPI 4 or 5 (${message}); set BST_MPI_LIBRARY to Open MPI's ` +
            `libmpi.so.40`,
        );
      }
      tried.push(path);
    }
  }
  throw new Error(
    `Open MPI's library was not found (tried ${tried.length} paths): install openmpi-bin ` +
      `(Debian/Ubuntu) or set BST_MPI_LIBRARY to the path of libmpi.so.40`,
  );
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

/**
 * An initialised MPI process: its rank in `MPI_COMM_WORLD`, the world size, and the
 * collectives, each on a whole typed array.
 *
 * @example Sum a vector over the ranks (run under `mpirun -np 2 deno run --allow-ffi …`)
 * ```ts ignore
 * import { Mpi } from "./mpi.ts";
 * const mpi = Mpi.init();
 * const v = new Float32Array([mpi.rank, 1]);
 * await mpi.allreduceSum(v);
 * console.log(v); // Float32Array [ 1, 2 ] on both ranks of 2
 * mpi.finalize();
 * ```
 */
export class Mpi {
  /** This process's rank in `MPI_COMM_WORLD`. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  /** `MPI_Get_processor_name`: the host this rank runs on. */
  readonly host: string;
  #scratch = new Float64Array(0);
  #finalized = false;

  private constructor(
    readonly lib: MpiLibrary,
    /** The library path that was loaded. */
    readonly path: string,
    readonly timeoutSeconds: number,
  ) {
    const s = lib.symbols;
    const flag = new Int32Array(1);
    check(s.MPI_Initialized(flag), "MPI_Initialized");
    if (!flag[0]) {
      const provided = new Int32Array(1);
      check(s.MPI_Init_thread(null, null, MPI_THREAD_MULTIPLE, provided), "MPI_Init_thread");
      if (provided[0] < MPI_THREAD_SERIALIZED) {
        throw new Error(
          `The MPI library "${path}" gives thread level ${provided[0]}; training needs at ` +
            `least MPI_THREAD_SERIALIZED (${MPI_THREAD_SERIALIZED})`,
        );
      }
    }
    const out = new Int32Array(1);
    check(s.MPI_Comm_rank(s.ompi_mpi_comm_world, out), "MPI_Comm_rank");
    this.rank = out[0];
    check(s.MPI_Comm_size(s.ompi_mpi_comm_world, out), "MPI_Comm_size");
    this.size = out[0];
    const name = new Uint8Array(MPI_MAX_PROCESSOR_NAME);
    check(s.MPI_Get_processor_name(name, out), "MPI_Get_processor_name");
    this.host = new TextDecoder().decode(name.subarray(0, out[0]));
  }

  /**
   * Loads Open MPI and initialises it (`MPI_Init_thread`).
   *
   * @param options library path and collective timeout.
   * @returns the process's MPI handle.
   * @throws Error (one line) when the library is missing, not Open MPI, or not permitted.
   */
  static init(options: MpiOptions = {}): Mpi {
    const { lib, path } = loadMpiLibrary(options.library);
    return new Mpi(lib, path, options.timeoutSeconds ?? 600);
  }

  /**
   * Sums `data` over all ranks, in place (`MPI_Allreduce` with `MPI_SUM`; chunks of at most
   * 2³¹−1 elements). Every rank must call it with the same length, in the same order.
   */
  async allreduceSum(data: Float32Array | Float64Array): Promise<void> {
    const s = this.lib.symbols;
    const type = data instanceof Float32Array ? s.ompi_mpi_float : s.ompi_mpi_double;
    const recv = this.#recvBuffer(data);
    for (let start = 0; start < data.length; start += MAX_COUNT) {
      const send = data.subarray(start, Math.min(data.length, start + MAX_COUNT));
      const into = recv.subarray(0, send.length);
      const rc = await this.#guard(
        s.MPI_Allreduce(send, into, send.length, type, s.ompi_mpi_op_sum, s.ompi_mpi_comm_world),
        "MPI_Allreduce",
      );
      check(rc, "MPI_Allreduce");
      send.set(into);
    }
  }

  /** Each rank's `bytes` (any length), in rank order (`MPI_Allgather`, twice). */
  async allgather(bytes: Uint8Array): Promise<Uint8Array[]> {
    const s = this.lib.symbols;
    const world = s.ompi_mpi_comm_world;
    const lengths = new Int32Array(this.size);
    const mine = new Int32Array([bytes.length]);
    const u8 = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    check(
      await this.#guard(
        s.MPI_Allgather(u8(mine), 4, s.ompi_mpi_byte, u8(lengths), 4, s.ompi_mpi_byte, world),
        "MPI_Allgather",
      ),
      "MPI_Allgather",
    );
    const width = Math.max(1, ...lengths);
    const send = new Uint8Array(width);
    send.set(bytes);
    const all = new Uint8Array(width * this.size);
    check(
      await this.#guard(
        s.MPI_Allgather(send, width, s.ompi_mpi_byte, all, width, s.ompi_mpi_byte, world),
        "MPI_Allgather",
      ),
      "MPI_Allgather",
    );
    return [...lengths].map((n, r) => all.slice(r * width, r * width + n));
  }

  /**
   * Waits until every rank reaches the barrier; `timeoutSeconds` overrides the collective
   * timeout (`Infinity`: wait as long as it takes, e.g. while rank 0 generates data).
   */
  async barrier(timeoutSeconds = this.timeoutSeconds): Promise<void> {
    const s = this.lib.symbols;
    check(
      await this.#guard(s.MPI_Barrier(s.ompi_mpi_comm_world), "MPI_Barrier", timeoutSeconds),
      "MPI_Barrier",
    );
  }

  /** `MPI_Abort`: ends every rank of the job with `code`; does not return. */
  abort(code: number): never {
    this.lib.symbols.MPI_Abort(this.lib.symbols.ompi_mpi_comm_world, code);
    Deno.exit(code); // MPI_Abort returned (it should not): end this rank anyway
  }

  /** `MPI_Finalize`, once; required before a clean exit under `mpirun`. */
  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    const flag = new Int32Array(1);
    this.lib.symbols.MPI_Finalized(flag);
    if (!flag[0]) check(this.lib.symbols.MPI_Finalize(), "MPI_Finalize");
  }

  #recvBuffer(data: Float32Array | Float64Array): Float32Array | Float64Array {
    const n = Math.min(data.length, MAX_COUNT);
    const bytes = n * data.BYTES_PER_ELEMENT;
    if (this.#scratch.byteLength < bytes) this.#scratch = new Float64Array(Math.ceil(bytes / 8));
    return data instanceof Float32Array
      ? new Float32Array(this.#scratch.buffer, 0, n)
      : new Float64Array(this.#scratch.buffer, 0, n);
  }

  /** Rejects when `call` has not settled after the timeout. */
  async #guard(
    call: Promise<number>,
    what: string,
    seconds = this.timeoutSeconds,
  ): Promise<number> {
    if (!Number.isFinite(seconds)) return await call;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new Error(
            `Rank ${this.rank}: ${what} did not finish within ${seconds} s; ` +
              `another rank is stuck or gone (BST_MPI_TIMEOUT sets the limit)`,
          ),
        );
      }, seconds * 1000);
    });
    try {
      return await Promise.race([call, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function check(rc: number, what: string): void {
  if (rc !== 0) throw new Error(`${what} failed with MPI error code ${rc}`);
}
