#!/usr/bin/env bash
# make interop: the same code on the embedded engine, `pocketmq serve` and Apache RocketMQ.
#
# 1. Starts a local Apache RocketMQ 5 (interop/rocketmq/rocketmq.sh; fetched from Maven
#    Central on first use) unless one runs already, and a `pocketmq serve` on a free port.
# 2. tests/interop/scenarios.py through pocketmq's API: embedded, connect() to pocketmq
#    serve (a server it starts itself), connect() to Apache RocketMQ.
# 3. The package's producer and consumer tests over connect() to Apache RocketMQ
#    (POCKETMQ_TARGET=rocketmq; `make test-connect` runs them against pocketmq serve).
# 4. The official Python, Node, Go and Rust clients' scenarios (tests/interop/official)
#    against Apache RocketMQ and against pocketmq serve; then the official Java client's
#    (tests/server/java/Official.java: normal, FIFO, delay, transaction, push-retry,
#    push-fifo).
# 5. A table of every scenario on every target; stops what it started. Exit 1 on any failure.
#
# Expects the package in $VPY's environment and the official clients installed (the Go
# one built into tests/interop/official/go/scenarios, the Rust one into
# target/interop-rust/debug/scenarios), the Java client's jar in
# tests/server/java/lib (make interop does all of it).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
VPY=${VPY:-.venv/bin/python}
RMQ=interop/rocketmq/rocketmq.sh
OFFICIAL=tests/interop/official
RUST_SCENARIOS=target/interop-rust/debug/scenarios
out=$(mktemp -d)
prefix=it$(date +%s)
started_rocketmq=""
serve_pid=""

cleanup() {
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null
  fi
  if [ -n "$started_rocketmq" ]; then bash "$RMQ" stop; fi
  rm -rf "$out"
}
trap cleanup EXIT

if ! bash "$RMQ" status >/dev/null 2>&1; then
  started_rocketmq=1
  bash "$RMQ" start || { echo "interop: Apache RocketMQ did not start" >&2; exit 1; }
fi
apache=$(bash "$RMQ" endpoint)
create="bash $RMQ create"

# pocketmq serve for the official clients: FIFO groups and a fast retry ladder for their
# scenarios (the DLQ group retries twice after 1 s and 2 s, as Apache's group is told).
cat > "$out/serve.toml" <<EOF
delay_levels = "1s 1s 1s 2s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m"
transaction_timeout_ms = 3000
check_interval_ms = 5000
fifo_groups = ["$prefix-py-fifo-g", "$prefix-js-fifo-g", "$prefix-go-fifo-g", "$prefix-rs-fifo-g",
               "$prefix-java-fifo-g", "$prefix-java-pfifo-g"]
[groups."$prefix-py-dlq-g"]
max_reconsume_times = 2
[groups."$prefix-js-dlq-g"]
max_reconsume_times = 2
[groups."$prefix-go-dlq-g"]
max_reconsume_times = 2
EOF
"$VPY" -m pocketmq serve "$out/store" --listen 127.0.0.1:0 --config "$out/serve.toml" \
  --log-level error > "$out/serve.out" &
serve_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$out/serve.out" 2>/dev/null && break; sleep 0.1; done
serve=$(sed -n 's/^pocketmq-serve listening on //p' "$out/serve.out")
[ -n "$serve" ] || { echo "interop: pocketmq serve did not start" >&2; exit 1; }

rc=0
step() { echo; echo "== $*"; }
# Runs one step and keeps its output, so that the end of the run can say what failed and
# show the last lines of each failure, where the tail of a CI log shows them.
failures=()
steps=0
run() { # LABEL COMMAND...
  local label=$1 log
  shift
  steps=$((steps + 1))
  log="$out/step-$steps.log"
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then rc=1; failures+=("$label (exit $status)|$log"); fi
  return 0
}

step "pocketmq API: embedded"
run "pocketmq API, embedded" \
  "$VPY" tests/interop/scenarios.py embedded --prefix "$prefix" --json "$out/api-embedded.json"
step "pocketmq API: connect() to pocketmq serve"
run "pocketmq API, connect() to pocketmq serve" \
  "$VPY" tests/interop/scenarios.py serve --prefix "$prefix" --json "$out/api-serve.json"
step "pocketmq API: connect() to Apache RocketMQ at $apache"
run "pocketmq API, connect() to Apache RocketMQ" \
  "$VPY" tests/interop/scenarios.py rocketmq "$apache" --prefix "$prefix" --create "$create" \
  --json "$out/api-rocketmq.json"

step "pytest producers and consumers over connect() to Apache RocketMQ"
run "pytest over connect() to Apache RocketMQ" \
  env POCKETMQ_TARGET=rocketmq POCKETMQ_ROCKETMQ="$apache" "$VPY" -m pytest -q -p no:cacheprovider \
  tests/python/test_send.py tests/python/test_simple_consumer.py tests/python/test_consume.py

step "JS connect() to Apache RocketMQ (tests/js/connect.test.mjs)"
run "JS connect() to Apache RocketMQ" \
  env -C "$root/tests" POCKETMQ_ROCKETMQ="$apache" node --test js/connect.test.mjs

step "official Python client: Apache RocketMQ"
run "official Python client, Apache RocketMQ" \
  "$OFFICIAL/.venv/bin/python" "$OFFICIAL/scenarios.py" "$apache" "$prefix-ra-py" --create "$create" \
  --json "$out/py-rocketmq.json"
step "official Python client: pocketmq serve"
run "official Python client, pocketmq serve" \
  "$OFFICIAL/.venv/bin/python" "$OFFICIAL/scenarios.py" "$serve" "$prefix-py" --json "$out/py-serve.json"
step "official Node client: Apache RocketMQ"
run "official Node client, Apache RocketMQ" \
  node "$OFFICIAL/scenarios.js" "$apache" "$prefix-ra-js" --create "$create" --json "$out/js-rocketmq.json"
step "official Node client: pocketmq serve"
run "official Node client, pocketmq serve" \
  node "$OFFICIAL/scenarios.js" "$serve" "$prefix-js" --json "$out/js-serve.json"
step "official Go client: Apache RocketMQ"
run "official Go client, Apache RocketMQ" \
  "$OFFICIAL/go/scenarios" "$apache" "$prefix-ra-go" --create "$create" --json "$out/go-rocketmq.json"
step "official Go client: pocketmq serve"
run "official Go client, pocketmq serve" \
  "$OFFICIAL/go/scenarios" "$serve" "$prefix-go" --json "$out/go-serve.json"
# The Rust client logs to stderr, and its error log has lines for what it did not ask
# for (docs: server/README.md): both servers' runs go to one log file.
mkdir -p "$OFFICIAL/.logs"
rust_official() { "$RUST_SCENARIOS" "$@" 2>>"$OFFICIAL/.logs/rust-client.log"; }
step "official Rust client: Apache RocketMQ (client log: $OFFICIAL/.logs/rust-client.log)"
run "official Rust client, Apache RocketMQ" \
  rust_official "$apache" "$prefix-ra-rs" --create "$create" --json "$out/rs-rocketmq.json"
step "official Rust client: pocketmq serve"
run "official Rust client, pocketmq serve" rust_official "$serve" "$prefix-rs" --json "$out/rs-serve.json"

java_cp="$(printf '%s:' "$root"/tests/server/java/lib/*.jar)"
java_official() { # ENDPOINT PREFIX JSON
  java -Duser.home="$out" -cp "$java_cp" tests/server/java/Official.java "$1" "$2" "$out/sent-$2.jsonl" \
    --json "$3" 2>&1 | grep -v '^SLF4J:'
  return "${PIPESTATUS[0]}"
}
java_create() { # PREFIX
  local p=$1
  $create "topic:$p-normal:NORMAL" "topic:$p-fifo:FIFO" "topic:$p-delay:DELAY" "topic:$p-tx:TRANSACTION" \
    "topic:$p-push:NORMAL" "topic:$p-pfifo:FIFO" "group:$p-normal-g" "group:$p-fifo-g:fifo" \
    "group:$p-delay-g" "group:$p-tx-g" "group:$p-push-g" "group:$p-pfifo-g:fifo" \
    "topic:$p-sql:NORMAL" "group:$p-sql-g" >/dev/null
}
step "official Java client: Apache RocketMQ"
run "creating the Java client's topics and groups on Apache RocketMQ" java_create "$prefix-ra-java"
run "official Java client, Apache RocketMQ" \
  java_official "$apache" "$prefix-ra-java" "$out/java-rocketmq.json"
step "official Java client: pocketmq serve"
run "official Java client, pocketmq serve" java_official "$serve" "$prefix-java" "$out/java-serve.json"

step "every scenario on every target"
"$VPY" tests/interop/summary.py \
  "embedded=$out/api-embedded.json" "api/serve=$out/api-serve.json" "api/apache=$out/api-rocketmq.json" \
  "py/serve=$out/py-serve.json" "py/apache=$out/py-rocketmq.json" \
  "js/serve=$out/js-serve.json" "js/apache=$out/js-rocketmq.json" \
  "go/serve=$out/go-serve.json" "go/apache=$out/go-rocketmq.json" \
  "rust/serve=$out/rs-serve.json" "rust/apache=$out/rs-rocketmq.json" \
  "java/serve=$out/java-serve.json" "java/apache=$out/java-rocketmq.json" || rc=1
if [ ${#failures[@]} -gt 0 ]; then
  step "what failed, with the last lines of each failed step's output"
  for f in "${failures[@]}"; do
    echo "-- ${f%%|*}"
    grep -v '^[[:space:]]*$' "${f#*|}" | tail -n 6 | cut -c1-240
  done
fi
exit $rc
