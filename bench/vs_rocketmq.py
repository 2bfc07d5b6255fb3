"""pocketmq beside Apache RocketMQ 5 on this machine: `pocketmq serve` and a local Apache
RocketMQ (name server + proxy in local mode, interop/rocketmq/rocketmq.sh) driven by the
same clients, and embedded pocketmq (no network) in the same table.

Clients, each in its own processes:
- official: the Apache RocketMQ 5 Python client (rocketmq-python-client, tests/server/.venv);
- connect:  pocketmq.connect(), the Rust client inside the pocketmq extension (tonic);
- loadgen:  the server's Rust load generator (server/examples/loadgen.rs --endpoint), tonic,
            16 concurrent producers then 16 consumers in one process: it sends for
            --loadgen-seconds rather than a fixed count, then receives and acks all of it;
- embedded: pocketmq.Broker on a file store in the worker process (no server at all).

Per run, message size and server: P producer processes send N messages between them, one
message per round trip, timing every send (latency p50/p99); then C consumer processes
receive them in batches of 32 and ack each message, until all N are acked. Both servers
flush asynchronously (pocketmq serve --flush async; Apache's broker ASYNC_FLUSH). Medians
of --runs runs. Each row also gives the CPU time the server and the client processes spent
per message (send, receive and ack together): where a client's own CPU is most of the
cost, no server can make it much faster. Also: start-up time (spawn to serving) and resident memory of each server
idle and after the load (pocketmq serve: its process; Apache: name server + proxy JVMs,
the proxy with -Xms1g -Xmx1g as rocketmq.sh starts it).

usage: vs_rocketmq.py [--messages 10000] [--producers 4] [--consumers 4] [--sizes 100,1024]
                   [--runs 3] [--clients official,connect,loadgen] [--loadgen-seconds 5]
                   [--restart-apache] [--write]

Expects the local Apache RocketMQ running or startable (make bench-rocketmq starts it and
stops it after), and the package in this interpreter. --write rewrites the section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import official_client
from official_client import BATCH, emit

ROOT = Path(__file__).resolve().parent.parent
RMQ = ["bash", str(ROOT / "interop/rocketmq/rocketmq.sh")]


# ---- workers (their own processes) ---------------------------------------------------

def worker(client: str, role: str, endpoint: str, topic: str, group: str, n: int, size: int) -> None:
    body = b"x" * size
    lat: list[float] = []
    if client == "official":
        official_client.run(role, endpoint, topic, group, n, size, await_duration=5)
        return
    import pocketmq

    if client == "connect":
        b = pocketmq.connect(endpoint)
        if role == "produce":
            p = b.producer()
            p.send(topic, body)  # the route and the session, before the clock
            emit({"ready": True})
            sys.stdin.readline()
            for _ in range(n):
                t = time.perf_counter()
                p.send(topic, body)
                lat.append(time.perf_counter() - t)
            emit({"done": n, "lat": lat})
        else:
            c = b.simple_consumer(group, topic, invisible_duration=30)
            emit({"ready": True})
            sys.stdin.readline()
            while True:
                msgs = c.receive(max_messages=BATCH, timeout=5)
                for m in msgs:
                    c.ack(m)
                if msgs:
                    emit({"acked": len(msgs)})


def embedded(store: Path, topic: str, producers: int, n: int, size: int) -> dict[str, Any]:
    """Producers and consumers as threads of one process over an embedded file store."""
    import threading

    import pocketmq

    body = b"x" * size
    per = n // producers
    with pocketmq.Broker(store, flush="async") as b:
        b.create_topic(topic, 8)
        lats: list[list[float]] = [[] for _ in range(producers)]

        def produce(i: int) -> None:
            p, mine = b.producer(), lats[i]
            for _ in range(per):
                t = time.perf_counter()
                p.send(topic, body)
                mine.append(time.perf_counter() - t)

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        t1 = time.perf_counter()
        acked = [0]
        last = [0.0]
        lock = threading.Lock()

        def consume() -> None:
            c = b.consumer("bench-g", topic)
            while True:
                msgs = c.receive(max_messages=BATCH, timeout=0.5)
                if not msgs:
                    with lock:
                        if acked[0] >= per * producers:
                            return
                    continue
                for m in msgs:
                    c.ack(m)
                with lock:
                    acked[0] += len(msgs)
                    if acked[0] >= per * producers:
                        last[0] = time.perf_counter()  # the phase ends with the last ack

        threads = [threading.Thread(target=consume) for _ in range(producers)]
        t2 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        t3 = last[0]
    all_lat = sorted(x for xs in lats for x in xs)
    total = per * producers
    return {"send": total / (t1 - t0), "receive_ack": total / (t3 - t2),
            "p50_ms": pct(all_lat, 50) * 1e3, "p99_ms": pct(all_lat, 99) * 1e3}


# ---- driver ---------------------------------------------------------------------------

def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


class Workers:
    def __init__(self, cmds: list[list[str]], env: dict[str, str]) -> None:
        self.procs = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                      for c in cmds]
        for p in self.procs:
            line = p.stdout.readline() if p.stdout else ""
            if '"ready"' not in line:
                raise RuntimeError(f"worker did not start: {line!r}")

    def go(self) -> float:
        self.cpu0 = cpu_s([p.pid for p in self.procs])
        t = time.perf_counter()
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        return t

    def wait_done(self) -> tuple[float, list[float]]:
        lat: list[float] = []
        for p in self.procs:
            assert p.stdout is not None
            lat.extend(json.loads(p.stdout.readline())["lat"])
        return time.perf_counter(), lat

    def wait_acked(self, total: int) -> float:
        import selectors

        sel = selectors.DefaultSelector()
        for p in self.procs:
            assert p.stdout is not None
            sel.register(p.stdout, selectors.EVENT_READ)
        got = 0
        deadline = time.monotonic() + 600
        while got < total and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if line:
                    got += json.loads(line).get("acked", 0)
        if got < total:
            raise RuntimeError(f"only {got} of {total} acked")
        return time.perf_counter()

    def stop(self) -> None:
        """Stops the workers; `cpu` is what they spent from `go` on."""
        self.cpu = cpu_s([p.pid for p in self.procs if p.poll() is None]) - getattr(self, "cpu0", 0.0)
        for p in self.procs:
            p.kill()
            p.wait()


def rss_mib(pids: list[int]) -> tuple[float, float]:
    """(VmRSS, VmHWM) summed over pids, MiB."""
    rss = hwm = 0
    for pid in pids:
        text = Path(f"/proc/{pid}/status").read_text()
        rss += int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        hwm += int(re.search(r"VmHWM:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return rss / 1024, hwm / 1024


def apache_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "org.apache.rocketmq.(namesrv.NamesrvStartup|proxy.ProxyStartup)"],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def start_serve(work: Path) -> tuple[subprocess.Popen[str], str, float]:
    t = time.perf_counter()
    proc = subprocess.Popen([str(ROOT / ".venv/bin/pocketmq"), "serve", str(work / "store"), "--listen",
                             "127.0.0.1:0", "--flush", "async", "--log-level", "warn"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    ready = time.perf_counter() - t
    return proc, line.rsplit(" ", 1)[1].strip(), ready


CLK_TCK = os.sysconf("SC_CLK_TCK")
LOADGEN = ROOT / "target/release/examples/loadgen"


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of pids (all their threads) so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(r.ru_utime + r.ru_stime)


def load(client: str, endpoint: str, topic: str, group: str, a: argparse.Namespace, size: int,
         pyexe: str, server: list[int]) -> dict[str, float]:
    """One run of `client` against the server at `endpoint` (pids `server`), with the CPU
    seconds per message of the server and of the clients."""
    s0, c0 = cpu_s(server), children_cpu_s()
    r, total, client_cpu = load_only(client, endpoint, topic, group, a, size, pyexe)
    r["server_cpu_us"] = (cpu_s(server) - s0) / total * 1e6
    # The worker processes from their start signal on (not their imports); the load
    # generator as a whole, from its exit.
    spent = client_cpu if client_cpu is not None else children_cpu_s() - c0
    r["client_cpu_us"] = spent / total * 1e6
    return r


def load_only(client: str, endpoint: str, topic: str, group: str, a: argparse.Namespace, size: int,
              pyexe: str) -> tuple[dict[str, float], int, float | None]:
    if client == "loadgen":
        out = subprocess.run([str(LOADGEN), "--endpoint", endpoint, "--topic", topic, "--size", str(size),
                              "--runs", "1", "--seconds", str(a.loadgen_seconds), "--json"],
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
        rows = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
        sent = re.search(r"send \S+ msgs/s \((\d+) msgs", out.stdout)
        assert rows and sent, out.stdout
        return rows[0], int(sent.group(1)), None
    per = a.messages // a.producers
    total = per * a.producers
    me = [pyexe, __file__, "--worker", client]
    env = dict(os.environ)
    prod = Workers([[*me, "produce", endpoint, topic, group, str(per), str(size)] for _ in range(a.producers)], env)
    try:
        t0 = prod.go()
        t1, lat = prod.wait_done()
    finally:
        prod.stop()
    spent = prod.cpu
    cons = Workers([[*me, "consume", endpoint, topic, group, str(total), str(size)] for _ in range(a.consumers)], env)
    try:
        t2 = cons.go()
        t3 = cons.wait_acked(total)
    finally:
        cons.stop()
    spent += cons.cpu
    lat.sort()
    return {"send": total / (t1 - t0), "receive_ack": total / (t3 - t2),
            "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3}, total, spent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=7)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--sizes", default="100,1024")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", default="official,connect,loadgen")
    ap.add_argument("--loadgen-seconds", type=int, default=5)
    ap.add_argument("--official-python", default=str(ROOT / "tests/server/.venv/bin/python"))
    ap.add_argument("--restart-apache", action="store_true", help="measure Apache's start-up (stop, start)")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    if a.worker:
        client, role, endpoint, topic, group, n, size = a.worker
        worker(client, role, endpoint, topic, group, int(n), int(size))
        return 0
    sizes = [int(s) for s in a.sizes.split(",")]
    clients = a.clients.split(",")
    startup: dict[str, Any] = {}
    if a.restart_apache:
        subprocess.run([*RMQ, "stop"], check=True)
        t = time.perf_counter()
        subprocess.run([*RMQ, "start"], check=True, stdout=subprocess.DEVNULL)
        startup["apache_start_s"] = time.perf_counter() - t
    elif subprocess.run([*RMQ, "status"], capture_output=True).returncode != 0:
        t = time.perf_counter()
        subprocess.run([*RMQ, "start"], check=True, stdout=subprocess.DEVNULL)
        startup["apache_start_s"] = time.perf_counter() - t
    apache = subprocess.run([*RMQ, "endpoint"], capture_output=True, text=True, check=True).stdout.strip()
    time.sleep(5)
    startup["apache_idle_mib"] = rss_mib(apache_pids())[0]
    prefix = f"bq{int(time.time())}"
    specs = []
    for run in range(a.runs):
        for size in sizes:
            for client in clients:
                specs += [f"topic:{prefix}-{run}-{size}-{client}:NORMAL", f"group:{prefix}-{run}-{size}-{client}-g"]
    specs += [f"topic:{prefix}-warm:NORMAL", f"group:{prefix}-warm-g"]
    subprocess.run([*RMQ, "create", *specs], check=True, stdout=subprocess.DEVNULL)
    if "loadgen" in clients:
        # The JVM compiles its hot paths in the first seconds of load: warmed, unmeasured.
        load_only("loadgen", apache, f"{prefix}-warm", f"{prefix}-warm-g", a, 100, sys.executable)

    rows: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    serve_ready: list[float] = []
    serve_idle: list[float] = []
    serve_peak: list[float] = []
    apache_peak = 0.0
    for run in range(a.runs):
        for size in sizes:
            for client in clients:
                pyexe = a.official_python if client == "official" else sys.executable
                name = f"{prefix}-{run}-{size}-{client}"
                with tempfile.TemporaryDirectory() as work:
                    proc, ep, ready = start_serve(Path(work))
                    try:
                        time.sleep(0.5)
                        serve_ready.append(ready)
                        serve_idle.append(rss_mib([proc.pid])[0])
                        r = load(client, ep, name, name + "-g", a, size, pyexe, [proc.pid])
                        serve_peak.append(rss_mib([proc.pid])[1])
                    finally:
                        proc.terminate()
                        proc.wait(timeout=30)
                rows.setdefault(("pocketmq serve", client, size), []).append(r)
                print(f"run {run} {size} B {client:<8} pocketmq serve {fmt(r)}", flush=True)
                r = load(client, apache, name, name + "-g", a, size, pyexe, apache_pids())
                apache_peak = max(apache_peak, rss_mib(apache_pids())[1])
                rows.setdefault(("Apache RocketMQ", client, size), []).append(r)
                print(f"run {run} {size} B {client:<8} Apache RocketMQ {fmt(r)}", flush=True)
            with tempfile.TemporaryDirectory() as work:
                r = embedded(Path(work) / "store", "bench", a.producers, a.messages, size)
            rows.setdefault(("embedded pocketmq", "in-process", size), []).append(r)
            print(f"run {run} {size} B embedded pocketmq {fmt(r)}", flush=True)
    startup["apache_after_mib"] = rss_mib(apache_pids())[0]
    startup.update(serve_ready_ms=statistics.median(serve_ready) * 1e3, serve_idle_mib=statistics.median(serve_idle),
                   serve_peak_mib=max(serve_peak), apache_peak_mib=apache_peak)
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in rows.items()}
    text = section(a, med, startup, sizes, clients)
    print(text)
    if a.write:
        write_section(text)
    return 0


def fmt(r: dict[str, float]) -> str:
    return (f"send {r['send']:9,.0f}/s  receive+ack {r['receive_ack']:9,.0f}/s  "
            f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")


def section(a: argparse.Namespace, med: dict[tuple[str, str, int], dict[str, float]], s: dict[str, Any],
            sizes: list[int], clients: list[str]) -> str:
    lines = ["## pocketmq beside Apache RocketMQ (make bench-rocketmq)", "",
             f"`make bench-rocketmq` (bench/vs_rocketmq.py): {a.producers} producer and {a.consumers} consumer "
             f"processes, {a.messages:,} messages per run, one send per round trip, receive 32 + ack each; "
             f"medians of {a.runs} runs. Both servers flush asynchronously. Machine: {os.cpu_count()}-core shared "
             f"VM, {platform.system()} {platform.release()}, Python {platform.python_version()}.", "",
             "| size | client | system | send msgs/s | receive+ack msgs/s | send p50 ms | send p99 ms "
             "| server CPU us/msg | client CPU us/msg |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        for client in clients:
            for system in ("pocketmq serve", "Apache RocketMQ"):
                r = med[(system, client, size)]
                lines.append(f"| {size} B | {client} | {system} | {r['send']:,.0f} | {r['receive_ack']:,.0f} | "
                             f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_us']:,.0f} | "
                             f"{r['client_cpu_us']:,.0f} |")
            ps, ap = med[("pocketmq serve", client, size)], med[("Apache RocketMQ", client, size)]
            lines.append(f"| {size} B | {client} | **serve / Apache** | **{ps['send'] / ap['send']:.2f}x** | "
                         f"**{ps['receive_ack'] / ap['receive_ack']:.2f}x** | {ps['p50_ms'] / ap['p50_ms']:.2f}x | "
                         f"**{ps['p99_ms'] / ap['p99_ms']:.2f}x** | {ps['server_cpu_us'] / ap['server_cpu_us']:.2f}x | |")
        r = med[("embedded pocketmq", "in-process", size)]
        lines.append(f"| {size} B | in-process threads | embedded pocketmq | {r['send']:,.0f} | "
                     f"{r['receive_ack']:,.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | | |")
    lines += ["", "| | pocketmq serve | Apache RocketMQ (name server + proxy JVMs) |", "|---|---:|---:|",
              f"| start-up to serving | {s['serve_ready_ms']:.0f} ms | "
              + (f"{s['apache_start_s']:.1f} s |" if "apache_start_s" in s else "not measured (already running) |"),
              f"| resident memory idle | {s['serve_idle_mib']:.1f} MiB | {s['apache_idle_mib']:.0f} MiB |",
              f"| resident memory peak under this load | {s['serve_peak_mib']:.1f} MiB | {s['apache_peak_mib']:.0f} MiB |",
              ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    head = text.split("\n", 1)[0]
    if head in doc:
        start = doc.index(head)
        nxt = doc.find("\n## ", start + len(head))
        doc = doc[:start] + text.rstrip() + "\n" + (doc[nxt:] if nxt >= 0 else "")
    else:
        doc = doc.rstrip() + "\n\n" + text
    path.write_text(doc)


if __name__ == "__main__":
    sys.exit(main())
