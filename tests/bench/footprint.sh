#!/usr/bin/env bash
# Footprint of an idle agent: stripped binary size, and after SECONDS (default
# 60) online: RSS, private and anonymous memory (from /proc/PID/smaps_rollup),
# and wake-ups per minute (context switches of the agent's threads).
# Usage: tests/bench/footprint.sh [seconds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
secs=${1:-60}
bin=$(bench_agent_bin)
work=$(mktemp -d /tmp/posagent-bench-XXXXXX)
port=$(bench_free_port 17100)
trap 'kill $agent_pid $BENCH_REDIS_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
bench_start_redis "$port" "$work"
cat >"$work/posagent.ini" <<INI
[terminal]
id = T-BENCH
store_id = S-BENCH
[redis]
url = redis://127.0.0.1:$port
INI
"$bin" --config "$work/posagent.ini" 2>"$work/agent.log" &
agent_pid=$!
until [ -n "$(redis-cli -p "$port" get terminal:T-BENCH:status)" ]; do sleep 0.05; done
ctx() { # sum of voluntary + involuntary switches over all threads
  local s=0 f
  for f in /proc/"$agent_pid"/task/*/status; do
    s=$((s + $(awk '/ctxt_switches/ {n += $2} END {print n}' "$f")))
  done
  echo "$s"
}
c0=$(ctx)
sleep "$secs"
c1=$(ctx)
strip -o "$work/posagent.stripped" "$bin"
size=$(stat -c %s "$work/posagent.stripped")
read -r rss pss anon priv < <(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Anonymous:/ {a=$2}
  /^Private_(Clean|Dirty):/ {v+=$2} END {print r, p, a, v}' /proc/"$agent_pid"/smaps_rollup)
wake=$(( (c1 - c0) * 60 / secs ))
echo "posagent footprint after ${secs}s online (idle, default heartbeat 20 s):"
printf '  %-28s %8d bytes (%d KiB)\n' "stripped binary" "$size" $((size / 1024))
printf '  %-28s %8d KiB\n' "RSS" "$rss" "PSS" "$pss" "private (clean+dirty)" "$priv" \
  "anonymous" "$anon"
printf '  %-28s %8d per minute\n' "wake-ups (context switches)" "$wake"
