"""`pocketmq serve` with the official RocketMQ 5 Python client, beside Redis Streams with
redis-py: separate processes, the same message size and process counts.

Each run starts a fresh server (pocketmq serve on a file store, flush async; or a
private redis-server with its AOF on, appendfsync everysec: both acknowledge a send
once it is in the OS, on disk within about a second), then P producer processes send
N messages between them, one message per round trip (Producer.send / XADD), and C
consumer processes receive them in batches of 32 and ack each message with its own
call (SimpleConsumer.receive + ack / XREADGROUP COUNT 32 + XACK), until all N are
acked. Workers connect before the clock starts and wait for a go; a phase ends when
the last message of it is acknowledged. Medians of --runs runs, each system's runs
alternating with the other's.

usage: server_clients.py [--messages 20000] [--producers 4] [--consumers 4] [--size 100]
                         [--runs 3] [--write]

The pocketmq workers run under the official client's interpreter (tests/server/.venv,
--client-python); this script and the Redis workers under the bench's (.venv, with the
pocketmq package and redis-py). --write rewrites the section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import official_client
from official_client import BATCH, emit

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "bench"
GROUP = "bench-g"


# ---- workers (run in their own processes) --------------------------------------------

def worker_pocketmq(role: str, endpoint: str, n: int, size: int) -> None:
    official_client.run(role, endpoint, TOPIC, GROUP, n, size, await_duration=1)


def worker_redis(role: str, port: str, n: int, size: int) -> None:
    import redis

    r = redis.Redis(host="127.0.0.1", port=int(port))
    r.ping()
    if role == "produce":
        body = b"x" * size
        emit({"ready": True})
        sys.stdin.readline()
        xadd = r.xadd
        for _ in range(n):
            xadd(TOPIC, {"b": body})
        emit({"done": n, "t": time.time()})
    else:
        me = f"c{os.getpid()}"
        emit({"ready": True})
        sys.stdin.readline()
        while True:
            got = r.xreadgroup(GROUP, me, {TOPIC: ">"}, count=BATCH, block=1000)
            k = 0
            for _stream, entries in got:
                for entry_id, _fields in entries:
                    r.xack(TOPIC, GROUP, entry_id)
                    k += 1
            if k:
                emit({"acked": k, "t": time.time()})


# ---- the driver ------------------------------------------------------------------------

class Workers:
    """Worker processes that said ready; `go` starts them all at once."""

    def __init__(self, cmds: list[list[str]], env: dict[str, str]):
        self.procs = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                      for c in cmds]
        self.lock = threading.Lock()
        self.acked = 0
        self.done = 0
        self.last = 0.0
        self.cpu0 = 0.0
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if not json.loads(line or "{}").get("ready"):
                raise SystemExit(f"a worker did not start: {line!r}")
        self.readers = [threading.Thread(target=self._read, args=(p,), daemon=True) for p in self.procs]
        for t in self.readers:
            t.start()

    def _read(self, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            ev = json.loads(line)
            with self.lock:
                self.acked += ev.get("acked", 0)
                self.done += ev.get("done", 0)
                self.last = max(self.last, ev.get("t", 0.0))

    def go(self) -> float:
        self.cpu0 = self.cpu()
        t0 = time.time()
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        return t0

    def wait(self, total: int, key: str, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if getattr(self, key) >= total:
                    return self.last
            time.sleep(0.01)
        raise SystemExit(f"timed out waiting for {total} {key}")

    def cpu(self) -> float:
        """CPU seconds the workers have used so far (since `go`, once it was called)."""
        return sum(cpu_seconds(p.pid) for p in self.procs) - self.cpu0

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(system: str, a: argparse.Namespace, work: Path) -> dict[str, float]:
    env = {**os.environ, "HOME": str(work)}
    per = a.messages // a.producers
    total = per * a.producers
    if system == "pocketmq":
        proc = subprocess.Popen([str(ROOT / ".venv/bin/pocketmq"), "serve", str(work / "store"),
                                 "--listen", "127.0.0.1:0", "--log-level", "warn"],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().rsplit(" ", 1)[1].strip()
        py, target = a.client_python, endpoint
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        import redis
        import redis_server

        server = redis_server.RedisServer(work / "redis", "everysec").__enter__()
        r = redis.Redis(host="127.0.0.1", port=server.port)
        r.xgroup_create(TOPIC, GROUP, id="0", mkstream=True)
        py, target = sys.executable, str(server.port)
    me = [py, __file__, "--worker", system]
    server_pid = proc.pid if system == "pocketmq" else server.pid
    try:
        producers = Workers([[*me, "produce", target, str(per), str(a.size)] for _ in range(a.producers)], env)
        s0 = cpu_seconds(server_pid)
        t0 = producers.go()
        t1 = producers.wait(total, "done")
        send_cpu = (cpu_seconds(server_pid) - s0, producers.cpu())
        producers.stop()
        consumers = Workers([[*me, "consume", target, str(total), str(a.size)] for _ in range(a.consumers)], env)
        s0 = cpu_seconds(server_pid)
        t2 = consumers.go()
        t3 = consumers.wait(total, "acked")
        recv_cpu = (cpu_seconds(server_pid) - s0, consumers.cpu())
        consumers.stop()
    finally:
        if system == "pocketmq":
            proc.terminate()
            proc.wait(timeout=30)
        else:
            server.stop()
    per_k = 1e6 / total  # CPU seconds -> CPU ms per 1000 messages
    return {"send": total / (t1 - t0), "receive_ack": total / (t3 - t2),
            "send_server_ms": send_cpu[0] * per_k, "send_clients_ms": send_cpu[1] * per_k,
            "receive_server_ms": recv_cpu[0] * per_k, "receive_clients_ms": recv_cpu[1] * per_k}


def versions(client_python: str) -> dict[str, str]:
    import redis_server
    from importlib import metadata

    client = subprocess.run([client_python, "-c", "from importlib import metadata; "
                             "print(metadata.version('rocketmq-python-client'))"],
                            capture_output=True, text=True).stdout.strip()
    return {"pocketmq": metadata.version("pocketmq"), "rocketmq-python-client": client,
            "redis-server": redis_server.version(), "redis-py": metadata.version("redis"),
            "python": platform.python_version()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=5, metavar=("SYSTEM", "ROLE", "TARGET", "N", "SIZE"))
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--client-python", default=str(ROOT / "tests/server/.venv/bin/python"))
    ap.add_argument("--write", action="store_true", help="rewrite the section of BENCHMARKS.md")
    a = ap.parse_args()
    if a.worker:
        system, role, target, n, size = a.worker
        (worker_pocketmq if system == "pocketmq" else worker_redis)(role, target, int(n), int(size))
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    results: dict[str, list[dict[str, float]]] = {"pocketmq": [], "redis": []}
    load = os.getloadavg()
    for i in range(a.runs):
        for system in ("pocketmq", "redis"):
            with tempfile.TemporaryDirectory() as d:
                r = one_run(system, a, Path(d))
            results[system].append(r)
            print(f"run {i + 1} {system:8}: send {r['send']:7.0f} msgs/s   receive+ack {r['receive_ack']:7.0f} msgs/s"
                  f"   CPU ms per 1000 msgs, server/clients: send {r['send_server_ms']:.0f}/{r['send_clients_ms']:.0f}"
                  f", receive+ack {r['receive_server_ms']:.0f}/{r['receive_clients_ms']:.0f}", flush=True)
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in results.items()}
    lines = section(a, results, med, versions(a.client_python), load)
    print("\n".join(lines))
    if a.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        block = "\n".join(["<!-- server-clients:start -->", *lines, "<!-- server-clients:end -->"])
        if "<!-- server-clients:start -->" in text:
            text = re.sub(r"<!-- server-clients:start -->.*<!-- server-clients:end -->", lambda _: block, text,
                          flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        path.write_text(text)
    return 0


def section(a: argparse.Namespace, results: dict[str, list[dict[str, float]]], med: dict[str, dict[str, float]],
            v: dict[str, str], load: tuple[float, float, float]) -> list[str]:
    def runs(s: str, k: str) -> str:
        return ", ".join(f"{r[k]:.0f}" for r in results[s])

    return [
        "## Served: the official RocketMQ 5 Python client beside Redis Streams",
        "",
        f"`pocketmq serve` (file store, flush async) with rocketmq-python-client {v['rocketmq-python-client']}, "
        f"beside redis-server {v['redis-server']} (AOF, appendfsync everysec) with redis-py {v['redis-py']}; "
        f"Python {v['python']}, {a.producers} producer processes then {a.consumers} consumer processes, "
        f"{a.messages} messages of {a.size} B per run, one message per send, receive in batches of {BATCH} "
        f"and one ack call per message; median of {a.runs} runs, the systems alternating. "
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared with other work).",
        "",
        "| system | sends/s (median) | runs | receive+ack/s (median) | runs |",
        "|---|---|---|---|---|",
        f"| pocketmq serve + official client | {med['pocketmq']['send']:.0f} | {runs('pocketmq', 'send')} | "
        f"{med['pocketmq']['receive_ack']:.0f} | {runs('pocketmq', 'receive_ack')} |",
        f"| Redis Streams + redis-py | {med['redis']['send']:.0f} | {runs('redis', 'send')} | "
        f"{med['redis']['receive_ack']:.0f} | {runs('redis', 'receive_ack')} |",
        f"| pocketmq / Redis | {med['pocketmq']['send'] / med['redis']['send']:.2f} | | "
        f"{med['pocketmq']['receive_ack'] / med['redis']['receive_ack']:.2f} | |",
        "",
        "Where the CPU goes (medians, CPU ms per 1000 messages, read from /proc for the server process and the "
        "worker processes):",
        "",
        "| system | send: server | send: client processes | receive+ack: server | receive+ack: client processes |",
        "|---|---|---|---|---|",
        *(f"| {name} | {med[s]['send_server_ms']:.0f} | {med[s]['send_clients_ms']:.0f} | "
          f"{med[s]['receive_server_ms']:.0f} | {med[s]['receive_clients_ms']:.0f} |"
          for s, name in (("pocketmq", "pocketmq serve + official client"), ("redis", "Redis Streams + redis-py"))),
        "",
        f"The official client's processes spend {med['pocketmq']['send_clients_ms'] / med['pocketmq']['send_server_ms']:.0f}x "
        f"the server's CPU per message sent and "
        f"{med['pocketmq']['receive_clients_ms'] / med['pocketmq']['receive_server_ms']:.0f}x per message received and "
        f"acked, and {med['pocketmq']['send_clients_ms'] / med['redis']['send_clients_ms']:.0f}x what redis-py spends "
        "per XADD: on these 2 shared cores the client, not the server, sets the pocketmq figures.",
        "",
        f"Command: `make bench-server` (`.venv/bin/python bench/server_clients.py --messages {a.messages} "
        f"--producers {a.producers} --consumers {a.consumers} --runs {a.runs} --write`).",
    ]


if __name__ == "__main__":
    sys.exit(main())
