import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/kernel.ts";
import { readTensor } from "../../src/gpu/tensor.ts";
import { BST } from "../../src/models/bst.ts";
import { paramsFromSafetensors } from "../../src/train/param_table.ts";
import { toFloat32, toInt32 } from "../../src/train/safetensors.ts";
import { bstTiny, tinyConfig } from "../_bst_fixture.ts";
import { assertClose } from "../_util.ts";

const fixture = await bstTiny();
const isParam = (n: string) => n.startsWith("encoder.") || n.startsWith("text_head.");

async function fixtureModel(): Promise<BST> {
  const gpu = await getGpu();
  const model = await BST.create(gpu, tinyConfig(fixture));
  model.setParameters(
    paramsFromSafetensors(model.table, fixture.tensors, "bst_tiny", { ignore: (n) => !isParam(n) }),
  );
  return model;
}

const tokens = toInt32(fixture.tensors.get("input.tokens")!);
const [B, T] = fixture.tensors.get("input.tokens")!.shape;
const expected = (name: string) => toFloat32(fixture.tensors.get(name)!);

Deno.test("BST encoders match the PyTorch fixture (fwd_emb, bwd_emb)", async () => {
  const model = await fixtureModel();
  const enc = await model.encoders(B, T);
  enc.setTokens(tokens);
  await run(model.gpu, enc.forward);
  const N = B * T;
  const C = model.config.nEmbd;
  const f = (await readTensor(model.gpu, enc.outF)).subarray(0, N * C);
  const b = (await readTensor(model.gpu, enc.outB)).subarray(0, N * C);
  assertClose(f, expected("expected.fwd_emb"), "fwd_emb", 1e-4, 1e-3);
  assertClose(b, expected("expected.bwd_emb"), "bwd_emb", 1e-4, 1e-3);
});
