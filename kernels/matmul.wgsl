// Tiled f32 matrix product for Linear layers: C (I, J) = A (I, R) · B (R, J), register-blocked.
//
// The three Linear patterns are this one kernel with different storage orders of A and B
// (PyTorch weight layout W (N, K) = (out, in); x (M, K); dy (M, N)):
//   forward          out (M, N) = x · Wᵀ    A = x (M, K)             B = W stored (N, K): B_TRANS
//   backward input   dx (M, K)  = dy · W    A = dy (M, N)            B = W (N, K)
//   backward weight  dw (N, K) += dyᵀ · x   A = dy stored (M, N): A_TRANS   B = x (M, K)
// Element (i, r) of A is a[i * R + r], or a[r * I + i] with A_TRANS; element (r, j) of B is
// b[r * J + j], or b[j * R + r] with B_TRANS.
//
// Bindings (binding 0 is the uniform Params; all f32):
//   1 out  (S, I, J) rw   S = number of reduction splits (1 unless split-K into a scratch)
//   2 a    (I, R) or (R, I) read
//   3 b    (R, J) or (J, R) read
//   4 bias (J) read (only read when flags bit 1 is set; bind any read-only tensor otherwise)
// Params: I, J, R; chunk = reduction length per split (a multiple of BK); flags: bit 0
// accumulate (out += result), bit 1 add bias[j]. Split s sums r in [s*chunk, min(R, (s+1)*chunk))
// and writes out[s*I*J + i*J + j]; with S = 1, chunk >= R this is the whole product.
//
// Every output is one invocation's sum over r in increasing order (per split), with no
// atomics, so results are bit-identical from run to run (and, without a split, do not depend
// on the tile overrides either).
//
// Dispatch: workgroups (ceil(J / BN), ceil(I / BM), S). Workgroup (x, y, s) computes the
// BM x BN output tile at rows y*BM, columns x*BN; invocation (tx, ty) owns rows
// y*BM + ty*TM + 0..TM-1 and columns x*BN + tx*4 + 0..3 (one vec4 per row). The reduction is
// streamed through workgroup memory BK at a time; edge tiles are zero-padded on load and
// masked on store, so any I, J, R >= 1 works.
//
// Overrides (defaults match DEFAULT_MATMUL_TILES in src/gpu/matmul.ts):
//   WG_X  invocations along J, each owning 4 columns (default 16)
//   WG_Y  invocations along I (default 8)
//   TM    rows per invocation: 1, 2, 4 or 8, with WG_Y * TM a multiple of 4 (default 8)
//   BK    reduction length per workgroup-memory tile (default 16)
//   A_TRANS, B_TRANS  storage order of A and B (default false)
// Derived: BM = WG_Y * TM, BN = WG_X * 4; workgroup memory (BM + BN) * BK * 4 bytes.

override WG_X: u32 = 16u;
override WG_Y: u32 = 8u;
override TM: u32 = 8u;
override BK: u32 = 16u;
override A_TRANS: bool = false;
override B_TRANS: bool = false;

override BM: u32 = WG_Y * TM;
override BN: u32 = WG_X * 4u;
override NT: u32 = WG_X * WG_Y;
override BM4: u32 = BM / 4u;
override BN4: u32 = BN / 4u;

const TM_MAX: u32 = 8u;

struct Params {
  I: u32,
  J: u32,
  R: u32,
  chunk: u32,
  flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// As[k * BM4 + i / 4][i % 4] = A(i0 + i, r0 + k); Bs[k * BN4 + j / 4][j % 4] = B(r0 + k, j0 + j).
var<workgroup> As: array<vec4<f32>, BK * BM4>;
var<workgroup> Bs: array<vec4<f32>, BK * BN4>;

fn load_a(i: u32, r: u32, r_end: u32) -> f32 {
  if (i >= p.I || r >= r_end) { return 0.0; }
  if (A_TRANS) { return a[r * p.I + i]; }
  return a[i * p.R + r];
}

fn load_b(r: u32, j: u32, r_end: u32) -> f32 {
  if (j >= p.J || r >= r_end) { return 0.0; }
  if (B_TRANS) { return b[j * p.R + r]; }
  return b[r * p.J + j];
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i0 = wid.y * BM;
  let j0 = wid.x * BN;
  let r_begin = wid.z * p.chunk;
  let r_end = min(p.R, r_begin + p.chunk);

  var acc: array<vec4<f32>, TM_MAX>;
  for (var t = 0u; t < TM; t++) { acc[t] = vec4<f32>(0.0); }

  for (var r0 = r_begin; r0 < r_end; r0 += BK) {
    // Global -> workgroup memory; consecutive invocations read consecutive addresses.
    for (var e = li; e < BM * BK; e += NT) {
      var i: u32;
      var k: u32;
      if (A_TRANS) { k = e / BM; i = e % BM; } else { i = e / BK; k = e % BK; }
      As[k * BM4 + i / 4u][i % 4u] = load_a(i0 + i, r0 + k, r_end);
    }
    for (var e = li; e < BN * BK; e += NT) {
      var j: u32;
      var k: u32;
      if (B_TRANS) { j = e / BK; k = e % BK; } else { k = e / BN; j = e % BN; }
      Bs[k * BN4 + j / 4u][j % 4u] = load_b(r0 + k, j0 + j, r_end);
    }
    workgroupBarrier();

    for (var k = 0u; k < BK; k++) {
      let bv = Bs[k * BN4 + lid.x];
      for (var t4 = 0u; t4 < TM / 4u; t4++) {
        let av = As[k * BM4 + lid.y * (TM / 4u) + t4];
        acc[t4 * 4u] += av.x * bv;
        acc[t4 * 4u + 1u] += av.y * bv;
        acc[t4 * 4u + 2u] += av.z * bv;
        acc[t4 * 4u + 3u] += av.w * bv;
      }
      for (var t = TM / 4u * 4u; t < TM; t++) {
        acc[t] += As[k * BM4 + (lid.y * TM + t) / 4u][(lid.y * TM + t) % 4u] * bv;
      }
    }
    workgroupBarrier();
  }

  let accumulate = (p.flags & 1u) != 0u;
  let with_bias = (p.flags & 2u) != 0u;
  let base = wid.z * p.I * p.J;
  for (var t = 0u; t < TM; t++) {
    let i = i0 + lid.y * TM + t;
    if (i >= p.I) { break; }
    for (var c = 0u; c < 4u; c++) {
      let j = j0 + lid.x * 4u + c;
      if (j >= p.J) { break; }
      var v = acc[t][c];
      if (with_bias) { v += bias[j]; }
      let idx = base + i * p.J + j;
      if (accumulate) { v = out[idx] + v; }
      out[idx] = v;
    }
  }
}
