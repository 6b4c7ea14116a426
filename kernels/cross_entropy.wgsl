// Softmax cross-entropy (fused forward + backward, in place), log-softmax, and a deterministic
// weighted sum of per-row losses.
//
// Entry points and bindings (binding 0 is the uniform Params; f32 unless noted; resource
// names alias across entry points, each entry point uses only its own):
//   ce_fused:      1 logits (N,V) rw — overwritten by dlogits   2 targets (N) i32 read
//                  3 weights (N) read   4 losses (N) rw
//                  losses[n] = logsumexp(logits[n]) − logits[n, t]  (unweighted),
//                  dlogits[n] = weights[n] · (softmax(logits[n]) − onehot(t));
//                  t = −100 (ignore): loss 0 and a zero gradient row; any other t outside
//                  [0, V): loss and gradient row NaN, so a bad target cannot go unnoticed.
//   ce_fused_scaled: ce_fused with the gradient seeded by the loss scale of
//                  trainer.precision=16-mixed: dlogits[n] = (weights[n] · 2^e) · (softmax − onehot),
//                  e = scale_state[0] (kernels/loss_scale.wgsl; a power of two, so exact);
//                  binding 5 scale_state (8) i32 read. The losses are not scaled.
//   log_softmax:   1 x (N,V) read   2 y (N,V) rw:  y[n] = x[n] − logsumexp(x[n])
//   wsum_partial:  1 losses (N) read   2 weights (N) read   3 partials (G) rw
//                  partials[g] = Σ_{n in chunk g} weights[n]·losses[n], chunk = WG·ITEMS rows
//   wsum_final:    1 partials (G) read   2 loss_out (S) rw:  loss_out[slot] = Σ_g partials[g]
// Dispatch: ce_fused and log_softmax: one workgroup per row, N workgroups laid out by grid()
// (row = wid.x + wid.y · nwg.x). wsum_partial: G = ceil(N / (WG·ITEMS)) workgroups by grid().
// wsum_final: one workgroup.
// Every reduction is a per-invocation loop in increasing index followed by a workgroup
// reduction (wg_max, wg_sum: reduce.wgsl's fixed binary tree or reduce_subgroup.wgsl's subgroup
// operations, appended by the planner), so results are bit-reproducible on one adapter. The
// planner also appends the target rules (IGNORE_INDEX, by_target) of cross_entropy_target.wgsl.
// Overrides: WG (invocations per workgroup, a power of two, default 256), ITEMS (rows per
// invocation in wsum_partial, default 4).

override WG: u32 = 256u;
override ITEMS: u32 = 4u;

const NEG_INF: f32 = -3.0e38;

struct Params {
  N: u32, // rows (ce_fused, log_softmax, wsum_partial) or partial count G (wsum_final)
  V: u32, // row width (ce_fused, log_softmax)
  slot: u32, // output index (wsum_final)
}

@group(0) @binding(0) var<uniform> p: Params;
// ce_fused
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses_w: array<f32>;
// log_softmax
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// wsum_partial
@group(0) @binding(1) var<storage, read> losses_r: array<f32>;
@group(0) @binding(2) var<storage, read> wsum_weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials_w: array<f32>;
// wsum_final
@group(0) @binding(1) var<storage, read> partials_r: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss_out: array<f32>;

@group(0) @binding(5) var<storage, read> scale_state: array<i32>;

// One row of ce_fused with the gradient seed multiplied by `seed` (1 for ce_fused: exact).
fn ce_row(n: u32, lane: Lane, seed: f32) {
  let lid = lane.lid;
  let base = n * p.V;
  let t = targets[n];
  let ignored = t == IGNORE_INDEX;
  let valid = t >= 0 && u32(t) < p.V;
  // Read the target logit before any invocation overwrites the row.
  let xt = logits[base + select(0u, u32(t), valid)];

  var m = NEG_INF;
  for (var v = lid; v < p.V; v += WG) { m = max(m, logits[base + v]); }
  m = wg_max(lane, m);
  var s = 0.0;
  for (var v = lid; v < p.V; v += WG) { s += exp(logits[base + v] - m); }
  s = wg_sum(lane, s);
  let lse = m + log(s);

  let w = by_target(weights[n] * seed, ignored, valid);
  for (var v = lid; v < p.V; v += WG) {
    let g = exp(logits[base + v] - lse) - select(0.0, 1.0, valid && v == u32(t));
    logits[base + v] = w * g;
  }
  if (lid == 0u) { losses_w[n] = by_target(lse - xt, ignored, valid); }
}

@compute @workgroup_size(WG)
fn ce_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            lane: Lane) {
  let n = wid.x + wid.y * nwg.x;
  if (n >= p.N) { return; }
  ce_row(n, lane, 1.0);
}

@compute @workgroup_size(WG)
fn ce_fused_scaled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   lane: Lane) {
  let n = wid.x + wid.y * nwg.x;
  if (n >= p.N) { return; }
  ce_row(n, lane, ldexp(1.0, scale_state[0]));
}

@compute @workgroup_size(WG)
fn log_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               lane: Lane) {
  let lid = lane.lid;
  let n = wid.x + wid.y * nwg.x;
  if (n >= p.N) { return; }
  let base = n * p.V;
  var m = NEG_INF;
  for (var v = lid; v < p.V; v += WG) { m = max(m, x[base + v]); }
  m = wg_max(lane, m);
  var s = 0.0;
  for (var v = lid; v < p.V; v += WG) { s += exp(x[base + v] - m); }
  s = wg_sum(lane, s);
  let lse = m + log(s);
  for (var v = lid; v < p.V; v += WG) { y[base + v] = x[base + v] - lse; }
}

@compute @workgroup_size(WG)
fn wsum_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                lane: Lane) {
  let lid = lane.lid;
  let g = wid.x + wid.y * nwg.x;
  let groups = (p.N + WG * ITEMS - 1u) / (WG * ITEMS);
  if (g >= groups) { return; }
  var acc = 0.0;
  for (var k = 0u; k < ITEMS; k++) {
    let n = g * WG * ITEMS + k * WG + lid;
    if (n < p.N) { acc += wsum_weights[n] * losses_r[n]; }
  }
  let total = wg_sum(lane, acc);
  if (lid == 0u) { partials_w[g] = total; }
}

@compute @workgroup_size(WG)
fn wsum_final(lane: Lane) {
  let lid = lane.lid;
  var acc = 0.0;
  for (var g = lid; g < p.N; g += WG) { acc += partials_r[g]; }
  let total = wg_sum(lane, acc);
  if (lid == 0u) { loss_out[p.slot] = total; }
}
