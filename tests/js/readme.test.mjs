// The README's JavaScript example runs as written against the package.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

test("the README's first js block runs", () => {
  const block = readme.match(/^```js\n([\s\S]*?)^```/m);
  assert.ok(block, "README.md has a ```js block");
  const code = block[1];
  assert.match(code, /from "pocketmq"/, "it imports the package");
  // Run it as a module of its own, importing the package this suite tests.
  const runnable = code.replaceAll('from "pocketmq"', `from ${JSON.stringify(import.meta.resolve("pocketmq"))}`);
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-readme-"));
  try {
    const file = join(dir, "readme.mjs");
    writeFileSync(file, runnable);
    const out = execFileSync(process.execPath, [file], { encoding: "utf8", timeout: 30_000 });
    if (/console\.log/.test(code)) assert.notEqual(out.trim(), "", "it prints what it says it prints");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
