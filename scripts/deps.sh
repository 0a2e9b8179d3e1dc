#!/usr/bin/env bash
# Installs what `make test` or `make demo` needs on a fresh Debian machine
# with Go, Java 17 and Maven, and does nothing (in seconds) when it is all
# there already. Both make targets call it; run it by hand to prepare ahead.
#
#   scripts/deps.sh test   everything the tests use: Chromium (UI test), kcat
#                          and etcdctl, docker-compose, shellcheck, promtool
#                          (CI only, see below), systemd-analyze, curl,
#                          VictoriaLogs, and the real servers (Apache Kafka
#                          and Elasticsearch jars, resolved by Maven into
#                          .cache/realstack)
#   scripts/deps.sh demo   what the demo uses: curl, VictoriaLogs, the real
#                          servers' jars (for `make demo-real`)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
VL_VERSION=v1.108.1
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
  # promtool comes with Debian's prometheus package, which on a normal host
  # also starts a Prometheus server: install it only in CI (the deploy test
  # skips its promtool checks without it).
  if [ -n "${CI:-}" ]; then need promtool prometheus; fi
  need systemd-analyze systemd
fi
# The real servers run on a JDK (17 is enough) and are assembled by Maven.
need java openjdk-17-jdk-headless
need mvn maven
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v victoria-logs >/dev/null && [ ! -x "$(go env GOPATH)/bin/victoria-logs" ]; then
  echo "deps: installing VictoriaLogs $VL_VERSION (go install, once)"
  go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs@$VL_VERSION"
fi
# Maven resolves the pinned jars once; afterwards this is offline and quick.
go run ./cmd/devstack real provision >/dev/null
echo "deps ($what): ready"
