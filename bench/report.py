"""Medians, ratios, targets, and where they are written.

Each peer case names its pocketmq counterpart (same durability, and the same
send shape: one call per message, or batched/pipelined), and its ratio is
pocketmq's rate divided by the peer's, for sending and for receiving+acking.
The section of BENCHMARKS.md between the side-by-side markers is rewritten
whole; the rest of that file belongs to others and is kept byte for byte.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from workload import NONE, RELAXED, SIZES, STRICT, Case

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
CHART = ROOT / "docs" / "bench-ratios.png"
START = "<!-- side-by-side:start -->"
END = "<!-- side-by-side:end -->"


@dataclass(frozen=True)
class Target:
    key: str
    text: str
    pocketmq: str
    peer: str
    at_least: float
    informational: bool = False
    hint: str = ""  # printed under the targets when this one is missed


STRICT_HINT = (
    "Both sides share one sync among the senders waiting for it, so at the same producer"
    " count the send ratio is set by how many sends each sync covers and what one costs;"
    " receive+ack is far ahead only because Redis syncs every XREADGROUP and XACK. The"
    " group commit now wakes every waiting sender at once and lets woken senders append"
    " before the next sync: 4,000 sends of 100 B from 8 Python threads take about 610-720"
    " msyncs, one per ~6 sends (2,050 before that change; `strace -f -c -e trace=msync"
    " .venv/bin/python bench/sync_threads.py`). Redis"
    " with 8 connections batches its fsyncs the same way, so the ratio is set by sync"
    " cost and batch size on both sides; one msync of a group's pages costs about twice a"
    " 1 KiB fdatasync on this disk."
)

TARGETS = [
    Target("pq", "relaxed: pocketmq (flush=async, send) >= 20x persist-queue", "pocketmq-async", "persist-queue", 20),
    Target("redis-pipe", "relaxed: pocketmq (flush=async, send_batch) >= 3x Redis Streams pipelined (everysec)",
           "pocketmq-async-batch", "redis-everysec-pipe", 3),
    Target("redis-pipe-each", "relaxed, shown only: pocketmq (flush=async, one send per message) vs Redis pipelined",
           "pocketmq-async", "redis-everysec-pipe", 3, informational=True),
    Target("strict-8p", "strict: pocketmq flush=sync >= 5x Redis appendfsync always, 8 producers each",
           "pocketmq-sync-8p", "redis-always-8p", 5, hint=STRICT_HINT),
    Target("strict-1p", "strict, shown only: the same with 1 producer", "pocketmq-sync", "redis-always", 5,
           informational=True),
]  # fmt: skip

DURABILITY = {
    NONE: "none (memory)",
    RELAXED: "relaxed",
    STRICT: "strict (synced per send)",
}


@dataclass
class Line:
    case: Case
    size: int
    n: int
    send: Optional[float]  # median msgs/s
    receive: Optional[float]
    disk: Optional[float]  # median allocated bytes
    runs: int
    failed: int
    send_ratio: Optional[float] = None  # counterpart / this
    receive_ratio: Optional[float] = None


def _median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def summarize(results: dict[str, Any], cases: list[Case]) -> dict[str, Any]:
    lines: dict[tuple[str, int], Line] = {}
    for case in cases:
        for size in SIZES:
            rows = [r for r in results["rows"] if r["case"] == case.key and r["size"] == size]
            if not rows:
                continue
            good = [r for r in rows if r["ok"]]
            disks = [r["disk_bytes"] for r in good if r.get("disk_bytes") is not None]
            lines[(case.key, size)] = Line(
                case=case,
                size=size,
                n=rows[0]["n"],
                send=_median([r["n"] / r["send_s"] for r in good]),
                receive=_median([r["n"] / r["receive_s"] for r in good]),
                disk=_median(disks),
                runs=len(rows),
                failed=len(rows) - len(good),
            )
    rates: dict[tuple[str, int], dict[int, tuple[float, float]]] = {}
    for r in results["rows"]:
        if r["ok"]:
            rates.setdefault((r["case"], r["size"]), {})[r["rep"]] = (r["n"] / r["send_s"], r["n"] / r["receive_s"])

    def paired(mine: str, peer: str, size: int) -> Optional[tuple[float, float]]:
        """Medians over repetitions of pocketmq's rate / the peer's, each pair run back to back."""
        a, b = rates.get((mine, size), {}), rates.get((peer, size), {})
        reps = sorted(set(a) & set(b))
        if not reps:
            return None
        send = statistics.median(a[i][0] / b[i][0] for i in reps)
        receive = statistics.median(a[i][1] / b[i][1] for i in reps)
        return send, receive

    for (key, size), line in lines.items():
        if line.case.counterpart and (ratio := paired(line.case.counterpart, key, size)):
            line.send_ratio, line.receive_ratio = ratio

    targets = []
    for t in TARGETS:
        for size in SIZES:
            if ratio := paired(t.pocketmq, t.peer, size):
                send, receive = ratio
                targets.append(
                    {"target": t, "size": size, "send": send, "receive": receive,
                     "met": send >= t.at_least and receive >= t.at_least}
                )  # fmt: skip
    limits = results["limits"]
    return {
        "meta": results["meta"],
        "scale": results.get("scale", 1),
        "lines": lines,
        "targets": targets,
        "limits": {
            "buffered_mb_s": _median([x["buffered_mb_s"] for x in limits]),
            "fdatasync_per_s": _median([x["fdatasync_per_s"] for x in limits]),
            "fdatasync_range": (
                min(x["fdatasync_per_s"] for x in limits), max(x["fdatasync_per_s"] for x in limits)
            ) if limits else None,
        },
    }


def _rate(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _mb(x: Optional[float], size: int) -> str:
    return "—" if x is None else f"{x * size / 1e6:,.1f}"


def _ratio(x: Optional[float]) -> str:
    if x is None:
        return ""
    return f"{x:,.1f}x" if x < 100 else f"{x:,.0f}x"


def _bytes(x: Optional[float]) -> str:
    if x is None:
        return "—"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if x >= scale:
            return f"{x / scale:,.1f} {unit}"
    return f"{x:,.0f} B"


def _disk(line: Line) -> str:
    if line.disk is None:
        return "—"
    return f"{_bytes(line.disk)} ({line.disk / line.n:,.0f} B/msg)"


def _size(size: int) -> str:
    return "1 KiB" if size == 1024 else f"{size} B"


def target_verdicts(summary: dict[str, Any]) -> list[tuple[Target, bool, str]]:
    """One verdict per target: met only if met at every body size."""
    out = []
    for t in TARGETS:
        rows = [r for r in summary["targets"] if r["target"] is t]
        if not rows:
            out.append((t, False, "not measured"))
            continue
        met = all(r["met"] for r in rows)
        detail = "; ".join(
            f"{_size(r['size'])}: send {_ratio(r['send'])}, receive+ack {_ratio(r['receive'])}" for r in rows
        )
        out.append((t, met, detail))
    return out


def console(summary: dict[str, Any]) -> str:
    out = []
    for t, met, detail in target_verdicts(summary):
        verdict = "shown" if t.informational else ("MET" if met else "MISSED")
        out.append(f"{verdict:<7} {t.text}: {detail}")
    return "\n".join(out)


def markdown(summary: dict[str, Any], chart_link: str) -> str:
    meta = summary["meta"]
    lim = summary["limits"]
    reps = meta["reps_run"]
    md = [
        START,
        "## Side by side: pocketmq and what a Python user would pick instead",
        "",
        "Reproduce with `make bench`, or `make bench-side-by-side` for this section alone"
        " (it installs redis-server and the Python peers if missing, starts and stops its own"
        " redis-server on 127.0.0.1 in a temporary directory, and its runs took"
        f" {meta['seconds'] / 60:.0f} minutes here). Every figure is"
        f" the median of {reps} run{'s' if reps != 1 else ''}, all systems taking turns in the same"
        f" session ({meta['started']}). Raw runs: `bench/results/results.json`.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in meta["machine"].items()],
        "",
        "The machine is shared (2 cores, other builds may be running), hence medians;"
        " compare rows within this table, not with figures taken elsewhere.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "**Workload.** N distinct messages of 100 B, then of 1 KiB, are sent to one"
        " topic/stream/table by one producer (or by 8 concurrent producers where shown),"
        " then received and acknowledged by one consumer, 32 at a time. Every run checks"
        " the count and a digest of the received bodies against what was sent. Rates are"
        " messages per second and payload MB/s; the send and receive+ack phases are timed"
        " separately. Disk is the allocated size of everything the system left behind"
        " afterwards. The ratio columns are pocketmq's rate divided by the row's, against"
        " the pocketmq row of the same durability and send shape (named under the tables),"
        " run right before it; a ratio is the median of the per-repetition ratios, so it can"
        " differ from the quotient of the two medians shown.",
        "",
        "### Targets",
        "",
        "| target | result | ratios (median) |",
        "|---|---|---|",
    ]
    for t, met, detail in target_verdicts(summary):
        verdict = "shown for context" if t.informational else ("**met**" if met else "**missed**")
        md.append(f"| {t.text} | {verdict} | {detail} |")
    md.append("")
    for t, met, _detail in target_verdicts(summary):
        if not met and not t.informational and t.hint:
            md += [f"Missed, {t.text.split(':')[0]} target: {t.hint}", ""]
    for size in SIZES:
        md += [
            f"### {_size(size)} bodies",
            "",
            "| system | durability | producers | N | send msgs/s | send MB/s | receive+ack msgs/s"
            " | receive+ack MB/s | disk after | pocketmq x, send | pocketmq x, receive+ack |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for (key, s), line in summary["lines"].items():
            if s != size:
                continue
            failed = f" (failed {line.failed} of {line.runs})" if line.failed else ""
            md.append(
                f"| {line.case.label}{failed} | {DURABILITY[line.case.durability]} | {line.case.producers}"
                f" | {line.n:,} | {_rate(line.send)} | {_mb(line.send, size)} | {_rate(line.receive)}"
                f" | {_mb(line.receive, size)} | {_disk(line)} | {_ratio(line.send_ratio)}"
                f" | {_ratio(line.receive_ratio)} |"
            )
        md.append("")
    md += [
        "Machine limits in the same session: buffered write loop"
        f" {_rate(lim['buffered_mb_s'])} MB/s (1 MiB writes into the page cache); 1 KiB"
        f" write + fdatasync loop {_rate(lim['fdatasync_per_s'])} appends/s"
        + (
            f" (from {_rate(lim['fdatasync_range'][0])} to {_rate(lim['fdatasync_range'][1])} across"
            " repetitions: this disk's sync speed drifts with the machine's other load, which is why"
            " each ratio pairs runs made back to back)."
            if lim["fdatasync_range"]
            else "."
        ),
        "",
        f"![pocketmq's rate over each peer's, log scale]({chart_link})",
        "",
        "How each system is driven, and its pocketmq counterpart:",
        "",
    ]
    seen = set()
    for line in summary["lines"].values():
        c = line.case
        if c.key in seen:
            continue
        seen.add(c.key)
        versus = f" Compared with `{c.counterpart}`." if c.counterpart else ""
        md.append(f"- `{c.key}` ({c.label}): {c.notes or _pocketmq_note(c)}.{versus}")
    md += [
        "",
        "Durability: *relaxed* means an acknowledged send is in the OS and reaches disk"
        " within about a second (pocketmq flushes every 500 ms, Redis every second, SQLite"
        " NORMAL at checkpoints); *strict* means it was synced before the send returned"
        " (pocketmq `flush=\"sync\"` msyncs the CommitLog, sharing one sync among"
        " concurrent senders; Redis `appendfsync always` fsyncs the AOF before replying;"
        " SQLite FULL syncs the WAL at each commit). persist-queue's defaults sync each"
        " commit, so its ratio against pocketmq's relaxed store also measures that"
        " difference; the tables show pocketmq's strict rows beside it. Acknowledgements"
        " differ too: a pocketmq ack advances the group's offset in memory and offsets are"
        " persisted every second (after a crash the last second's acks may be redelivered,"
        " as in RocketMQ), while Redis under `always` fsyncs each XREADGROUP and XACK and"
        " SQLite syncs each acknowledging commit.",
        END,
    ]
    return "\n".join(md) + "\n"


def _pocketmq_note(c: Case) -> str:
    send = "send_batch of 256 per call" if c.batched_send else "one send per message"
    return f"{send}; receive(max_messages=32) + one ack per message (no batch ack)"


def chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = [key for (key, size), line in summary["lines"].items() if size == SIZES[0] and line.case.counterpart]
    fig, axes = plt.subplots(1, len(SIZES), figsize=(13, 0.55 * len(peers) + 2.2), sharey=True)
    goals = {t.peer: t.at_least for t in TARGETS if not t.informational}
    for ax, size in zip(axes, SIZES):
        ys = range(len(peers))
        send = [summary["lines"].get((k, size)) for k in peers]
        sr = [(line.send_ratio or 0) if line else 0 for line in send]
        rr = [(line.receive_ratio or 0) if line else 0 for line in send]
        ax.barh([y - 0.2 for y in ys], sr, height=0.38, label="send", color="#3b75af")
        ax.barh([y + 0.2 for y in ys], rr, height=0.38, label="receive+ack", color="#ef8636")
        for y, k in zip(ys, peers):
            if k in goals:
                ax.plot([goals[k]], [y], marker="|", markersize=22, color="black")
        ax.axvline(1, color="grey", linewidth=1)
        ax.set_xscale("log")
        ax.set_title(f"{_size(size)} bodies")
        ax.set_xlabel("pocketmq rate / peer rate (log; | = target)")
        ax.grid(axis="x", which="both", alpha=0.25)
    axes[0].set_yticks(list(range(len(peers))))
    axes[0].set_yticklabels([summary["lines"][(k, SIZES[0])].case.label for k in peers], fontsize=8)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="upper right")
    fig.suptitle(f"pocketmq vs peers, median of {summary['meta']['reps_run']} runs (higher is better for pocketmq)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(summary: dict[str, Any]) -> None:
    results_chart = Path(__file__).resolve().parent / "results" / "ratios.png"
    chart(summary, results_chart)
    CHART.parent.mkdir(exist_ok=True)
    shutil.copyfile(results_chart, CHART)
    section = markdown(summary, CHART.relative_to(ROOT).as_posix())
    if BENCHMARKS.exists():
        text = BENCHMARKS.read_text()
    else:
        text = "# Benchmarks\n\n" + START + "\n" + END + "\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _old, tail = rest.split(END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text)
    print(f"wrote {BENCHMARKS.name} (side-by-side section) and {CHART.relative_to(ROOT)}")
