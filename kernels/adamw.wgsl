// Optimizer kernels over ranges of the flat parameter/gradient/state buffers.
//
//   sumsq_partial: partial[g] = Σ x² over chunk g of CH = WG·PER elements (each thread sums PER
//                  strided elements in order, then wg_sum: the workgroup reduction of
//                  reduce.wgsl or reduce_subgroup.wgsl, appended by the planner)
//   sumsq_final:   norms[slot] (=|+=) Σ_g partial[g] (each thread strided, then wg_sum; one
//                  workgroup)
//   adamw:         PyTorch's single-tensor AdamW (torch.optim.AdamW, foreach=False) on each
//                  element, with the gradient first scaled by the module's clip coefficient
//                  coef = min(1, max_norm / (sqrt(norms[slot]) + 1e-6)) when max_norm > 0,
//                  evaluated as (1 / (norm + 1e-6)) · max_norm like torch's `float / tensor`
//                  (torch.nn.utils.clip_grad_norm_ multiplies the gradient in place):
//                    g = grad · coef
//                    p = p · (1 − lr·wd)                      param.mul_(1 - lr*wd)
//                    m = m + (1 − β1)·(g − m)                 exp_avg.lerp_(g, 1 - β1)
//                    v = v·β2 + ((1 − β2)·g)·g                exp_avg_sq.mul_(β2).addcmul_(g, g, 1 - β2)
//                    denom = sqrt(v) / sqrt(bc2) + eps
//                    p = p + ((−lr/bc1)·m) / denom            param.addcdiv_(m, denom, -lr/bc1)
//                  The scalars 1 − lr·wd, 1 − β1, 1 − β2, −lr/bc1 and sqrt(bc2) are computed in
//                  float64 on the host and rounded to f32 once, as PyTorch does with Python
//                  floats.
//   adamw_mixed:   the same update for trainer.precision=16-mixed, with the loss scaler's state
//                  (kernels/loss_scale.wgsl): when the step's gradients were not finite
//                  (state[3]) nothing is written (PyTorch's GradScaler skips optimizer.step());
//                  else the gradient is first unscaled, g = grad · 2^-e_used, the clip uses the
//                  unscaled norm sqrt(norms[slot]) · 2^-e_used (exact: a power of two), and the
//                  bias corrections use t = updates applied (state[4], skipped steps excluded,
//                  as torch's per-parameter step count): bc = 1 − β^t in f32 on the GPU, since
//                  the host does not know which steps were skipped.
//
// Bindings (0 uniform Params):
//   sumsq_partial: Params { n, ... }; 1 partial (G) rw; 2 x (n)
//   sumsq_final:   Params { n = G, slot, acc }; 1 norms (S) rw; 2 partial (G)
//   adamw:         AdamParams; 1 param (n) rw; 2 m (n) rw; 3 v (n) rw; 4 grad (n); 5 norms (S)
//   adamw_mixed:   as adamw, plus 6 state (8) i32 (the loss scaler's)
// Dispatch: sumsq_partial ceil(n / CH) over grid(); sumsq_final 1; adamw, adamw_mixed
// ceil(n / WG) over grid().
// Overrides: WG (power of two, default 256), PER (elements per thread in sumsq_partial, 16).

override WG: u32 = 256u;
override PER: u32 = 16u;

struct Params {
  n: u32,
  slot: u32,
  acc: u32,
  pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

@compute @workgroup_size(WG)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 lane: Lane) {
  let g = wid.x + wid.y * nwg.x;
  let lid = lane.lid;
  let base = g * WG * PER;
  var s = 0.0;
  for (var k = 0u; k < PER; k++) {
    let i = base + k * WG + lid;
    if (i < p.n) {
      let v = x[i];
      s += v * v;
    }
  }
  let total = wg_sum(lane, s);
  if (lid == 0u && base < p.n) { partial[g] = total; }
}

@group(0) @binding(1) var<storage, read_write> norms: array<f32>;
@group(0) @binding(2) var<storage, read> fpartial: array<f32>;

@compute @workgroup_size(WG)
fn sumsq_final(lane: Lane) {
  let lid = lane.lid;
  var s = 0.0;
  for (var i = lid; i < p.n; i += WG) { s += fpartial[i]; }
  let total = wg_sum(lane, s);
  if (lid == 0u) {
    if (p.acc == 1u) {
      norms[p.slot] = norms[p.slot] + total;
    } else {
      norms[p.slot] = total;
    }
  }
}

struct AdamParams {
  n: u32,
  slot: u32,
  decay: f32,          // 1 − lr·wd
  beta1_weight: f32,   // 1 − β1 (the lerp weight)
  beta2: f32,
  beta2_weight: f32,   // 1 − β2
  neg_step_size: f32,  // −lr / bc1 (adamw)
  bc2_sqrt: f32,       // sqrt(1 − β2^step) (adamw)
  eps: f32,
  max_norm: f32,       // ≤ 0: no clipping
  lr: f32,             // adamw_mixed
  beta1: f32,          // adamw_mixed
}

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read> anorms: array<f32>;
@group(0) @binding(6) var<storage, read> scaler: array<i32>;

// The update of element i with the gradient multiplied by inv_scale (1 in adamw: exact, so
// adamw computes what it always has).
fn adam_update(i: u32, inv_scale: f32, neg_step_size: f32, bc2_sqrt: f32) {
  var coef = 1.0;
  if (ap.max_norm > 0.0) {
    coef = min(1.0, (1.0 / (sqrt(anorms[ap.slot]) * inv_scale + 1e-6)) * ap.max_norm);
  }
  let g = (grad[i] * inv_scale) * coef;
  let pd = param[i] * ap.decay;
  let m0 = m[i];
  let mv = m0 + ap.beta1_weight * (g - m0);
  let vv = v[i] * ap.beta2 + (ap.beta2_weight * g) * g;
  let denom = sqrt(vv) / bc2_sqrt + ap.eps;
  m[i] = mv;
  v[i] = vv;
  param[i] = pd + (neg_step_size * mv) / denom;
}

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (i >= ap.n) { return; }
  adam_update(i, 1.0, ap.neg_step_size, ap.bc2_sqrt);
}

@compute @workgroup_size(WG)
fn adamw_mixed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (i >= ap.n || scaler[3] != 0) { return; }
  let t = f32(scaler[4]);
  let bc1 = 1.0 - pow(ap.beta1, t);
  let bc2 = 1.0 - pow(ap.beta2, t);
  adam_update(i, ldexp(1.0, -scaler[5]), -ap.lr / bc1, sqrt(bc2));
}
