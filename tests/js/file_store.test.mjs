// A Node service keeps its messages across restarts: `new Broker({ path })` is a
// file store over Node's fs. Each test writes with one process and reads back with
// another, the way a restarted service would.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Broker, DiskFullError, StoreCorruptedError, StoreLockedError } from "pocketmq";

const url = JSON.stringify(import.meta.resolve("pocketmq"));

function store(t) {
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-store-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "data");
}

/** Runs an ES module in a new Node process; its last stdout line is JSON. */
function run(source) {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", `import { Broker } from ${url};\n${source}`], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return r;
}

function lastJson(r) {
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

const text = (m) => m.text();

async function drain(consumer, want, timeoutMs = 5000) {
  const got = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < want && Date.now() < deadline) {
    const msgs = await consumer.receive({ maxMessages: 32, timeoutMs: Math.max(deadline - Date.now(), 0) });
    for (const m of msgs) {
      got.push(m);
      consumer.ack(m);
    }
  }
  return got;
}

test("a second process reads back messages, acked offsets and a pending delay", async (t) => {
  const path = store(t);
  const first = run(`
    const broker = new Broker({ path: ${JSON.stringify(path)} });
    broker.createTopic("orders", { queues: 1 });
    const p = broker.producer("shop");
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(p.send("orders", "order " + i, { keys: "order-" + i }).msgId);
    const sentAt = Date.now();
    // Due well after the second process's first drain, even on a loaded machine.
    const delayed = p.send("orders", "reminder", { delayMs: 5000 });
    const c = broker.consumer({ group: "billing", topic: "orders" });
    const got = await c.receive({ maxMessages: 3, timeoutMs: 1000 });
    c.ack(got);
    broker.close();
    console.log(JSON.stringify({ ids, acked: got.map((m) => m.text()), dueAt: sentAt + 5000, delayed: delayed.msgId }));
  `);
  assert.equal(first.status, 0, first.stderr);
  const { ids, acked, dueAt } = lastJson(first);
  assert.deepEqual(acked, ["order 0", "order 1", "order 2"]);

  const broker = new Broker({ path });
  t.after(() => broker.close());
  assert.equal(broker.lag("billing", "orders"), 3, "acked messages stay acked");
  assert.equal(broker.get(ids[4])?.text(), "order 4");
  assert.deepEqual(broker.query("orders", "order-5").map(text), ["order 5"]);

  const c = broker.consumer({ group: "billing", topic: "orders" });
  const now = await drain(c, 3, 1000);
  assert.deepEqual(now.map(text), ["order 3", "order 4", "order 5"], "only the unacked messages come again");
  const later = await drain(c, 1, 15_000);
  assert.deepEqual(later.map(text), ["reminder"], "the pending delay survives the restart");
  assert.ok(Date.now() >= dueAt, "the delayed message is not delivered before its time");
  assert.equal(broker.lag("billing", "orders"), 0);
});

test("appended messages reach the disk while the store is open: a killed process loses none of them", async (t) => {
  const path = store(t);
  const killed = run(`
    const broker = new Broker({ path: ${JSON.stringify(path)} });
    const p = broker.producer("shop");
    for (let i = 0; i < 3; i++) p.send("orders", "order " + i);
    // Past the flush timer, then die without closing (as in a crash or kill -9).
    setTimeout(() => process.kill(process.pid, "SIGKILL"), 1000);
  `);
  assert.equal(killed.signal, "SIGKILL", killed.stderr);
  assert.ok(existsSync(join(path, "lock")), "the dead process left its lock behind");

  const warned = [];
  const warn = console.warn;
  console.warn = (...a) => warned.push(a.join(" "));
  let broker;
  try {
    broker = new Broker({ path }); // a stale lock is taken over
  } finally {
    console.warn = warn;
  }
  t.after(() => broker.close());
  assert.ok(
    warned.some((w) => w.includes(`process ${killed.pid} had it open`)),
    `the takeover names the dead process: ${JSON.stringify(warned)}`,
  );
  const got = await drain(broker.consumer({ group: "g", topic: "orders" }), 3, 2000);
  assert.deepEqual(got.map(text).sort(), ["order 0", "order 1", "order 2"]);
});

test("a loop that never yields to the event loop still flushes: a kill loses only the last moments", async (t) => {
  const path = store(t);
  // The flush timer cannot run during a synchronous loop: the sends themselves flush
  // at its pace. The count at 300 ms is written to stdout as it stands then.
  const killed = run(`
    import { writeSync } from "node:fs";
    const broker = new Broker({ path: ${JSON.stringify(path)}, flushIntervalMs: 50 });
    const p = broker.producer("shop");
    const start = Date.now();
    let marked = false;
    for (let i = 0; ; i++) {
      p.send("orders", "order " + i);
      const ms = Date.now() - start;
      if (!marked && ms >= 300) {
        writeSync(1, JSON.stringify({ sent: i + 1 }) + "\\n");
        marked = true;
      }
      if (ms >= 600) process.kill(process.pid, "SIGKILL");
    }
  `);
  assert.equal(killed.signal, "SIGKILL", killed.stderr);
  const { sent } = lastJson(killed);
  const broker = new Broker({ path });
  t.after(() => broker.close());
  broker.consumer({ group: "g", topic: "orders" });
  const lag = broker.lag("g", "orders");
  assert.ok(lag >= sent, `${lag} messages survived the kill, ${sent} were sent 300 ms before it`);
});

test("the periodic flush never stalls the event loop on the disk: its syncs run in the background, close waits for them", async (t) => {
  const path = store(t);
  // Counts the store's blocking and background syncs (Node's fs, patched in a child).
  const r = run(`
    import fs from "node:fs";
    import { syncBuiltinESMExports } from "node:module";
    const count = { blocking: 0, background: 0 };
    const { fdatasyncSync, fdatasync } = fs;
    fs.fdatasyncSync = (fd) => (count.blocking++, fdatasyncSync(fd));
    fs.fdatasync = (fd, cb) => (count.background++, fdatasync(fd, cb));
    syncBuiltinESMExports();
    const broker = new Broker({ path: ${JSON.stringify(path)}, flushIntervalMs: 20 });
    broker.createTopic("orders", { queues: 1 });
    const p = broker.producer("shop");
    const start = Date.now();
    for (let i = 0; Date.now() - start < 300; i++) p.send("orders", "order " + i);
    const during = { ...count };
    const onDisk = fs.readdirSync(${JSON.stringify(path)} + "/commitlog")
      .some((f) => fs.readFileSync(${JSON.stringify(path)} + "/commitlog/" + f).includes("order 0"));
    broker.close();
    console.log(JSON.stringify({ during, after: count, onDisk }));
  `);
  assert.equal(r.status, 0, r.stderr);
  const { during, after, onDisk } = lastJson(r);
  assert.ok(during.background >= 3, `background syncs while sending: ${JSON.stringify(during)}`);
  assert.equal(during.blocking, 0, `no blocking sync while sending: ${JSON.stringify(during)}`);
  assert.ok(onDisk, "what was sent is written out while the store is open");
  assert.ok(after.blocking > 0, "close makes everything durable before it returns");
});

test("acks of a listener draining a backlog are kept across a kill", async (t) => {
  const path = store(t);
  const killed = run(`
    const broker = new Broker({ path: ${JSON.stringify(path)}, flushIntervalMs: 50 });
    broker.createTopic("orders", { queues: 1 });
    const p = broker.producer("shop");
    for (let i = 0; i < 100; i++) p.sendBatch("orders", Array.from({ length: 500 }, (_, j) => "m" + (i * 500 + j)));
    broker.flush();
    let handled = 0;
    broker.consumer({ group: "g", topic: "orders" }).listen(() => {
      const until = performance.now() + 0.02; // 20 us of work a message
      while (performance.now() < until);
      handled += 1;
    });
    // The listener has a backlog of 50,000 (a second of work): while it drains,
    // timers must still run.
    setTimeout(() => {
      console.log(JSON.stringify({ handled }));
      process.kill(process.pid, "SIGKILL");
    }, 400);
  `);
  assert.equal(killed.signal, "SIGKILL", killed.stderr);
  const { handled } = lastJson(killed);
  assert.ok(handled > 0 && handled < 50_000, `handled ${handled} before the kill`);
  const broker = new Broker({ path });
  t.after(() => broker.close());
  const lag = broker.lag("g", "orders");
  assert.ok(lag < 50_000, `acks before the kill were kept: lag ${lag} of 50000 (handled ${handled})`);
});

test("a lock an earlier process with this pid left is taken over", async (t) => {
  const path = store(t);
  new Broker({ path }).close();
  // A container's pid 1 restarted: the lock names this very pid, from its earlier life.
  const r = run(`
    import { writeFileSync } from "node:fs";
    writeFileSync(${JSON.stringify(join(path, "lock"))}, process.pid + "\\nhost\\n");
    const b = new Broker({ path: ${JSON.stringify(path)} });
    let second;
    try {
      new Broker({ path: ${JSON.stringify(path)} });
    } catch (e) {
      second = e.name;
    }
    b.close();
    console.log(JSON.stringify({ second }));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(lastJson(r).second, "StoreLockedError", "while this process holds it, a second open is refused");
});

test("processes that find a stale lock at the same moment: one takes the store, none loses a sync send", async (t) => {
  for (let round = 0; round < 4; round++) {
    const path = store(t);
    new Broker({ path }).close();
    writeFileSync(join(path, "lock"), "999999\nhost\n1\n"); // its process is gone
    const go = Date.now() + 1500;
    const kids = Array.from({ length: 5 }, () =>
      spawn(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import { Broker } from ${url};
          console.warn = () => {};
          while (Date.now() < ${go});
          let b;
          try {
            b = new Broker({ path: ${JSON.stringify(path)}, flush: "sync" });
          } catch (e) {
            console.log(JSON.stringify(e.name));
            process.exit(0);
          }
          const p = b.producer("p");
          const ids = [];
          const step = () => {
            for (let k = 0; k < 10; k++) ids.push(p.send("t", "from " + process.pid).msgId);
            if (ids.length < 100) setTimeout(step, 5);
            else {
              b.close();
              console.log(JSON.stringify(ids));
            }
          };
          step();`,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      ),
    );
    const outs = await Promise.all(
      kids.map(
        (k) =>
          new Promise((done) => {
            let out = "";
            k.stdout.on("data", (d) => (out += d));
            k.on("exit", () => done(JSON.parse(out.trim())));
          }),
      ),
    );
    const owners = outs.filter(Array.isArray);
    assert.equal(owners.length, 1, `round ${round}: ${JSON.stringify(outs.map((o) => (Array.isArray(o) ? "owner" : o)))}`);
    assert.deepEqual(outs.filter((o) => !Array.isArray(o)), Array(4).fill("StoreLockedError"));
    const b = new Broker({ path });
    assert.equal(owners[0].filter((id) => b.get(id) === null).length, 0, "every sync send is there");
    assert.equal(b.stats().messagesIn, 100);
    b.close();
  }
});

test("a process that exits without close still closes its store", async (t) => {
  const path = store(t);
  const r = run(`
    const broker = new Broker({ path: ${JSON.stringify(path)} });
    broker.producer("shop").send("orders", "sent just before exit");
    console.log(JSON.stringify({ ok: true }));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!existsSync(join(path, "lock")), "the lock is released at exit");
  const broker = new Broker({ path });
  t.after(() => broker.close());
  const got = await drain(broker.consumer({ group: "g", topic: "orders" }), 1, 2000);
  assert.deepEqual(got.map(text), ["sent just before exit"]);
});

test("a second open while another process holds the store fails with StoreLocked naming its pid", async (t) => {
  const path = store(t);
  const holder = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { Broker } from ${url};
       const broker = new Broker({ path: ${JSON.stringify(path)} });
       console.log("ready");
       process.stdin.on("data", () => {}).on("end", () => { broker.close(); process.exit(0); });`,
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  t.after(() => holder.kill("SIGKILL"));
  await new Promise((resolve, reject) => {
    holder.stdout.on("data", (d) => String(d).includes("ready") && resolve());
    holder.on("exit", (code) => reject(new Error(`holder exited early (${code})`)));
  });

  assert.throws(
    () => new Broker({ path }),
    (err) => {
      assert.ok(err instanceof StoreLockedError);
      assert.equal(err.code, "StoreLocked");
      assert.equal(err.pid, holder.pid);
      assert.match(err.message, new RegExp(`\\b${holder.pid}\\b`));
      assert.doesNotMatch(err.message, /this process/);
      return true;
    },
  );

  // Once the holder closes, the store opens.
  const exited = new Promise((resolve) => holder.on("exit", resolve));
  holder.stdin.end();
  await exited;
  const broker = new Broker({ path });
  broker.producer("shop").send("orders", "after the holder left");

  // This process holds it now: a second broker on it, here, is refused too.
  // (Its message says the holder is this process, and to close that broker first.)
  assert.throws(
    () => new Broker({ path }),
    (err) => err.code === "StoreLocked" && err.pid === process.pid && /this process.*close\(\)/.test(err.message),
  );
  broker.close();
  const again = new Broker({ path });
  assert.equal(again.lag("g", "orders"), 1);
  again.close();
});

test("message ids differ between processes and between stores", async (t) => {
  const ids = [0, 1].map(() => {
    const r = run(`console.log(JSON.stringify(new Broker().producer("p").send("t", "x").msgId));`);
    assert.equal(r.status, 0, r.stderr);
    return lastJson(r);
  });
  assert.notEqual(ids[0], ids[1]);
  const [a, b] = [store(t), store(t)].map((path) => new Broker({ path }));
  assert.notEqual(a.producer("p").send("t", "x").msgId, b.producer("p").send("t", "x").msgId);
  a.close();
  b.close();
});

test("an open that fails leaves the store unlocked", async (t) => {
  const path = store(t);
  new Broker({ path }).close();
  const topics = join(path, "config", "topics.json");
  const good = readFileSync(topics);
  writeFileSync(topics, "{ not json");
  assert.throws(() => new Broker({ path }), (err) => err instanceof StoreCorruptedError);
  assert.ok(!existsSync(join(path, "lock")), "the failed open gave the lock back");
  writeFileSync(topics, good);
  const broker = new Broker({ path });
  broker.producer("p").send("t", "x");
  broker.close();
});

test("a directory that cannot be made is an IoError at once, with the system's reason", { skip: process.platform !== "linux" }, () => {
  // /proc/self exists and refuses children with ENOENT: Node's recursive mkdir loops
  // forever there; the store makes its directories one level at a time.
  assert.throws(() => new Broker({ path: "/proc/self/store" }), (err) => err.code === "Io" && /ENOENT/.test(err.message));
});

test("sends stop while the disk is used above diskMaxUsedRatio", async (t) => {
  // A small file system of its own (a tmpfs; this needs the right to mount one).
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-fs-"));
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dir]);
  if (mounted.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    t.skip(`cannot mount a tmpfs here: ${String(mounted.stderr).trim()}`);
    return;
  }
  t.after(() => {
    spawnSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, "data");
  const broker = new Broker({ path, diskMaxUsedRatio: 0.5, segmentSize: 1 << 20 });
  const p = broker.producer("p");
  p.send("t", "before");
  writeFileSync(join(dir, "filler"), Buffer.alloc(12 << 20));
  broker.tick();
  assert.throws(() => p.send("t", "refused"), (err) => err instanceof DiskFullError && err.code === "DISK_FULL");
  rmSync(join(dir, "filler"));
  broker.tick();
  p.send("t", "after");
  const c = broker.consumer({ group: "g", topic: "t" });
  assert.deepEqual((await drain(c, 2)).map(text).sort(), ["after", "before"]);
  broker.close();
});

test("a file store of hundreds of queues opens, fills and reopens: a queue's segment is small", async (t) => {
  // Node holds a store's segments in the engine's memory whole; with RocketMQ's
  // 6 MB ConsumeQueue files, about 500 queues filled the engine's 3 GiB (DiskFull).
  const path = store(t);
  const topics = 200;
  let broker = new Broker({ path });
  const p = broker.producer("shop");
  for (let i = 0; i < topics; i++) {
    for (let q = 0; q < 4; q++) p.send(`topic-${i}`, `m${i}.${q}`, { queueId: q });
  }
  broker.close();
  const cq = join(path, "consumequeue", "topic-7", "2");
  assert.deepEqual(readdirSync(cq).map((f) => statSync(join(cq, f)).size), [16_384 * 20]);

  broker = new Broker({ path });
  t.after(() => broker.close());
  for (const i of [0, 7, topics - 1]) {
    const c = broker.consumer({ group: `audit-${i}`, topic: `topic-${i}` });
    const got = await drain(c, 4);
    assert.deepEqual(got.map(text).sort(), [0, 1, 2, 3].map((q) => `m${i}.${q}`));
  }
  assert.equal(broker.lag("audit-8", "topic-8"), 4);
});

test("a store of more queues than the process may open files holds a few open at a time", async (t) => {
  // Node raises its soft limit to the hard one; here both are 400, and the store has
  // a ConsumeQueue file for each of 1,000 queues. Flushes while sends run, then a
  // reopen that reads them all.
  const path = store(t);
  const source = `import { Broker } from ${url};
    import { readdirSync } from "node:fs";
    const path = ${JSON.stringify(path)};
    let broker = new Broker({ path, flushIntervalMs: 10 });
    const p = broker.producer("shop");
    let most = 0;
    for (let i = 0; i < 250; i++) {
      for (let q = 0; q < 4; q++) p.send("topic-" + i, "m" + i + "." + q, { queueId: q });
      if (i % 25 === 24) {
        await new Promise((r) => setTimeout(r, 15));
        most = Math.max(most, readdirSync("/proc/self/fd").length);
      }
    }
    broker.close();
    broker = new Broker({ path });
    const lags = [0, 99, 249].map((i) => broker.lag("g", "topic-" + i));
    broker.close();
    console.log(JSON.stringify({ most, lags }));`;
  const r = spawnSync("bash", ["-c", `ulimit -Sn 400 && ulimit -Hn 400 && exec "$0" --input-type=module -e "$1"`, process.execPath, source], {
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const { most, lags } = lastJson(r);
  assert.deepEqual(lags, [4, 4, 4]);
  assert.ok(most < 320, `${most} descriptors open at most`);
});
