#!/usr/bin/env bash
# The official RocketMQ 5 clients (PyPI rocketmq-python-client, npm
# rocketmq-client-nodejs and Maven Central rocketmq-client-java, pinned here) against a
# pocketmq store served over gRPC:
#
# 1. `pocketmq serve` (the server built into the Python package) on a free 127.0.0.1
#    port and a fresh file store; official.py, official.mjs and java/Official.java run
#    side by side: a Producer sending normal, FIFO (three message groups), delayed and
#    transactional messages (commit, rollback, UNKNOWN resolved by check-back), a
#    SimpleConsumer receiving each kind, changing one delivery's invisibility and
#    acking everything, a PushConsumer failing each message once (and, in Java, a FIFO
#    group's PushConsumer keeping order through a failure). SIGTERM (drain, flush,
#    close), then check_store.py checks the store with the pocketmq package.
# 2. multiproc.py: producer and SimpleConsumer processes share one served store;
#    every acknowledged send delivered; SIGKILL, restart, every acknowledged send
#    still there. MULTIPROC_MESSAGES sets the count (100000).
# 3. Credentials, on the cargo-built `pocketmq-serve`: the three clients' signatures
#    pass with the right secret and are refused with a wrong one.
# 4. TLS, on the cargo-built `pocketmq-serve` with the test certificate: the Java
#    client's default (TLS on) is served, signed.
#
# Expects the clients installed (make server-clients does it: tests/server/.venv,
# tests/server/node_modules and tests/server/java/lib) and the pocketmq package in
# $POCKETMQ_VENV (.venv).
# Set KEEP=1 to keep the work directory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="$here/.venv/bin/python"
pmq_venv="$(cd "${POCKETMQ_VENV:-$root/.venv}" && pwd)"
cargo="${CARGO:-cargo}"
messages="${MULTIPROC_MESSAGES:-100000}"

(cd "$root" && "$cargo" build -q -p pocketmq-server --bin pocketmq-serve)
target="$(cd "$root" && "$cargo" metadata --format-version 1 --no-deps | "$py" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
cargo_serve="$target/debug/pocketmq-serve"
# The Java client's jar (make server-clients puts it there) and its home for any logs.
java_cp="$(printf '%s:' "$here"/java/lib/*.jar)"

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

# start_server CMD... : runs CMD --listen 127.0.0.1:<free port>; sets port and server_pid.
start_server() {
  port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  : >"$work/server.out"
  "$@" --listen "127.0.0.1:$port" --log-level info >"$work/server.out" 2>>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { echo "the server exited at startup"; exit 1; }
    sleep 0.1
  done
  grep -q "listening on" "$work/server.out" || { echo "the server did not start listening"; exit 1; }
}

stop_server() {
  kill -TERM "$server_pid"
  if ! wait "$server_pid"; then echo "the server did not exit cleanly on SIGTERM"; server_pid=""; exit 1; fi
  server_pid=""
}

prefix="it$$-$RANDOM"
# The clients log under $HOME; keep that inside the work directory.
mkdir -p "$work/home"
export HOME="$work/home"

# A retry ladder from 1 s (the delay levels from the third on), so the PushConsumer's
# failed delivery comes back in a second rather than ten; polls of at most 5 s, so
# the Node PushConsumer's shutdown (it waits for its poll) is quick.
cat >"$work/serve.toml" <<EOF
delay_levels = "1s 1s 1s 2s 3s 4s 5s 6s 7s 8s 9s 10s 20s 30s 1m 2m 1h 2h"
fifo_groups = ["$prefix-py-fifo-g", "$prefix-node-fifo-g", "$prefix-java-fifo-g", "$prefix-java-pfifo-g"]
[limits]
long_polling_max_ms = 5000
EOF

start_server "$pmq_venv/bin/pocketmq" serve "$work/store" --config "$work/serve.toml"
echo "pocketmq serve on 127.0.0.1:$port, store $work/store"
set +e
timeout 180 "$py" "$here/official.py" "127.0.0.1:$port" "$prefix-py" "$work/sent-python.jsonl" >"$work/python.out" 2>&1 &
py_pid=$!
timeout 180 java -Duser.home="$HOME" -cp "$java_cp" "$here/java/Official.java" "127.0.0.1:$port" "$prefix-java" "$work/sent-java.jsonl" >"$work/java.out" 2>&1 &
java_pid=$!
(cd "$here" && timeout 180 node official.mjs "127.0.0.1:$port" "$prefix-node" "$work/sent-node.jsonl") >"$work/node.out" 2>&1
node_rc=$?
wait "$py_pid"
py_rc=$?
wait "$java_pid"
java_rc=$?
set -e
cat "$work/python.out" "$work/node.out"
# (the client's shaded logger finds no binding and says so in three SLF4J lines)
grep -v '^SLF4J:' "$work/java.out" || true
stop_server
grep -q "event=stopped" "$work/server.log" || { echo "no clean stop in the server log"; exit 1; }
store_rc=0
"$pmq_venv/bin/python" "$here/check_store.py" "$work/store" "$work"/sent-*.jsonl || store_rc=1
[ "$py_rc" -eq 0 ] && [ "$node_rc" -eq 0 ] && [ "$java_rc" -eq 0 ] && [ "$store_rc" -eq 0 ] \
  || { echo "FAILED: official clients"; exit 1; }

mkdir -p "$work/multi"
"$py" "$here/multiproc.py" --serve "$pmq_venv/bin/pocketmq serve" --store "$work/multi/store" \
  --check-python "$pmq_venv/bin/python" --messages "$messages"

# Signatures: the server's check matches what each client computes.
start_server "$cargo_serve" --memory --access-key app --secret-key s3cret
echo "pocketmq-serve (cargo) with credentials on 127.0.0.1:$port"
signed_ok=0
for secret in s3cret wrong; do
  want=0; [ "$secret" = wrong ] && want=3
  for client in "$py $here/signed.py" "node $here/signed.mjs" "java -Duser.home=$HOME -cp $java_cp $here/java/Signed.java"; do
    set +e
    (cd "$here" && timeout 60 $client "127.0.0.1:$port" "$prefix-signed" app "$secret") 2>&1 | grep -v '^SLF4J:'
    got=${PIPESTATUS[0]}
    set -e
    if [ "$got" -ne "$want" ]; then
      echo "FAILED: ${client%% *} with secret $secret exited $got, expected $want"; signed_ok=1
    fi
  done
done
stop_server
[ "$signed_ok" -eq 0 ] || exit 1

# TLS: the Java client speaks it unless told otherwise; signed as well.
start_server "$cargo_serve" --memory --access-key app --secret-key s3cret \
  --tls-cert "$root/server/tests/data/server.pem" --tls-key "$root/server/tests/data/server.key"
echo "pocketmq-serve (cargo) with TLS and credentials on 127.0.0.1:$port"
set +e
timeout 60 java -Duser.home="$HOME" -cp "$java_cp" "$here/java/Signed.java" "127.0.0.1:$port" "$prefix-tls" app s3cret --tls 2>&1 \
  | grep -v '^SLF4J:'
got=${PIPESTATUS[0]}
set -e
stop_server
[ "$got" -eq 0 ] || { echo "FAILED: java over TLS exited $got"; exit 1; }
echo "official clients: all passed"
