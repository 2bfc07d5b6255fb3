"""The commands: each opens the store, does one thing, and prints a table, a line
or JSON (``--json``)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .. import Broker, Message, SendResult, connect
from .display import (
    ProgressBar,
    duration,
    human_time,
    number,
    parse_time,
    rate,
    size,
    table,
    text_preview,
)
from .errors import INTERRUPTED, NO_STORE, NOT_FOUND, OK, USAGE, Failure

# ---------------------------------------------------------------- the store


def _is_store(path: Path) -> bool:
    return path.is_dir() and ((path / "checkpoint").is_file() or (path / "commitlog").is_dir())


def open_store(args: argparse.Namespace, create: bool = False) -> Any:
    """The store at ``--store`` (only commands that write create a missing one), or
    the served store at ``--server``."""
    if args.server:
        return connect(args.server)
    if not str(args.store).strip():
        # (An unset variable in a script: Path("") would be the current directory.)
        raise Failure("--store is empty: name the store directory", USAGE)
    path = Path(args.store)
    if path.exists() and not path.is_dir():
        raise Failure(f"no store at {path} (not a directory)", NO_STORE)
    if not create and not _is_store(path):
        what = "no such directory" if not path.exists() else "not a pocketmq store"
        raise Failure(f"no store at {path} ({what})", NO_STORE)
    return Broker(str(path))


# ---------------------------------------------------------------- output


def _message_json(msg: Message, served: bool = False) -> dict[str, Any]:
    """A message for --json; over --server the protocol carries no CommitLog offset
    (null, as a send result's queue_id is there)."""
    return {
        "msg_id": msg.msg_id,
        "topic": msg.topic,
        "queue_id": msg.queue_id,
        "queue_offset": msg.queue_offset,
        "commitlog_offset": None if served else msg.commitlog_offset,
        "tags": msg.tags,
        "keys": msg.keys,
        "properties": msg.properties,
        "born_timestamp": msg.born_timestamp,
        "store_timestamp": msg.store_timestamp,
        "reconsume_times": msg.reconsume_times,
        "body": msg.body.decode("utf-8", errors="replace"),
        "body_base64": base64.b64encode(msg.body).decode("ascii"),
    }


def _result_json(r: SendResult, served: bool) -> dict[str, Any]:
    out = {
        "msg_id": r.msg_id,
        "topic": r.topic,
        # RocketMQ 5's protocol does not say which queue a send went to.
        "queue_id": None if served else r.queue_id,
        "queue_offset": r.queue_offset,
        "status": r.status,
    }
    if r.recall_handle is not None:
        out["recall_handle"] = r.recall_handle
    return out


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


MESSAGE_HEADERS = ["STORED", "QUEUE", "OFFSET", "MSG_ID", "TAGS", "KEYS", "BODY"]


def _message_row(m: Message) -> list[Any]:
    return [human_time(m.store_timestamp), m.queue_id, m.queue_offset, m.msg_id,
            m.tags or "-", ",".join(m.keys) or "-", text_preview(m.body)]


def _messages(args: argparse.Namespace, msgs: Sequence[Message], none: str) -> None:
    if args.json:
        _print_json([_message_json(m, args.server is not None) for m in msgs])
    elif not msgs:
        print(none)
    else:
        table(MESSAGE_HEADERS, [_message_row(m) for m in msgs])


def _bar(args: argparse.Namespace, label: str) -> ProgressBar:
    shown = args.progress if args.progress is not None else sys.stderr.isatty()
    return ProgressBar(label, enabled=shown)


def _groups(broker: Broker) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = broker.stats()["groups"]
    return groups


# ---------------------------------------------------------------- commands


def cmd_topics(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        stats = b.stats()["topics"]
        rows = []
        for name, queues in sorted(b.topics().items()):
            t = stats.get(name, {"queues": [], "messages_in": 0})
            retained = sum(q["max_offset"] - q["min_offset"] for q in t["queues"])
            rows.append({"name": name, "queues": queues, "messages_in": t["messages_in"],
                         "messages_retained": retained})
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no topics")
    else:
        table(["TOPIC", "QUEUES", "MESSAGES", "RETAINED"],
              [[r["name"], r["queues"], r["messages_in"], r["messages_retained"]] for r in rows])
    return OK


def cmd_stats(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        s = b.stats()
    if args.json:
        _print_json(s)
        return OK
    print(f"store {args.store}: {number(s['messages_in'])} messages stored, "
          f"{number(s['messages_retained'])} retained, CommitLog {size(s['commitlog_bytes'])}, "
          f"{number(s['pending_delayed'])} delayed, {number(s['pending_transactions'])} "
          f"transactions pending")
    topics = [[name, len(t["queues"]), t["messages_in"],
               sum(q["max_offset"] - q["min_offset"] for q in t["queues"]), rate(t["in_rate"])]
              for name, t in sorted(s["topics"].items())]
    if topics:
        print()
        table(["TOPIC", "QUEUES", "MESSAGES", "RETAINED", "IN"], topics)
    groups = [[g["group"], g["topic"], g["consumers"], g["lag"], g["messages_out"], rate(g["out_rate"])]
              for g in s["groups"]]
    if groups:
        print()
        table(["GROUP", "TOPIC", "CONSUMERS", "LAG", "DELIVERED", "OUT"], groups)
    return OK


def cmd_progress(args: argparse.Namespace) -> int:
    now_ms = time.time() * 1000
    with open_store(args) as b:
        if args.topic:
            topics = [args.topic]
        else:
            topics = sorted({g["topic"] for g in _groups(b) if g["group"] == args.group})
            if not topics:
                raise Failure(f"group {args.group} has no progress on any topic", NOT_FOUND)
        rows = [{"topic": t, **r} for t in topics for r in b.progress(args.group, t)]
    if args.json:
        _print_json(rows)
        return OK
    out = []
    for r in rows:
        behind = None
        last = r["last_store_timestamp"]
        if r["lag"] and last is not None:
            behind = duration((now_ms - last) / 1000)
        out.append([r["topic"], r["queue_id"], r["broker_offset"], r["consumer_offset"], r["lag"],
                    r["inflight"], human_time(last), behind or "-"])
    table(["TOPIC", "QUEUE", "BROKER_OFFSET", "CONSUMER_OFFSET", "LAG", "INFLIGHT", "LAST_TIME", "BEHIND"],
          out)
    print(f"group {args.group}: lag {number(sum(r['lag'] for r in rows))}")
    return OK


def cmd_lag(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        if args.group and args.topic:
            lag = b.lag(args.group, args.topic)
            if args.json:
                _print_json({"group": args.group, "topic": args.topic, "lag": lag})
            else:
                print(lag)
            return OK
        rows = [g for g in _groups(b) if args.group is None or g["group"] == args.group]
    if not rows and args.group is not None:
        # As `progress GROUP` does: a group named and not found.
        raise Failure(f"group {args.group} has no progress on any topic", NOT_FOUND)
    if args.json:
        _print_json([{"group": g["group"], "topic": g["topic"], "lag": g["lag"]} for g in rows])
    elif not rows:
        print("no groups")
    else:
        table(["GROUP", "TOPIC", "LAG"], [[g["group"], g["topic"], g["lag"]] for g in rows])
    return OK


def cmd_browse(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        msgs = b.browse(args.topic, queue_id=args.queue, offset=args.offset, limit=args.limit)
    _messages(args, msgs, "no messages")
    return OK


def cmd_get(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        m = b.get(args.msg_id)
    if m is None:
        raise Failure(f"no message {args.msg_id} in {args.store}", NOT_FOUND)
    if args.json:
        _print_json(_message_json(m, args.server is not None))
        return OK
    fields: list[tuple[str, Any]] = [
        ("msg_id", m.msg_id), ("topic", m.topic), ("queue", m.queue_id),
        ("queue_offset", m.queue_offset), ("commitlog_offset", m.commitlog_offset),
        ("tags", m.tags or "-"), ("keys", ", ".join(m.keys) or "-"),
        ("born", human_time(m.born_timestamp)), ("stored", human_time(m.store_timestamp)),
        ("reconsume_times", m.reconsume_times),
    ]
    fields += [(f"property {k}", v) for k, v in sorted(m.properties.items())]
    fields.append(("body", text_preview(m.body, width=10_000)))
    width = max(len(k) for k, _ in fields)
    for k, v in fields:
        print(f"{k.ljust(width)}  {v}")
    return OK


def cmd_query(args: argparse.Namespace) -> int:
    if args.key is not None and args.until is not None:
        raise Failure("--until goes with --since, not with --key", USAGE)
    with open_store(args) as b:
        if args.key is not None:
            _require_topic(args, b)
            msgs = b.query(args.topic, args.key)[: args.limit]
        else:
            start = _time(args.since, "--since")
            end = _time(args.until, "--until") if args.until else time.time() + 1
            if end < start:
                until = args.until if args.until else "now, the default"
                raise Failure(f"--until ({until}) is before --since ({args.since})", USAGE)
            msgs = b.query_by_time(args.topic, start, end, limit=args.limit)
    _messages(args, msgs, "no messages")
    return OK


def _time(text: str, what: str) -> float:
    try:
        return parse_time(text)
    except ValueError as e:
        raise Failure(f"{what}: {e}", USAGE) from None


def cmd_tail(args: argparse.Namespace) -> int:
    if args.group:
        return _tail_group(args)
    if args.server:
        raise Failure("tail --server needs --group GROUP: RocketMQ 5's protocol reads only by "
                      "consuming (it has no browse)", USAGE)
    with open_store(args) as b:
        topic = b.stats()["topics"].get(args.topic)
        if topic is None:
            raise Failure(f"topic not found: {args.topic}", NOT_FOUND)
        nxt = {q["queue_id"]: q["max_offset"] for q in topic["queues"]}
        recent: list[Message] = []
        for q, end in nxt.items():
            recent += b.browse(args.topic, queue_id=q, offset=max(end - args.lines, 0), limit=args.lines)
        recent.sort(key=lambda m: m.commitlog_offset)
        _stream_header(args)
        _stream(args, recent[len(recent) - args.lines:] if args.lines > 0 else [])
        if not args.follow:
            return OK
        try:
            while True:
                fresh: list[Message] = []
                for q in list(nxt):
                    got = b.browse(args.topic, queue_id=q, offset=nxt[q], limit=1000)
                    if got:
                        nxt[q] = got[-1].queue_offset + 1
                    fresh += got
                fresh.sort(key=lambda m: m.commitlog_offset)
                _stream(args, fresh)
                if not fresh:
                    time.sleep(0.2)
                    queues = b.topics().get(args.topic, len(nxt))
                    for q in range(len(nxt), queues):
                        nxt[q] = 0
        except KeyboardInterrupt:
            return OK
    return OK  # (the loop above only ends by returning)


def _stream_line(row: Sequence[Any]) -> str:
    """A row of `tail`'s fixed columns (it prints as messages come, so it cannot size
    them to its rows as tables do)."""
    return (f"{row[0]:<23}  {row[1]:>5}  {row[2]:>9}  {row[3]:<32}  {row[4]:<10}  {row[5]:<16}  "
            f"{row[6]}").rstrip()


def _stream_header(args: argparse.Namespace) -> None:
    if not args.json:
        print(_stream_line(MESSAGE_HEADERS))


def _stream(args: argparse.Namespace, msgs: Iterable[Message]) -> None:
    """Prints messages as they come: one JSON object per line, or fixed columns."""
    for m in msgs:
        if args.json:
            print(json.dumps(_message_json(m, args.server is not None), sort_keys=True))
        else:
            print(_stream_line(_message_row(m)))
    sys.stdout.flush()


def _require_topic(args: argparse.Namespace, b: Any) -> None:
    """A consumer of a topic that does not exist would create it (a mistyped name
    made for good): refused, as browse and tail refuse it. A served store creates
    topics as it likes (the protocol lists none)."""
    if args.server or args.topic.startswith("%"):
        return
    if args.topic not in b.topics():
        raise Failure(f"topic not found: {args.topic} (topics are made by their first send, "
                      f"or create-topic)", NOT_FOUND)


def _tail_group(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        _require_topic(args, b)
        c = b.consumer(args.group, args.topic)
        # (A served store does not say its lag over the protocol: no progress bar.)
        behind = 0 if args.server else b.lag(args.group, args.topic)
        bar = _bar(args, f"catching up {args.group}")
        done = 0
        _stream_header(args)
        try:
            while True:
                msgs = c.receive(max_messages=256, timeout=0.5)
                if msgs:
                    bar.close()
                    _stream(args, msgs)
                    c.ack(msgs)
                    done += len(msgs)
                    if done < behind:
                        bar.update(done, behind)
                    continue
                bar.close()
                if not args.follow:
                    return OK
        except KeyboardInterrupt:
            bar.close()
            return OK if args.follow else INTERRUPTED
        finally:
            c.close()
    return OK  # (the loop above only ends by returning)


def cmd_reset_offset(args: argparse.Namespace) -> int:
    to: Any = args.to if args.to in ("earliest", "latest") else _time(args.to, "--to")
    with open_store(args) as b:
        b.reset_offset(args.group, args.topic, to)
        lag = b.lag(args.group, args.topic)
    if args.json:
        _print_json({"group": args.group, "topic": args.topic, "to": to, "lag": lag})
    else:
        where = args.to if isinstance(to, str) else human_time(int(to * 1000))
        print(f"group {args.group} on {args.topic} reset to {where}: lag {number(lag)}")
    return OK


def _drill(args: argparse.Namespace, label: str, run: Callable[[Callable[[int, int], None]], int],
           interrupted: str) -> tuple[int, float]:
    bar = _bar(args, label)
    try:
        moved = run(bar.update)
    except KeyboardInterrupt:
        bar.close()
        raise Failure(interrupted.format(n=number(bar.done)), INTERRUPTED) from None
    bar.close()
    return moved, bar.elapsed


def cmd_move_backlog(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        moved, secs = _drill(
            args, "moving",
            lambda step: b.move_backlog(args.group, args.topic, to=args.to, queues=args.queues,
                                        on_progress=step),
            "interrupted after moving {n} messages (the group is past them); "
            "run the same command again to move the rest")
        queues = b.topics().get(args.to)
    if args.json:
        _print_json({"group": args.group, "from": args.topic, "to": args.to, "queues": queues,
                     "moved": moved, "seconds": round(secs, 3)})
    else:
        speed = f" ({rate(moved / secs)})" if secs > 0 and moved else ""
        print(f"moved {number(moved)} messages of group {args.group} from {args.topic} to "
              f"{args.to} ({queues} queues) in {duration(secs)}{speed}; the group is past them")
    return OK


def cmd_dlq(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        msgs = b.dead_letters(args.group, limit=args.limit)
    if args.json:
        _print_json([_message_json(m, args.server is not None) for m in msgs])
    elif not msgs:
        print(f"group {args.group} has no dead letters")
    else:
        table(["STORED", "ORIGIN_TOPIC", "MSG_ID", "DELIVERIES", "TAGS", "KEYS", "BODY"],
              [[human_time(m.store_timestamp), m.properties.get("RETRY_TOPIC", "-"), m.msg_id,
                m.reconsume_times, m.tags or "-", ",".join(m.keys) or "-", text_preview(m.body)]
               for m in msgs])
    return OK


def cmd_redrive(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        n, secs = _drill(
            args, "redriving",
            lambda step: b.redrive(args.group, args.limit, on_progress=step),
            "interrupted after redriving {n} dead letters; run the same command again for the rest")
    if args.json:
        _print_json({"group": args.group, "redriven": n, "seconds": round(secs, 3)})
    else:
        print(f"redrove {number(n)} dead letters of group {args.group}: they come back to "
              f"that group alone, through %RETRY%{args.group}")
    return OK


def _properties(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise Failure(f"--property takes NAME=VALUE, not {pair!r}", USAGE)
        out[name] = value
    return out


def cmd_send(args: argparse.Namespace) -> int:
    if args.delay_level is not None and args.delay is not None:
        raise Failure("give --delay-level or --delay, not both", USAGE)
    # The argument's bytes as the shell gave them (os.fsencode undoes the
    # surrogateescape of bytes that are not UTF-8).
    body = sys.stdin.buffer.read() if args.body == "-" else os.fsencode(args.body)
    with open_store(args, create=True) as b:
        r = b.producer(args.group).send(
            args.topic, body, tags=args.tags, keys=args.keys, properties=_properties(args.property),
            sharding_key=args.sharding_key, queue_id=args.queue_id, delay_level=args.delay_level,
            delay=args.delay)
    if args.json:
        _print_json(_result_json(r, served=args.server is not None))
        return OK
    # RocketMQ 5's protocol does not say which queue a send went to.
    where = f"to {r.topic}" if args.server else f"to {r.topic} queue {r.queue_id}"
    print(f"{r.status} {r.msg_id} {where} offset {r.queue_offset}")
    if r.recall_handle is not None:
        print(f"delayed: recall handle {r.recall_handle}")
    return OK


def cmd_receive(args: argparse.Namespace) -> int:
    # A missing store has nothing to receive: a mistyped --store is an error, not a
    # new empty store.
    with open_store(args) as b:
        _require_topic(args, b)
        c = b.consumer(args.group, args.topic, tags=args.tags, sql=args.sql,
                       broadcasting=args.broadcasting)
        msgs = c.receive(args.max_messages, args.timeout)
        if not args.no_ack:
            c.ack(msgs)
        c.close()
    if args.json:
        for m in msgs:
            print(json.dumps(_message_json(m, args.server is not None), sort_keys=True))
    else:
        _messages(args, msgs, "no messages")
    return OK


def cmd_create_topic(args: argparse.Namespace) -> int:
    with open_store(args, create=True) as b:
        b.create_topic(args.topic, args.queues)
        queues = b.topics()[args.topic]
    if args.json:
        _print_json({"topic": args.topic, "queues": queues})
    else:
        print(f"topic {args.topic}: {queues} queues")
    return OK


def cmd_delete_topic(args: argparse.Namespace) -> int:
    with open_store(args) as b:
        b.delete_topic(args.topic)
    if args.json:
        _print_json({"deleted": args.topic})
    else:
        print(f"deleted topic {args.topic}: its messages are unreachable, its groups reset")
    return OK
