// Token embedding: out (N, C) = table[tokens[n]] (V, C); backward accumulates
// dtable[v] += Σ_{n: tokens[n] = v} dout[n] through CSR lists (offsets (V+1), items (N)) built
// on the CPU, summing each v's rows in increasing n — deterministic, no atomics.
//
// Bindings (0 uniform Params { n, c, v }):
//   forward:  1 out (N, C) rw; 2 tokens (N) i32; 3 table (V, C)
//   backward: 1 dtable (V, C) rw (+=); 2 offsets (V+1) i32; 3 items (N) i32; 4 dout (N, C)
// Tokens outside [0, V) produce a zero row (the TS wrapper rejects them on the CPU first).
// Dispatch: forward ceil(N·C / WG) over grid(); backward ceil(V·C / WG) over grid().
// Overrides: WG (default 256).

override WG: u32 = 256u;

struct Params {
  n: u32,
  c: u32,
  v: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> tokens: array<i32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (t >= p.n * p.c) { return; }
  let row = t / p.c;
  let col = t % p.c;
  let tok = tokens[row];
  if (tok < 0 || u32(tok) >= p.v) {
    out[t] = 0.0;
    return;
  }
  out[t] = table[u32(tok) * p.c + col];
}

@group(0) @binding(1) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(2) var<storage, read> offsets: array<i32>;
@group(0) @binding(3) var<storage, read> items: array<i32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (t >= p.v * p.c) { return; }
  let v = t / p.c;
  let col = t % p.c;
  var acc = 0.0;
  for (var k = offsets[v]; k < offsets[v + 1u]; k++) {
    acc += dout[u32(items[k]) * p.c + col];
  }
  dtable[t] = dtable[t] + acc;
}
