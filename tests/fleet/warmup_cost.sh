#!/usr/bin/env bash
# Redis's cost of one agent's cache warm-up (SCAN MATCH inventory:<store>:*
# COUNT 500 over the whole keyspace, then MGET of what matched), as a
# function of the keyspace size: loads STORES x PRODUCTS inventory keys
# (default 1000 x 1000 = 1,000,000), starts one agent for store S-0042,
# waits for its "warm-up: ... entries stored" line and reports the SCAN and
# MGET calls and Redis CPU they took (INFO commandstats, and the
# redis-server thread's CPU time from /proc/PID/task/*/schedstat).
# Every agent does this at start and every [cache] warm_interval_s (900 s).
# Usage: tests/fleet/warmup_cost.sh [STORES] [PRODUCTS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../bench/lib.sh"
stores=${1:-1000}; products=${2:-1000}
bin=$(bench_agent_bin)
bench_workspace 17450 posagent-warmcost
bench_start_redis "$port" "$work"
python3 -c '
import sys
out = sys.stdout.buffer
for s in range(int(sys.argv[1])):
    for p in range(int(sys.argv[2])):
        k = b"inventory:S-%04d:P-%d" % (s, p)
        v = b"{\"productId\":\"P-%d\",\"qty\":%d,\"updatedAt\":1764412800000}" % (p, p % 97)
        out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' "$stores" "$products" | redis-cli -p "$port" --pipe >/dev/null
keys=$(redis-cli -p "$port" dbsize)
bench_ini T-WARM S-0042 "redis://127.0.0.1:$port" >"$work/posagent.ini"
cpu_ns() { cat /proc/"$BENCH_REDIS_PID"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }
redis-cli -p "$port" config resetstat >/dev/null
c0=$(cpu_ns)
"$bin" --config "$work/posagent.ini" 2>"$work/agent.log" &
agent_pid=$!
until grep -q "warm-up: .* entries stored" "$work/agent.log"; do
  kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
  sleep 0.05
done
c1=$(cpu_ns)
stat() { redis-cli -p "$port" info commandstats | tr -d '\r' | awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c {print $3, $5}'; }
read -r scalls susec < <(stat scan)
read -r mcalls musec < <(stat mget)
echo "warm-up of one agent (store S-0042, $products inventory keys) in a keyspace of $keys keys:"
echo "  $(grep -o 'warm-up: .* entries stored' "$work/agent.log")"
echo "  SCAN: $scalls calls, $((susec / 1000)) ms in Redis; MGET: ${mcalls:-0} calls, $(( ${musec:-0} / 1000 )) ms"
echo "  redis-server CPU from the agent's start to its warm-up done: $(( (c1 - c0) / 1000000 )) ms"
