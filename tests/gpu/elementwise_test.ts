import { getGpu } from "../../src/gpu/device.ts";
import { planCopyRows, run } from "../../src/gpu/kernel.ts";
import { planAddInPlace, planCopy, planFill, planScale } from "../../src/gpu/elementwise.ts";
import { readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { assertClose, randomArray } from "../_util.ts";

for (const n of [1, 7, 37, 1000]) {
  Deno.test(`planScale() and planAddInPlace() match the CPU at n=${n}`, async () => {
    const gpu = await getGpu();
    const a = randomArray(n, 1);
    const b = randomArray(n, 2);
    const ta = uploadTensor(gpu, a, [n], "test.a");
    const tb = uploadTensor(gpu, b, [n], "test.b");
    await run(gpu, [await planScale(gpu, ta, 0.5), await planAddInPlace(gpu, ta, tb, -2)]);
    const want = a.map((x, i) => Math.fround(Math.fround(x * 0.5) + Math.fround(-2 * b[i])));
    assertClose(await readTensor(gpu, ta), want, `scale+add n=${n}`, 1e-6, 1e-6);
  });
}

Deno.test("planCopy() writes alpha * b at n=37", async () => {
  const gpu = await getGpu();
  const b = randomArray(37, 3);
  const out = uploadTensor(gpu, new Float32Array(37), [37], "test.out");
  const tb = uploadTensor(gpu, b, [37], "test.b");
  await run(gpu, [await planCopy(gpu, out, tb, 3)]);
  assertClose(await readTensor(gpu, out), b.map((x) => Math.fround(3 * x)), "copy", 0, 0);
});

Deno.test("planFill() sets every element at n=129", async () => {
  const gpu = await getGpu();
  const out = uploadTensor(gpu, randomArray(129, 4), [129], "test.fill");
  await run(gpu, [await planFill(gpu, out, -0.25)]);
  assertClose(await readTensor(gpu, out), new Float32Array(129).fill(-0.25), "fill", 0, 0);
});

Deno.test("planCopyRows() copies unaligned rows between dispatches", async () => {
  const gpu = await getGpu();
  const a = uploadTensor(gpu, randomArray(15, 5), [5, 3], "test.rows.a");
  const b = uploadTensor(gpu, new Float32Array(12), [4, 3], "test.rows.b");
  await run(gpu, [await planScale(gpu, a, 2), planCopyRows(a, 1, b, 3, 1, 3)]);
  const av = await readTensor(gpu, a);
  const want = new Float32Array(12);
  want.set(av.subarray(3, 6), 9);
  assertClose(await readTensor(gpu, b), want, "copy rows", 0, 0);
});
