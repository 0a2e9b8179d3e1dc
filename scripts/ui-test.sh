#!/usr/bin/env bash
# UI test: run the demo, open VictoriaLogs' log UI in headless Chromium and
# check that a known line written by the demo is visible, then open the host
# graph in VictoriaMetrics' UI and check that it draws the agent's host
# metrics. The screenshots are kept at .ci/artifacts/demo-ui.png and
# demo-hosts.png (and the rendered pages next to them).
set -euo pipefail
cd "$(dirname "$0")/.."
ART=.ci/artifacts
mkdir -p "$ART"
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
  echo "ui-test: Chromium is not installed (run scripts/deps.sh, or: apt-get install chromium)" >&2
  exit 1
fi
trap 'scripts/demo-stop.sh >/dev/null 2>&1 || true' EXIT
scripts/demo.sh

# The demo's first application event is an error with a stack trace.
KNOWN='ERROR request failed seq=0'
URL='http://127.0.0.1:9428/select/vmui/#/?query=%22request%20failed%20seq%3D0%22&g0.range_input=1d'
# shellcheck disable=SC2054 # the window size is one argument
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --hide-scrollbars --window-size=1400,900 --virtual-time-budget=15000)
# chrome URL ARG...: one headless Chromium run on a profile of its own.
chrome() {
  local url=$1 profile; shift
  profile=$(mktemp -d)
  "$CHROME" "${flags[@]}" --user-data-dir="$profile" "$@" "$url" 2>/dev/null || true
  rm -rf "$profile"
}
found=
for _ in 1 2 3 4 5; do
  chrome "$URL" --dump-dom >"$ART/demo-ui.html"
  # The line must be in a rendered log row, not just echoed in the query box.
  if grep -q "vm-group-logs-row-content__msg\">[^<]*$KNOWN" "$ART/demo-ui.html" &&
     grep -q 'IllegalStateException: cart is empty' "$ART/demo-ui.html"; then
    found=1
    break
  fi
  sleep 1
done
chrome "$URL" --screenshot="$ART/demo-ui.png" >/dev/null
if [ -z "$found" ]; then
  echo "ui-test: FAIL: \"$KNOWN\" is not shown by the log UI (page saved in $ART/demo-ui.html)" >&2
  exit 1
fi
echo "ui-test: OK: the log UI shows \"$KNOWN\" (screenshot: $ART/demo-ui.png)"

# The host graph: VictoriaMetrics' UI draws the agent's host metrics (CPU,
# memory, network). Its legend lists a row per series drawn, each with its
# min/median/max/last: the memory series must be drawn with a value.
GRAPH=$(scripts/demo-graph-url.sh)
drawn=
for _ in $(seq 1 10); do
  chrome "$GRAPH" --dump-dom >"$ART/demo-hosts.html"
  rows=$(grep -o 'class="vm-legend-item vm-legend-row"' "$ART/demo-hosts.html" | wc -l)
  # "last" of the memory series: a number above zero.
  mem=$(tr '<' '\n' <"$ART/demo-hosts.html" | grep -A40 'vm-legend-item-info__label">mem_used_percent' |
        grep -A2 'row__key">last' | sed -n 's/.*row__value">\([0-9.]*\).*/\1/p' | head -1)
  if [ "$rows" -ge 2 ] && [ -n "$mem" ] && awk -v m="$mem" 'BEGIN { exit !(m > 0) }'; then
    drawn=1
    break
  fi
  sleep 2
done
chrome "$GRAPH" --screenshot="$ART/demo-hosts.png" >/dev/null
if [ -z "$drawn" ]; then
  echo "ui-test: FAIL: the host graph draws no host metrics ($rows series; memory last \"$mem\"; page saved in $ART/demo-hosts.html)" >&2
  exit 1
fi
echo "ui-test: OK: the host graph draws $rows series, memory used ${mem} % (screenshot: $ART/demo-hosts.png)"
