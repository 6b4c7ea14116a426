// Masked multi-head attention, forward and backward, for both BST encoder directions.
//
// Semantics (DESIGN §4.4, §4.7): q, k, v are the three C-wide sections of each qkv row, heads
// split as (H, D), RoPE already applied. Query i attends key j when doc[j] == doc[i] and
// j <= i (forward encoder, anti = 0) or j >= i (backward encoder, anti = 1). Every token sees
// itself, so no row is empty. Scores are s_ij = (scale * q_i) . k_j with scale = 1/sqrt(D).
// No T x T mask is ever stored; the mask is evaluated from doc ids and positions.
//
// Bindings (binding 0 is the uniform Params; all f32 unless noted; resource names alias
// across entry points, each entry point uses only its own):
//   forward:      1 qkv (B,T,3C) read   2 doc (B,T) i32 read   3 out (B,T,C) rw
//                 4 lse (B,H,T) rw   (lse_i = log sum_j exp(s_ij), saved for backward)
//   backward_dq:  1 qkv  2 doc  3 out (B,T,C) read  4 lse (B,H,T) read  5 dout (B,T,C) read
//                 6 dqkv (B,T,3C) rw (writes the q section)  7 delta (B,H,T) rw
//                 (delta_i = dout_i . out_i, written for backward_dkv)
//   backward_dkv: 1 qkv  2 doc  3 lse (B,H,T) read  4 dout (B,T,C) read  5 delta (B,H,T) read
//                 6 dqkv (B,T,3C) rw (writes the k and v sections)
// Backward is two passes without atomics: backward_dq loops over keys j for each query row,
// backward_dkv loops over query rows i in increasing order for each key row, recomputing
// p_ij = exp(s_ij - lse_i). Every sum has a fixed order, so results are bit-reproducible.
//
// Dispatch: workgroups (ceil(T / WG), H, B). Invocation l of workgroup (x, h, b) owns row
// x*WG + l of head h of batch row b (a query row in forward/backward_dq, a key row in
// backward_dkv); rows past T only help load tiles. The other side (keys, or queries for
// backward_dkv) is streamed through workgroup memory BK rows at a time, restricted to the
// causal range the workgroup can see.
//
// Overrides: WG (rows per workgroup, default 32), BK (rows per workgroup-memory tile, <= 32,
// default 16), D4 = ceil(D / 4) (vec4s per head row, <= 32, so D <= 128).

override WG: u32 = 32u;
override BK: u32 = 16u;
override D4: u32 = 1u;

const D4MAX: u32 = 32u;
const BKMAX: u32 = 32u;
const NEG_INF: f32 = -3.0e38;

struct Params {
  B: u32,
  T: u32,
  H: u32,
  D: u32,
  anti: u32, // 0: causal (forward encoder), 1: anti-causal (backward encoder)
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> doc: array<i32>;
// forward
@group(0) @binding(3) var<storage, read_write> out_w: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse_w: array<f32>;
// backward_dq
@group(0) @binding(3) var<storage, read> out_r: array<f32>;
@group(0) @binding(4) var<storage, read> lse_dq: array<f32>;
@group(0) @binding(5) var<storage, read> dout_dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(7) var<storage, read_write> delta_w: array<f32>;
// backward_dkv
@group(0) @binding(3) var<storage, read> lse_kv: array<f32>;
@group(0) @binding(4) var<storage, read> dout_kv: array<f32>;
@group(0) @binding(5) var<storage, read> delta_kv: array<f32>;

// Tiles of the streamed side: keys and values (forward, backward_dq) or scaled queries and
// output gradients (backward_dkv), plus per-row doc id, lse and delta.
var<workgroup> ta: array<vec4<f32>, BK * D4>;
var<workgroup> tb: array<vec4<f32>, BK * D4>;
var<workgroup> tdoc: array<i32, BK>;
var<workgroup> tlse: array<f32, BK>;
var<workgroup> tdelta: array<f32, BK>;

// Loads elements 4c..4c+3 of a D-wide head row starting at `base`, zero past D.
fn ld_qkv(base: u32, c: u32) -> vec4<f32> {
  let d = 4u * c;
  if (d + 3u < p.D) {
    return vec4<f32>(qkv[base + d], qkv[base + d + 1u], qkv[base + d + 2u], qkv[base + d + 3u]);
  }
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (d + e < p.D) { v[e] = qkv[base + d + e]; }
  }
  return v;
}

fn ld_out(base: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * c + e < p.D) { v[e] = out_r[base + 4u * c + e]; }
  }
  return v;
}

fn ld_dout_dq(base: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * c + e < p.D) { v[e] = dout_dq[base + 4u * c + e]; }
  }
  return v;
}

fn ld_dout_kv(base: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * c + e < p.D) { v[e] = dout_kv[base + 4u * c + e]; }
  }
  return v;
}

fn st_out(base: u32, c: u32, v: vec4<f32>) {
  for (var e = 0u; e < 4u; e++) {
    if (4u * c + e < p.D) { out_w[base + 4u * c + e] = v[e]; }
  }
}

fn st_dqkv(base: u32, c: u32, v: vec4<f32>) {
  for (var e = 0u; e < 4u; e++) {
    if (4u * c + e < p.D) { dqkv[base + 4u * c + e] = v[e]; }
  }
}

// True when query i may attend key j (doc ids already compared by the caller).
fn visible(i: u32, j: u32) -> bool {
  return select(j <= i, j >= i, p.anti == 1u);
}

// Range [lo, hi) of the streamed side that rows [r0, r0 + WG) can see. `stream_keys` is
// true when the rows are queries and the streamed side is keys.
fn stream_range(r0: u32, stream_keys: bool) -> vec2<u32> {
  let r1 = min(p.T, r0 + WG);
  // Keys visible to causal queries, or queries that see anti-causal keys, lie at or below.
  let below = (p.anti == 0u) == stream_keys;
  if (below) { return vec2<u32>(0u, r1); }
  return vec2<u32>(r0, p.T);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let T = p.T;
  let C = p.H * p.D;
  let h = wid.y;
  let b = wid.z;
  let r0 = wid.x * WG;
  let i = r0 + lid;
  let live = i < T;
  let ri = min(i, T - 1u);
  let qbase = (b * T + ri) * 3u * C + h * p.D;
  let doc_i = doc[b * T + ri];

  var q: array<vec4<f32>, D4MAX>;
  var acc: array<vec4<f32>, D4MAX>;
  for (var c = 0u; c < D4; c++) {
    q[c] = ld_qkv(qbase, c) * p.scale;
    acc[c] = vec4<f32>(0.0);
  }
  var m = NEG_INF;
  var l = 0.0;
  var s: array<f32, BKMAX>;

  let range = stream_range(r0, true);
  for (var t0 = range.x; t0 < range.y; t0 += BK) {
    workgroupBarrier();
    for (var e = lid; e < BK * D4; e += WG) {
      let j = t0 + e / D4;
      if (j < range.y) {
        let kbase = (b * T + j) * 3u * C + C + h * p.D;
        ta[e] = ld_qkv(kbase, e % D4);
        tb[e] = ld_qkv(kbase + C, e % D4);
      }
    }
    for (var e = lid; e < BK; e += WG) {
      tdoc[e] = select(-1, doc[b * T + min(t0 + e, T - 1u)], t0 + e < range.y);
    }
    workgroupBarrier();
    if (live) {
      let n = min(BK, range.y - t0);
      var tile_max = NEG_INF;
      for (var jj = 0u; jj < n; jj++) {
        var sj = NEG_INF;
        if (tdoc[jj] == doc_i && visible(i, t0 + jj)) {
          var s4 = vec4<f32>(0.0);
          for (var c = 0u; c < D4; c++) { s4 += q[c] * ta[jj * D4 + c]; }
          sj = (s4.x + s4.y) + (s4.z + s4.w);
          tile_max = max(tile_max, sj);
        }
        s[jj] = sj;
      }
      if (tile_max > NEG_INF) {
        if (tile_max > m) {
          let corr = exp(m - tile_max);
          l *= corr;
          for (var c = 0u; c < D4; c++) { acc[c] *= corr; }
          m = tile_max;
        }
        for (var jj = 0u; jj < n; jj++) {
          if (s[jj] > NEG_INF) {
            let pj = exp(s[jj] - m);
            l += pj;
            for (var c = 0u; c < D4; c++) { acc[c] += pj * tb[jj * D4 + c]; }
          }
        }
      }
    }
  }
  if (live) {
    let obase = (b * T + i) * C + h * p.D;
    let inv = 1.0 / l;
    for (var c = 0u; c < D4; c++) { st_out(obase, c, acc[c] * inv); }
    lse_w[(b * p.H + h) * T + i] = m + log(l);
  }
}

@compute @workgroup_size(WG)
fn backward_dq(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let T = p.T;
  let C = p.H * p.D;
  let h = wid.y;
  let b = wid.z;
  let r0 = wid.x * WG;
  let i = r0 + lid;
  let live = i < T;
  let ri = min(i, T - 1u);
  let qbase = (b * T + ri) * 3u * C + h * p.D;
  let obase = (b * T + ri) * C + h * p.D;
  let doc_i = doc[b * T + ri];
  let lse_i = lse_dq[(b * p.H + h) * T + ri];

  var q: array<vec4<f32>, D4MAX>;
  var dO: array<vec4<f32>, D4MAX>;
  var dq: array<vec4<f32>, D4MAX>;
  var d4 = vec4<f32>(0.0);
  for (var c = 0u; c < D4; c++) {
    q[c] = ld_qkv(qbase, c) * p.scale;
    dO[c] = ld_dout_dq(obase, c);
    dq[c] = vec4<f32>(0.0);
    d4 += dO[c] * ld_out(obase, c);
  }
  let delta_i = (d4.x + d4.y) + (d4.z + d4.w);

  let range = stream_range(r0, true);
  for (var t0 = range.x; t0 < range.y; t0 += BK) {
    workgroupBarrier();
    for (var e = lid; e < BK * D4; e += WG) {
      let j = t0 + e / D4;
      if (j < range.y) {
        let kbase = (b * T + j) * 3u * C + C + h * p.D;
        ta[e] = ld_qkv(kbase, e % D4);
        tb[e] = ld_qkv(kbase + C, e % D4);
      }
    }
    for (var e = lid; e < BK; e += WG) {
      tdoc[e] = select(-1, doc[b * T + min(t0 + e, T - 1u)], t0 + e < range.y);
    }
    workgroupBarrier();
    if (live) {
      let n = min(BK, range.y - t0);
      for (var jj = 0u; jj < n; jj++) {
        if (tdoc[jj] == doc_i && visible(i, t0 + jj)) {
          var s4 = vec4<f32>(0.0);
          var p4 = vec4<f32>(0.0);
          for (var c = 0u; c < D4; c++) {
            s4 += q[c] * ta[jj * D4 + c];
            p4 += dO[c] * tb[jj * D4 + c];
          }
          let pij = exp((s4.x + s4.y) + (s4.z + s4.w) - lse_i);
          let ds = pij * ((p4.x + p4.y) + (p4.z + p4.w) - delta_i);
          for (var c = 0u; c < D4; c++) { dq[c] += ds * ta[jj * D4 + c]; }
        }
      }
    }
  }
  if (live) {
    for (var c = 0u; c < D4; c++) { st_dqkv(qbase, c, dq[c] * p.scale); }
    delta_w[(b * p.H + h) * T + i] = delta_i;
  }
}

@compute @workgroup_size(WG)
fn backward_dkv(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let T = p.T;
  let C = p.H * p.D;
  let h = wid.y;
  let b = wid.z;
  let r0 = wid.x * WG;
  let j = r0 + lid;
  let live = j < T;
  let rj = min(j, T - 1u);
  let kbase = (b * T + rj) * 3u * C + C + h * p.D;
  let doc_j = doc[b * T + rj];

  var k: array<vec4<f32>, D4MAX>;
  var v: array<vec4<f32>, D4MAX>;
  var dk: array<vec4<f32>, D4MAX>;
  var dv: array<vec4<f32>, D4MAX>;
  for (var c = 0u; c < D4; c++) {
    k[c] = ld_qkv(kbase, c);
    v[c] = ld_qkv(kbase + C, c);
    dk[c] = vec4<f32>(0.0);
    dv[c] = vec4<f32>(0.0);
  }

  let range = stream_range(r0, false);
  for (var t0 = range.x; t0 < range.y; t0 += BK) {
    workgroupBarrier();
    for (var e = lid; e < BK * D4; e += WG) {
      let i = t0 + e / D4;
      if (i < range.y) {
        ta[e] = ld_qkv((b * T + i) * 3u * C + h * p.D, e % D4) * p.scale;
        tb[e] = ld_dout_kv((b * T + i) * C + h * p.D, e % D4);
      }
    }
    for (var e = lid; e < BK; e += WG) {
      let i = t0 + e;
      let ok = i < range.y;
      let ic = min(i, T - 1u);
      tdoc[e] = select(-1, doc[b * T + ic], ok);
      tlse[e] = lse_kv[(b * p.H + h) * T + ic];
      tdelta[e] = delta_kv[(b * p.H + h) * T + ic];
    }
    workgroupBarrier();
    if (live) {
      let n = min(BK, range.y - t0);
      for (var ii = 0u; ii < n; ii++) {
        if (tdoc[ii] == doc_j && visible(t0 + ii, j)) {
          var s4 = vec4<f32>(0.0);
          var p4 = vec4<f32>(0.0);
          for (var c = 0u; c < D4; c++) {
            s4 += ta[ii * D4 + c] * k[c];
            p4 += tb[ii * D4 + c] * v[c];
          }
          let pij = exp((s4.x + s4.y) + (s4.z + s4.w) - tlse[ii]);
          let ds = pij * ((p4.x + p4.y) + (p4.z + p4.w) - tdelta[ii]);
          for (var c = 0u; c < D4; c++) {
            dv[c] += pij * tb[ii * D4 + c];
            dk[c] += ds * ta[ii * D4 + c];
          }
        }
      }
    }
  }
  if (live) {
    let base = (b * T + j) * 3u * C + C + h * p.D;
    for (var c = 0u; c < D4; c++) {
      st_dqkv(base, c, dk[c]);
      st_dqkv(base + C, c, dv[c]);
    }
  }
}
