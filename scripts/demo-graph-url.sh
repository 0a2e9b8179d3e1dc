#!/usr/bin/env bash
# Prints the URL of the demo's host graph in VictoriaMetrics' UI: CPU busy
# and memory used (%) and network bytes received per second, from the
# agent's host metrics (Telegraf's names: measurement_field).
set -euo pipefail
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
q0='100 - cpu_usage_idle{cpu="cpu-total"}'
q1='mem_used_percent'
q2='rate(net_bytes_recv{interface!="lo"}[1m])'
echo "http://127.0.0.1:8428/vmui/#/?g0.expr=$(enc "$q0")&g0.range_input=5m&g0.tab=0&g1.expr=$(enc "$q1")&g1.range_input=5m&g1.tab=0&g2.expr=$(enc "$q2")&g2.range_input=5m&g2.tab=0"
