#!/usr/bin/env bash
# Redis's cost of one agent's cache warm-up, both ways, against the size of
# the keyspace (docs/fleet.md):
#   scan   no index sets: the fallback, and what every agent did before the
#          index sets existed: SCAN MATCH inventory:<store>:* COUNT 500 over
#          the whole keyspace, MGET of what matched and of the products it
#          names.
#   index  index:products and index:inventory:<store> (CONTRACT.md "Indexes
#          for warm-up"): SSCAN of the two sets, MGET of their values.
# For each size, loads STORES x PRODUCTS inventory keys, PRODUCTS product keys,
# one index set per store and index:products with their versions; starts one
# agent for store S-0042 (S-0000 with fewer than 43 stores; a fresh store
# each time) and waits for its "warm-up: ..." line;
# reports the commands it took (INFO commandstats: calls and Redis time) and
# the redis-server CPU from the agent's start to the warm-up's end
# (/proc/PID/task/*/schedstat). With index sets it then waits for the
# periodic warm-up ([cache] warm_interval_s 10 here): versions unchanged, it
# costs one MGET of the two version keys. The scan run deletes the store's
# index set and index:products first (the other stores' sets stay, as keys
# the SCAN walks).
# Usage: tests/fleet/warmup_cost.sh [-s STORES[,STORES...]] [-p PRODUCTS] [-m scan|index|both]
#   defaults: -s 100,1000 -p 1000 -m both: 100,000 and 1,000,000 inventory keys.
# POSAGENT_BIN selects the agent (default: a Release build in build/release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../bench/lib.sh"
sizes=100,1000 products=1000 mode=both
while [ $# -gt 0 ]; do
  case $1 in
    -s) sizes=$2; shift 2 ;;
    -p) products=$2; shift 2 ;;
    -m) mode=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "warmup_cost: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
done
bin=$(bench_agent_bin)
bench_workspace 17450 posagent-warmcost
rcli() { redis-cli -p "$port" "$@"; }
# %.0f, not %d: mawk's %d stops at 2^31 (2.1 s of CPU, passed while loading).
cpu_ns() { cat /proc/"$BENCH_REDIS_PID"/task/*/schedstat | awk '{s += $1} END {printf "%.0f\n", s}'; }
# calls and usec of a command since the last CONFIG RESETSTAT ("0 0" when none)
stat() {
  rcli info commandstats | tr -d '\r' | awk -F'[:=,]' -v c="cmdstat_$1" \
    '$1 == c {print $3, $5; f = 1} END {if (!f) print 0, 0}'
}
load() { # stores products
  python3 -c '
import sys
out = sys.stdout.buffer
stores, products = int(sys.argv[1]), int(sys.argv[2])
def cmd(*args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
for p in range(products):
    cmd(b"SET", b"product:P-%d" % p, b"{\"id\":\"P-%d\",\"name\":\"Product %d\",\"price\":\"%d.99\"}" % (p, p, p % 50))
cmd(b"SADD", b"index:products", *[b"P-%d" % p for p in range(products)])
cmd(b"SET", b"index:products:version", b"1")
for s in range(stores):
    for p in range(products):
        cmd(b"SET", b"inventory:S-%04d:P-%d" % (s, p),
            b"{\"productId\":\"P-%d\",\"quantity\":%d,\"updatedAt\":1764412800000}" % (p, p % 97))
    cmd(b"SADD", b"index:inventory:S-%04d" % s, *[b"P-%d" % p for p in range(products)])
    cmd(b"SET", b"index:inventory:S-%04d:version" % s, b"1")
' "$1" "$2" | rcli --pipe >/dev/null
}
run=0
one() { # mode
  local m=$1 d c0 c1 agent_log line
  run=$((run + 1))
  d=$work/agent$run
  mkdir -p "$d"
  { bench_ini T-WARM "$store" "redis://127.0.0.1:$port" "$run"; printf '[cache]\nwarm_interval_s = 10\n'; } \
    >"$d/posagent.ini"
  agent_log=$d/agent.log
  : >"$agent_log"
  rcli config resetstat >/dev/null
  c0=$(cpu_ns)
  "$bin" --config "$d/posagent.ini" 2>"$agent_log" &
  agent_pid=$!
  until grep -q "warm-up: .* entries stored" "$agent_log"; do
    kill -0 "$agent_pid" 2>/dev/null || { cat "$agent_log" >&2; exit 1; }
    sleep 0.02
  done
  c1=$(cpu_ns)
  line=$(grep -o 'warm-up: .* entries stored.*' "$agent_log" | head -1)
  read -r scalls susec < <(stat scan)
  read -r sscalls ssusec < <(stat sscan)
  read -r mcalls musec < <(stat mget)
  awk -v m="$m" -v k="$keys" -v cpu=$((c1 - c0)) -v sc="$scalls" -v su="$susec" -v ssc="$sscalls" \
    -v ssu="$ssusec" -v mc="$mcalls" -v mu="$musec" 'BEGIN {
    printf "%-6s %9d keys  redis CPU %7.1f ms  SCAN %5d calls %7.1f ms  SSCAN %3d calls %6.1f ms  MGET %5d calls %7.1f ms\n",
      m, k, cpu / 1e6, sc, su / 1e3, ssc, ssu / 1e3, mc, mu / 1e3 }'
  echo "         $line"
  if [ "$m" = index ]; then
    # The periodic warm-up, versions unchanged.
    rcli config resetstat >/dev/null
    c0=$(cpu_ns)
    until grep -q "products: unchanged)" "$agent_log"; do
      kill -0 "$agent_pid" 2>/dev/null || { cat "$agent_log" >&2; exit 1; }
      sleep 0.05
    done
    c1=$(cpu_ns)
    read -r mcalls musec < <(stat mget)
    read -r sscalls ssusec < <(stat sscan)
    printf '%-6s %9d keys  periodic warm-up, versions unchanged: MGET %d calls (%d us in Redis), SSCAN %d calls\n' \
      "" "$keys" "$mcalls" "$musec" "$sscalls"
  fi
  kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=""
}
echo "warm-up of one agent ($products inventory entries, $products products), by keyspace size:"
BENCH_REDIS_PID=""
for stores in ${sizes//,/ }; do
  store=S-0042
  [ "$stores" -gt 42 ] || store=S-0000
  if [ -n "$BENCH_REDIS_PID" ]; then
    # The last size's Redis goes; the last one of all is the exit trap's.
    rcli shutdown nosave >/dev/null 2>&1 || true
    wait "$BENCH_REDIS_PID" 2>/dev/null || true
  fi
  bench_start_redis "$port" "$work"
  load "$stores" "$products"
  keys=$(rcli dbsize)
  [ -r /proc/"$BENCH_REDIS_PID"/stat ] || { echo "warmup_cost: redis pid $BENCH_REDIS_PID gone" >&2; exit 1; }
  case $mode in both | index) one index ;; esac
  case $mode in
    both | scan)
      rcli del "index:inventory:$store" index:products "index:inventory:$store:version" \
        index:products:version >/dev/null
      keys=$(rcli dbsize)
      one scan
      ;;
  esac
done
