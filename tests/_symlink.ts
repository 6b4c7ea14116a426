import assert from "node:assert/strict";

/**
 * Creates a symbolic link with `ln -s`: `Deno.symlink` needs unscoped write permission, which
 * the test permission set does not grant.
 *
 * @param target What the link points to.
 * @param path The link to create.
 */
export async function symlink(target: string, path: string): Promise<void> {
  const { success } = await new Deno.Command("ln", { args: ["-s", target, path] }).output();
  assert.ok(success, `ln -s ${target} ${path}`);
}
