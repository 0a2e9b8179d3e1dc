#!/usr/bin/env bash
# Prints the URL of the demo's host graph in VictoriaMetrics' UI, from the
# agent's host metrics (Telegraf's names, measurement_field):
#   CPU busy %         100 - cpu_usage_idle{cpu="cpu-total"}
#   memory used %      mem_used_percent
#   network in, KiB/s  rate(net_bytes_recv{interface!="lo"}[1m]) / 1024
echo 'http://127.0.0.1:8428/vmui/#/?g0.expr=100%20-%20cpu_usage_idle%7Bcpu%3D%22cpu-total%22%7D&g0.range_input=2m&g0.tab=0&g1.expr=mem_used_percent&g1.range_input=2m&g1.tab=0&g2.expr=rate%28net_bytes_recv%7Binterface%21%3D%22lo%22%7D%5B1m%5D%29%20%2F%201024&g2.range_input=2m&g2.tab=0'
