"""Sends normal, FIFO (three message groups) and delayed messages to a pocketmq-serve
with the official Python client (PyPI rocketmq-python-client), and writes what it sent,
one JSON object per line, for check.py.

usage: producer.py HOST:PORT TOPIC_PREFIX OUT.jsonl
"""

import json
import sys
import time

from rocketmq import ClientConfiguration, Credentials, Message, Producer

NORMAL = 20
FIFO_GROUPS = ("group-a", "group-b", "group-c")
FIFO_PER_GROUP = 10
DELAYED = 3
DELAY_SECONDS = 3


def main() -> int:
    endpoint, prefix, out_path = sys.argv[1:4]
    topics = {kind: f"{prefix}-{kind}" for kind in ("normal", "fifo", "delay")}
    config = ClientConfiguration(endpoint, Credentials())
    producer = Producer(config, tuple(topics.values()))
    producer.startup()
    sent = []

    def send(kind: str, body: str, **fields) -> None:
        msg = Message()
        msg.topic = topics[kind]
        msg.body = body.encode()
        msg.tag = f"tag-{kind}"
        msg.keys = f"key-{body}"
        msg.add_property("origin", "python")
        if "group" in fields:
            msg.message_group = fields["group"]
        if "deliver_at_s" in fields:
            msg.delivery_timestamp = fields["deliver_at_s"]
        receipt = producer.send(msg)
        sent.append(
            {
                "client": "python",
                "kind": kind,
                "topic": topics[kind],
                "message_id": receipt.message_id,
                "body": body,
                "tag": f"tag-{kind}",
                "keys": [f"key-{body}"],
                "group": fields.get("group"),
                "deliver_at_ms": fields["deliver_at_s"] * 1000 if "deliver_at_s" in fields else None,
            }
        )

    try:
        for i in range(NORMAL):
            send("normal", f"py-normal-{i}")
        for i in range(FIFO_PER_GROUP):
            for g in FIFO_GROUPS:
                send("fifo", f"py-{g}-{i}", group=g)
        # Python's delivery timestamps have whole-second precision.
        at = int(time.time()) + DELAY_SECONDS
        for i in range(DELAYED):
            send("delay", f"py-delay-{i}", deliver_at_s=at)
    finally:
        producer.shutdown()
    with open(out_path, "w") as out:
        for s in sent:
            out.write(json.dumps(s) + "\n")
    print(f"python: sent {len(sent)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
