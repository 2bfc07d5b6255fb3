// `npm pack` of the built package installs into a fresh project and works there:
// import, send, receive, await a delayed message, exit by itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = fileURLToPath(new URL("../../wasm/pkg/", import.meta.url));
const npm = (args, cwd) => execFileSync("npm", args, { cwd, encoding: "utf8", timeout: 120_000 });

test("the packed tarball installs and runs in a scratch project", () => {
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-pack-"));
  try {
    const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir, pkgDir], dir))[0];
    const files = packed.files.map((f) => f.path).sort();
    for (const f of ["package.json", "README.md", "index.d.ts", "node.js", "web.js", "pocketmq.js", "engine.js", "errors.js", "wire.js", "node_fs.js", "remote.js", "node/pocketmq_wasm.js", "node/pocketmq_wasm_bg.wasm", "web/pocketmq_wasm.js", "web/pocketmq_wasm_bg.wasm"]) {
      assert.ok(files.includes(f), `the package ships ${f}`);
    }
    assert.equal(packed.name, "pocketmq");

    const app = join(dir, "app");
    execFileSync("mkdir", [app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
    npm(["install", "--offline", "--no-audit", "--no-fund", join(dir, packed.filename)], app);
    writeFileSync(
      join(app, "main.mjs"),
      `import { Broker, InvalidArgumentError } from "pocketmq";
const broker = new Broker();
const p = broker.producer("shop");
const r = p.send("orders", "order 1 paid", { tags: "paid", keys: "order-1" });
p.send("orders", "reminder", { delayMs: 200 });
const c = broker.consumer({ group: "mail", topic: "orders" });
const got = [];
while (got.length < 2) {
  const msgs = await c.receive({ maxMessages: 8, timeoutMs: 3000 });
  if (msgs.length === 0) break;
  for (const m of msgs) { got.push(m.text()); c.ack(m); }
}
let code = null;
try { p.send("orders", "x", { delayLevel: -1 }); } catch (e) { code = e instanceof InvalidArgumentError && e.code; }
console.log(JSON.stringify({ msgId: r.msgId, got, code }));
broker.close();
`,
    );
    const out = JSON.parse(execFileSync(process.execPath, ["main.mjs"], { cwd: app, encoding: "utf8", timeout: 30_000 }));
    assert.match(out.msgId, /^[0-9A-F]{32}$/i);
    assert.deepEqual(out.got, ["order 1 paid", "reminder"]);
    assert.equal(out.code, "InvalidArgument");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
