import assert from "node:assert/strict";
import { checkFinite, NonFiniteError } from "../../src/train/nan_guard.ts";

Deno.test("checkFinite() passes finite values", () => {
  for (const v of [0, -1.5, 3e38, Number.MIN_VALUE]) checkFinite(v, "loss", 1, null);
});

Deno.test("checkFinite() names the step and the last checkpoint", () => {
  assert.throws(
    () => checkFinite(NaN, "loss", 123, "out/run/ckpt_iter_100.safetensors"),
    (e: Error) =>
      e instanceof NonFiniteError && e.step === 123 && Number.isNaN(e.value) &&
      e.message ===
        "Loss became NaN at step 123: stopping; the last good checkpoint is " +
          "out/run/ckpt_iter_100.safetensors",
  );
  assert.throws(
    () => checkFinite(-Infinity, "validation loss", 7, null),
    {
      message:
        "Validation loss became -Infinity at step 7: stopping; no checkpoint was written yet",
    },
  );
  assert.throws(
    () => checkFinite(Infinity, "Gradient norm", 0, "r.safetensors"),
    { message: /^Gradient norm became Infinity at step 0: stopping; .* r\.safetensors$/ },
  );
});
