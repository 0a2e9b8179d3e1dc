#!/usr/bin/env bash
# Stops what `make demo` started, by the PIDs it recorded, newest first.
set -uo pipefail
cd "$(dirname "$0")/.."
PIDS=.demo/pids
# The real servers of `make demo-real` (started detached, by devstack real).
if [ -d .demo/real ] && [ -x bin/devstack ]; then
  bin/devstack real stop -dir .demo/real >/dev/null 2>&1 && echo "stopped the real servers (.demo/real)"
fi
[ -f "$PIDS" ] || { echo "nothing to stop"; exit 0; }
tac "$PIDS" | while read -r name pid; do
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name ($pid)"
  fi
done
rm -f "$PIDS"
