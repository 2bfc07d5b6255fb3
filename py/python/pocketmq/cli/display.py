"""What the ``pocketmq`` command shows and reads: aligned tables, human times and
sizes, a progress bar with rate and ETA, and times typed by a person (``10m``,
``2026-12-01T10:00``, epoch seconds)."""

from __future__ import annotations

import datetime
import re
import sys
import time
from typing import IO, Any, Optional, Sequence

__all__ = [
    "ProgressBar",
    "duration",
    "human_time",
    "number",
    "parse_time",
    "rate",
    "size",
    "table",
    "text_preview",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


def parse_time(text: str, now: Optional[float] = None) -> float:
    """Epoch seconds for a time a person typed: ``now``; a duration ago (``10m``,
    ``1h30m``, ``2d``, also with `` ago``); an ISO date or date-time (local time
    unless it names a zone; ``T`` or a space between date and time); or epoch
    seconds (a number above 10^11 is taken as milliseconds). ValueError otherwise."""
    s = text.strip()
    now = time.time() if now is None else now
    if s == "now":
        return now
    compact = (s[:-4] if s.endswith(" ago") else s).replace(" ", "")
    if compact and _DURATION.fullmatch(compact):
        return now - sum(float(n) * _UNITS[u] for n, u in _RELATIVE.findall(compact))
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        value = float(s)
        return value / 1000.0 if value > 1e11 else value
    iso = s[:-1] + "+00:00" if s.endswith("Z") else s
    try:
        when = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use now, a duration ago (10m, 1h30m, 2d), "
            "an ISO date or date-time (2026-12-01, 2026-12-01T10:00:00), or epoch seconds"
        ) from None
    return when.timestamp()


def human_time(ms: Optional[int]) -> str:
    """A store time (ms since the epoch) in local time, to the millisecond."""
    if ms is None:
        return "-"
    when = datetime.datetime.fromtimestamp(ms / 1000.0)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def duration(seconds: float) -> str:
    """A duration as a person reads it: ``850ms``, ``42s``, ``3m07s``, ``2h05m``, ``3d04h``."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def number(n: float) -> str:
    """A count with thousands separators."""
    return f"{n:,.0f}"


def rate(per_second: float) -> str:
    """A rate of messages: ``950/s``, ``12.5k/s``, ``1.20M/s``."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M/s"
    if per_second >= 1e4:
        return f"{per_second / 1e3:.0f}k/s"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k/s"
    return f"{per_second:.0f}/s"


def size(n: float) -> str:
    """Bytes in binary units."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def text_preview(body: bytes, width: int = 60) -> str:
    """A message body on one line: text as it is (controls escaped), other bytes as
    a short hex dump; cut to `width` characters."""
    try:
        s = body.decode("utf-8")
        s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
    except UnicodeDecodeError:
        s = f"<{len(body)} bytes> " + body[:24].hex(" ")
    return s if len(s) <= width else s[: width - 1] + "…"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: IO[str] = sys.stdout) -> None:
    """Prints rows under headers in aligned columns: numbers right-aligned with
    thousands separators, text left-aligned, None as ``-``."""
    cells = [[_cell(v) for v in row] for row in rows]
    right = [bool(rows) and all(_is_number(row[i]) or row[i] is None for row in rows)
             for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return "  ".join(parts).rstrip()

    out.write(line(list(headers)) + "\n")
    for r in cells:
        out.write(line(r) + "\n")


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if _is_number(v):
        return number(v) if isinstance(v, int) else f"{v:,.1f}"
    return str(v)


class ProgressBar:
    """A one-line progress display on a terminal: done/total, percent, rate, ETA.
    Draws at most ten times a second; shows nothing unless `enabled`."""

    def __init__(self, label: str, enabled: bool, out: IO[str] = sys.stderr, width: int = 24) -> None:
        self.label = label
        self.enabled = enabled
        self.out = out
        self.width = width
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self._drawn = 0.0
        self._shown = False

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if not self.enabled:
            return
        now = time.monotonic()
        if self._shown and now - self._drawn < 0.1 and done < total:
            return
        self._drawn = now
        self._shown = True
        self.out.write("\r" + self.render(now) + "\x1b[K")
        self.out.flush()

    def render(self, now: Optional[float] = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self.started
        total = max(self.total, 1)
        frac = min(self.done / total, 1.0) if self.total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        speed = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / speed if speed > 0 else None
        eta = duration(left) if left is not None and self.done < self.total else "-"
        return (f"{self.label} [{bar}] {frac * 100:3.0f}%  {number(self.done)}/{number(self.total)}"
                f"  {rate(speed)}  ETA {eta}")

    def close(self) -> None:
        """Ends the line (the last state stays on screen)."""
        if self.enabled and self._shown:
            self.out.write("\r" + self.render() + "\x1b[K\n")
            self.out.flush()
            self._shown = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
