#!/usr/bin/env bash
# make demo: run the whole pipeline locally.
#   devstack (etcd + Kafka-protocol broker) -> logagent -> Kafka -> logtransfer
#   -> VictoriaLogs (its Elasticsearch bulk endpoint; web UI for browsing logs)
# and the agent's host metrics (InfluxDB line protocol) -> VictoriaMetrics
# (web UI with graphs). It writes sample logs, puts the collect and host
# metrics configs with logctl, and shows lines written vs lines searchable
# until they match. Everything it starts is
# recorded by PID in .demo/pids; `make demo-stop` (or Ctrl-C while this runs)
# stops it. Running it again starts from a clean slate.
#
# REAL=1 (make demo-real) runs the same pipeline on the real servers instead:
#   etcd -> logagent -> Apache Kafka -> logtransfer -> Elasticsearch 7.17
# (both assembled from Maven Central jars by scripts/deps.sh and started by
# `devstack real`), and prints how many lines are searchable through _count
# and one document read back through _search. ENGINE=opensearch (make
# demo-real ENGINE=opensearch) puts OpenSearch 2.19.6 where Elasticsearch was.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=.demo
VL_VERSION=v1.108.1
VM_VERSION=v1.151.0
mkdir -p "$DEMO"

trap 'echo; echo "interrupted: stopping"; scripts/demo-stop.sh; exit 130' INT TERM

scripts/demo-stop.sh >/dev/null 2>&1 || true
rm -rf "$DEMO/logs" "$DEMO/devstack" "$DEMO/victoria-logs" "$DEMO/victoria-metrics" "$DEMO/real" data/logagent
mkdir -p "$DEMO/logs"

VL=$(command -v victoria-logs || true)
[ -n "$VL" ] || VL="$(go env GOPATH)/bin/victoria-logs"
if [ ! -x "$VL" ]; then
  echo "installing VictoriaLogs $VL_VERSION (go install, once) ..."
  go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs@$VL_VERSION"
fi
VM=$(command -v victoria-metrics || true)
[ -n "$VM" ] || VM="$(go env GOPATH)/bin/victoria-metrics"
if [ ! -x "$VM" ]; then
  echo "installing VictoriaMetrics $VM_VERSION (go install, once; a few minutes) ..."
  go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@$VM_VERSION"
fi

ports="2379 2380 9092 9428 8428 9731 9732"
[ -n "${REAL:-}" ] && ports="2379 2380 9092 10092 9200 9300 9731 9732"
for port in $ports; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use; stop what uses it (or run make demo-stop) and retry" >&2
    exit 1
  fi
done

start() { # name, command...
  local name=$1; shift
  echo "starting $name (log: $DEMO/$name.log) ..."
  "$@" >"$DEMO/$name.log" 2>&1 &
  echo "$name $!" >>"$DEMO/pids"
}

wait_port() { # port, what
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then echo "  $2 is up on 127.0.0.1:$1"; return 0; fi
    sleep 0.1
  done
  echo "$2 did not start; see $DEMO/*.log" >&2
  scripts/demo-stop.sh
  exit 1
}

ENGINE=${ENGINE:-elasticsearch}
case "$ENGINE" in
  elasticsearch) SEARCH=es; STORE_NAME=Elasticsearch ;;
  opensearch) SEARCH=opensearch; STORE_NAME=OpenSearch ;;
  *) echo "ENGINE must be elasticsearch or opensearch, not $ENGINE" >&2; exit 2 ;;
esac
if [ -n "${REAL:-}" ]; then
  start devstack bin/devstack -data "$DEMO/devstack" -kafka-port 0
  echo "starting Apache Kafka and $STORE_NAME (devstack real; logs in $DEMO/real; the first run resolves their jars) ..."
  if ! bin/devstack real start -dir "$DEMO/real" kafka "$SEARCH"; then
    echo "the real servers did not start; see $DEMO/real/*/*.log" >&2
    scripts/demo-stop.sh
    exit 1
  fi
  wait_port 2379 etcd
  # One search node: indices without replicas, so the cluster is green.
  TRANSFER_INI="$DEMO/logtransfer.ini"
  sed 's/^replicas = 1$/replicas = 0/' conf/logtransfer.ini >"$TRANSFER_INI"
else
  start devstack bin/devstack -data "$DEMO/devstack"
  start victoria-logs "$VL" -storageDataPath "$DEMO/victoria-logs" -httpListenAddr 127.0.0.1:9428 -retentionPeriod 100y
  # -search.latencyOffset: VictoriaMetrics hides the last 30 s by default
  # (points that may still be arriving); the demo's points are its own.
  start victoria-metrics "$VM" -storageDataPath "$DEMO/victoria-metrics" -httpListenAddr 127.0.0.1:8428 -retentionPeriod 100y \
    -search.latencyOffset=1s -search.disableCache
  wait_port 2379 etcd
  wait_port 9092 "kafka broker"
  wait_port 9428 VictoriaLogs
  wait_port 8428 VictoriaMetrics
  TRANSFER_INI=conf/logtransfer-victorialogs.ini
fi
start logtransfer bin/logtransfer -config "$TRANSFER_INI"
start logagent bin/logagent -config conf/logagent-demo.ini -ip 127.0.0.1
wait_port 9732 logtransfer
wait_port 9731 logagent

LOGS=$(cd "$DEMO/logs" && pwd)
bin/logctl --endpoints 127.0.0.1:2379 config put 127.0.0.1 - <<JSON
[{"path":"$LOGS/access.log","topic":"web_log","fields":{"service":"nginx"}},
 {"path":"$LOGS/app.log","topic":"app_log","multiline":"^\\\\d{4}-\\\\d{2}-\\\\d{2}T","fields":{"service":"shop"}}]
JSON
if [ -z "${REAL:-}" ]; then
  # The host's figures every 2 s: on the agent's /metrics (node_exporter's
  # names) and into VictoriaMetrics as InfluxDB line protocol (Telegraf's).
  echo '{"interval":"2s","prometheus":true,"influx":{"url":"http://127.0.0.1:8428/write?db=telegraf"}}' |
    bin/logctl --endpoints 127.0.0.1:2379 metrics put 127.0.0.1 -
fi

echo "writing sample logs to $LOGS ..."
go run ./scripts/demowriter -dir "$DEMO/logs" -n 3000 -rate 600 >"$DEMO/written.txt"
written=$(awk '{s+=$2} END {print s}' "$DEMO/written.txt")

searchable() {
  if [ -n "${REAL:-}" ]; then
    curl -s -XPOST 'http://127.0.0.1:9200/web_log-*,app_log-*/_refresh' >/dev/null
    curl -s 'http://127.0.0.1:9200/web_log-*,app_log-*/_count' | sed -n 's/.*"count":\([0-9]*\).*/\1/p'
  else
    curl -s http://127.0.0.1:9428/select/logsql/query --data-urlencode 'query=* | stats count() n' |
      sed -n 's/.*"n":"\([0-9]*\)".*/\1/p'
  fi
}
STORE="VictoriaLogs"
[ -n "${REAL:-}" ] && STORE="$STORE_NAME"
n=0
for _ in $(seq 1 240); do
  n=$(searchable); n=${n:-0}
  printf '\rlines written: %d   searchable in %s: %d ' "$written" "$STORE" "$n"
  [ "$n" -ge "$written" ] && break
  sleep 0.5
done
echo
if [ "$n" -lt "$written" ]; then
  echo "not every line became searchable; see $DEMO/*.log" >&2
  exit 1
fi
if [ -n "${REAL:-}" ]; then
  echo
  # Green once every index has its shards (the demo's have no replicas);
  # anything else after 30 s is shown as it is, and said to be wrong.
  health=$(curl -s 'http://127.0.0.1:9200/_cluster/health?wait_for_status=green&timeout=30s' | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
  echo "cluster health: $health"
  [ "$health" = green ] || echo "  the cluster is not green: every index should have its shards on this one node (see GET _cluster/allocation/explain)" >&2
  echo "indices (the transfer's GET /indices: age, size, what retention makes of each):"
  curl -s 'http://127.0.0.1:9732/indices' | sed -n 's/.*"index": "\(.*\)",/  \1/p'
  echo
  echo "one document, read back with _search (fields.service:shop AND ERROR):"
  curl -s 'http://127.0.0.1:9200/app_log-*/_search?size=1&q=fields.service:shop%20AND%20message:ERROR&pretty' | sed -n '/"_source"/,/^      }/p'
  cat <<MSG

The pipeline is running on Apache Kafka and $STORE_NAME (PIDs in $DEMO/pids
and $DEMO/real/*/*.pid, logs in $DEMO/*.log and $DEMO/real/).
  search:            curl -s '127.0.0.1:9200/web_log-*/_search?q=message:GET&size=3&pretty'
  count:             curl -s '127.0.0.1:9200/web_log-*,app_log-*/_count'
  servers:           bin/devstack real status -dir $DEMO/real
  ports:             etcd 2379 (peers 2380), Kafka 9092 (controller 10092), $STORE_NAME 9200 (transport 9300),
                     logagent 9731, logtransfer 9732 (/status, /metrics, /indices)
  agent status:      curl -s 127.0.0.1:9731/status
  read a topic:      kcat -b 127.0.0.1:9092 -C -t web_log -e -f '%h %s\\n'
  stop everything:   make demo-stop
MSG
  exit 0
fi
cat <<MSG

The pipeline is running (PIDs in $DEMO/pids, logs in $DEMO/*.log).
  browse the logs:   http://127.0.0.1:9428/select/vmui/   (query e.g.: fields.service:shop AND ERROR)
  host metrics:      $(scripts/demo-graph-url.sh)
                     (CPU busy, memory used and network in, % and bytes/s; the agent also shows them
                     at 127.0.0.1:9731/metrics as node_* series)
  collect another file (one entry added, the others left as they are; checked against the agent's allowlist first):
    bin/logctl config add 127.0.0.1 '{"path":"$LOGS/other.log","topic":"other_log","fields":{"service":"other"}}'
  and stop collecting it:
    bin/logctl config remove 127.0.0.1 $LOGS/other.log
  what the agent runs, and whether it applied the last put:
    bin/logctl config get 127.0.0.1
  agent status:      curl -s 127.0.0.1:9731/status
  ports:             etcd 2379 (peers 2380), Kafka (kfake) 9092, VictoriaLogs 9428, VictoriaMetrics 8428,
                     logagent 9731, logtransfer 9732 (/status, /metrics)
  metrics:           curl -s 127.0.0.1:9731/metrics | grep ^logagent_ ; curl -s 127.0.0.1:9732/metrics | grep ^logtransfer_
  read a topic:      kcat -b 127.0.0.1:9092 -C -t web_log -e -f '%h %s\\n'
  stop everything:   make demo-stop
MSG
