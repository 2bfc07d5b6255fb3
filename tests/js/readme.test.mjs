// The READMEs' JavaScript examples (the repository's and the npm package's) run
// as written against the package.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

for (const readme of ["README.md", "wasm/js/README.md"]) {
  test(`the first js block of ${readme} runs`, () => {
    const text = readFileSync(new URL(`../../${readme}`, import.meta.url), "utf8");
    const block = text.match(/^```js\n([\s\S]*?)^```/m);
    assert.ok(block, `${readme} has a \`\`\`js block`);
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
}
