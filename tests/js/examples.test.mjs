// The runnable JS examples run against the package and print what they promise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

function runExample(name) {
  const src = readFileSync(fileURLToPath(new URL(`../../examples/js/${name}`, import.meta.url)), "utf8");
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-example-"));
  try {
    const file = join(dir, name);
    writeFileSync(file, src.replaceAll('from "pocketmq"', `from ${JSON.stringify(import.meta.resolve("pocketmq"))}`));
    return execFileSync(process.execPath, [file], { encoding: "utf8", timeout: 30_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("examples/js/order_flow.mjs: tags filter, delay, transaction", () => {
  const out = runExample("order_flow.mjs");
  assert.match(out, /^payment [0-9A-F]{32} COMMIT$/im);
  const sms = out.split("\n").filter((l) => l.startsWith("sms: "));
  assert.deepEqual(
    sms.map((l) => l.match(/^sms: \[(\w+)\] (.*) \(queue/).slice(1, 3).join(" ")),
    ["paid order-41 paid", "shipped order-41 shipped", "paid order-43 paid", "reminder order-41 review reminder"],
  );
  assert.match(out, /^history of order-41: created -> paid -> shipped -> reminder$/m);
  assert.match(out, /^lag of sms: 0$/m);
});
