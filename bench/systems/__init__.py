"""Every system of the side-by-side benchmark, as lists of `workload.Case`s."""

from __future__ import annotations

from workload import Case

from . import lite_queue, persist_queue, pocketmq_store, redis_streams, sqlite_table


def all_cases() -> list[Case]:
    return [
        *pocketmq_store.cases(),
        *redis_streams.cases(),
        *persist_queue.cases(),
        *sqlite_table.cases(),
        *lite_queue.cases(),
    ]


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for module in (pocketmq_store, redis_streams, persist_queue, sqlite_table, lite_queue):
        found.update(module.versions())
    return found
