// Column sums for the matmul family: out (C) = out * accumulate + Σ_r src[r, :] over the
// rows of src (ROWS, C). Used for the Linear bias gradient (db += Σ_m dy[m, :], src = dy) and to
// combine split-K partial products (dw (+)= Σ_s partial[s], src = partial viewed as (S, N*K)).
//
// Bindings (binding 0 is the uniform Params; all f32):
//   1 out (C) rw
//   2 src (ROWS, C) read
// Params: rows, cols (= C), accumulate (0 or 1).
//
// Order (fixed, so results are bit-identical from run to run; no atomics): lane y of RY sums
// rows y, y + RY, y + 2*RY, ... in increasing order; lane 0 then adds lanes 1..RY-1 in order.
//
// Dispatch: ceil(C / CX) workgroups over (x, y) from grid(); linear id = wid.x + wid.y * nwg.x.
// Invocation (x, y) of workgroup w handles column w*CX + x, rows in lane y.
//
// Overrides: CX (columns per workgroup, default 64), RY (row lanes, default 4).

override CX: u32 = 64u;
override RY: u32 = 4u;

struct Params {
  rows: u32,
  cols: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

var<workgroup> part: array<f32, CX * RY>;

@compute @workgroup_size(CX, RY)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = (wid.x + wid.y * nwg.x) * CX + lid.x;
  var s = 0.0;
  if (c < p.cols) {
    for (var r = lid.y; r < p.rows; r += RY) {
      s += src[r * p.cols + c];
    }
  }
  if (RY > 1u) {
    part[lid.y * CX + lid.x] = s;
    workgroupBarrier();
    if (lid.y == 0u) {
      for (var y = 1u; y < RY; y++) {
        s += part[y * CX + lid.x];
      }
    }
  }
  if (lid.y == 0u && c < p.cols) {
    if (p.accumulate != 0u) { s = out[c] + s; }
    out[c] = s;
  }
}
