#!/usr/bin/env bash
# A local Apache RocketMQ 5 (name server + proxy in local mode, broker inside the proxy),
# run from Maven Central jars, as the reference peer for pocketmq's interop scenarios.
#
#   rocketmq.sh fetch                 download the jars (once per version) into lib/<version>/
#   rocketmq.sh start                 start the name server and the proxy; prints the gRPC endpoint
#   rocketmq.sh stop                  stop what start started (pid files) and wait for exit
#   rocketmq.sh status                exit 0 when both run, 3 otherwise
#   rocketmq.sh endpoint              print the gRPC endpoint (host:port)
#   rocketmq.sh create SPEC...        create topics and groups in one JVM; SPEC is
#                                       topic:NAME[:TYPE]   TYPE = NORMAL (default) | FIFO |
#                                                           DELAY | TRANSACTION | MIXED
#                                       group:NAME[:fifo][:retries=N][:backoff=MS,MS,...]
#   rocketmq.sh admin-server          the same SPECs, one per stdin line, each answered at once
#   rocketmq.sh create-topic NAME [TYPE]
#   rocketmq.sh create-group NAME [fifo] [retries=N] [backoff=MS,MS,...]
#   rocketmq.sh mqadmin ARGS...       any mqadmin command (-n is added when absent)
#
# Every start is idempotent: a running process is left alone. Settings (environment):
#   ROCKETMQ_VERSION        5.5.0   Maven version of rocketmq-namesrv/-proxy/-tools
#   ROCKETMQ_NAMESRV_PORT   9876    name server
#   ROCKETMQ_GRPC_PORT      18081   proxy gRPC, the endpoint for the 5.x clients (pocketmq
#                                   serve defaults to 8081, so Apache keeps out of its way)
#   ROCKETMQ_REMOTING_PORT  18080   proxy remoting (4.x protocol)
#   ROCKETMQ_BROKER_PORT    10911   broker remoting inside the proxy JVM; its HA port is +1
#   ROCKETMQ_RUN_DIR        <this dir>/run   ROCKETMQ_HOME, store, logs, pid files
#   ROCKETMQ_NAMESRV_HEAP   256m    ROCKETMQ_PROXY_HEAP 1g
#   ROCKETMQ_START_TIMEOUT  180     seconds to wait for the proxy to serve
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=${ROCKETMQ_VERSION:-5.5.0}
LIB=$HERE/lib/$VERSION
RUN_DIR=${ROCKETMQ_RUN_DIR:-$HERE/run}
HOME_DIR=$RUN_DIR/home
LOG_DIR=$RUN_DIR/logs
HOST=127.0.0.1
NAMESRV_PORT=${ROCKETMQ_NAMESRV_PORT:-9876}
GRPC_PORT=${ROCKETMQ_GRPC_PORT:-18081}
REMOTING_PORT=${ROCKETMQ_REMOTING_PORT:-18080}
BROKER_PORT=${ROCKETMQ_BROKER_PORT:-10911}
NAMESRV_HEAP=${ROCKETMQ_NAMESRV_HEAP:-256m}
PROXY_HEAP=${ROCKETMQ_PROXY_HEAP:-1g}
START_TIMEOUT=${ROCKETMQ_START_TIMEOUT:-180}
NAMESRV_ADDR=$HOST:$NAMESRV_PORT
CLUSTER=DefaultCluster

NAMESRV_MAIN=org.apache.rocketmq.namesrv.NamesrvStartup
PROXY_MAIN=org.apache.rocketmq.proxy.ProxyStartup

log() { printf 'rocketmq.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---- jars -------------------------------------------------------------------------

fetch() {
  if [ -f "$LIB/.complete" ]; then return; fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  log "fetching Apache RocketMQ $VERSION jars into lib/$VERSION"
  rm -rf "$LIB"
  mkdir -p "$HERE/lib"
  if ! mvn -B -f "$HERE/pom.xml" dependency:copy-dependencies -Drocketmq.version="$VERSION" \
      -Dmdep.includeScope=runtime -DoutputDirectory="$LIB" > "$HERE/lib/mvn-$VERSION.log" 2>&1; then
    tail -n 30 "$HERE/lib/mvn-$VERSION.log" >&2
    die "mvn could not fetch org.apache.rocketmq $VERSION (log: lib/mvn-$VERSION.log)"
  fi
  ls "$LIB"/rocketmq-proxy-*.jar >/dev/null || die "no rocketmq-proxy jar in $LIB"
  touch "$LIB/.complete"
}

# ---- configuration ----------------------------------------------------------------

# conf/*.conf|json hold @NAME@ placeholders; the rendered copies live in ROCKETMQ_HOME/conf.
render_conf() {
  mkdir -p "$HOME_DIR/conf" "$LOG_DIR" "$RUN_DIR/store" "$RUN_DIR/namesrv"
  local f
  for f in namesrv.conf broker.conf rmq-proxy.json rmq.logback.xml; do
    sed -e "s|@NAMESRV_PORT@|$NAMESRV_PORT|g" \
        -e "s|@GRPC_PORT@|$GRPC_PORT|g" \
        -e "s|@REMOTING_PORT@|$REMOTING_PORT|g" \
        -e "s|@BROKER_PORT@|$BROKER_PORT|g" \
        -e "s|@RUN_DIR@|$RUN_DIR|g" \
        -e "s|@ROCKETMQ_HOME@|$HOME_DIR|g" \
        "$HERE/conf/$f" > "$HOME_DIR/conf/$f"
  done
}

# Flags shared by the JVMs: small thread counts for a shared 2-core machine, and
# user.home pointed into the runtime dir (RocketMQ keeps files under ~/ by default).
jvm_flags() { # name heap
  printf '%s\n' -server "-Xms$2" "-Xmx$2" -XX:+UseG1GC -XX:ParallelGCThreads=2 \
    -XX:ConcGCThreads=1 -XX:CICompilerCount=2 -XX:-OmitStackTraceInFastThrow \
    "-Duser.home=$RUN_DIR" "-Drocketmq.home.dir=$HOME_DIR" \
    "-Drmq.logback.configurationFile=$HOME_DIR/conf/rmq.logback.xml" \
    "-Dpocketmq.rmq.log=$LOG_DIR/$1.log"
}

# ---- processes --------------------------------------------------------------------

pid_file() { echo "$RUN_DIR/$1.pid"; }

# Prints the pid when the pid file names a live JVM running the expected main class.
running_pid() { # name main-class
  local f pid
  f=$(pid_file "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

launch() { # name main-class heap args...
  local name=$1 main=$2 heap=$3
  shift 3
  local -a flags
  mapfile -t flags < <(jvm_flags "$name" "$heap")
  # setsid: the JVM outlives the shell (or make) that started it; stop uses the pid file.
  ROCKETMQ_HOME=$HOME_DIR NAMESRV_ADDR=$NAMESRV_ADDR \
    setsid java "${flags[@]}" "${EXTRA_JVM_FLAGS[@]}" -cp "$LIB/*" "$main" "$@" \
    > "$LOG_DIR/$name.out" 2>&1 < /dev/null &
  echo $! > "$(pid_file "$name")"
}

wait_for() { # seconds description command...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}

broker_registered() {
  ADMIN_VERBOSE=true admin_batch <<< "clusterList -n $NAMESRV_ADDR -c $CLUSTER" 2>/dev/null | grep -q 'broker-a'
}

# Runs mqadmin command lines (stdin, one a line) in one JVM; see AdminBatch.java, compiled
# once per version into the runtime dir.
admin_batch() {
  local classes=$RUN_DIR/classes/$VERSION
  if [ ! -f "$classes/AdminBatch.class" ] || [ "$HERE/AdminBatch.java" -nt "$classes/AdminBatch.class" ]; then
    mkdir -p "$classes"
    javac -nowarn -cp "$LIB/*" -d "$classes" "$HERE/AdminBatch.java" >&2 || die "cannot compile AdminBatch.java"
  fi
  local -a flags
  mapfile -t flags < <(jvm_flags tools 256m)
  ROCKETMQ_HOME=$HOME_DIR java "${flags[@]}" -XX:TieredStopAtLevel=1 \
    -Dadminbatch.verbose="${ADMIN_VERBOSE:-false}" -Dadminbatch.stream="${ADMIN_STREAM:-false}" -cp "$classes:$LIB/*" AdminBatch
}

start() {
  fetch
  command -v java >/dev/null || die "java not found (Java 17 needed)"
  render_conf
  local t0=$SECONDS started=0
  EXTRA_JVM_FLAGS=()

  if running_pid namesrv "$NAMESRV_MAIN" >/dev/null; then
    log "name server already running (pid $(cat "$(pid_file namesrv)"))"
  else
    port_open "$NAMESRV_PORT" && die "port $NAMESRV_PORT is taken by another process (set ROCKETMQ_NAMESRV_PORT)"
    launch namesrv "$NAMESRV_MAIN" "$NAMESRV_HEAP" -c "$HOME_DIR/conf/namesrv.conf"
    started=1
    wait_for 60 "name server" port_open "$NAMESRV_PORT" \
      || die "name server did not listen on $NAMESRV_PORT; see $LOG_DIR/namesrv.out"
    log "name server up on $NAMESRV_ADDR after $((SECONDS - t0)) s"
  fi

  if running_pid proxy "$PROXY_MAIN" >/dev/null; then
    log "proxy already running (pid $(cat "$(pid_file proxy)"))"
  else
    local p
    for p in "$GRPC_PORT" "$REMOTING_PORT" "$BROKER_PORT"; do
      port_open "$p" && die "port $p is taken by another process (see the ROCKETMQ_*_PORT settings)"
    done
    launch proxy "$PROXY_MAIN" "$PROXY_HEAP" -pm local -pc "$HOME_DIR/conf/rmq-proxy.json" \
      -bc "$HOME_DIR/conf/broker.conf" -n "$NAMESRV_ADDR"
    started=1
    proxy_serving() {
      # Alive, not yet `java ... ProxyStartup`: the background shell may not have exec'd
      # setsid and the JVM yet when the first check runs.
      kill -0 "$(cat "$(pid_file proxy)")" 2>/dev/null || die "proxy exited; see $LOG_DIR/proxy.out"
      port_open "$GRPC_PORT" && grep -q 'rocketmq-proxy startup successfully' "$LOG_DIR/proxy.out"
    }
    wait_for "$START_TIMEOUT" "proxy" proxy_serving \
      || die "proxy not serving gRPC on $GRPC_PORT after $START_TIMEOUT s; see $LOG_DIR/proxy.out"
    log "proxy serving gRPC on $HOST:$GRPC_PORT after $((SECONDS - t0)) s"
  fi

  if [ $started = 1 ]; then
    wait_for 60 "broker registration" broker_registered \
      || die "broker-a not registered with the name server; see $LOG_DIR/proxy.log"
    log "broker-a registered with $NAMESRV_ADDR after $((SECONDS - t0)) s"
  fi
  echo "$HOST:$GRPC_PORT"
}

stop_one() { # name main-class
  local pid
  if pid=$(running_pid "$1" "$2"); then
    kill -TERM "$pid"
    if ! wait_for 60 "$1 exit" eval "! kill -0 $pid 2>/dev/null"; then
      log "$1 (pid $pid) still running after 60 s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 10 "$1 exit" eval "! kill -0 $pid 2>/dev/null" || die "$1 (pid $pid) did not exit"
    fi
    log "$1 (pid $pid) stopped"
  else
    log "$1 not running"
  fi
  rm -f "$(pid_file "$1")"
}

stop() {
  stop_one proxy "$PROXY_MAIN"
  stop_one namesrv "$NAMESRV_MAIN"
}

status() {
  local rc=0 pid name main
  for name in namesrv proxy; do
    main=$NAMESRV_MAIN
    [ $name = proxy ] && main=$PROXY_MAIN
    if pid=$(running_pid $name "$main"); then
      echo "$name running, pid $pid, RSS $(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status")"
    else
      echo "$name stopped"
      rc=3
    fi
  done
  [ $rc = 0 ] && echo "endpoint $HOST:$GRPC_PORT (namesrv $NAMESRV_ADDR)"
  return $rc
}

# ---- topics and groups ------------------------------------------------------------

topic_cmd() { # name [type]
  local type=${2:-NORMAL}
  case $type in NORMAL|FIFO|DELAY|TRANSACTION|MIXED) ;; *) die "unknown message type '$type'";; esac
  # FIFO topics stay unordered at the topic level (-o false): 5.x FIFO is per message
  # group, and the group's consumeMessageOrderly flag is what makes delivery ordered.
  echo "updateTopic -n $NAMESRV_ADDR -c $CLUSTER -t $1 -r 8 -w 8 -a +message.type=$type"
}

group_cmd() { # name [fifo] [retries=N] [backoff=MS,...]
  local name=$1 orderly=false retries=16 policy=""
  shift
  local opt
  for opt in "$@"; do
    case $opt in
      fifo) orderly=true ;;
      retries=*) retries=${opt#retries=} ;;
      backoff=*) policy="{\"type\":\"CUSTOMIZED\",\"customizedRetryPolicy\":{\"next\":[${opt#backoff=}]}}" ;;
      *) die "unknown group option '$opt'" ;;
    esac
  done
  echo "updateSubGroup -n $NAMESRV_ADDR -c $CLUSTER -g $name -o $orderly -r $retries${policy:+ -p $policy}"
}

# The mqadmin command line of one SPEC (topic:... or group:...); fails on anything else.
spec_cmd() {
  local spec=$1
  local -a parts
  IFS=: read -r -a parts <<< "${spec#*:}"
  case ${spec%%:*} in
    topic) topic_cmd "${parts[@]}" ;;
    group) group_cmd "${parts[@]}" ;;
    *) log "unknown spec '$spec'"; return 1 ;;
  esac
}

create() {
  [ $# -gt 0 ] || die "usage: rocketmq.sh create topic:NAME[:TYPE] | group:NAME[:fifo][:retries=N][:backoff=MS,...] ..."
  fetch
  local spec
  for spec in "$@"; do spec_cmd "$spec" >/dev/null || exit 1; done
  for spec in "$@"; do spec_cmd "$spec"; done | admin_batch
}

# Like create, but reads one SPEC per stdin line and answers each at once ("ok  ..." or
# "FAIL ..." on stdout) from one long-lived JVM: a test session creates what it uses.
admin_server() {
  fetch
  local spec
  while IFS= read -r spec; do
    spec_cmd "$spec" || echo "# unknown spec"
  done | ADMIN_STREAM=true admin_batch
}

mqadmin() {
  fetch
  local -a args=("$@")
  if [ $# -gt 0 ] && [ "$1" != help ] && ! printf '%s\n' "$@" | grep -qx -- '-n'; then
    args+=(-n "$NAMESRV_ADDR")
  fi
  local -a flags
  mapfile -t flags < <(jvm_flags tools 256m)
  ROCKETMQ_HOME=$HOME_DIR java "${flags[@]}" -cp "$LIB/*" \
    org.apache.rocketmq.tools.command.MQAdminStartup "${args[@]}"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  endpoint) echo "$HOST:$GRPC_PORT" ;;
  create) create "$@" ;;
  admin-server) admin_server ;;
  create-topic) [ $# -ge 1 ] || die "usage: create-topic NAME [TYPE]"; create "topic:$(IFS=:; echo "$*")" ;;
  create-group) [ $# -ge 1 ] || die "usage: create-group NAME [fifo] [retries=N] [backoff=MS,...]"; create "group:$(IFS=:; echo "$*")" ;;
  mqadmin) mqadmin "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; [ -z "$cmd" ] || [ "$cmd" = help ] || exit 2 ;;
esac
