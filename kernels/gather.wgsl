// Row gathers and their deterministic scatter-add backward (BST pairs).
//
// Entry points and bindings (binding 0 is the uniform Params; f32 unless noted; resource
// names alias across entry points, each entry point uses only its own):
//   gather_pairs:  1 a (Na,Ca) read  2 b (Nb,Cb) read  3 ia (P) i32  4 ib (P) i32
//                  5 out (P, Ca+Cb) rw:   out[p] = [a[ia[p]] | b[ib[p]]]
//   gather_rows:   1 a (Na,C) read   2 idx (P) i32   3 out (P,C) rw:   out[p] = a[idx[p]]
//   scatter_csr:   1 dout (P, stride) read   2 offsets (Nd+1) i32   3 items (≥ offsets[Nd]) i32
//                  4 dst (Nd, Cd) rw:
//                  dst[n, c] (+)= Σ_{k = offsets[n]}^{offsets[n+1]−1} dout[items[k], col0 + c]
//                  in increasing k (CSR lists from src/gpu/index_lists.ts buildCsr), so the
//                  sum order is fixed and no atomics are needed. accumulate = 0 overwrites.
// A negative gather index means "padding": that part of the output row is 0 (buildCsr
// skips negative indices, so padding contributes nothing in backward). An index ≥ the row
// count writes NaN, so a bad index cannot go unnoticed.
// Dispatch: one invocation per output element, ceil(elements / WG) workgroups laid out by
// grid() (linear workgroup id = wid.x + wid.y · nwg.x).
// Overrides: WG (invocations per workgroup, default 256).

override WG: u32 = 256u;

const NAN_BITS: u32 = 0x7fc00000u;

struct Params {
  total: u32, // output elements
  n_a: u32, // rows of a (gather) or of dst (scatter)
  n_b: u32, // rows of b (gather_pairs)
  c_a: u32, // width of a (gather) or of dst (scatter)
  c_b: u32, // width of b (gather_pairs)
  stride: u32, // row width of dout (scatter_csr)
  col0: u32, // first column of dout summed into dst (scatter_csr)
  accumulate: u32, // scatter_csr: 1 adds into dst, 0 overwrites it
}

@group(0) @binding(0) var<uniform> p: Params;
// gather_pairs
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> ia: array<i32>;
@group(0) @binding(4) var<storage, read> ib: array<i32>;
@group(0) @binding(5) var<storage, read_write> out_pairs: array<f32>;
// gather_rows (a at binding 1)
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out_rows: array<f32>;
// scatter_csr
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> offsets: array<i32>;
@group(0) @binding(3) var<storage, read> items: array<i32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn gather_pairs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let e = linear_id(wid, nwg, lid);
  if (e >= p.total) { return; }
  let width = p.c_a + p.c_b;
  let row = e / width;
  let col = e % width;
  var v = 0.0;
  if (col < p.c_a) {
    let r = ia[row];
    if (r >= 0 && u32(r) < p.n_a) { v = a[u32(r) * p.c_a + col]; }
    if (r >= 0 && u32(r) >= p.n_a) { v = bitcast<f32>(NAN_BITS); }
  } else {
    let r = ib[row];
    if (r >= 0 && u32(r) < p.n_b) { v = b[u32(r) * p.c_b + col - p.c_a]; }
    if (r >= 0 && u32(r) >= p.n_b) { v = bitcast<f32>(NAN_BITS); }
  }
  out_pairs[e] = v;
}

@compute @workgroup_size(WG)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let e = linear_id(wid, nwg, lid);
  if (e >= p.total) { return; }
  let row = e / p.c_a;
  let col = e % p.c_a;
  let r = idx[row];
  var v = 0.0;
  if (r >= 0 && u32(r) < p.n_a) { v = a[u32(r) * p.c_a + col]; }
  if (r >= 0 && u32(r) >= p.n_a) { v = bitcast<f32>(NAN_BITS); }
  out_rows[e] = v;
}

@compute @workgroup_size(WG)
fn scatter_csr(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let e = linear_id(wid, nwg, lid);
  if (e >= p.total) { return; }
  let n = e / p.c_a;
  let c = e % p.c_a;
  var acc = 0.0;
  let k1 = offsets[n + 1u];
  for (var k = offsets[n]; k < k1; k++) {
    acc += dout[u32(items[k]) * p.stride + p.col0 + c];
  }
  if (p.accumulate == 1u) { acc = dst[e] + acc; }
  dst[e] = acc;
}
