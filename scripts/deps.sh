#!/usr/bin/env bash
# Installs what `make test` or `make demo` needs on a fresh Debian machine
# with Go, Java 17 and Maven, and does nothing (in seconds) when it is all
# there already. Both make targets call it; run it by hand to prepare ahead.
#
#   scripts/deps.sh test   everything the tests use: Chromium (UI test), kcat
#                          and etcdctl, docker-compose, shellcheck, InfluxDB
#                          and Prometheus (with promtool), systemd-analyze, curl,
#                          VictoriaLogs and VictoriaMetrics, and the real
#                          servers (Apache Kafka and Elasticsearch jars,
#                          resolved by Maven into .cache/realstack)
#   scripts/deps.sh demo   what `make demo` uses: curl, VictoriaLogs,
#                          VictoriaMetrics (nothing of Java)
#   scripts/deps.sh demo-real  what `make demo-real` uses: curl, Java and
#                          Maven, the real servers' jars
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
VL_VERSION=v1.108.1
VM_VERSION=v1.151.0
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
need() { command -v "$1" >/dev/null || missing+=("$2"); }
need curl curl
if [ "$what" = test ]; then
  need chromium chromium
  need kcat kcat
  need etcdctl etcd-client
  need docker-compose docker-compose
  need shellcheck shellcheck
  need systemd-analyze systemd
fi
# The real servers run on a JDK (17 is enough) and are assembled by Maven.
if [ "$what" != demo ]; then
  need java openjdk-17-jdk-headless
  need mvn maven
fi
# The monitoring servers the host metrics tests push to and scrape with
# (InfluxDB 1.x, Prometheus with promtool), from Debian. On a host that runs
# systemd their packages start services: those are stopped and disabled
# again, the tests start their own.
servers=()
if [ "$what" = test ]; then
  command -v influxd >/dev/null || servers+=(influxdb)
  command -v prometheus >/dev/null || servers+=(prometheus)
fi
if [ ${#missing[@]} -gt 0 ] || [ ${#servers[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]} (apt)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#servers[@]} -gt 0 ]; then
  echo "deps: installing ${servers[*]} (apt, without their recommended exporters)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${servers[@]}" >/dev/null
  if [ -d /run/systemd/system ]; then
    for s in "${servers[@]}"; do $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true; done
  fi
fi
if [ "$what" != demo-real ] && ! command -v victoria-logs >/dev/null && [ ! -x "$(go env GOPATH)/bin/victoria-logs" ]; then
  echo "deps: installing VictoriaLogs $VL_VERSION (go install, once)"
  go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs@$VL_VERSION"
fi
if [ "$what" != demo-real ] && ! command -v victoria-metrics >/dev/null && [ ! -x "$(go env GOPATH)/bin/victoria-metrics" ]; then
  echo "deps: installing VictoriaMetrics $VM_VERSION (go install, once; a few minutes)"
  go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@$VM_VERSION"
fi
# Maven resolves the pinned jars once; afterwards this is offline and quick.
if [ "$what" != demo ]; then
  [ -f .cache/realstack/es/stamp ] || echo "deps: resolving Apache Kafka and Elasticsearch jars with Maven (about 75 MB, once) ..."
  go run ./cmd/devstack real provision >/dev/null
fi
if [ "$what" = test ]; then
  [ -f .cache/realstack/opensearch/stamp ] || echo "deps: resolving OpenSearch jars with Maven (about 46 MB, once) ..."
  # The tests run OpenSearch beside Elasticsearch (46 MB of jars, once).
  go run ./cmd/devstack real provision opensearch >/dev/null
fi
echo "deps ($what): ready"
