// Concatenation along the last axis and its inverse (split):
//   concat: y (N, Ca+Cb) = [a (N, Ca) | b (N, Cb)]
//   split:  a = y[:, :Ca], b = y[:, Ca:]   (overwrite, or += when acc = 1)
//
// Bindings (0 uniform Params { n, ca, cb, acc }):
//   concat: 1 y rw; 2 a; 3 b
//   split:  1 a rw; 2 b rw; 3 y
// Dispatch: ceil(N·(Ca+Cb) / WG) over grid(); one thread per element of y.
// Overrides: WG (default 256).

override WG: u32 = 256u;

struct Params {
  n: u32,
  ca: u32,
  cb: u32,
  acc: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

@compute @workgroup_size(WG)
fn concat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = p.ca + p.cb;
  let t = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (t >= p.n * c) { return; }
  let row = t / c;
  let col = t % c;
  if (col < p.ca) {
    y[t] = a[row * p.ca + col];
  } else {
    y[t] = b[row * p.cb + col - p.ca];
  }
}

@group(0) @binding(1) var<storage, read_write> sa: array<f32>;
@group(0) @binding(2) var<storage, read_write> sb: array<f32>;
@group(0) @binding(3) var<storage, read> sy: array<f32>;

@compute @workgroup_size(WG)
fn split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = p.ca + p.cb;
  let t = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (t >= p.n * c) { return; }
  let row = t / c;
  let col = t % c;
  let v = sy[t];
  if (col < p.ca) {
    let i = row * p.ca + col;
    if (p.acc == 1u) { sa[i] = sa[i] + v; } else { sa[i] = v; }
  } else {
    let i = row * p.cb + col - p.ca;
    if (p.acc == 1u) { sb[i] = sb[i] + v; } else { sb[i] = v; }
  }
}
