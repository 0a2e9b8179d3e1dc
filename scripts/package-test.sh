#!/usr/bin/env bash
# make test-package: install the logagent .deb on this (Debian) machine, run
# `logagent test config` from the installed paths, remove the package and
# check that nothing of it is left but its config file (kept, as edited),
# then purge it and check the config is gone too. Needs root (or sudo) and
# dpkg; elsewhere it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if ! command -v dpkg >/dev/null || { [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; }; then
  echo "package test: skipped (needs dpkg and root or passwordless sudo)"
  [ "${CI:-}" = true ] && exit 1
  exit 0
fi
if dpkg -s logagent >/dev/null 2>&1; then
  echo "package test: logagent is already installed here; not touching it" >&2
  exit 1
fi
scripts/package.sh
deb=$(ls dist/logagent_*_"$(dpkg --print-architecture)".deb)
fail() { echo "package test: FAIL: $*" >&2; exit 1; }
echo "package test: dpkg -i $deb"
$SUDO dpkg -i "$deb"
files=$(dpkg -L logagent)
for f in $files; do echo "  $f"; done
for f in /usr/bin/logagent /usr/lib/systemd/system/logagent.service /usr/lib/sysusers.d/logpipe.conf /etc/logpipe/logagent.ini; do
  [ -e "$f" ] || fail "$f not installed"
done
getent passwd logpipe >/dev/null || fail "no logpipe user after install"
grep -q '^ExecStart=/usr/bin/logagent -config /etc/logpipe/logagent.ini$' /usr/lib/systemd/system/logagent.service || fail "the unit does not run /usr/bin/logagent"
echo "package test: /usr/bin/logagent test config -config /etc/logpipe/logagent.ini"
/usr/bin/logagent test config -config /etc/logpipe/logagent.ini >/tmp/logagent-test-config.out
head -5 /tmp/logagent-test-config.out
grep -q '^data_dir = /var/lib/logagent ' /tmp/logagent-test-config.out || fail "the packaged ini does not put data_dir in /var/lib/logagent"
# An operator's edit, which removal and upgrades keep.
echo "; edited by the package test" | $SUDO tee -a /etc/logpipe/logagent.ini >/dev/null
echo "package test: dpkg -r logagent"
$SUDO dpkg -r logagent
for f in $files; do
  [ -d "$f" ] && continue
  case "$f" in
  /etc/logpipe/logagent.ini) grep -q "edited by the package test" "$f" || fail "the config was not kept as edited" ;;
  *) [ ! -e "$f" ] || fail "$f left after removal" ;;
  esac
done
dpkg -s logagent | grep -q '^Status: deinstall ok config-files$' || fail "dpkg does not list logagent as config-files only"
echo "package test: removed; only /etc/logpipe/logagent.ini is left, as edited"
$SUDO dpkg -P logagent
[ ! -e /etc/logpipe/logagent.ini ] || fail "the config left after purge"
echo "package test: purged; nothing of logagent is left (the logpipe system user stays, as system users do)"
