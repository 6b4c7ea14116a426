import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkOutputDir,
  isInside,
  resolveContained,
  resolveLinks,
} from "../../src/io/safe_paths.ts";
import { symlink } from "../_symlink.ts";

Deno.test("isInside() compares whole path components", () => {
  assert.equal(isInside("/a/out", "/a/out"), true);
  assert.equal(isInside("/a/out/run1/x", "/a/out"), true);
  assert.equal(isInside("/a/outside", "/a/out"), false);
  assert.equal(isInside("/a", "/a/out"), false);
  assert.equal(isInside("/b/out", "/a/out"), false);
  assert.equal(isInside("/a/out/..x", "/a/out"), true);
});

async function withDirs(f: (base: string, elsewhere: string) => Promise<void>): Promise<void> {
  const base = await Deno.realPath(await Deno.makeTempDir());
  const elsewhere = await Deno.realPath(await Deno.makeTempDir());
  try {
    await f(base, elsewhere);
  } finally {
    await Deno.remove(base, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
}

Deno.test("resolveContained() refuses a link inside an allowed folder that leads out", async () => {
  await withDirs(async (base, elsewhere) => {
    const out = join(base, "out");
    await Deno.mkdir(out);
    await symlink(elsewhere, join(out, "link"));
    const roots = [out, join(base, "data")];
    await assert.rejects(
      resolveContained(join(out, "link", "run1"), { roots, key: "trainer.out_dir" }),
      (e: Error) => {
        assert.equal(
          e.message,
          `trainer.out_dir "${join(out, "link", "run1")}" leads outside "${out}" through a ` +
            `symbolic link (to "${join(elsewhere, "run1")}")`,
        );
        return true;
      },
    );
    // A dangling link is followed too.
    await symlink(join(elsewhere, "missing"), join(out, "dangling"));
    await assert.rejects(
      resolveContained(join(out, "dangling", "x"), { roots, key: "k" }),
      /^Error: k ".*dangling\/x" leads outside .* \(to ".*missing\/x"\)$/,
    );
    // Missing paths, links that stay inside, and explicit paths outside the roots are fine.
    assert.equal(
      await resolveContained(join(out, "new", "deeper"), { roots, key: "k" }),
      join(out, "new", "deeper"),
    );
    await symlink(join(out, "new"), join(out, "inner"));
    assert.equal(await resolveContained(join(out, "inner"), { roots, key: "k" }), join(out, "new"));
    assert.equal(await resolveContained(elsewhere, { roots, key: "k" }), elsewhere);
  });
});

Deno.test("resolveContained() accepts an allowed folder that is itself a link", async () => {
  await withDirs(async (base, elsewhere) => {
    await symlink(elsewhere, join(base, "out"));
    const real = await resolveContained(join(base, "out", "run1"), {
      roots: [join(base, "out")],
      key: "trainer.out_dir",
    });
    assert.equal(real, join(elsewhere, "run1"));
    assert.equal(await resolveLinks(join(base, "out", "a", "b")), join(elsewhere, "a", "b"));
  });
});

Deno.test("checkOutputDir() names the key when the folder is not writable or links out", async () => {
  await withDirs(async (base, elsewhere) => {
    const roots = [join(base, "out")];
    await checkOutputDir(join(base, "out", "run"), { roots, key: "trainer.out_dir" });
    assert.deepEqual([...Deno.readDirSync(join(base, "out", "run"))], []);
    // The test permissions allow writing only under ./tests/.tmp and /tmp.
    await assert.rejects(
      checkOutputDir("/var/bst_webgpu_no_such_dir/out", { roots, key: "trainer.out_dir" }),
      (e: Error) => {
        assert.equal(
          e.message,
          `trainer.out_dir "/var/bst_webgpu_no_such_dir/out" is not writable: the task's ` +
            `permissions do not allow writing there`,
        );
        return true;
      },
    );
    await symlink(elsewhere, join(base, "out", "link"));
    await assert.rejects(
      checkOutputDir(join(base, "out", "link"), { roots, key: "trainer.out_dir" }),
      /^Error: trainer\.out_dir ".*link" leads outside/,
    );
    await Deno.writeTextFile(join(base, "file"), "");
    await assert.rejects(
      checkOutputDir(join(base, "file"), { roots, key: "trainer.out_dir" }),
      /^Error: trainer\.out_dir ".*file" is not writable: /,
    );
  });
});
