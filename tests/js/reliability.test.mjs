// Failures found by outside testing, from JavaScript: retention driven by the JS
// timers (no tick needed), symbolic links in a Node store, the clock's range, and
// the new error and stats fields.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Broker, DiskFullError, InvalidArgumentError, ManualClock, StoreCorruptedError } from "pocketmq";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("retention runs on the JS timers, without tick", async () => {
  // 03:00 UTC: an hour later is RocketMQ's default deleteWhen hour, 04.
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 3));
  const broker = new Broker({ clock, segmentSize: 4096, fileReservedTimeMs: 60_000 });
  const p = broker.producer("p");
  for (let i = 0; i < 40; i++) p.send("t", "z".repeat(900));
  const before = broker.stats().commitlogBytes;
  assert.ok(before > 4 * 4096);
  clock.advance(3_600_000);
  for (let i = 0; i < 50 && broker.stats().commitlogBytes === before; i++) await sleep(20);
  assert.ok(broker.stats().commitlogBytes < before, "retention ran by itself");
  const stats = broker.stats();
  assert.equal(typeof stats.corruptRecords, "number");
  broker.close();
});

test("retention counts per group what expired unconsumed", () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const broker = new Broker({ clock, segmentSize: 4096, fileReservedTimeMs: 60_000, deleteWhen: "*" });
  broker.createTopic("t", { queues: 1 });
  broker.consumer({ group: "slow", topic: "t" });
  const p = broker.producer("p");
  for (let i = 0; i < 40; i++) p.send("t", "z".repeat(900));
  clock.advance(3_600_000);
  p.send("t", "fresh");
  broker.tick();
  const slow = broker.stats().groups.find((g) => g.group === "slow");
  assert.ok(slow.expired > 0, JSON.stringify(slow));
  broker.close();
});

test("expired segments wait for the deleteWhen hour", () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 16));
  const broker = new Broker({ clock, segmentSize: 4096, fileReservedTimeMs: 60_000, deleteWhen: "01;13" });
  const p = broker.producer("p");
  for (let i = 0; i < 40; i++) p.send("t", "z".repeat(900));
  const before = broker.stats().commitlogBytes;
  clock.advance(3_600_000); // 17:00
  broker.tick();
  assert.equal(broker.stats().commitlogBytes, before, "not an hour of deleteWhen");
  clock.advance(8 * 3_600_000); // 01:00
  broker.tick();
  assert.ok(broker.stats().commitlogBytes < before);
  broker.close();
  assert.throws(() => new Broker({ deleteWhen: "25" }), InvalidArgumentError);
});

test("a Node store with a symbolic link in it is refused, its target untouched", () => {
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-link-"));
  try {
    const victim = join(dir, "victim");
    writeFileSync(victim, "precious");
    const store = join(dir, "store");
    let broker = new Broker({ path: store });
    broker.producer("p").send("t", "x");
    broker.close();
    mkdirSync(join(store, "config"), { recursive: true });
    symlinkSync(victim, join(store, "config", "topics.json.tmp"));
    assert.throws(() => new Broker({ path: store }), (e) => e instanceof StoreCorruptedError && /symbolic link/.test(e.message));
    assert.equal(readFileSync(victim, "utf8"), "precious");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an empty path is InvalidArgument and writes nothing anywhere", () => {
  const cwd = process.cwd();
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-cwd-"));
  try {
    process.chdir(dir);
    assert.throws(() => new Broker({ path: "" }), InvalidArgumentError);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a manual clock never moves backwards", () => {
  const start = Date.UTC(2026, 0, 1);
  const clock = new ManualClock(start);
  assert.throws(() => clock.advance(1.8e19), InvalidArgumentError);
  assert.throws(() => clock.advance(1.8e16 * 1000), InvalidArgumentError);
  assert.equal(clock.now(), start);
  clock.advance(1500);
  assert.equal(clock.now(), start + 1500);
});

test("DiskFullError has the code DISK_FULL", () => {
  const e = new DiskFullError("x");
  assert.equal(e.code, "DISK_FULL");
  assert.equal(e.name, "DiskFullError");
});

test("a memory store that fills the engine's memory refuses sends with DiskFull and stays usable", async () => {
  // wasm memory ends at 4 GiB: the store's segments stop short of it, so the engine
  // never traps on an allocation it cannot get.
  const broker = new Broker();
  const p = broker.producer("p");
  const body = new Uint8Array(4 * 1024 * 1024 - 1024);
  let sent = 0;
  let error;
  try {
    for (; sent < 2000; sent++) p.send("big", body);
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof DiskFullError, String(error));
  assert.equal(error.code, "DISK_FULL");
  assert.ok(sent > 500, `${sent} sends before the store was full`);
  assert.equal(broker.stats().messagesIn, sent, "the refused send stored nothing");
  p.send("big", "small"); // what fits in the current segment still goes in
  const c = broker.consumer({ group: "g", topic: "big" });
  const got = await c.receive({ maxMessages: 4, timeoutMs: 0 });
  assert.equal(got.length, 4);
  c.ack(got);
  broker.close();
});
