"""The ``pocketmq`` command: send, receive and inspect a store from a shell.

Every command opens the store directory given by ``--store`` (default ``./data``),
does its work and closes it, so it cannot run while another process owns the store.
Output is JSON: one object per message, or one document for ``stats``/``topics``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, Sequence

from . import Broker, Error, Message, SendResult


def _message_json(msg: Message) -> dict[str, Any]:
    return {
        "msg_id": msg.msg_id,
        "topic": msg.topic,
        "queue_id": msg.queue_id,
        "queue_offset": msg.queue_offset,
        "tags": msg.tags,
        "keys": msg.keys,
        "properties": msg.properties,
        "born_timestamp": msg.born_timestamp,
        "store_timestamp": msg.store_timestamp,
        "reconsume_times": msg.reconsume_times,
        "body": msg.body.decode("utf-8", errors="replace"),
    }


def _result_json(r: SendResult) -> dict[str, Any]:
    return {
        "msg_id": r.msg_id,
        "topic": r.topic,
        "queue_id": r.queue_id,
        "queue_offset": r.queue_offset,
        "status": r.status,
    }


def _print(obj: Any, pretty: bool = False) -> None:
    print(json.dumps(obj, indent=2 if pretty else None, sort_keys=pretty))


def _properties(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"pocketmq: --property takes NAME=VALUE, not {pair!r}")
        out[name] = value
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pocketmq",
        description=__doc__.splitlines()[0],
        epilog="pocketmq serve STORE_DIR [--listen 127.0.0.1:8081 ...]: serve the store over "
        "RocketMQ 5's gRPC protocol (pocketmq serve --help)",
    )
    p.add_argument("--store", default="./data", help="store directory (default ./data)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("send", help="send one message")
    s.add_argument("topic")
    s.add_argument("body", help="message body (text); '-' reads it from stdin")
    s.add_argument("--group", default="cli")
    s.add_argument("--tags")
    s.add_argument("--key", action="append", default=[], dest="keys")
    s.add_argument("--property", action="append", default=[], metavar="NAME=VALUE")
    s.add_argument("--sharding-key")
    s.add_argument("--queue-id", type=int)
    s.add_argument("--delay-level", type=int)
    s.add_argument("--delay", type=float, help="seconds")

    r = sub.add_parser("receive", help="receive (and ack) messages as a group")
    r.add_argument("topic")
    r.add_argument("--group", required=True)
    r.add_argument("--tags", default="*")
    r.add_argument("--max", type=int, default=32, dest="max_messages")
    r.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the first")
    r.add_argument("--no-ack", action="store_true", help="leave the messages unacked")
    r.add_argument("--broadcasting", action="store_true")

    sub.add_parser("topics", help="list topics and their queue counts")
    sub.add_parser("stats", help="sizes, lags and rates")

    g = sub.add_parser("get", help="show one message by id")
    g.add_argument("msg_id")

    q = sub.add_parser("query", help="messages of a topic by key")
    q.add_argument("topic")
    q.add_argument("key")

    lag = sub.add_parser("lag", help="messages a group has not acked")
    lag.add_argument("group")
    lag.add_argument("topic")

    c = sub.add_parser("create-topic", help="create a topic or grow its queues")
    c.add_argument("topic")
    c.add_argument("--queues", type=int)
    return p


def run(args: argparse.Namespace) -> int:
    with Broker(args.store) as broker:
        if args.command == "send":
            body = sys.stdin.buffer.read() if args.body == "-" else args.body.encode()
            result = broker.producer(args.group).send(
                args.topic,
                body,
                tags=args.tags,
                keys=args.keys,
                properties=_properties(args.property),
                sharding_key=args.sharding_key,
                queue_id=args.queue_id,
                delay_level=args.delay_level,
                delay=args.delay,
            )
            _print(_result_json(result))
        elif args.command == "receive":
            consumer = broker.consumer(
                args.group, args.topic, tags=args.tags, broadcasting=args.broadcasting
            )
            for msg in consumer.receive(args.max_messages, args.timeout):
                _print(_message_json(msg))
                if not args.no_ack:
                    consumer.ack(msg)
            consumer.close()
        elif args.command == "topics":
            _print(broker.topics(), pretty=True)
        elif args.command == "stats":
            _print(broker.stats(), pretty=True)
        elif args.command == "get":
            found = broker.get(args.msg_id)
            if found is None:
                print(f"pocketmq: no message {args.msg_id}", file=sys.stderr)
                return 1
            _print(_message_json(found))
        elif args.command == "query":
            for msg in broker.query(args.topic, args.key):
                _print(_message_json(msg))
        elif args.command == "lag":
            _print(broker.lag(args.group, args.topic))
        elif args.command == "create-topic":
            broker.create_topic(args.topic, args.queues)
            _print(broker.topics(), pretty=True)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # The gRPC server has flags of its own (pocketmq/serve.py).
        from .serve import main as serve

        return serve(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except Error as e:
        print(f"pocketmq: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
