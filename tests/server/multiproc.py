"""Several processes sharing one served store: producer processes and SimpleConsumer
processes (the official Python client) against one `pocketmq serve` on a file store.
Every acknowledged send must be delivered to the group; then the server is killed
with SIGKILL, restarted on the same directory, and every acknowledged send must still
be there (checked through the restarted server, then in the store itself).

usage: multiproc.py --serve CMD --store DIR [--messages N] [--producers 4] [--consumers 4]

CMD starts the server (e.g. ".venv/bin/pocketmq serve"); the store directory and
--listen 127.0.0.1:0 are appended. The checks on the stopped store use the pocketmq
package, imported from the interpreter named by --check-python. Workers are this
file run with --produce / --consume. Prints figures and PASS/FAIL lines; exits 1 when
a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

TOPIC = "shared"
GROUP = "shared-g"
BODY = b"x" * 100
WINDOW = 64


def config(endpoint: str):  # noqa: ANN201 - the client's type
    from rocketmq import ClientConfiguration, Credentials

    return ClientConfiguration(endpoint, Credentials(), request_timeout=10)


def produce(endpoint: str, index: int, n: int, out: str) -> int:
    """Sends n messages, WINDOW in flight; writes the id of each acknowledged one."""
    from rocketmq import Message, Producer

    producer = Producer(config(endpoint), (TOPIC,))
    producer.startup()
    failed = 0
    with open(out, "w") as f:
        pending = []
        for i in range(n):
            m = Message()
            m.topic = TOPIC
            m.body = BODY
            m.keys = f"p{index}-{i}"
            pending.append(producer.send_async(m))
            if len(pending) >= WINDOW or i == n - 1:
                for fut in pending:
                    try:
                        f.write(fut.result().message_id + "\n")
                    except Exception as e:  # noqa: BLE001 - an unacknowledged send is not counted
                        failed += 1
                        print(f"producer {index}: send failed: {e}", file=sys.stderr)
                f.flush()
                pending = []
    producer.shutdown()
    return 1 if failed else 0


def consume(endpoint: str, out: str) -> int:
    """Receives and acks until SIGTERM; writes the id and attempt of each delivery."""
    from rocketmq import FilterExpression, SimpleConsumer

    consumer = SimpleConsumer(config(endpoint), GROUP, {TOPIC: FilterExpression()}, await_duration=2)
    consumer.startup()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(out, "w") as f:
        while not stop:
            try:
                msgs = consumer.receive(32, 30)
            except Exception as e:  # noqa: BLE001 - keep polling
                print(f"consumer: receive failed: {e}", file=sys.stderr)
                time.sleep(0.5)
                continue
            for m in msgs:
                # Pipelined: the client's ack_async returns no future (5.1.2); an ack
                # that fails leaves the message to come back after its invisible time.
                consumer.ack_async(m)
                f.write(f"{m.message_id} {m.delivery_attempt}\n")
            f.flush()
    consumer.shutdown()
    return 0


class Server:
    def __init__(self, cmd: str, store: Path, log: Path):
        self.cmd, self.store, self.log = cmd, store, log
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def start(self) -> None:
        err = open(self.log, "a")
        self.proc = subprocess.Popen(
            [*shlex.split(self.cmd), str(self.store), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("pocketmq-serve listening on "):
            raise SystemExit(f"the server did not start: {line!r} (log: {self.log})")
        self.endpoint = line.rsplit(" ", 1)[1].strip()

    def stop(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve")
    ap.add_argument("--store", type=Path)
    ap.add_argument("--check-python", default=sys.executable)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--produce", nargs=4, metavar=("ENDPOINT", "INDEX", "N", "OUT"))
    ap.add_argument("--consume", nargs=2, metavar=("ENDPOINT", "OUT"))
    ap.add_argument("--verify", nargs=2, metavar=("STORE", "ACKED"))
    a = ap.parse_args()
    if a.produce:
        return produce(a.produce[0], int(a.produce[1]), int(a.produce[2]), a.produce[3])
    if a.consume:
        return consume(*a.consume)
    if a.verify:
        return verify(Path(a.verify[0]), Path(a.verify[1]))

    work = a.store.parent
    failed = 0

    def check(ok: bool, what: str) -> None:
        nonlocal failed
        print(f"{'PASS' if ok else 'FAIL'} multi-process: {what}", flush=True)
        failed += 0 if ok else 1

    server = Server(a.serve, a.store, work / "multiproc-server.log")
    server.start()
    me = [sys.executable, __file__]
    env = {**os.environ, "HOME": str(work)}  # the clients log under $HOME
    consumers = [subprocess.Popen([*me, "--consume", server.endpoint, str(work / f"got-{i}.txt")], env=env)
                 for i in range(a.consumers)]
    t0 = time.monotonic()
    per = a.messages // a.producers
    producers = [subprocess.Popen([*me, "--produce", server.endpoint, str(i), str(per), str(work / f"acked-{i}.txt")],
                                  env=env) for i in range(a.producers)]
    codes = [p.wait(timeout=900) for p in producers]
    sent_s = time.monotonic() - t0
    acked = [i for k in range(a.producers) for i in ids(work / f"acked-{k}.txt")]
    check(codes == [0] * a.producers and len(acked) == per * a.producers,
          f"{len(acked)}/{per * a.producers} sends acknowledged by {a.producers} producer processes "
          f"in {sent_s:.1f} s ({len(acked) / sent_s:.0f}/s)")
    want = set(acked)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        got = {i for k in range(a.consumers) for i in ids(work / f"got-{k}.txt")}
        if want <= got:
            break
        time.sleep(0.5)
    done_s = time.monotonic() - t0
    for c in consumers:
        c.send_signal(signal.SIGTERM)
    for c in consumers:
        try:
            c.wait(timeout=30)
        except subprocess.TimeoutExpired:
            c.kill()
    deliveries = [line.split() for k in range(a.consumers)
                  for line in (work / f"got-{k}.txt").read_text().splitlines() if line.strip()]
    got = {d[0] for d in deliveries}
    per_process = [len(ids(work / f"got-{k}.txt")) for k in range(a.consumers)]
    check(want <= got, f"{len(want & got)}/{len(want)} acknowledged sends delivered to {a.consumers} consumer "
                       f"processes {per_process} by {done_s:.1f} s ({len(deliveries)} deliveries, "
                       f"{len(deliveries) - len(got)} repeated)")
    check(all(p > 0 for p in per_process), f"every consumer process received: {per_process}")

    # SIGKILL, restart on the same directory: it recovers and serves again.
    check(server.stop(signal.SIGKILL) == -signal.SIGKILL, "the server was killed with SIGKILL")
    server.start()
    from rocketmq import FilterExpression, Message, Producer, SimpleConsumer

    probe = Producer(config(server.endpoint), (TOPIC,))
    probe.startup()
    m = Message()
    m.topic, m.body = TOPIC, b"after the restart"
    probe_id = probe.send(m).message_id
    probe.shutdown()
    reader = SimpleConsumer(config(server.endpoint), "after-restart-g", {TOPIC: FilterExpression()}, await_duration=2)
    reader.startup()
    seen = 0
    for _ in range(3):
        batch = reader.receive(32, 30)
        seen += len(batch)
        if batch:
            break
    reader.shutdown()
    check(seen > 0, f"the restarted server serves the recovered store ({seen} received by a new group)")
    check(server.stop(signal.SIGTERM) == 0, "the restarted server stopped cleanly on SIGTERM")
    (work / "acked-all.txt").write_text("\n".join([*acked, probe_id]) + "\n")
    r = subprocess.run([a.check_python, __file__, "--verify", str(a.store), str(work / "acked-all.txt")])
    failed += r.returncode
    print(f"multi-process: {'all checks passed' if not failed else f'{failed} checks failed'}")
    return 1 if failed else 0


def verify(store: Path, acked_file: Path) -> int:
    """Every acknowledged id is in the store's topic (read with the pocketmq package)."""
    import pocketmq

    acked = set(acked_file.read_text().split())
    found: set[str] = set()
    with pocketmq.Broker(str(store)) as broker:
        reader = broker.consumer("verify-after-kill", TOPIC)
        while msgs := reader.receive(1024, 0.2):
            found.update(m.msg_id for m in msgs)
            reader.ack(msgs)
        reader.close()
        missing = acked - found
        ok = not missing and all(broker.get(i) is not None for i in list(acked)[:1000])
    print(f"{'PASS' if ok else 'FAIL'} multi-process: after SIGKILL and restart, {len(acked) - len(missing)}/"
          f"{len(acked)} acknowledged sends in the store ({len(found)} messages in {TOPIC})"
          + (f"; missing e.g. {sorted(missing)[:3]}" if missing else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
