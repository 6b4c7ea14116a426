import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { submit } from "../../src/gpu/kernel.ts";
import { Readback } from "../../src/gpu/readback.ts";
import { uploadTensor } from "../../src/gpu/tensor.ts";

Deno.test("Readback.read() hands each planned copy its values in planning order, then empties", async () => {
  const gpu = await getGpu();
  const t = uploadTensor(gpu, new Float32Array([1, 2, 3, 4, 5, 6, 7]), [7], "test.rb.src");
  const rb = new Readback(gpu, "test.rb", 5);
  const seen: string[] = [];
  const ops = [
    rb.copy(t, 4, 3, (v) => seen.push(`a:${[...v]}`)),
    rb.copy(t, 0, 0, (v) => seen.push(`empty:${v.length}`)),
    rb.copy(t, 1, 2, (v) => seen.push(`b:${[...v]}`)),
  ];
  rb.after(() => seen.push("after"));
  assert.equal(rb.free, 0);
  assert.equal(ops[1], null);
  assert.throws(() => rb.copy(t, 0, 1, () => {}), /1 more values of "test.rb.src": 0 of 5 free/);
  submit(gpu, ops.filter((op) => op !== null));
  await rb.read();
  assert.deepEqual(seen, ["a:5,6,7", "empty:0", "b:2,3", "after"]);
  assert.equal(rb.free, 5);
  assert.equal(rb.pending, false);
  rb.destroy();
});

Deno.test("Readback.reserve() reads what is planned when the values would not fit", async () => {
  const gpu = await getGpu();
  const t = uploadTensor(gpu, new Float32Array([0.5, -2, 8]), [3], "test.rb.src2");
  const rb = new Readback(gpu, "test.rb2", 4);
  let sum = 0;
  for (let i = 0; i < 3; i++) {
    await rb.reserve(3);
    submit(gpu, [rb.copy(t, 0, 3, (v) => sum += v[0] + v[1] + v[2])!]);
  }
  await rb.read();
  assert.equal(sum, 3 * 6.5);
  await assert.rejects(() => rb.reserve(5), /Cannot read back 5 values through a buffer of 4/);
  assert.throws(() => rb.copy(t, 2, 2, () => {}), /values 2…3 of "test.rb.src2" \(3 values\)/);
  assert.throws(() => new Readback(gpu, "x", 0), /positive integer, got 0/);
  rb.destroy();
});
