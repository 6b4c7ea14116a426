/**
 * Row gathers and deterministic scatter-adds (`kernels/gather.wgsl`), for BST pairs: the
 * text head's input row p is `[f[ia[p]] | b[ib[p]]]` (forward state at t_f, backward state at
 * t_b), and backward adds each pair's gradient back into the encoder outputs.
 *
 * Backward never uses atomics: the caller turns each index array into CSR lists with
 * {@linkcode buildCsr} (`buildCsr(ia, Na)`), uploads them with {@linkcode uploadCsr} (or
 * writes them into tensors it owns), and every destination row then sums its sources in
 * increasing pair order. The index arrays come from the CPU anyway (pair positions), so this
 * costs no read-back.
 *
 * A negative gather index means padding: that part of the output row is 0, and `buildCsr`
 * skips it, so it contributes nothing in backward. An index at or past the row count writes
 * NaN (the GPU cannot throw).
 *
 * @module
 */

import src from "../../kernels/gather.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import type { CsrIndex } from "./index_lists.ts";
import { type Dispatch, grid, planDispatch } from "./kernel.ts";
import { type Tensor, uploadTensor } from "./tensor.ts";

export { buildCsr } from "./index_lists.ts";

/** Invocations per workgroup. */
const WG = 256;

/** CSR index lists on the GPU: `offsets` (N + 1) and `items` (≥ offsets[N]), both i32. */
export interface CsrTensors {
  /** (N + 1) i32 start offsets into `items`. */
  offsets: Tensor;
  /** i32 source rows grouped by destination, increasing within each group. */
  items: Tensor;
}

function expect(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

function matrix(t: Tensor, what: string, op: string): [number, number] {
  expect(
    t.dtype === "f32" && t.shape.length === 2,
    `Cannot plan ${op}: ${what} "${t.label}" must be an f32 (rows, width) tensor, got ` +
      `${t.dtype} ${t.shapeString()}`,
  );
  return [t.shape[0], t.shape[1]];
}

function indexVector(t: Tensor, n: number, what: string, op: string): void {
  expect(
    t.dtype === "i32" && t.numel === n,
    `Cannot plan ${op}: ${what} "${t.label}" must be i32 with ${n} elements, got ` +
      `${t.dtype} ${t.shapeString()}`,
  );
}

function checkCsr(csr: CsrTensors, rows: number, what: string, op: string): void {
  indexVector(csr.offsets, rows + 1, `${what} offsets`, op);
  expect(
    csr.items.dtype === "i32",
    `Cannot plan ${op}: ${what} items "${csr.items.label}" must be i32, got ${csr.items.dtype}`,
  );
}

/**
 * Uploads CSR lists made by {@linkcode buildCsr} as two i32 tensors labelled
 * `<label>.offsets` and `<label>.items`.
 *
 * @param gpu the shared GPU.
 * @param csr lists from `buildCsr(indices, n)`.
 * @param label label prefix, e.g. "bst.pairs.csr_f".
 * @returns the tensors, ready for the backward plans.
 */
export function uploadCsr(gpu: Gpu, csr: CsrIndex, label: string): CsrTensors {
  return {
    offsets: uploadTensor(gpu, csr.offsets, [csr.offsets.length], `${label}.offsets`, "i32"),
    items: uploadTensor(gpu, csr.items, [csr.items.length], `${label}.items`, "i32"),
  };
}

/**
 * Plans `out[p] = [a[ia[p]] | b[ib[p]]]`: gathers two row sets and concatenates them.
 *
 * @param gpu the shared GPU.
 * @param out (P, Ca + Cb) output; overwritten.
 * @param a (Na, Ca) first row set (e.g. forward-encoder states, flattened (B·T, C)).
 * @param b (Nb, Cb) second row set.
 * @param ia (P) i32 rows of `a`; negative = zero padding.
 * @param ib (P) i32 rows of `b`; negative = zero padding.
 * @returns one dispatch; empty when there is nothing to write (P = 0).
 *
 * @example Gather BST pairs (needs a WebGPU adapter)
 * ```ts ignore
 * const fwd = await planGatherPairs(gpu, pairs, encF, encB, tf, tb);
 * const bwd = await planGatherPairsBackward(
 *   gpu, dEncF, dEncB, dPairs,
 *   uploadCsr(gpu, buildCsr(tfHost, B * T), "csr_f"),
 *   uploadCsr(gpu, buildCsr(tbHost, B * T), "csr_b"),
 * );
 * ```
 */
export async function planGatherPairs(
  gpu: Gpu,
  out: Tensor,
  a: Tensor,
  b: Tensor,
  ia: Tensor,
  ib: Tensor,
): Promise<Dispatch[]> {
  const op = `gather pairs into "${out.label}"`;
  const [Na, Ca] = matrix(a, "a", op);
  const [Nb, Cb] = matrix(b, "b", op);
  const [P, W] = matrix(out, "out", op);
  expect(W === Ca + Cb, `Cannot plan ${op}: out width ${W} is not ${Ca} + ${Cb}`);
  indexVector(ia, P, "ia", op);
  indexVector(ib, P, "ib", op);
  const total = P * W;
  if (total === 0) return [];
  return [
    await planDispatch(gpu, {
      label: `${out.label}.gather_pairs`,
      code: src,
      entryPoint: "gather_pairs",
      constants: { WG },
      params: [total, Na, Nb, Ca, Cb, 0, 0, 0],
      bindings: [a, b, ia, ib, out],
      textureInputs: [1, 2, 3, 4],
      workgroups: grid(gpu, Math.ceil(total / WG)),
    }),
  ];
}

async function planScatter(
  gpu: Gpu,
  dst: Tensor,
  dout: Tensor,
  csr: CsrTensors,
  col0: number,
  accumulate: boolean,
  op: string,
): Promise<Dispatch[]> {
  const [N, Cd] = matrix(dst, "destination", op);
  const [, stride] = matrix(dout, "dout", op);
  checkCsr(csr, N, "CSR", op);
  const total = N * Cd;
  if (total === 0 || (accumulate && dout.numel === 0)) return [];
  return [
    await planDispatch(gpu, {
      label: `${dst.label}.scatter_csr`,
      code: src,
      entryPoint: "scatter_csr",
      constants: { WG },
      params: [total, N, 0, Cd, 0, stride, col0, accumulate ? 1 : 0],
      bindings: [dout, csr.offsets, csr.items, dst],
      textureInputs: [1, 2, 3],
      workgroups: grid(gpu, Math.ceil(total / WG)),
    }),
  ];
}

/**
 * Plans the backward of {@linkcode planGatherPairs}: `da[n] += Σ_{p: ia[p]=n} dout[p, :Ca]` and
 * `db[n] += Σ_{p: ib[p]=n} dout[p, Ca:]`, each sum in increasing p (bit-reproducible).
 *
 * @param gpu the shared GPU.
 * @param da (Na, Ca) gradient of `a`; added into (or overwritten when `accumulate` is false).
 * @param db (Nb, Cb) gradient of `b`; likewise.
 * @param dout (P, Ca + Cb) gradient of the gathered pairs.
 * @param csrA lists of `buildCsr(ia, Na)`; items must be < P.
 * @param csrB lists of `buildCsr(ib, Nb)`; items must be < P.
 * @param accumulate add into `da`/`db` (default true) or overwrite them.
 * @returns up to two dispatches; none when P = 0 and `accumulate` is true.
 */
export async function planGatherPairsBackward(
  gpu: Gpu,
  da: Tensor,
  db: Tensor,
  dout: Tensor,
  csrA: CsrTensors,
  csrB: CsrTensors,
  accumulate = true,
): Promise<Dispatch[]> {
  const op = `gather pairs backward from "${dout.label}"`;
  const [, Ca] = matrix(da, "da", op);
  const [, Cb] = matrix(db, "db", op);
  const [, W] = matrix(dout, "dout", op);
  expect(W === Ca + Cb, `Cannot plan ${op}: dout width ${W} is not ${Ca} + ${Cb}`);
  return [
    ...await planScatter(gpu, da, dout, csrA, 0, accumulate, op),
    ...await planScatter(gpu, db, dout, csrB, Ca, accumulate, op),
  ];
}

/**
 * Plans `out[p] = a[idx[p]]`.
 *
 * @param gpu the shared GPU.
 * @param out (P, C) output; overwritten.
 * @param a (N, C) rows.
 * @param idx (P) i32 row indices; negative = zero row.
 * @returns one dispatch; empty when P or C is 0.
 */
export async function planGatherRows(
  gpu: Gpu,
  out: Tensor,
  a: Tensor,
  idx: Tensor,
): Promise<Dispatch[]> {
  const op = `gather rows into "${out.label}"`;
  const [N, C] = matrix(a, "a", op);
  const [P, W] = matrix(out, "out", op);
  expect(W === C, `Cannot plan ${op}: out width ${W} is not ${C}`);
  indexVector(idx, P, "idx", op);
  const total = P * C;
  if (total === 0) return [];
  return [
    await planDispatch(gpu, {
      label: `${out.label}.gather_rows`,
      code: src,
      entryPoint: "gather_rows",
      constants: { WG },
      params: [total, N, 0, C, 0, 0, 0, 0],
      bindings: [a, idx, out],
      workgroups: grid(gpu, Math.ceil(total / WG)),
    }),
  ];
}

/**
 * Plans the backward of {@linkcode planGatherRows}: `da[n] += Σ_{p: idx[p]=n} dout[p]`, each
 * sum in increasing p.
 *
 * @param gpu the shared GPU.
 * @param da (N, C) gradient; added into (or overwritten when `accumulate` is false).
 * @param dout (P, C) gradient of the gathered rows.
 * @param csr lists of `buildCsr(idx, N)`; items must be < P.
 * @param accumulate add into `da` (default true) or overwrite it.
 * @returns one dispatch; none when P = 0 and `accumulate` is true.
 */
export async function planGatherRowsBackward(
  gpu: Gpu,
  da: Tensor,
  dout: Tensor,
  csr: CsrTensors,
  accumulate = true,
): Promise<Dispatch[]> {
  const op = `gather rows backward from "${dout.label}"`;
  const [, C] = matrix(da, "da", op);
  const [, W] = matrix(dout, "dout", op);
  expect(W === C, `Cannot plan ${op}: dout width ${W} is not ${C}`);
  return await planScatter(gpu, da, dout, csr, 0, accumulate, op);
}
