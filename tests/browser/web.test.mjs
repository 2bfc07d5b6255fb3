// examples/web/ in headless Chromium: the page loads the browser build of the
// package, runs its order flow and shows the result in the DOM, then bursts of
// orders against two consumers with the backlog drawn on a canvas. A screenshot
// of the page goes to artifacts/browser/ at the repository root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { serve } from "./serve.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const artifacts = new URL("../../artifacts/browser/", import.meta.url);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

test("the web example runs the order flow and charts the backlog in the browser", async (t) => {
  const server = await serve(root);
  t.after(() => server.close());
  const browser = await chromium.launch({
    executablePath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request: ${r.url()} ${r.failure()?.errorText}`));

  await page.goto(`${server.url}/examples/web/index.html`);
  const status = page.locator("#status");
  await page.waitForFunction(
    () => /^(done|failed)/.test(document.getElementById("status")?.textContent ?? "") &&
      /^(done|failed)/.test(document.getElementById("backlog-summary")?.textContent ?? ""),
    null,
    { timeout: 30_000 },
  );
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: fileURLToPath(new URL("web-example.png", artifacts)), fullPage: true });

  assert.deepEqual(problems, []);
  assert.equal(await status.textContent(), "done: 3 messages received and acked, lag 0");
  const rows = await page.locator("#result tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
  );
  assert.deepEqual(
    rows.map((r) => `${r[1]} ${r[2]}`).sort(),
    ["paid order 41 paid: 18.00 EUR", "paid order 42 paid: 7.50 EUR", "shipped order 41 shipped"],
  );
  const order41 = rows.filter((r) => r[3] === "order-41").map((r) => r[1]);
  assert.deepEqual(order41, ["paid", "shipped"], "one key's events arrive in order");

  // The burst-and-drain chart: every order sent was acked, the backlog rose and
  // came back to zero, and the canvas holds a drawn line.
  const summary = page.locator("#backlog-summary");
  assert.match(await summary.textContent(), /^done: /);
  const data = await summary.evaluate((el) => ({ ...el.dataset }));
  assert.equal(data.sent, "1680");
  assert.equal(data.acked, "1680", "every order is acked");
  assert.equal(data.last, "0", "the backlog drains to zero");
  assert.ok(Number(data.peak) > 100, `the bursts pile up a backlog (peak ${data.peak})`);
  assert.ok(Number(data.samples) >= 10, `the backlog is sampled over time (${data.samples} samples)`);
  const linePixels = await page.locator("#backlog").evaluate((canvas) => {
    const { data: px } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i + 2] > 200 && px[i] < 80 && px[i + 3] > 200) n += 1;
    return n;
  });
  assert.ok(linePixels > 500, `the backlog line is drawn (${linePixels} line-coloured pixels)`);

  // A file store needs Node's fs: in a browser a path is refused.
  const refused = await page.evaluate(async () => {
    const { Broker } = await import("pocketmq");
    try {
      new Broker({ path: "data" });
      return "opened";
    } catch (err) {
      return err.code;
    }
  });
  assert.equal(refused, "InvalidArgument");
});
