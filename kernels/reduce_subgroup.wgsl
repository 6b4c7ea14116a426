// Workgroup reductions, subgroup variant: the same functions as reduce.wgsl (see there) with
// subgroupAdd / subgroupMax, so a 256-invocation workgroup reduces in 2 barrier steps (subgroup
// size 32) instead of 8. Chosen only where the device was granted `subgroups` and a probe found
// its subgroups made of consecutive invocations — subgroup k is invocations k·size …
// k·size + size − 1 — which the second level relies on to give each subgroup its own slot.
// `size` comes from the builtin, so any power of two from 4 to 128 works (lavapipe 8,
// NVIDIA 32, AMD 32 or 64).
//
// Order of the sums: each subgroupAdd adds its invocations' values in an order the hardware
// fixes, then the subgroup sums are added the same way, level by level, until one is left. The
// result is therefore the same on every run on one adapter (and driver), and may differ in the
// last bits from the tree variant's. Max is exact whatever the order.
//
// No `enable subgroups;` directive: Naga rejects it, and the builtins work without it once the
// device has the feature.

struct Lane {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
  @builtin(subgroup_size) size: u32,
}

var<workgroup> red_lanes: array<vec2<f32>, WG>;

fn wg_sum2(l: Lane, v: vec2<f32>) -> vec2<f32> {
  var x = subgroupAdd(v);
  var n = (WG + l.size - 1u) / l.size; // partial sums left, one per subgroup
  loop {
    if (n <= 1u) { break; }
    workgroupBarrier();
    if (l.sid == 0u) { red_lanes[l.lid / l.size] = x; }
    workgroupBarrier();
    var y = vec2<f32>(0.0);
    if (l.lid < n) { y = red_lanes[l.lid]; }
    x = subgroupAdd(y);
    n = (n + l.size - 1u) / l.size;
  }
  // the total is in subgroup 0: hand it to every invocation
  workgroupBarrier();
  if (l.lid == 0u) { red_lanes[0] = x; }
  workgroupBarrier();
  let r = red_lanes[0];
  workgroupBarrier();
  return r;
}

fn wg_sum(l: Lane, v: f32) -> f32 {
  return wg_sum2(l, vec2<f32>(v, 0.0)).x;
}

fn wg_max(l: Lane, v: f32) -> f32 {
  var x = subgroupMax(v);
  var n = (WG + l.size - 1u) / l.size;
  loop {
    if (n <= 1u) { break; }
    workgroupBarrier();
    if (l.sid == 0u) { red_lanes[l.lid / l.size].x = x; }
    workgroupBarrier();
    // invocations past the partials repeat the last one (max ignores repeats)
    x = subgroupMax(red_lanes[min(l.lid, n - 1u)].x);
    n = (n + l.size - 1u) / l.size;
  }
  workgroupBarrier();
  if (l.lid == 0u) { red_lanes[0].x = x; }
  workgroupBarrier();
  let r = red_lanes[0].x;
  workgroupBarrier();
  return r;
}
