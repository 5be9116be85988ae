#!/usr/bin/env bash
# Time from Redis being back to the status key rewritten, over N restarts
# (default 10) with the default backoff (100 ms .. 3000 ms). Redis stays down
# for DOWN seconds (default 5) each time, so the backoff is at its cap.
# Usage: tests/bench/restart.sh [N] [DOWN]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
n=${1:-10}; down=${2:-5}
bin=$(bench_agent_bin)
bench_workspace 17200
bench_start_redis "$port" "$work"
bench_ini T-BENCH S-BENCH "redis://127.0.0.1:$port" >"$work/posagent.ini"
"$bin" --config "$work/posagent.ini" 2>"$work/agent.log" &
agent_pid=$!
until [ -n "$(redis-cli -p "$port" get terminal:T-BENCH:status)" ]; do sleep 0.05; done
times=()
for i in $(seq "$n"); do
  kill -9 "$BENCH_REDIS_PID"; wait "$BENCH_REDIS_PID" 2>/dev/null || true
  sleep "$down"
  bench_start_redis "$port" "$work"
  t0=$(bench_ms)
  until [ -n "$(redis-cli -p "$port" get terminal:T-BENCH:status 2>/dev/null)" ]; do sleep 0.01; done
  times+=($(( $(bench_ms) - t0 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
sum=0; for t in "${times[@]}"; do sum=$((sum + t)); done
echo "status rewritten after Redis came back, $n restarts (cap 3000 ms):"
echo "  each (ms): ${times[*]}"
echo "  min ${sorted[0]} ms, median ${sorted[$((n / 2))]} ms, mean $((sum / n)) ms, max ${sorted[$((n - 1))]} ms"
