#!/usr/bin/env bash
# Cache reads through the agent's local socket against GET on redis-server
# itself, in one run, with redis-benchmark; and the agent's memory with
# 10,000 cached items (warmed from 10,000 inventory keys of ~200 bytes).
# Usage: tests/bench/local_reads.sh [requests]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
n=${1:-200000}
bin=$(bench_agent_bin)
bench_workspace 17300
bench_start_redis "$port" "$work"
val=$(printf '{"productId":"P-%%d","quantity":%%d,"lowStockThreshold":5,"note":"%0150d"}' 0)
for i in $(seq 0 9999); do
  printf "SET inventory:S-BENCH:P-%d '%s'\n" "$i" "$(printf "$val" "$i" "$i")"
done | redis-cli -p "$port" >/dev/null
redis-cli -p "$port" set product:P-1 "$(printf "$val" 1 1)" >/dev/null
# No per-client budget ([local] client_rate): this measures the socket,
# and redis-benchmark is the runaway loop the budget would stop.
{ bench_ini T-BENCH S-BENCH "redis://127.0.0.1:$port"; printf '[log]\nlevel = info\n';
  printf '[local]\nclient_rate = 0\n'; } >"$work/posagent.ini"
"$bin" --config "$work/posagent.ini" 2>"$work/agent.log" &
agent_pid=$!
until grep -q "warm-up:" "$work/agent.log"; do sleep 0.1; done
grep -o "warm-up:.*" "$work/agent.log"
redis-cli -s "$work/agent.sock" get product:P-1 >/dev/null # cached now
sleep 6 # past the LRU flush, so the figures below are steady state
read -r rss priv anon < <(awk '/^Rss:/ {r=$2} /^Anonymous:/ {a=$2}
  /^Private_(Clean|Dirty):/ {v+=$2} END {print r, v, a}' /proc/"$agent_pid"/smaps_rollup)
echo "agent with 10,000 cached items: RSS $rss KiB, private $priv KiB, anonymous $anon KiB"
for c in 1 50; do
  for target in "local socket|-s $work/agent.sock" "redis-server|-p $port"; do
    name=${target%%|*}; opt=${target#*|}
    # shellcheck disable=SC2086
    rps=$(redis-benchmark $opt -n "$n" -c "$c" -q GET product:P-1 2>/dev/null |
          grep -o '[0-9.]* requests per second' | tail -1)
    # shellcheck disable=SC2086
    lat=$(redis-benchmark $opt -n "$n" -c "$c" --csv GET product:P-1 2>/dev/null | tail -1)
    printf '  %-13s %2d clients: %s   (csv: %s)\n' "$name" "$c" "$rps" "$lat"
  done
done
