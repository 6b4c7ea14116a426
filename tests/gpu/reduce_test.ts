import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { planSumSquares } from "../../src/gpu/adamw.ts";
import { subgroupReductions, withReductions } from "../../src/gpu/reduce.ts";
import { createTensor, readTensor, uploadTensor } from "../../src/gpu/tensor.ts";
import { randomArray } from "../_util.ts";
import { reductionRuns } from "./_reductions.ts";

Deno.test("withReductions() appends the subgroup library by default where it runs, the tree one on request", async () => {
  const gpu = await getGpu();
  const can = await subgroupReductions(gpu);
  assert.equal(can, await reductionRuns("subgroup")); // lavapipe: must be true
  const kernel = "// kernel\n";
  assert.match(await withReductions(gpu, kernel, "tree"), /^\/\/ kernel\n[^]*wg_sum2/);
  assert.doesNotMatch(await withReductions(gpu, kernel, "tree"), /subgroupAdd/);
  assert.equal((await withReductions(gpu, kernel)).includes("subgroupAdd"), can);
});

Deno.test("withReductions() refuses the subgroup variant on a device without subgroups", async () => {
  const real = await getGpu();
  const plain = { ...real, info: { ...real.info, features: [] } } as Gpu;
  assert.equal(await subgroupReductions(plain), false);
  assert.doesNotMatch(await withReductions(plain, ""), /subgroupAdd/);
  await assert.rejects(
    () => withReductions(plain, "", "subgroup"),
    /no subgroups made of consecutive invocations/,
  );
});

Deno.test("subgroup reductions are bit-identical across runs (several levels: 256 invocations)", async () => {
  if (!await reductionRuns("subgroup")) return;
  const gpu = await getGpu();
  const x = uploadTensor(gpu, randomArray(70001, 5), [70001], "test.reduce.x");
  const norms = createTensor(gpu, [1], "test.reduce.norms");
  const ops = await planSumSquares(gpu, norms, 0, x, false, "subgroup");
  const sums = [];
  for (let i = 0; i < 3; i++) {
    await run(gpu, ops);
    sums.push((await readTensor(gpu, norms))[0]);
  }
  assert.equal(new Set(sums).size, 1);
});
