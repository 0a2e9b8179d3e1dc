#!/usr/bin/env bash
# make demo: run the pipeline locally. Starts devstack (etcd + Kafka-protocol
# broker), logagent with conf/logagent.ini, writes sample logs, puts the
# collect config with logctl and shows lines written vs acknowledged by Kafka.
# Everything started is recorded by PID in .demo/pids; `make demo-stop` (or
# Ctrl-C while this runs) stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=.demo
mkdir -p "$DEMO"

stop_all() { scripts/demo-stop.sh; }
trap 'echo; echo "interrupted: stopping"; stop_all; exit 130' INT TERM

# A second run starts from a clean slate.
scripts/demo-stop.sh >/dev/null 2>&1 || true
rm -rf "$DEMO/logs" "$DEMO/devstack" data/logagent
mkdir -p "$DEMO/logs"

for port in 2379 2380 9092 9731; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use; stop what uses it (or run make demo-stop) and retry" >&2
    exit 1
  fi
done

start() { # name, command...
  local name=$1; shift
  "$@" >"$DEMO/$name.log" 2>&1 &
  echo "$name $!" >>"$DEMO/pids"
}

wait_port() { # port, what
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start; see $DEMO/*.log" >&2
  stop_all
  exit 1
}

start devstack bin/devstack -data "$DEMO/devstack"
wait_port 2379 etcd
wait_port 9092 "kafka broker"
start logagent bin/logagent -config conf/logagent.ini -ip 127.0.0.1
wait_port 9731 logagent

LOGS=$(cd "$DEMO/logs" && pwd)
CONFIG=$(cat <<JSON
[{"path":"$LOGS/access.log","topic":"web_log","fields":{"service":"nginx"}},
 {"path":"$LOGS/app.log","topic":"app_log","multiline":"^\\\\d{4}-\\\\d{2}-\\\\d{2}T","fields":{"service":"shop"}}]
JSON
)
echo "$CONFIG" | bin/logctl --endpoints 127.0.0.1:2379 config put 127.0.0.1 -

echo "writing sample logs to $LOGS ..."
go run ./scripts/demowriter -dir "$DEMO/logs" -n 3000 -rate 600 >"$DEMO/written.txt"
written=$(awk '{s+=$2} END {print s}' "$DEMO/written.txt")

acked() { curl -s 127.0.0.1:9731/metrics | awk '/^logagent_events_acked_total /{print int($2)}'; }
for _ in $(seq 1 120); do
  a=$(acked); a=${a:-0}
  printf '\revents written: %d   acknowledged by Kafka: %d ' "$written" "$a"
  [ "$a" -ge "$written" ] && break
  sleep 0.5
done
echo
cat <<MSG

The pipeline is running (PIDs in $DEMO/pids, logs in $DEMO/*.log).
  agent status:     curl -s 127.0.0.1:9731/status
  agent metrics:    curl -s 127.0.0.1:9731/metrics | grep ^logagent_
  collect another file (or use etcdctl put with the same key and JSON):
    echo '[{"path":"$LOGS/access.log","topic":"web_log"},{"path":"$LOGS/other.log","topic":"other_log"}]' | bin/logctl config put 127.0.0.1 -
  read a topic:     kcat -b 127.0.0.1:9092 -C -t web_log -e -f '%h %s\n'
  stop everything:  make demo-stop
MSG
