"""``POCKETMQ_TARGET=rocketmq``: the tests' ``broker`` as a ``pocketmq.connect()`` to an
Apache RocketMQ 5 proxy (``make rocketmq-start``; ``POCKETMQ_ROCKETMQ`` is its endpoint).

Apache RocketMQ keeps its topics and groups across tests and creates neither on first use
through the proxy, and its proxy does not separate namespaces. So each test gets its own
name prefix, and the topics and groups a test touches are created (MIXED topics, FIFO
groups for orderly and FIFO consumers) the moment it first uses them, by one long-lived
``rocketmq.sh admin-server`` for the session. What a test sees is unchanged: the prefix is
added on the way out and removed from the names it reads back."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

import pocketmq

ROOT = Path(__file__).resolve().parents[2]
RESERVED = ("%RETRY%", "%DLQ%")


class Admin:
    """Creates topics and groups on the local Apache RocketMQ, each once."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["bash", str(ROOT / "interop" / "rocketmq" / "rocketmq.sh"), "admin-server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.done: set[str] = set()
        self.lock = threading.Lock()

    def ensure(self, spec: str) -> None:
        with self.lock:
            if spec in self.done:
                return
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(spec + "\n")
            self.proc.stdin.flush()
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"rocketmq.sh admin-server exited while creating {spec}")
                if line.startswith("ok  "):
                    break
                if line.startswith("FAIL"):
                    raise RuntimeError(f"cannot create {spec}: {line.strip()}")
            self.done.add(spec)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class _Names:
    def __init__(self, admin: Admin, prefix: str) -> None:
        self.admin, self.prefix = admin, prefix

    def topic(self, name: str) -> str:
        for r in RESERVED:
            if name.startswith(r):
                return r + self.group(name[len(r):], create=False)
        full = self.prefix + name
        self.admin.ensure(f"topic:{full}:MIXED")
        return full

    def group(self, name: str, fifo: bool = False, create: bool = True) -> str:
        full = self.prefix + name
        if create:
            self.admin.ensure(f"group:{full}" + (":fifo" if fifo else ""))
        return full

    def strip(self, name: str) -> str:
        for r in ("",) + RESERVED:
            if name.startswith(r + self.prefix):
                return r + name[len(r + self.prefix):]
        return name


class Producer:
    def __init__(self, inner: Any, names: _Names, group: str) -> None:
        self._inner, self._names, self._group = inner, names, group

    @property
    def group(self) -> str:
        return self._group

    def send(self, topic: str, body: Any, **kw: Any) -> Any:
        return self._inner.send(self._names.topic(topic), body, **kw)

    def send_batch(self, topic: str, bodies: Any, **kw: Any) -> Any:
        return self._inner.send_batch(self._names.topic(topic), bodies, **kw)

    def send_async(self, topic: str, body: Any, **kw: Any) -> Any:
        return self._inner.send_async(self._names.topic(topic), body, **kw)

    def send_batch_async(self, topic: str, bodies: Any, **kw: Any) -> Any:
        return self._inner.send_batch_async(self._names.topic(topic), bodies, **kw)

    def recall(self, topic: str, recall_handle: str) -> Any:
        return self._inner.recall(self._names.topic(topic), recall_handle)

    def __repr__(self) -> str:
        return repr(self._inner).replace(self._names.prefix, "")


class Consumer:
    def __init__(self, inner: Any, names: _Names, group: str, topic: str) -> None:
        self._inner, self._names, self._group, self._topic = inner, names, group, topic

    @property
    def group(self) -> str:
        return self._group

    @property
    def topic(self) -> str:
        return self._topic

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)

    def __next__(self) -> Any:
        return next(self._inner)

    def __aiter__(self) -> Any:
        return self._inner.__aiter__()

    def __enter__(self) -> "Consumer":
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        return bool(self._inner.__exit__(*exc))

    def __repr__(self) -> str:
        return repr(self._inner).replace(self._names.prefix, "")


class Broker:
    """A RemoteBroker whose topic and group names live under a per-test prefix."""

    def __init__(self, endpoint: str, admin: Admin, prefix: str) -> None:
        self._inner = pocketmq.connect(endpoint)
        self._names = _Names(admin, prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def producer(self, group: str = "DEFAULT_PRODUCER") -> Producer:
        return Producer(self._inner.producer(self._names.group(group, create=False)), self._names, group)

    def transaction_producer(self, group: str, **kw: Any) -> Producer:
        return Producer(self._inner.transaction_producer(self._names.group(group, create=False), **kw),
                        self._names, group)

    def consumer(self, group: str, topic: str, **kw: Any) -> Consumer:
        full_group = self._names.group(group, fifo=bool(kw.get("orderly")))
        return Consumer(self._inner.consumer(full_group, self._names.topic(topic), **kw), self._names, group, topic)

    def simple_consumer(self, group: str, topic: str, **kw: Any) -> Consumer:
        full_group = self._names.group(group, fifo=bool(kw.get("fifo")))
        return Consumer(self._inner.simple_consumer(full_group, self._names.topic(topic), **kw),
                        self._names, group, topic)

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.close()
        return False

    def close(self) -> None:
        self._inner.close()
