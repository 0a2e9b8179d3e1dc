#!/usr/bin/env bash
# make package: .deb and .rpm packages of logagent, logtransfer and logctl,
# built with nfpm (github.com/goreleaser/nfpm/v2, run with `go run` at a
# pinned version: nothing is added to go.mod) into dist/.
#
# The daemons' packages hold the static binary in /usr/bin, its systemd unit
# (deploy/systemd, pointed at /usr/bin), its ini in /etc/logpipe as a config
# file that upgrades keep (data_dir set to /var/lib/<daemon>), and the logpipe
# system user (sysusers.d fragment, created on install). Removing a package
# keeps the ini (and the data under /var/lib: the agent's offsets); purging a
# .deb removes the ini too.
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM_VERSION=v2.48.0
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
# A release tag (v1.2.3) is the package version; anything else sorts
# before every release: 0.0.0~git<describe>.
if [[ $VERSION =~ ^v?([0-9]+\.[0-9]+(\.[0-9]+)?)$ ]]; then
  PKG_VERSION=${BASH_REMATCH[1]}
else
  PKG_VERSION="0.0.0~git${VERSION//-/.}"
fi
ARCH=$(go env GOARCH)
STAGE=dist/stage
rm -rf "$STAGE"
mkdir -p "$STAGE" dist
rm -f dist/*.deb dist/*.rpm

echo "package: building logagent, logtransfer and logctl $VERSION (static) ..."
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$STAGE/" ./cmd/logagent ./cmd/logtransfer ./cmd/logctl

for d in logagent logtransfer; do
  sed "s#/usr/local/bin/$d#/usr/bin/$d#" "deploy/systemd/$d.service" >"$STAGE/$d.service"
  sed "s#^data_dir = .*#data_dir = /var/lib/$d#" "conf/$d.ini" >"$STAGE/$d.ini"
  grep -q "^data_dir = /var/lib/$d$" "$STAGE/$d.ini"
done

cat >"$STAGE/postinstall.sh" <<'SH'
#!/bin/sh
# Creates the logpipe system user (systemd-sysusers where it exists) and
# tells systemd about the unit; it does not start or enable the service.
set -e
if ! getent passwd logpipe >/dev/null; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers /usr/lib/sysusers.d/logpipe.conf
  else
    useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin logpipe 2>/dev/null ||
      adduser -S -D -H -s /sbin/nologin logpipe
  fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
SH
cat >"$STAGE/preremove.sh" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl stop "$UNIT" >/dev/null 2>&1 || true; fi
SH
cat >"$STAGE/postremove.sh" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
SH

yaml_head() { # name description: what every package's nfpm config starts with
  cat <<YAML
name: $1
arch: $ARCH
platform: linux
version: $PKG_VERSION
section: admin
priority: optional
maintainer: logpipe <logpipe@localhost>
description: "$2"
homepage: https://github.com/logpipe/logpipe
license: Apache-2.0
contents:
  - src: $STAGE/$1
    dst: /usr/bin/$1
    file_info: {mode: 0755}
YAML
}
daemon_yaml() { # name description
  yaml_head "$1" "$2"
  cat <<YAML
  - src: $STAGE/$1.service
    dst: /usr/lib/systemd/system/$1.service
    file_info: {mode: 0644}
  - src: deploy/systemd/logpipe.sysusers.conf
    dst: /usr/lib/sysusers.d/logpipe.conf
    file_info: {mode: 0644}
  - src: $STAGE/$1.ini
    dst: /etc/logpipe/$1.ini
    type: config|noreplace
    file_info: {mode: 0640}
scripts:
  postinstall: $STAGE/postinstall.sh
  preremove: $STAGE/$1.preremove.sh
  postremove: $STAGE/postremove.sh
YAML
}
for d in logagent logtransfer; do
  sed "s/\$UNIT/$d/" "$STAGE/preremove.sh" >"$STAGE/$d.preremove.sh"
done
daemon_yaml logagent "logpipe's agent: follows the log files etcd lists for this host and ships every line to Kafka" >"$STAGE/logagent.yaml"
daemon_yaml logtransfer "logpipe's transfer: consumes the agents' Kafka topics and indexes every line into Elasticsearch or OpenSearch" >"$STAGE/logtransfer.yaml"
yaml_head logctl "logpipe's operator command line (collect configs, pipelines, keys, agents, transfers, indices)" >"$STAGE/logctl.yaml"

nfpm() { go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" "$@"; }
for p in logagent logtransfer logctl; do
  for f in deb rpm; do
    nfpm package --config "$STAGE/$p.yaml" --packager "$f" --target dist/ >/dev/null
  done
done
for f in dist/*.deb dist/*.rpm; do echo "package: $f"; done
