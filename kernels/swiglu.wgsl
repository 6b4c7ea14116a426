// SwiGLU activation on the output of a gate_up Linear: x (N, 2H) is [gate | up] (PyTorch
// `chunk(2, dim=-1)`), y (N, H) = silu(gate) · up, silu(g) = g · σ(g).
//   backward: dgate = dy · up · σ(g) · (1 + g · (1 − σ(g))),  dup = dy · silu(g)
//
// Bindings (0 uniform Params { n, h }):
//   forward:  1 y (N, H) rw; 2 x (N, 2H)
//   backward: 1 dx (N, 2H) rw (overwritten); 2 x (N, 2H); 3 dy (N, H)
// Dispatch: ceil(N·H / WG) workgroups over grid(); one thread per (row, j).
// Overrides: WG (default 256).

override WG: u32 = 256u;

struct Params {
  n: u32,
  h: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;

fn sigmoid(g: f32) -> f32 {
  return 1.0 / (1.0 + exp(-g));
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (t >= p.n * p.h) { return; }
  let row = t / p.h;
  let j = t % p.h;
  let g = x[row * 2u * p.h + j];
  let u = x[row * 2u * p.h + p.h + j];
  y[t] = g * sigmoid(g) * u;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (t >= p.n * p.h) { return; }
  let row = t / p.h;
  let j = t % p.h;
  let ig = row * 2u * p.h + j;
  let g = x[ig];
  let u = x[ig + p.h];
  let s = sigmoid(g);
  let d = dy[t];
  // y is bound as dx (N, 2H) here.
  y[ig] = d * u * s * (1.0 + g * (1.0 - s));
  y[ig + p.h] = d * g * s;
}
