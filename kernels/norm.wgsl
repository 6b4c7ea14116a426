// RMSNorm (LAYER = false) and LayerNorm (LAYER = true) over the last dim C of (N, C), eps in
// Params. One workgroup per row; the row sums are the workgroup reductions of reduce.wgsl or
// reduce_subgroup.wgsl (appended by the planner: wg_sum2, Lane), fixed-order either way.
//
//   rms:   y = x * rstd * w,                rstd = 1 / sqrt(mean(x²) + eps)
//   layer: y = (x - mean) * rstd * w + b,   rstd = 1 / sqrt(var(x) + eps)  (biased variance)
//
// Entry points and bindings (0 is uniform Params { n, c, eps, acc }):
//   forward:      1 y (N, C) rw; 2 stats (N, 2) rw [mean, rstd]; 3 x (N, C); 4 w (C); 5 b (C) if LAYER
//   backward_dx:  1 dx (N, C) rw (overwritten, or += when acc = 1); 2 stats; 3 x; 4 w; 5 dy (N, C)
//   backward_dw_partial: 1 partial (nblk, 2C) rw [Σ dy·x̂ | Σ dy] over row blocks of RB rows;
//                 2 stats; 3 x; 4 dy   (one thread per column, rows in increasing order)
//   backward_dw_reduce: 1 dw (C) rw (+=); 2 db (C) rw (+=) if LAYER; 3 partial   (blocks in order)
//   forward_rows, backward_dx_rows: forward and backward_dx with one invocation per row (WG
//                 rows per workgroup, each row summed in increasing index, no workgroup
//                 reduction and no barrier): for CPU adapters, where barriers between the
//                 invocations of a row cost more than its arithmetic. Same bindings.
// Dispatch: forward/backward_dx: (N) workgroups over grid(); the _rows forms ceil(N/WG) over
//   grid(); partial: (ceil(C/WG), nblk);
//   reduce: ceil(C/WG).
// Overrides: WG (threads per workgroup, power of two, default 64), LAYER (default false),
//   RB (rows per partial block, default 256).

override WG: u32 = 64u;
override LAYER: bool = false;
override RB: u32 = 256u;

struct Params {
  n: u32,
  c: u32,
  eps: f32,
  acc: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn row_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// ---- forward ----
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> b: array<f32>;

// Each invocation of a row handles its elements start, start + step, … in increasing order:
// (lane, WG) in the workgroup forms, (0, 1) in the _rows forms.

// Σ x and Σ x² over this invocation's elements of the row at base.
fn row_sums(base: u32, start: u32, step: u32) -> vec2<f32> {
  var s = 0.0;
  var s2 = 0.0;
  for (var i = start; i < p.c; i += step) {
    let v = x[base + i];
    s += v;
    s2 += v * v;
  }
  return vec2<f32>(s, s2);
}

// Σ (x − mean)² over this invocation's elements (LayerNorm's two-pass variance).
fn centered_sq(base: u32, mean: f32, start: u32, step: u32) -> f32 {
  var d2 = 0.0;
  for (var i = start; i < p.c; i += step) {
    let d = x[base + i] - mean;
    d2 += d * d;
  }
  return d2;
}

fn write_y(base: u32, mean: f32, rstd: f32, start: u32, step: u32) {
  for (var i = start; i < p.c; i += step) {
    if (LAYER) {
      y[base + i] = (x[base + i] - mean) * rstd * w[i] + b[i];
    } else {
      y[base + i] = x[base + i] * rstd * w[i];
    }
  }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           lane: Lane) {
  let row = row_id(wid, nwg);
  if (row >= p.n) { return; }
  let lid = lane.lid;
  let base = row * p.c;
  let sums = wg_sum2(lane, row_sums(base, lid, WG));
  let cf = f32(p.c);
  var mean = 0.0;
  var rstd = 0.0;
  if (LAYER) {
    mean = sums.x / cf;
    // Two-pass variance for accuracy: Σ (x - mean)².
    let d2 = centered_sq(base, mean, lid, WG);
    rstd = inverseSqrt(wg_sum2(lane, vec2<f32>(0.0, d2)).y / cf + p.eps);
  } else {
    rstd = inverseSqrt(sums.y / cf + p.eps);
  }
  write_y(base, mean, rstd, lid, WG);
  if (lid == 0u) {
    stats[2u * row] = mean;
    stats[2u * row + 1u] = rstd;
  }
}

@compute @workgroup_size(WG)
fn forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg) * WG + lid;
  if (row >= p.n) { return; }
  let base = row * p.c;
  let sums = row_sums(base, 0u, 1u);
  let cf = f32(p.c);
  var mean = 0.0;
  var rstd = 0.0;
  if (LAYER) {
    mean = sums.x / cf;
    rstd = inverseSqrt(centered_sq(base, mean, 0u, 1u) / cf + p.eps);
  } else {
    rstd = inverseSqrt(sums.y / cf + p.eps);
  }
  write_y(base, mean, rstd, 0u, 1u);
  stats[2u * row] = mean;
  stats[2u * row + 1u] = rstd;
}

// ---- backward: input gradient ----
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> bstats: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;

// g = w·dy, x̂ = (x − mean)·rstd: Σ g and Σ g·x̂ over this invocation's elements.
fn dx_sums(base: u32, mean: f32, rstd: f32, start: u32, step: u32) -> vec2<f32> {
  var sg = 0.0;
  var sgx = 0.0;
  for (var i = start; i < p.c; i += step) {
    let g = w[i] * dy[base + i];
    sg += g;
    sgx += g * (x[base + i] - mean) * rstd;
  }
  return vec2<f32>(sg, sgx);
}

// dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)) (mean(g) only for LayerNorm), written or added.
fn write_dx(base: u32, mean: f32, rstd: f32, sums: vec2<f32>, start: u32, step: u32) {
  let cf = f32(p.c);
  var mg = 0.0;
  if (LAYER) { mg = sums.x / cf; }
  let mgx = sums.y / cf;
  for (var i = start; i < p.c; i += step) {
    let xh = (x[base + i] - mean) * rstd;
    let v = rstd * (w[i] * dy[base + i] - mg - xh * mgx);
    if (p.acc == 1u) {
      dx[base + i] = dx[base + i] + v;
    } else {
      dx[base + i] = v;
    }
  }
}

@compute @workgroup_size(WG)
fn backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               lane: Lane) {
  let row = row_id(wid, nwg);
  if (row >= p.n) { return; }
  let lid = lane.lid;
  let base = row * p.c;
  let mean = bstats[2u * row];
  let rstd = bstats[2u * row + 1u];
  let sums = wg_sum2(lane, dx_sums(base, mean, rstd, lid, WG));
  write_dx(base, mean, rstd, sums, lid, WG);
}

@compute @workgroup_size(WG)
fn backward_dx_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg) * WG + lid;
  if (row >= p.n) { return; }
  let base = row * p.c;
  let mean = bstats[2u * row];
  let rstd = bstats[2u * row + 1u];
  write_dx(base, mean, rstd, dx_sums(base, mean, rstd, 0u, 1u), 0u, 1u);
}

// ---- backward: weight (and bias) gradient, partial sums over row blocks ----
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<storage, read> pdy: array<f32>;

@compute @workgroup_size(WG)
fn backward_dw_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(workgroup_id) wid: vec3<u32>) {
  let col = gid.x;
  let blk = wid.y;
  if (col >= p.c) { return; }
  let r0 = blk * RB;
  let r1 = min(p.n, r0 + RB);
  var sw = 0.0;
  var sb = 0.0;
  for (var r = r0; r < r1; r++) {
    let g = pdy[r * p.c + col];
    let xh = (x[r * p.c + col] - bstats[2u * r]) * bstats[2u * r + 1u];
    sw += g * xh;
    sb += g;
  }
  partial[blk * 2u * p.c + col] = sw;
  partial[blk * 2u * p.c + p.c + col] = sb;
}

// ---- backward: reduce partial blocks in order into dw (+=) and db (+=) ----
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;
@group(0) @binding(3) var<storage, read> rpartial: array<f32>;

@compute @workgroup_size(WG)
fn backward_dw_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col = gid.x;
  if (col >= p.c) { return; }
  let nblk = (p.n + RB - 1u) / RB;
  var sw = 0.0;
  var sb = 0.0;
  for (var k = 0u; k < nblk; k++) {
    sw += rpartial[k * 2u * p.c + col];
    sb += rpartial[k * 2u * p.c + p.c + col];
  }
  dw[col] = dw[col] + sw;
  if (LAYER) {
    db[col] = db[col] + sb;
  }
}
