#!/usr/bin/env bash
# The official RocketMQ 5 clients against pocketmq-serve: starts the server on a free
# 127.0.0.1 port with a fresh store, sends normal, FIFO (3 groups) and delayed messages
# with the Python (PyPI rocketmq-python-client) and Node (npm rocketmq-client-nodejs)
# producers, waits for the delays, stops the server with SIGTERM (it drains and closes
# the store), then checks the store's contents against what the clients were told.
# A second server checks credentials: both clients' signatures pass with the right
# secret and are refused with a wrong one.
#
# Expects the clients installed (make test-server does it): tests/server/.venv and
# tests/server/node_modules. Set KEEP=1 to keep the work directory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="$here/.venv/bin/python"
cargo="${CARGO:-cargo}"

(cd "$root" && "$cargo" build -q -p pocketmq-server --bin pocketmq-serve --example dump_topics)
target="$(cd "$root" && "$cargo" metadata --format-version 1 --no-deps | "$py" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
serve="$target/debug/pocketmq-serve"
dump="$target/debug/examples/dump_topics"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid" || true; wait "$server_pid" || true; fi
  if [ "$status" -ne 0 ]; then
    echo "--- server log (last 40 lines)"; tail -n 40 "$work/server.log" 2>/dev/null || true
    echo "--- work directory kept: $work"
  elif [ -z "${KEEP:-}" ]; then
    rm -rf "$work"
  else
    echo "work directory: $work"
  fi
}
trap cleanup EXIT

# start_server STORE_ARG EXTRA_FLAGS...: sets port and server_pid.
start_server() {
  port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$serve" "$@" --listen "127.0.0.1:$port" --log-level info >"$work/server.out" 2>>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { echo "pocketmq-serve exited at startup"; exit 1; }
    sleep 0.1
  done
  grep -q "listening on" "$work/server.out" || { echo "pocketmq-serve did not start listening"; exit 1; }
}

stop_server() {
  kill -TERM "$server_pid"
  if ! wait "$server_pid"; then echo "pocketmq-serve did not exit cleanly on SIGTERM"; server_pid=""; exit 1; fi
  server_pid=""
}

start_server "$work/store"
echo "pocketmq-serve on 127.0.0.1:$port, store $work/store"

prefix="it$$-$RANDOM"
# The clients log under $HOME; keep that inside the work directory.
mkdir -p "$work/home"
HOME="$work/home" timeout 120 "$py" "$here/producer.py" "127.0.0.1:$port" "$prefix-py" "$work/sent-python.jsonl"
(cd "$here" && HOME="$work/home" timeout 120 node producer.mjs "127.0.0.1:$port" "$prefix-node" "$work/sent-node.jsonl")

# Wait until the last delivery time has passed, plus a margin for the timer.
"$py" - "$work"/sent-*.jsonl <<'PY'
import json, sys, time
due = max((json.loads(l).get("deliver_at_ms") or 0) for p in sys.argv[1:] for l in open(p) if l.strip())
wait = due / 1000 + 1.5 - time.time()
if wait > 0:
    time.sleep(wait)
PY

stop_server
grep -q "event=stopped" "$work/server.log" || { echo "no clean stop in the server log"; exit 1; }

topics=()
for c in py node; do for k in normal fifo delay; do topics+=("$prefix-$c-$k"); done; done
"$dump" "$work/store" "${topics[@]}" >"$work/stored.jsonl"

# Signatures: the server's check matches what both clients compute.
start_server --memory --access-key app --secret-key s3cret
echo "pocketmq-serve with credentials on 127.0.0.1:$port"
signed_ok=0
for secret in s3cret wrong; do
  want=0; [ "$secret" = wrong ] && want=3
  for client in "$py $here/signed.py" "node $here/signed.mjs"; do
    set +e
    (cd "$here" && HOME="$work/home" timeout 60 $client "127.0.0.1:$port" "$prefix-signed" app "$secret")
    got=$?
    set -e
    if [ "$got" -ne "$want" ]; then
      echo "FAILED: ${client%% *} with secret $secret exited $got, expected $want"; signed_ok=1
    fi
  done
done
stop_server
[ "$signed_ok" -eq 0 ] || exit 1
"$py" "$here/check.py" --stored "$work/stored.jsonl" "$work"/sent-*.jsonl
