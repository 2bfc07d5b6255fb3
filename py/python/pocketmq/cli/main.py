"""The command line: the parser (every command, its options, the exit codes in
``--help``) and ``main``, which turns any failure into one line on stderr."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Callable, Optional, Sequence

from .. import Error, NotSupported
from .commands import (
    cmd_browse,
    cmd_create_topic,
    cmd_delete_topic,
    cmd_dlq,
    cmd_get,
    cmd_lag,
    cmd_move_backlog,
    cmd_progress,
    cmd_query,
    cmd_receive,
    cmd_redrive,
    cmd_reset_offset,
    cmd_send,
    cmd_stats,
    cmd_tail,
    cmd_topics,
)
from .errors import EXIT_CODES, INTERRUPTED, IO_ERROR, OK, USAGE, Failure, failure_of

# The commands that work on a served store (--server).
SERVED = ("send", "receive", "tail")

DESCRIPTION = """\
Inspect and operate a pocketmq store from a shell, the way mqadmin operates a
RocketMQ broker. Every command opens the store directory given by --store
(default ./data), does its work and closes it; a store another process has open
fails at once, naming that process. Commands that only read never create a
store. Tables for people; --json for scripts."""


def _count(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `least`."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more, not {n}")
        return n

    return parse


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # Accepted before or after the command; SUPPRESS keeps one given before it.
    common.add_argument("--store", default=argparse.SUPPRESS,
                        help="store directory (default ./data)")
    common.add_argument("--server", default=argparse.SUPPRESS, metavar="HOST:PORT",
                        help="work on a served store (pocketmq serve, or Apache RocketMQ's "
                             "proxy) over RocketMQ 5's protocol instead of --store: send, "
                             "receive and tail --group; the other commands need the store")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="JSON for scripts instead of tables: one document; tail and receive "
                             "print one object per line (JSON Lines), as messages come. A "
                             "message's body is text in \"body\" (bytes that are not UTF-8 "
                             "replaced) and exact in \"body_base64\"")
    common.add_argument("--progress", action="store_true", default=argparse.SUPPRESS,
                        help="show progress bars even when stderr is not a terminal")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log the engine's informational records too")
    p = argparse.ArgumentParser(
        prog="pocketmq", description=DESCRIPTION,
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help, parents=[common])
        c.set_defaults(run=run)
        return c

    # Dispatched before parsing (it has flags of its own); listed for --help.
    command("serve", lambda _: 2,
            "serve a store over RocketMQ 5's gRPC protocol (pocketmq serve --help)")
    command("topics", cmd_topics, "list topics: queues, messages stored and retained")
    command("stats", cmd_stats, "the store's totals, topics and groups (lag, rates)")

    c = command("progress", cmd_progress,
                "a group's progress per queue (mqadmin consumerProgress): offsets, lag, last time")
    c.add_argument("group")
    c.add_argument("topic", nargs="?", help="default: every topic the group has progress on")

    c = command("lag", cmd_lag, "messages a group has not acked: one number, or a table per group and topic")
    c.add_argument("group", nargs="?")
    c.add_argument("topic", nargs="?")

    c = command("tail", cmd_tail,
                "the last messages of a topic, without consuming; -f follows; --group consumes as a group")
    c.add_argument("topic")
    c.add_argument("-n", "--lines", type=_count(0), default=10, help="how many of the last messages (10)")
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new messages until Ctrl-C")
    c.add_argument("--group", help="consume (and ack) as this group instead of only reading")

    c = command("browse", cmd_browse, "messages of a topic without consuming them")
    c.add_argument("topic")
    c.add_argument("--queue", type=_count(0), help="one queue (default: all, in store order)")
    c.add_argument("--offset", type=_count(0), help="queue offset to start from (default: the oldest)")
    c.add_argument("--limit", type=_count(0), default=32, help="at most this many (32)")

    c = command("get", cmd_get, "one message by id")
    c.add_argument("msg_id")

    c = command("query", cmd_query, "messages of a topic by key, or by store time")
    c.add_argument("topic")
    how = c.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", help="messages with this key")
    how.add_argument("--since", help="messages stored at or after this time")
    c.add_argument("--until", help="with --since: stored before this time (default: now)")
    c.add_argument("--limit", type=_count(0), default=1000, help="at most this many (1000)")

    c = command("reset-offset", cmd_reset_offset, "move a group on a topic to earliest, latest or a time")
    c.add_argument("group")
    c.add_argument("topic")
    c.add_argument("--to", required=True, help="earliest, latest, or a time")

    c = command("move-backlog", cmd_move_backlog,
                "the backlog drill: copy a group's unconsumed messages to a wider topic, then move the "
                "group past them (resumable: run it again after an interruption)")
    c.add_argument("group")
    c.add_argument("topic")
    c.add_argument("--to", required=True, metavar="TEMP", help="the topic to move the backlog to")
    c.add_argument("--queues", type=_count(1), help="queues of TEMP (default: as many as TOPIC)")

    c = command("dlq", cmd_dlq, "a group's dead letters (not yet redriven)")
    c.add_argument("group")
    c.add_argument("--limit", type=_count(0), default=100, help="at most this many (100)")

    c = command("redrive", cmd_redrive, "resend a group's dead letters to that group alone")
    c.add_argument("group")
    c.add_argument("--limit", type=_count(0), help="at most this many (default: all)")

    c = command("send", cmd_send, "send one message (creates the store if needed)")
    c.add_argument("topic")
    c.add_argument("body", help="message body (text); '-' reads it from stdin")
    c.add_argument("--group", default="cli", help="the producer group (cli)")
    c.add_argument("--tags", help="the message's tag, for consumers' tag filters")
    c.add_argument("--key", action="append", default=[], dest="keys",
                   help="a key to find the message by (query --key); repeatable")
    c.add_argument("--property", action="append", default=[], metavar="NAME=VALUE",
                   help="a user property; repeatable")
    c.add_argument("--sharding-key", help="messages of one sharding key go to one queue, in order")
    c.add_argument("--queue-id", type=_count(0), help="this queue, instead of choosing one")
    c.add_argument("--delay-level", type=_count(0),
                   help="RocketMQ's delay level: 1 = 1s, 2 = 5s, ... 18 = 2h (0: none)")
    c.add_argument("--delay", type=float, help="deliver this many seconds from now")

    c = command("receive", cmd_receive, "receive (and ack) messages as a group")
    c.add_argument("topic")
    c.add_argument("--group", required=True)
    c.add_argument("--tags", default="*", help="a tag filter: * or tags joined by || (*)")
    c.add_argument("--sql", help="an SQL92 filter over the properties instead of tags, as "
                                 "RocketMQ's bySql: \"amount > 100 AND TAGS = 'paid'\"")
    c.add_argument("--max", type=_count(1), default=32, dest="max_messages",
                   help="at most this many (32)")
    c.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the first")
    c.add_argument("--no-ack", action="store_true", help="leave the messages unacked")
    c.add_argument("--broadcasting", action="store_true",
                   help="receive as a broadcasting consumer: every member of the group gets "
                        "every message, from its own offsets")

    c = command("create-topic", cmd_create_topic, "create a topic or grow its queues")
    c.add_argument("topic")
    c.add_argument("--queues", type=_count(1), help="how many queues (default 4; never fewer)")

    c = command("delete-topic", cmd_delete_topic,
                "delete a topic: its messages become unreachable, its groups reset")
    c.add_argument("topic")
    return p


def _before_serve(argv: list[str]) -> Optional[tuple[int, Optional[str], list[str]]]:
    """When ``argv`` is global options then ``serve``: serve's index, the ``--store``
    given (if any) and the other options given; else None."""
    i, store = 0, None
    others: list[str] = []
    while i < len(argv):
        a = argv[i]
        if a == "serve":
            return i, store, others
        if a in ("--store", "--server"):
            if i + 1 >= len(argv):
                return None
            if a == "--store":
                store = argv[i + 1]
            else:
                others.append(f"{a} {argv[i + 1]}")
            i += 2
        elif a.startswith("--store="):
            store = a.split("=", 1)[1]
            i += 1
        elif a.startswith("-"):
            others.append(a)
            i += 1
        else:
            return None  # a command's argument: `serve` is a topic or a value there
    return None


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    before = _before_serve(argv)
    if before is not None:
        at, store, others = before
        if others:
            # `pocketmq --json serve ...`: serve has options of its own, and none of these.
            print(f"pocketmq: error: {' '.join(others)} before serve: serve's own options "
                  f"follow it (pocketmq serve --help)", file=sys.stderr)
            return USAGE
        # `pocketmq --store DIR serve ...`: the store given before the command.
        from ..serve import main as serve

        return serve(([store] if store is not None else []) + argv[at + 1:])
    args = _parser().parse_args(argv)
    for name, default in (("store", "./data"), ("server", None), ("json", False), ("progress", None),
                          ("verbose", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.server is not None and not args.server.strip():
        # (An unset variable in a script: never a quiet fall back to the local store.)
        print("pocketmq: error: --server is empty: give host:port", file=sys.stderr)
        return USAGE
    if args.server is not None and args.command not in SERVED:
        # Refused before dialling: the answer does not depend on the server.
        print(f"pocketmq: error: {args.command} needs the store itself, not --server; with "
              f"--server only send, receive and tail --group work (run it with --store where "
              f"the store is)", file=sys.stderr)
        return USAGE
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="pocketmq: %(levelname)s: %(message)s", stream=sys.stderr)
    # SIGTERM (kill, a service manager, `timeout`) ends a command as Ctrl-C does, its
    # store closed cleanly: its default would end the process with the store open.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # (here, where a failure to write is reported as one)
        return code
    except Failure as f:
        print(f"pocketmq: error: {f}", file=sys.stderr)
        return f.code
    except NotSupported as e:
        if args.server is None:
            failure = failure_of(e)
            print(f"pocketmq: error: {failure}", file=sys.stderr)
            return failure.code
        # The call the command made is the engine's business; the user ran a command.
        call, _, reason = str(e).partition(": ")
        reason = reason.removesuffix(" (the RocketMQ 5 protocol that connect() speaks does not carry it)")
        if args.command in ("send", "receive", "tail") and "=" in call:
            # The command works over --server; one of its options does not.
            option = call[call.index("(") + 1:].split("=")[0].replace("_", "-")
            print(f"pocketmq: error: {args.command} --{option} does not work with --server: {reason}",
                  file=sys.stderr)
        else:
            print(f"pocketmq: error: {args.command} needs the store itself, not --server: "
                  f"{reason.split('(): ', 1)[-1]}; with --server only send, receive and tail "
                  f"--group work (run it with --store where the store is)", file=sys.stderr)
        return USAGE
    except Error as e:
        failure = failure_of(e)
        print(f"pocketmq: error: {failure}", file=sys.stderr)
        return failure.code
    except (KeyboardInterrupt, BrokenPipeError) as e:
        if isinstance(e, BrokenPipeError):
            # The reader went away (`| head`): not an error. Point stdout at /dev/null
            # so that the flush at exit does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return OK
        print("pocketmq: interrupted", file=sys.stderr)
        return INTERRUPTED
    except OSError as e:
        # Writing the output failed (a full disk behind a redirect, ...): one line, as
        # for every failure, and no second try at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"pocketmq: error: writing the output: {e.strerror or e}", file=sys.stderr)
        return IO_ERROR
