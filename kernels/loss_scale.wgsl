// Dynamic loss scaling for trainer.precision=16-mixed (PyTorch's GradScaler), kept on the GPU
// so that a training step needs no read-back. The scaler state is an i32 (8) storage tensor:
//   [0] e          the scale is 2^e (init 16: 65536); powers of two keep scaling and
//                  unscaling exact
//   [1] good       steps since the scale last changed (PyTorch's growth tracker)
//   [2] skipped    steps skipped for non-finite gradients, in total
//   [3] found_inf  1 when the last step's gradients held Infinity or NaN (its update skipped)
//   [4] t          AdamW updates applied (the bias-correction step: skipped steps excluded)
//   [5] e_used     the exponent the last step's gradients were scaled by
//   [6], [7]       unused (0)
//
// Entry points (one invocation each):
//   scale_check:   after the gradient sums of squares, before AdamW. found_inf = some
//                  norms[s] (s < S) is not finite (tested on the bits: WGSL compilers may
//                  assume floats are finite); e_used = e; t += 1 unless found_inf.
//   scale_update:  after AdamW. found_inf: e -= 1 (backoff 0.5), good = 0, skipped += 1;
//                  else good += 1 and, when good reaches the growth interval, e += 1 (growth 2)
//                  and good = 0. e stays within [-126, 127] so 2^e and 2^-e stay finite f32.
//
// Bindings (0 uniform Params):
//   scale_check:   Params { n = S }; 1 state (8) i32 rw; 2 norms (S) f32 read
//   scale_update:  Params { n = growth interval }; 1 state (8) i32 rw
// Dispatch: one workgroup of one invocation each.

struct Params {
  n: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> state: array<i32>;
@group(0) @binding(2) var<storage, read> norms: array<f32>;

fn finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(1)
fn scale_check() {
  var found = 0;
  for (var s = 0u; s < p.n; s++) {
    if (!finite(norms[s])) { found = 1; }
  }
  state[3] = found;
  state[5] = state[0];
  if (found == 0) { state[4] = state[4] + 1; }
}

@compute @workgroup_size(1)
fn scale_update() {
  if (state[3] != 0) {
    state[0] = max(state[0] - 1, -126);
    state[1] = 0;
    state[2] = state[2] + 1;
  } else {
    let good = state[1] + 1;
    if (u32(good) >= p.n) {
      state[0] = min(state[0] + 1, 127);
      state[1] = 0;
    } else {
      state[1] = good;
    }
  }
}
