#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine with Go:
# Chromium (UI test), kcat and etcdctl (to look at Kafka and etcd by hand),
# and VictoriaLogs (the demo's log store, built with go install). The deploy/
# checks (go test ./deploy/) use docker-compose (compose file schema), a shell
# linter (shellcheck), promtool (CI only, see below), systemd-analyze and
# curl.
set -euo pipefail
VL_VERSION=v1.108.1
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v kcat >/dev/null || missing+=(kcat)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v shellcheck >/dev/null || missing+=(shellcheck)
# promtool comes with Debian's prometheus package, which on a normal host
# also starts a Prometheus server: install it only in CI (the deploy test
# skips its promtool checks without it).
if [ -n "${CI:-}" ]; then command -v promtool >/dev/null || missing+=(prometheus); fi
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v victoria-logs >/dev/null && [ ! -x "$(go env GOPATH)/bin/victoria-logs" ]; then
  go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs@$VL_VERSION"
fi
echo "deps: chromium, kcat, etcdctl, victoria-logs, docker-compose, shellcheck, promtool, systemd-analyze, curl ready"
