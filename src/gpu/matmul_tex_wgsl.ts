/**
 * WGSL generator for the texture-operand matmul: the variant for CPU adapters.
 *
 * Why: on Mesa's software adapter (llvmpipe/lavapipe, LLVM 15) every load from a storage buffer
 * or from workgroup memory is compiled to a loop over the 8 SIMD lanes with a branch and a
 * bounds check per lane and component, about 60 ns of CPU per component for 8 invocations,
 * while a `textureLoad` is a branch-free vector gather: measured on this project's 2-core
 * machine, 244 ns for a vec4 from storage against 23 ns from a texture (and 17 ns from a
 * uniform buffer, which is limited to 64 KiB). The tiled matmul of `matmul_wgsl.ts` stages
 * operands through workgroup memory and so pays that loop for every load; this kernel reads A
 * and B from textures instead (each operand is copied into its texture by a transfer right
 * before the dispatch, see `TextureUpload` in `kernel.ts`), holds a tile of outputs per
 * invocation in named registers and needs no workgroup memory and no barriers: 4–9× faster
 * on lavapipe at the text head's shapes (3328 × 1000 × 64: 161 → 39 ms forward, 292 → 34 ms
 * input gradient, 295 → 34 ms weight gradient).
 *
 * **Shared loads.** The invocations of one llvmpipe subgroup (8 consecutive invocations, one
 * row of the workgroup) need the same tm rows of A. With `layout.share` (the planner sets it
 * where the device has such subgroups) each loads tm / 8 of them and `subgroupBroadcast`, a
 * vector shuffle on a CPU, hands them round: 1.2–1.6× faster at the text head's and the
 * encoder's shapes (3328 × 1000 × 64 forward 45 → 33 ms).
 *
 * **Texture view of a tensor.** An operand's elements, in storage order, fill an
 * `rgba32float` texture `TEX_WIDTH` texels wide (`flatTexture` of `kernel.ts`), four elements per texel and row
 * after row (flat element f is texel f / 4, component f % 4; texel t sits at
 * `(t % TEX_WIDTH, t / TEX_WIDTH)`). Where the operand's contiguous dimension is not a multiple
 * of 4 an `r32float` texture holds one element per texel instead (four times the loads).
 *
 * **Numbers.** Each output is `acc = fma(A(i, r), B(r, j), acc)` for r in increasing order from
 * 0 (per split-K chunk), then the bias and the accumulate flag as in `matmul_wgsl.ts`; the
 * reduction tail is padded with zeros in both operands as there: results are bit-identical to
 * every other f32 variant.
 *
 * @module
 */

import { TEX_WIDTH, TEXEL_WGSL } from "./kernel.ts";
import { storeWgsl } from "./matmul_wgsl.ts";

/** Tile shape of the texture-operand kernel. */
export interface TexMatmulTile {
  /** Invocations along the output columns (J). */
  wgX: number;
  /** Invocations along the output rows (I). */
  wgY: number;
  /** Output rows per invocation. */
  tm: number;
  /** Output columns per invocation (a multiple of 4). */
  tn: number;
}

/** Storage orders and vector widths (the fields of `MatmulLayout` this kernel reads). */
export interface TexMatmulLayout {
  aTrans: boolean;
  bTrans: boolean;
  /** A's texture is rgba32float (its contiguous dimension is a multiple of 4). */
  vecA: boolean;
  /** B's texture is rgba32float. */
  vecB: boolean;
  /** Read and write C (and the bias) as vec4: needs J % 4 == 0. */
  vecC: boolean;
  bias: boolean;
  /**
   * Subgroup size to share A's loads over (0 or absent: every invocation loads its own). The
   * invocations of a subgroup (consecutive invocation indices, within one row of the
   * workgroup: it must divide wgX and tm) need the same tm rows of A; with sharing each loads
   * tm / share of them and `subgroupBroadcast` hands them round. Needs vecA and the device's
   * `subgroups`.
   */
  share?: number;
}

const LANES = ["x", "y", "z", "w"];

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Generates the WGSL of one texture-operand matmul (entry point `main`).
 *
 * Bindings: 0 uniform `Params { I, J, R, chunk, flags }`; 1 `out` (S, I, J) read-write storage;
 * 2 texture of A; 3 texture of B; 4 `bias` (J) with `layout.bias`. Semantics, flags and the
 * dispatch `(ceil(J / (wgX·tn)), ceil(I / (wgY·tm)), S)` are those of `matmulWgsl`.
 *
 * @param t the tile shape.
 * @param layout storage orders and vector widths.
 * @returns WGSL source.
 *
 * @example
 * ```ts
 * import { texMatmulWgsl } from "./matmul_tex_wgsl.ts";
 * const code = texMatmulWgsl(
 *   { wgX: 8, wgY: 8, tm: 16, tn: 8 },
 *   { aTrans: false, bTrans: true, vecA: true, vecB: true, vecC: true, bias: false },
 * );
 * console.log(code.includes("textureLoad")); // true
 * ```
 */
export function texMatmulWgsl(t: TexMatmulTile, layout: TexMatmulLayout): string {
  const { wgX, wgY, tm, tn } = t;
  const { aTrans, bTrans, vecA, vecB, vecC } = layout;
  const share = layout.share ?? 0;
  if (share && (!vecA || wgX % share !== 0 || tm % share !== 0)) {
    throw new Error(`Cannot share A's loads over subgroups of ${share} in this tile`);
  }
  const rpl = share ? tm / share : 0; // A loads per invocation when shared
  const c4 = tn / 4;
  const L: string[] = [];
  const e = (s = "") => L.push(s);
  e(`// Generated by src/gpu/matmul_tex_wgsl.ts: texture-operand f32 matmul, ${wgX} x ${wgY}`);
  e(`// invocations of ${tm} x ${tn} outputs. C (I, J) = A (I, R) · B (R, J); A stored`);
  e(`// ${aTrans ? "(R, I)" : "(I, R)"} in an ${
    vecA ? "rgba32float" : "r32float"
  } texture, B stored`);
  e(`// ${bTrans ? "(J, R)" : "(R, J)"} in an ${vecB ? "rgba32float" : "r32float"} texture, both`);
  e(`// ${TEX_WIDTH} texels wide in storage order. Each output: fma over r in increasing order.`);
  e();
  e(`struct Params { I: u32, J: u32, R: u32, chunk: u32, flags: u32 }`);
  e();
  e(`@group(0) @binding(0) var<uniform> p: Params;`);
  e(`@group(0) @binding(1) var<storage, read_write> out: array<${vecC ? "vec4<f32>" : "f32"}>;`);
  e(`@group(0) @binding(2) var ta: texture_2d<f32>;`);
  e(`@group(0) @binding(3) var tb: texture_2d<f32>;`);
  if (layout.bias) {
    e(`@group(0) @binding(4) var<storage, read> bias: array<${vecC ? "vec4<f32>" : "f32"}>;`);
  }
  e();
  e(TEXEL_WGSL);
  e(`// A's texel holding flat element f (f % 4 == 0 for rgba textures).`);
  e(`fn load_a(f: u32) -> vec4<f32> {`);
  e(`  return textureLoad(ta, texel(f${vecA ? " >> 2u" : ""}), 0);`);
  e(`}`);
  e();
  e(`fn load_b(f: u32) -> vec4<f32> {`);
  e(`  return textureLoad(tb, texel(f${vecB ? " >> 2u" : ""}), 0);`);
  e(`}`);
  e();
  if (share) {
    e(`// A's loads shared over subgroups of ${share}: each invocation loads ${rpl} of them.`);
  }
  // One dimension: Naga allows subgroup builtins only with a 1-D workgroup size.
  e(`@compute @workgroup_size(${wgX * wgY})`);
  e(
    `fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32` +
      (share ? `, @builtin(subgroup_invocation_id) sid: u32) {` : `) {`),
  );
  e(`  let lid = vec2<u32>(li % ${wgX}u, li / ${wgX}u);`);
  e(`  let i0 = (wid.y * ${wgY}u + lid.y) * ${tm}u;`);
  e(`  let j0 = (wid.x * ${wgX}u + lid.x) * ${tn}u;`);
  e(`  let r_begin = wid.z * p.chunk;`);
  e(`  let r_end = min(p.R, r_begin + p.chunk);`);
  e(`  // Rows and columns past the edge load the last one; their outputs are not stored.`);
  for (const m of range(tm)) e(`  let ia${m} = min(i0 + ${m}u, p.I - 1u);`);
  for (const n of range(tn)) e(`  let jb${n} = min(j0 + ${n}u, p.J - 1u);`);
  for (const m of range(tm)) {
    e(`  ${range(c4).map((c) => `var acc_${m}_${c} = vec4<f32>(0.0);`).join(" ")}`);
  }
  // One block of 4 reductions steps at r0; `tail` clamps r and skips r >= r_end.
  const block = (tail: boolean) => {
    const rAt = (rr: number) => tail ? `min(r0 + ${rr}u, p.R - 1u)` : `(r0 + ${rr}u)`;
    const A: string[][] = range(tm).map(() => []); // A(i_m, r0 + rr)
    const B: string[][] = range(c4).map(() => []); // B(r0 + rr, j_c .. j_c + 3) as vec4
    if (share && !aTrans) {
      // Invocation sid loads rows i0 + sid·rpl + k; row m comes from invocation m / rpl.
      for (const k of range(rpl)) {
        e(`    let al${k} = load_a(min(i0 + sid * ${rpl}u + ${k}u, p.I - 1u) * p.R + r0);`);
      }
      for (const m of range(tm)) {
        e(`    let a${m} = subgroupBroadcast(al${m % rpl}, ${Math.floor(m / rpl)}u);`);
        for (const rr of range(4)) A[m][rr] = `a${m}.${LANES[rr]}`;
      }
    } else if (share) {
      // The tm loads a(q, rr) (n = 4q + rr) spread over the subgroup as above.
      for (const k of range(rpl)) {
        e(`    let n${k} = sid * ${rpl}u + ${k}u;`);
        const r = tail ? `min(r0 + n${k} % 4u, p.R - 1u)` : `(r0 + n${k} % 4u)`;
        e(`    let al${k} = load_a(${r} * p.I + min(i0 + 4u * (n${k} / 4u), p.I - 1u));`);
      }
      for (const q of range(tm / 4)) {
        for (const rr of range(4)) {
          const n = q * 4 + rr;
          e(`    let a${q}_${rr} = subgroupBroadcast(al${n % rpl}, ${Math.floor(n / rpl)}u);`);
          for (const k of range(4)) A[q * 4 + k][rr] = `a${q}_${rr}.${LANES[k]}`;
        }
      }
    } else if (vecA && !aTrans) {
      for (const m of range(tm)) {
        e(`    let a${m} = load_a(ia${m} * p.R + r0);`);
        for (const rr of range(4)) A[m][rr] = `a${m}.${LANES[rr]}`;
      }
    } else if (vecA) {
      // (R, I) with I % 4 == 0; tm is a multiple of 4 and i0 too, so ia(4q) is 4-aligned.
      for (const q of range(tm / 4)) {
        for (const rr of range(4)) {
          e(`    let a${q}_${rr} = load_a(${rAt(rr)} * p.I + ia${q * 4});`);
          for (const k of range(4)) A[q * 4 + k][rr] = `a${q}_${rr}.${LANES[k]}`;
        }
      }
    } else {
      for (const m of range(tm)) {
        for (const rr of range(4)) {
          const f = aTrans ? `${rAt(rr)} * p.I + ia${m}` : `ia${m} * p.R + ${rAt(rr)}`;
          e(`    let a${m}_${rr} = load_a(${f}).x;`);
          A[m][rr] = `a${m}_${rr}`;
        }
      }
    }
    if (vecB && !bTrans) {
      for (const c of range(c4)) {
        for (const rr of range(4)) {
          e(`    let b${c}_${rr} = load_b(${rAt(rr)} * p.J + jb${c * 4});`);
          B[c][rr] = `b${c}_${rr}`;
        }
      }
    } else if (vecB) {
      for (const n of range(tn)) e(`    let b${n} = load_b(jb${n} * p.R + r0);`);
      for (const c of range(c4)) {
        for (const rr of range(4)) {
          B[c][rr] = `vec4<f32>(${range(4).map((k) => `b${c * 4 + k}.${LANES[rr]}`).join(", ")})`;
        }
      }
    } else {
      for (const n of range(tn)) {
        for (const rr of range(4)) {
          const f = bTrans ? `jb${n} * p.R + ${rAt(rr)}` : `${rAt(rr)} * p.J + jb${n}`;
          e(`    let b${n}_${rr} = load_b(${f}).x;`);
        }
      }
      for (const c of range(c4)) {
        for (const rr of range(4)) {
          B[c][rr] = `vec4<f32>(${range(4).map((k) => `b${c * 4 + k}_${rr}`).join(", ")})`;
        }
      }
    }
    for (const rr of range(4)) {
      const ind = tail ? "      " : "    ";
      if (tail) e(`    if (r0 + ${rr}u < r_end) {`);
      for (const c of range(c4)) e(`${ind}let bv${c}_${rr} = ${B[c][rr]};`);
      for (const m of range(tm)) {
        for (const c of range(c4)) {
          e(`${ind}acc_${m}_${c} = fma(vec4<f32>(${A[m][rr]}), bv${c}_${rr}, acc_${m}_${c});`);
        }
      }
      if (tail) e(`    }`);
    }
  };
  e(`  var r0 = r_begin;`);
  e(`  for (; r0 + 4u <= r_end; r0 += 4u) {`);
  block(false);
  e(`  }`);
  e(`  if (r0 < r_end) {`);
  block(true);
  e(`  }`);
  e(`  let accumulate = (p.flags & 1u) != 0u;`);
  e(`  let with_bias = (p.flags & 2u) != 0u;`);
  e(`  let base = wid.z * p.I * p.J;`);
  for (const m of range(tm)) {
    e(`  if (i0 + ${m}u < p.I) {`);
    for (const c of range(c4)) {
      e(
        `    store(base + (i0 + ${m}u) * p.J, j0 + ${c * 4}u, acc_${m}_${c}, accumulate, ` +
          `with_bias);`,
      );
    }
    e(`  }`);
  }
  e(`}`);
  e();
  for (const l of storeWgsl(layout)) e(l);
  return L.join("\n") + "\n";
}
