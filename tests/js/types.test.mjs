// The TypeScript declarations shipped with the package describe the API the
// examples use: `tsc --noEmit` over the JS examples and tests/types/ is clean.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

test("tsc --noEmit passes over the examples and the type checks", () => {
  const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
  const project = fileURLToPath(new URL("../tsconfig.json", import.meta.url));
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", project], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
