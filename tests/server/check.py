"""Checks what the official clients sent against what the store holds.

usage: check.py --stored STORED.jsonl SENT.jsonl...

SENT files come from producer.py / producer.mjs, STORED from the dump_topics example
run on the store after the server stopped. Every sent message must be stored once,
under the id the client was given, with its body, tag and keys; the messages of one
FIFO group must sit in one queue in send order; a delayed message must not have
reached its topic before its delivery time. Ends with an "N passed, M failed" line.
"""

import argparse
import json
import sys
from collections import defaultdict


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stored", required=True)
    ap.add_argument("sent", nargs="+")
    args = ap.parse_args()
    stored = load(args.stored)
    sent = [s for path in args.sent for s in load(path)]
    passed, failures = 0, []

    def check(ok, what):
        nonlocal passed
        if ok:
            passed += 1
        else:
            failures.append(what)

    by_id = defaultdict(list)
    for m in stored:
        by_id[m["client_message_id"]].append(m)
    for s in sent:
        name = f'{s["client"]} {s["kind"]} {s["body"]}'
        got = by_id.get(s["message_id"], [])
        check(len(got) == 1, f"{name}: stored {len(got)} times under id {s['message_id']}")
        if len(got) != 1:
            continue
        m = got[0]
        check(m["topic"] == s["topic"], f"{name}: topic {m['topic']!r}")
        check(m["body"] == s["body"], f"{name}: body {m['body']!r}")
        check(m["tags"] == s["tag"], f"{name}: tag {m['tags']!r}")
        check(m["keys"] == s["keys"], f"{name}: keys {m['keys']!r}")
        check(m["message_group"] == s["group"], f"{name}: message group {m['message_group']!r}")
        check(
            m["properties"].get("origin") == s["client"],
            f"{name}: user property origin {m['properties'].get('origin')!r}",
        )
        if s["deliver_at_ms"] is not None:
            check(
                m["store_timestamp"] >= s["deliver_at_ms"],
                f"{name}: reached its topic at {m['store_timestamp']}, "
                f"{s['deliver_at_ms'] - m['store_timestamp']} ms before its delivery time",
            )

    # FIFO: per client and group, one queue and send order.
    groups = defaultdict(list)
    for s in sent:
        if s["group"] and len(by_id.get(s["message_id"], [])) == 1:
            groups[(s["client"], s["group"])].append(by_id[s["message_id"]][0])
    for (client, group), msgs in sorted(groups.items()):
        queues = {m["queue_id"] for m in msgs}
        check(len(queues) == 1, f"{client} {group}: spread over queues {sorted(queues)}")
        offsets = [m["queue_offset"] for m in msgs]
        check(offsets == sorted(offsets), f"{client} {group}: stored out of send order {offsets}")

    check(len(stored) == len(sent), f"{len(stored)} messages stored for {len(sent)} sent")
    for f in failures:
        print(f"FAILED: {f}")
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
