// Softmax cross-entropy (fused forward + backward) with one invocation per row, for CPU
// adapters: the semantics of ce_fused / ce_fused_scaled in cross_entropy.wgsl (read that
// header), but each invocation walks its whole row in increasing index (max, then the sum of
// exponentials, then the gradient) with no workgroup reduction and no barrier, and reads the
// logits from a flat r32float texture copy of them (see flatTexture in src/gpu/kernel.ts): on
// llvmpipe storage loads are loops over the SIMD lanes and texture loads vector gathers, and
// barriers between 256 invocations cost more than the arithmetic of a row.
//
// Entry points: ce_rows, ce_rows_scaled. Bindings (0 is the uniform Params): 1 logits (N,V) rw
// (written with dlogits; read only through binding 6), 2 targets (N) i32, 3 weights (N),
// 4 losses (N) rw, 5 scale_state (ce_rows_scaled), 6 texture of the logits: N·V/4 rgba32float
// texels with VEC (V % 4 == 0: a quarter of the loads), else N·V r32float texels.
// Dispatch: ceil(N / WG) workgroups laid out by grid() (row = (wid.x + wid.y · nwg.x) · WG +
// lid). Each row's sums run in increasing index: bit-reproducible. The planner appends
// `fn texel(t)` (TEXEL_WGSL of src/gpu/kernel.ts: the coordinates of texel t) and the target
// rules (IGNORE_INDEX, by_target) of cross_entropy_target.wgsl.

override WG: u32 = 64u;
override VEC: bool = false;

const NEG_INF: f32 = -3.0e38;

struct Params {
  N: u32,
  V: u32,
  slot: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read> scale_state: array<i32>;
@group(0) @binding(6) var logits: texture_2d<f32>;

// Texel t of the logits' texture.
fn texel_at(t: u32) -> vec4<f32> {
  return textureLoad(logits, texel(t), 0);
}

// Logit f (flat index).
fn logit(f: u32) -> f32 {
  if (VEC) { return texel_at(f / 4u)[f % 4u]; }
  return texel_at(f).x;
}

fn ce_row(n: u32, seed: f32) {
  let base = n * p.V;
  let t = targets[n];
  let ignored = t == IGNORE_INDEX;
  let valid = t >= 0 && u32(t) < p.V;
  let xt = logit(base + select(0u, u32(t), valid));
  var m = NEG_INF;
  var s = 0.0;
  if (VEC) {
    // The same terms in the same order, four per load.
    let b4 = base / 4u;
    for (var k = 0u; k < p.V / 4u; k++) {
      let x = texel_at(b4 + k);
      m = max(max(m, max(x.x, x.y)), max(x.z, x.w));
    }
    for (var k = 0u; k < p.V / 4u; k++) {
      let e = exp(texel_at(b4 + k) - m);
      s += e.x;
      s += e.y;
      s += e.z;
      s += e.w;
    }
  } else {
    for (var v = 0u; v < p.V; v++) { m = max(m, logit(base + v)); }
    for (var v = 0u; v < p.V; v++) { s += exp(logit(base + v) - m); }
  }
  let lse = m + log(s);
  let w = by_target(weights[n] * seed, ignored, valid);
  if (VEC) {
    let b4 = base / 4u;
    for (var k = 0u; k < p.V / 4u; k++) {
      let e = exp(texel_at(b4 + k) - lse);
      for (var c = 0u; c < 4u; c++) {
        let v = 4u * k + c;
        dlogits[base + v] = w * (e[c] - select(0.0, 1.0, valid && v == u32(t)));
      }
    }
  } else {
    for (var v = 0u; v < p.V; v++) {
      let g = exp(logit(base + v) - lse) - select(0.0, 1.0, valid && v == u32(t));
      dlogits[base + v] = w * g;
    }
  }
  losses[n] = by_target(lse - xt, ignored, valid);
}

@compute @workgroup_size(WG)
fn ce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * nwg.x) * WG + lid;
  if (n >= p.N) { return; }
  ce_row(n, 1.0);
}

@compute @workgroup_size(WG)
fn ce_rows_scaled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * nwg.x) * WG + lid;
  if (n >= p.N) { return; }
  ce_row(n, ldexp(1.0, scale_state[0]));
}
