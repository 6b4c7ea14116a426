// Workgroup reductions, tree variant: a fixed binary tree in workgroup memory (log2(WG)
// barrier steps). Appended to the kernels that reduce (norm.wgsl, adamw.wgsl,
// cross_entropy.wgsl) when the device has no usable subgroups; reduce_subgroup.wgsl has the
// same functions with subgroup operations. The kernel declares `override WG` (a power of two,
// the 1-D workgroup size) and takes a `Lane` as an entry-point input.
//
//   wg_sum2(l, v): Σ v over the workgroup (two sums at once), returned to every invocation:
//                  red[i] += red[i + s] for s = WG/2, WG/4, …, 1
//   wg_sum(l, v):  the same for one value
//   wg_max(l, v):  max over the workgroup, same tree
// Each must be called by every invocation of the workgroup (uniform control flow).

struct Lane {
  @builtin(local_invocation_index) lid: u32,
}

var<workgroup> red_lanes: array<vec2<f32>, WG>;

fn wg_sum2(l: Lane, v: vec2<f32>) -> vec2<f32> {
  red_lanes[l.lid] = v;
  workgroupBarrier();
  var s = WG / 2u;
  loop {
    if (s == 0u) { break; }
    if (l.lid < s) { red_lanes[l.lid] = red_lanes[l.lid] + red_lanes[l.lid + s]; }
    workgroupBarrier();
    s = s / 2u;
  }
  let r = red_lanes[0];
  workgroupBarrier();
  return r;
}

fn wg_sum(l: Lane, v: f32) -> f32 {
  return wg_sum2(l, vec2<f32>(v, 0.0)).x;
}

fn wg_max(l: Lane, v: f32) -> f32 {
  red_lanes[l.lid].x = v;
  workgroupBarrier();
  var s = WG / 2u;
  loop {
    if (s == 0u) { break; }
    if (l.lid < s) { red_lanes[l.lid].x = max(red_lanes[l.lid].x, red_lanes[l.lid + s].x); }
    workgroupBarrier();
    s = s / 2u;
  }
  let r = red_lanes[0].x;
  workgroupBarrier();
  return r;
}
