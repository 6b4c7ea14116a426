// Rotary position embedding, non-interleaved ("rotate half"), applied in place to the q and k
// sections of a qkv tensor (N, 3C): q = columns [0, C), k = [C, 2C), heads split as (H, D).
// For pair index i < D/2 of a head with halves x1 = x[i], x2 = x[i + D/2] and angle
// pos·θ_i (cos/sin from a table computed on the CPU exactly like the reference's float32 one):
//   forward:  x1' = x1·cos − x2·sin,  x2' = x2·cos + x1·sin
//   backward: the transpose (rotation by −angle), applied to dq, dk of dqkv.
//
// The v section [2C, 3C) is not touched.
//
// Bindings: 0 uniform Params { n, c, d, inverse, npos }; 1 qkv (N, 3C) rw; 2 pos (N) i32;
//   3 table (P = npos, D/2, 2) f32 [cos, sin] for positions 0..P−1.
// A position outside [0, P) is clamped into it so the table is never read out of bounds (the
// TS wrapper's checkPositions() rejects such positions on the CPU first).
// Dispatch: ceil(N·C / WG) workgroups over grid(): one thread per (row, q|k, head, i), i.e.
//   N · 2 · H · D/2 = N·C threads.
// Overrides: WG (default 256).

override WG: u32 = 256u;

struct Params {
  n: u32,
  c: u32,
  d: u32,
  inverse: u32,
  npos: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid.x;
  let half = p.d / 2u;
  let per_row = p.c; // C/2 pairs for q plus C/2 for k
  if (t >= p.n * per_row) { return; }
  let row = t / per_row;
  let r = t % per_row;
  let section = r / (p.c / 2u); // 0: q, 1: k
  let j = r % (p.c / 2u);
  let head = j / half;
  let i = j % half;
  let col1 = section * p.c + head * p.d + i;
  let col2 = col1 + half;
  let base = row * 3u * p.c;
  let ps = u32(clamp(pos[row], 0, i32(p.npos) - 1));
  let cs = table[(ps * half + i) * 2u];
  var sn = table[(ps * half + i) * 2u + 1u];
  if (p.inverse == 1u) { sn = -sn; }
  let x1 = qkv[base + col1];
  let x2 = qkv[base + col2];
  qkv[base + col1] = x1 * cs - x2 * sn;
  qkv[base + col2] = x2 * cs + x1 * sn;
}
