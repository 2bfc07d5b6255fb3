"""Checks a store that `pocketmq serve` served against what the official clients sent,
with the pocketmq package itself (after the server stopped and released the store).

usage: check_store.py STORE_DIR SENT.jsonl...

SENT files come from official.py / official.mjs. Every message must be stored once in
its topic under the id the client was given (and found by `get` under that id), with
its body, tag, keys and property; a rolled-back transaction never; the messages of one
FIFO group in one queue in send order; a delayed message not in its topic before its
due time; and every consumer group that took part must have acked everything (lag 0).
Ends with an "N passed, M failed" line; exits 1 when something failed.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from typing import Any

import pocketmq


def main() -> int:
    store, *paths = sys.argv[1:]
    sent = [json.loads(line) for p in paths for line in open(p) if line.strip()]
    passed, failures = 0, []

    def check(ok: bool, what: str) -> None:
        nonlocal passed
        if ok:
            passed += 1
        else:
            failures.append(what)

    with pocketmq.Broker(store) as broker:
        stored: dict[str, list[Any]] = defaultdict(list)
        for topic in sorted({s["topic"] for s in sent}):
            reader = broker.consumer(f"check-{int(time.time() * 1000)}-{topic}", topic)
            while msgs := reader.receive(256, 0.2):
                for m in msgs:
                    stored[m.msg_id].append(m)
                reader.ack(msgs)
            reader.close()
        for s in sent:
            name = f'{s["client"]} {s["kind"]} {s["body"]}'
            got = stored.get(s["message_id"], [])
            if s.get("outcome") == "rollback":
                check(not got, f"{name}: rolled back, yet stored {len(got)} times")
                continue
            check(len(got) == 1, f"{name}: stored {len(got)} times under id {s['message_id']}")
            found = broker.get(s["message_id"])
            check(found is not None and found.body.decode() == s["body"], f"{name}: get by the client's id")
            if len(got) != 1:
                continue
            m = got[0]
            check(m.topic == s["topic"], f"{name}: topic {m.topic!r}")
            check(m.body.decode() == s["body"], f"{name}: body {m.body!r}")
            check(m.tags == s["tag"], f"{name}: tag {m.tags!r}")
            check(m.keys == s["keys"], f"{name}: keys {m.keys!r}")
            check(m.properties.get("origin") == s["origin"], f"{name}: property origin {m.properties}")
            check(m.properties.get("__SHARDINGKEY") == s["group"], f"{name}: message group {m.properties}")
            if s["deliver_at_ms"] is not None:
                early = s["deliver_at_ms"] - m.store_timestamp
                check(early <= 0, f"{name}: reached its topic {early} ms before its due time")

        # FIFO: per client and message group, one queue and send order.
        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for s in sent:
            if s["group"] and len(stored.get(s["message_id"], [])) == 1:
                groups[(s["client"], s["group"])].append(stored[s["message_id"]][0])
        for (client, group), msgs in sorted(groups.items()):
            check(len({m.queue_id for m in msgs}) == 1, f"{client} {group}: spread over queues")
            offsets = [m.queue_offset for m in msgs]
            check(offsets == sorted(offsets), f"{client} {group}: stored out of send order {offsets}")

        # Every consumer group acked all it was given.
        for topic in sorted({s["topic"] for s in sent}):
            lag = broker.lag(f"{topic}-g", topic)
            check(lag == 0, f"group {topic}-g left {lag} messages of {topic} unacked")

    for f in failures:
        print(f"FAILED: {f}")
    print(f"store: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
