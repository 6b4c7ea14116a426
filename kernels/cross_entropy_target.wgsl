// A cross-entropy row's target rules, shared by ce_fused (cross_entropy.wgsl) and ce_rows
// (cross_entropy_rows.wgsl); src/gpu/cross_entropy.ts appends this file to both. A target
// t = IGNORE_INDEX ignores its row (loss 0, a zero gradient row); any other t outside [0, V)
// makes the row's loss and gradient NaN, so a bad target cannot go unnoticed.

const IGNORE_INDEX: i32 = -100;

// x (the row's loss, or the weight of its gradient) under those rules; `valid`: 0 <= t < V.
fn by_target(x: f32, ignored: bool, valid: bool) -> f32 {
  if (ignored) { return 0.0; }
  if (!valid) { return bitcast<f32>(0x7fc00000u); }
  return x;
}
