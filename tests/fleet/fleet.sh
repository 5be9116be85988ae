#!/usr/bin/env bash
# Fleet simulation: N agents (separate processes, distinct terminal ids,
# simulated devices) against one redis-server on loopback.
#
#  1. Starts redis-server (maxclients 2N + 64) and N agents, 10 terminals per
#     store, and waits until every terminal:<id>:status key exists.
#  2. Steady state: after --settle seconds, measures Redis over --steady
#     seconds: CPU (utime + stime of the redis-server process), commands/s
#     and network bytes/s (INFO stats), memory (INFO memory), the agents'
#     CPU, and the commands by type (INFO commandstats); scaled to 1,000
#     terminals.
#  3. Restart: SIGKILL redis-server, --down seconds down, start it again on
#     the same port (empty: no persistence). Counts the agents' link attempts
#     per 100 ms from their logs (attempts made while Redis is down never
#     reach it), the connections Redis accepted (INFO stats every 100 ms),
#     the time until every agent is online and its status key rewritten, and
#     checks that maxclients is never hit (rejected_connections stays 0).
#     Budget: all agents back within 5 s of Redis returning, no 100 ms
#     window with more than 25% of the fleet's attempts.
#
# With --cluster: a Redis Cluster of 3 primaries and 3 replicas on loopback
# instead (redis-cli --cluster create; the agents get [redis]
# cluster_nodes): steady state per shard (each node's CPU, commands/s,
# memory and clients, per 1,000 terminals), then a primary killed: its
# replica is promoted, and every agent must be back, its status key
# rewritten (a "ts" after the kill), within the failover time + the
# backoff cap (5 s budget from the promotion).
#
# Usage: tests/fleet/fleet.sh [options]
#   -n N             agents (default 500)
#   --cluster        3 primaries + 3 replicas (Redis Cluster) instead of one Redis
#   --pubsub MODE    with --cluster: classic (default) or sharded
#   --node-timeout MS  with --cluster: cluster-node-timeout (default 5000)
#   --no-tracking    [cache] tracking = false (no server-assisted invalidation;
#                    on the cluster no subscriber on every primary)
#   --heartbeat S    [heartbeat] interval_s of the agents (default 5; ttl_s is
#                    three times it). The product default is 20 s.
#   --settle S       seconds between "all online" and the steady-state
#                    window (default 15)
#   --steady S       length of the steady-state window (default 30)
#   --down S         seconds Redis stays down (default 5)
#   --pay-rate R     during the steady-state window, R payments per terminal
#                    per minute (the cloud's PUBLISH PAYMENT_REQUESTED, the
#                    simulated pinpad approves after 1.5 s); default 0
#   --write-rate W   during the steady-state window, W writes per second of
#                    product:<id> keys (the cloud updating its catalog; each
#                    is an invalidation to every agent); default 0
#   --out DIR        keep everything in DIR (agents' logs, samples.csv,
#                    attempts.csv, attempts.png, summary.txt); default: a
#                    temporary directory, removed at the end
#   --png FILE       also copy the plot to FILE (e.g. docs/fleet-reconnect.png)
#   --check          exit 2 if the budget is missed (for CI)
# POSAGENT_BIN selects the agent (default: a Release build in build/release).
# The plot needs gnuplot (Debian: gnuplot-nox); without it there is none.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../bench/lib.sh"

n=500 hb=5 settle=15 steady=30 down=5 out="" png="" check=0 pay_rate=0 write_rate=0
cluster=0 pubsub=classic node_timeout=5000 tracking=true
while [ $# -gt 0 ]; do
  case $1 in
    -n) n=$2; shift 2 ;;
    --cluster) cluster=1; shift ;;
    --pubsub) pubsub=$2; shift 2 ;;
    --node-timeout) node_timeout=$2; shift 2 ;;
    --no-tracking) tracking=false; shift ;;
    --heartbeat) hb=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --steady) steady=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    --pay-rate) pay_rate=$2; shift 2 ;;
    --write-rate) write_rate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --png) png=$2; shift 2 ;;
    --check) check=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fleet: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
done
bin=$(bench_agent_bin)
if [ -n "$out" ]; then
  mkdir -p "$out"; run=$(cd "$out" && pwd); keep=1
else
  run=$(mktemp -d /tmp/posagent-fleet-XXXXXX); keep=0
fi
rm -rf "$run/agents" "$run"/node*; mkdir -p "$run/agents"; rm -f "$run"/redis-*.log
# Connections per agent: 2 on one Redis; on the cluster up to 2 per
# primary (a subscriber on each, commands where used), all on the primaries.
maxclients=$((cluster ? 6 * n + 64 : 2 * n + 64))
stores=$(((n + 9) / 10))
need_fds=$((maxclients + 64 + n))
[ "$(ulimit -n)" -ge "$need_fds" ] || ulimit -n "$need_fds" 2>/dev/null \
  || { echo "fleet: ulimit -n $(ulimit -n) is below $need_fds" >&2; exit 1; }
port=$(bench_free_port 17400)
pids=() sampler_pid="" BENCH_REDIS_PID="" node_pids=() node_ports=()
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
  [ ${#pids[@]} -gt 0 ] && kill -9 "${pids[@]}" 2>/dev/null
  [ -n "$BENCH_REDIS_PID" ] && kill "$BENCH_REDIS_PID" 2>/dev/null
  [ ${#node_pids[@]} -gt 0 ] && kill "${node_pids[@]}" 2>/dev/null
  wait 2>/dev/null
  if [ "$keep" = 0 ]; then rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rcli() { redis-cli -p "$port" "$@"; }
info_field() { # section field
  rcli INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k {print $2}'
}
# CPU time in ns of the given processes, all threads (schedstat: exact, where
# utime/stime are sampled at clock ticks and miss short wake-ups).
cpu_ns() {
  local p
  for p in "$@"; do cat /proc/"$p"/task/*/schedstat; done 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}
# Keys in the database: every status key and every store's terminals:{store}
# set once all agents are online (the sets are never more than the stores).
dbsize() {
  if [ "$cluster" = 1 ]; then
    local p t=0 k
    for p in "${node_ports[@]}"; do
      if [ "$(redis-cli -p "$p" role 2>/dev/null | head -1)" = master ]; then
        k=$(redis-cli -p "$p" dbsize 2>/dev/null) && t=$((t + k))
      fi
    done
    echo "$t"
  else
    rcli dbsize 2>/dev/null || echo 0
  fi
}
wait_dbsize() { # count timeout_s: prints the time it was reached (ms) or fails
  local t0; t0=$(bench_ms)
  while [ "$(dbsize)" -lt "$1" ]; do
    [ $(($(bench_ms) - t0)) -lt $(($2 * 1000)) ] || return 1
    sleep 0.02
  done
  bench_ms
}
redis_opts=(--maxclients "$maxclients")
# The cluster: 3 primaries, 3 replicas, each node's bus on a port of its own.
start_node() { # index
  local i=$1 d=$run/node$1
  mkdir -p "$d"
  redis-server --port "${node_ports[$i]}" --cluster-port "${bus_ports[$i]}" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$d" --logfile "$d/redis.log" --cluster-enabled yes \
    --cluster-config-file nodes.conf --cluster-node-timeout "$node_timeout" \
    --repl-diskless-sync-delay 0 "${redis_opts[@]}" &
  node_pids[$i]=$!
  until redis-cli -p "${node_ports[$i]}" ping >/dev/null 2>&1; do sleep 0.05; done
}
cluster_ok() {
  local p
  for p in "${node_ports[@]}"; do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q cluster_state:ok || return 1
  done
}

if [ "$cluster" = 1 ]; then
  bus_ports=()
  next=17400
  for i in 0 1 2 3 4 5; do
    node_ports[$i]=$(bench_free_port "$next"); next=$((node_ports[i] + 1))
    bus_ports[$i]=$(bench_free_port "$next"); next=$((bus_ports[i] + 1))
    start_node "$i"
  done
  addrs=(); for p in "${node_ports[@]}"; do addrs+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$run/create.log" 2>&1 ||
    { cat "$run/create.log" >&2; exit 1; }
  until cluster_ok; do sleep 0.2; done
  sleep 2 # replicas in sync
  port=${node_ports[0]}
  seeds=$(IFS=,; echo "${addrs[*]:0:3}")
  redis_url="redis://127.0.0.1:1"
  echo "fleet: $n agents ($bin), Redis Cluster of 3 primaries + 3 replicas on ports ${node_ports[*]} (maxclients $maxclients, pubsub $pubsub), output in $run"
else
  bench_start_redis "$port" "$run" "${redis_opts[@]}"
  redis_url="redis://127.0.0.1:$port"
  echo "fleet: $n agents ($bin), redis-server on $port (maxclients $maxclients), output in $run"
fi
mem_empty=$(info_field memory used_memory)
declare -A node_mem0
for p in "${node_ports[@]}"; do
  node_mem0[$p]=$(redis-cli -p "$p" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
done
t0=$(bench_ms)
for i in $(seq 1 "$n"); do
  d=$run/agents/$i
  mkdir -p "$d"
  cat >"$d/posagent.ini" <<INI
[terminal]
id = T-F$(printf %05d "$i")
store_id = S-F$(printf %04d $(((i - 1) / 10)))
[redis]
url = $redis_url
$( [ "$cluster" = 1 ] && printf 'cluster_nodes = %s\npubsub = %s\n' "$seeds" "$pubsub" )
[heartbeat]
interval_s = $hb
ttl_s = $((hb * 3))
[hal]
sim_dir = $d/sim
[store]
path = $d/store
map_size_mb = 2
cache_max_mb = 1
outbox_max_mb = 1
[cache]
tracking = $tracking
[local]
socket = $d/agent.sock
[log]
level = debug
INI
  "$bin" --config "$d/posagent.ini" 2>"$d/agent.log" </dev/null &
  pids+=($!)
done
if ! t_up=$(wait_dbsize $((n + stores)) 300); then
  echo "fleet: only $(dbsize) of $((n + stores)) status keys and terminals sets after 300 s" >&2; exit 1
fi
echo "fleet: all $n agents online $((t_up - t0)) ms after the first was started"

sleep "$settle"
if [ "$cluster" = 1 ]; then
  # ---- steady state, per shard
  cports=$(IFS=,; echo "${node_ports[*]}")
  for p in "${node_ports[@]}"; do redis-cli -p "$p" CONFIG RESETSTAT >/dev/null; done
  declare -A nc0 nc1
  for i in "${!node_ports[@]}"; do nc0[$i]=$(cpu_ns "${node_pids[$i]}"); done
  a0=$(cpu_ns "${pids[@]}") m0=$(bench_ms)
  rm -f "$run/payments.txt" "$run/writes.txt"
  load=()
  if [ "$pay_rate" != 0 ]; then
    python3 "$here/fleet.py" pay "c:$cports" "$n" "$pay_rate" "$steady" "$pubsub" >"$run/payments.txt" &
    load+=($!)
  fi
  if [ "$write_rate" != 0 ]; then
    python3 "$here/fleet.py" write "c:$cports" "$write_rate" "$steady" >"$run/writes.txt" &
    load+=($!)
  fi
  if [ ${#load[@]} -gt 0 ]; then
    wait "${load[@]}"
    sleep 2 # the last payments finish (pinpad 1.5 s)
  else
    sleep "$steady"
  fi
  for i in "${!node_ports[@]}"; do nc1[$i]=$(cpu_ns "${node_pids[$i]}"); done
  a1=$(cpu_ns "${pids[@]}") m1=$(bench_ms)
  {
    echo "steady state: $n agents on a Redis Cluster (3 primaries + 3 replicas, pubsub $pubsub), heartbeat $hb s, probe 10 s, $pay_rate payments per terminal per minute, $write_rate product writes/s, over $(((m1 - m0) / 1000)) s"
    echo "  per node (figures per 1,000 terminals of the fleet in brackets):"
    for i in "${!node_ports[@]}"; do
      p=${node_ports[$i]}
      redis-cli -p "$p" INFO commandstats | tr -d '\r' | grep '^cmdstat_' >"$run/commandstats-$p.txt"
      role=$(redis-cli -p "$p" role | head -1)
      mem=$(redis-cli -p "$p" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
      cl=$(redis-cli -p "$p" info clients | tr -d '\r' | awk -F: '$1 == "connected_clients" {print $2}')
      k=$(awk -F'[:=,]' '$1 != "cmdstat_info" && $1 !~ /^cmdstat_(config|role|dbsize)/ {s += $3} END {print s + 0}' \
        "$run/commandstats-$p.txt")
      awk -v p="$p" -v role="$role" -v n="$n" -v ms=$((m1 - m0)) -v c=$((nc1[$i] - nc0[$i])) -v k="$k" \
        -v mem="$mem" -v mem0="${node_mem0[$p]}" -v cl="$cl" 'BEGIN {
        s = ms / 1000; cpu = c / 1e9 / s * 100; cps = k / s
        printf "    %-7s %5d  CPU %6.2f %% (%5.2f %%)  commands/s %7.1f (%6.1f)  clients %5d  memory %6.1f MiB (+%.1f KiB per terminal)\n",
          role, p, cpu, cpu * 1000 / n, cps, cps * 1000 / n, cl, mem / 1048576, (mem - mem0) / n / 1024 }'
    done
    awk -v n="$n" -v ms=$((m1 - m0)) -v a=$((a1 - a0)) 'BEGIN {
      acpu = a / 1e9 / (ms / 1000) * 100
      printf "  agents CPU     %7.2f %% of one core in all -> %.4f %% per agent\n", acpu, acpu / n }'
    for f in "$run/payments.txt" "$run/writes.txt"; do
      if [ -f "$f" ]; then sed 's/^/  /' "$f"; fi
    done
    echo "  the agents' commands by type on the primaries (INFO commandstats over the window):"
    for p in "${node_ports[@]}"; do
      if [ "$(redis-cli -p "$p" role | head -1)" = master ]; then cat "$run/commandstats-$p.txt"; fi
    done | awk -F'[:=,]' -v s=$((m1 - m0)) '
      $1 == "cmdstat_info" || $1 ~ /^cmdstat_(config|role|dbsize)/ {next}
      {calls[$1] += $3; usec[$1] += $5}
      END {for (c in calls) printf "    %-28s %8d calls %8.1f/s %6.2f us/call\n", substr(c, 9), calls[c], calls[c] / (s / 1000), usec[c] / calls[c]}' |
      sort -k2 -nr | awk 'NR <= 10'
  } | tee "$run/summary.txt"

  # ---- a primary killed: its replica is promoted, every agent comes back
  victim=""
  for i in "${!node_ports[@]}"; do
    if [ "$(redis-cli -p "${node_ports[$i]}" role | head -1)" = master ]; then victim=$i; break; fi
  done
  live=(); for i in "${!node_ports[@]}"; do [ "$i" = "$victim" ] || live+=("${node_ports[$i]}"); done
  sleep 2
  t_kill=$(bench_ms)
  kill -9 "${node_pids[$victim]}"; wait "${node_pids[$victim]}" 2>/dev/null || true
  t_promoted=""
  while [ -z "$t_promoted" ] && [ $(($(bench_ms) - t_kill)) -lt 120000 ]; do
    masters=0
    for p in "${live[@]}"; do
      if [ "$(redis-cli -p "$p" role 2>/dev/null | head -1)" = master ]; then masters=$((masters + 1)); fi
    done
    ok=1; for p in "${live[@]}"; do redis-cli -p "$p" cluster info 2>/dev/null | grep -q cluster_state:ok || ok=0; done
    if [ "$masters" = 3 ] && [ "$ok" = 1 ]; then t_promoted=$(bench_ms); else sleep 0.05; fi
  done
  [ -n "$t_promoted" ] || { echo "fleet: no replica promoted within 120 s" >&2; exit 1; }
  live_ports=$(IFS=,; echo "${live[*]}")
  t_all=$(python3 "$here/fleet.py" cluster-status "$live_ports" "$n" "$t_kill" 120)
  case $t_all in timeout*) echo "fleet: status keys after the failover: $t_all" >&2; t_all=$(bench_ms) ;; esac
  echo "kill=$t_kill promoted=$t_promoted all=$t_all maxclients=$maxclients agents=$n" >"$run/times.txt"
  sleep 3
  alive=0; for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then alive=$((alive + 1)); fi; done
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  rc=0
  {
    echo "failover: primary on port ${node_ports[$victim]} killed; replica promoted and cluster ok after $((t_promoted - t_kill)) ms (cluster-node-timeout $node_timeout ms)"
    echo "  every status key rewritten $((t_all - t_kill)) ms after the kill, $((t_all - t_promoted)) ms after the promotion (script's poll)"
  } | tee -a "$run/summary.txt"
  python3 "$here/fleet.py" report --run "$run" --agents "$n" --kill "$t_kill" --back-cmd "$t_promoted" \
    --all "$t_all" --maxclients "$maxclients" --cluster 1 --png "$run/attempts.png" >"$run/restart.txt" || rc=$?
  tee -a "$run/summary.txt" <"$run/restart.txt"
  for p in "${live[@]}"; do
    r=$(redis-cli -p "$p" info stats | tr -d '\r' | awk -F: '$1 == "rejected_connections" {print $2}')
    [ "$r" = 0 ] || { echo "  node $p rejected $r connections (maxclients $maxclients)" | tee -a "$run/summary.txt"; rc=2; }
  done
  echo "  agents still running before the stop: $alive of $n" | tee -a "$run/summary.txt"
  [ "$alive" = "$n" ] || rc=2
  if [ -n "$png" ] && [ -f "$run/attempts.png" ]; then cp "$run/attempts.png" "$png"; fi
  if [ "$check" = 1 ]; then exit "$rc"; fi
  exit 0
fi
rcli CONFIG RESETSTAT >/dev/null
r0=$(bench_ms)
c0=$(cpu_ns "$BENCH_REDIS_PID") a0=$(cpu_ns "${pids[@]}")
i0=$(info_field stats total_net_input_bytes) o0=$(info_field stats total_net_output_bytes)
m0=$(bench_ms)
rm -f "$run/payments.txt" "$run/writes.txt"
load=()
if [ "$pay_rate" != 0 ]; then
  python3 "$here/fleet.py" pay "$port" "$n" "$pay_rate" "$steady" >"$run/payments.txt" &
  load+=($!)
fi
if [ "$write_rate" != 0 ]; then
  python3 "$here/fleet.py" write "$port" "$write_rate" "$steady" >"$run/writes.txt" &
  load+=($!)
fi
if [ ${#load[@]} -gt 0 ]; then
  wait "${load[@]}"
  sleep 2 # the last payments finish (pinpad 1.5 s)
else
  sleep "$steady"
fi
c1=$(cpu_ns "$BENCH_REDIS_PID") a1=$(cpu_ns "${pids[@]}")
i1=$(info_field stats total_net_input_bytes) o1=$(info_field stats total_net_output_bytes)
m1=$(bench_ms)
mem=$(info_field memory used_memory) clients=$(info_field clients connected_clients)
rcli INFO commandstats | tr -d '\r' | grep '^cmdstat_' >"$run/commandstats.txt"
r1=$(bench_ms)
# The agents' commands: everything since CONFIG RESETSTAT but this script's
# INFO and CONFIG.
k=$(awk -F'[:=,]' '$1 != "cmdstat_info" && $1 !~ /^cmdstat_config/ {s += $3} END {print s + 0}' \
  "$run/commandstats.txt")
steady_txt=$(awk -v n="$n" -v ms=$((m1 - m0)) -v c=$((c1 - c0)) -v a=$((a1 - a0)) \
  -v k="$k" -v kms=$((r1 - r0)) -v in_b=$((i1 - i0)) -v out_b=$((o1 - o0)) -v mem="$mem" -v mem0="$mem_empty" -v cl="$clients" \
  -v hb="$hb" -v pr="$pay_rate" -v wr="$write_rate" 'BEGIN {
    s = ms / 1000; cpu = c / 1e9 / s * 100; acpu = a / 1e9 / s * 100; cps = k / (kms / 1000)
    printf "steady state: %d agents, heartbeat %d s, probe 10 s, %s payments per terminal per minute, %s product writes/s, over %.1f s\n", n, hb, pr, wr, s
    printf "  redis CPU      %7.2f %% of one core   -> %6.2f %% per 1,000 terminals\n", cpu, cpu * 1000 / n
    printf "  commands/s     %7.1f                -> %6.1f per 1,000 terminals (%.3f per terminal)\n", cps, cps * 1000 / n, cps / n
    printf "  network in/out %7.1f / %.1f KiB/s -> %.1f / %.1f KiB/s per 1,000 terminals\n", in_b / s / 1024, out_b / s / 1024, in_b / s / 1024 * 1000 / n, out_b / s / 1024 * 1000 / n
    printf "  redis memory   %7.1f MiB used (%.1f MiB empty), %d clients -> %.1f KiB per terminal\n", mem / 1048576, mem0 / 1048576, cl, (mem - mem0) / n / 1024
    printf "  agents CPU     %7.2f %% of one core in all -> %.4f %% per agent\n", acpu, acpu / n
  }')
echo "$steady_txt" | tee "$run/summary.txt"
for f in "$run/payments.txt" "$run/writes.txt"; do
  if [ -f "$f" ]; then sed 's/^/  /' "$f" | tee -a "$run/summary.txt"; fi
done
echo "  commands by type (INFO commandstats over the window):" | tee -a "$run/summary.txt"
awk -F'[:=,]' -v s="$(((r1 - r0)))" '{s1 = s / 1000; printf "    %-28s %8d calls %8.1f/s %6.2f us/call\n", substr($1, 9), $3, $3 / s1, $7}' \
  "$run/commandstats.txt" | sort -k2 -nr | awk 'NR <= 8' | tee -a "$run/summary.txt"

# ---- restart
python3 "$here/fleet.py" sample "$port" "$run/samples.csv" &
sampler_pid=$!
sleep 2
t_kill=$(bench_ms)
kill -9 "$BENCH_REDIS_PID"; wait "$BENCH_REDIS_PID" 2>/dev/null || true
sleep "$down"
bench_start_redis "$port" "$run" "${redis_opts[@]}"
t_back=$(bench_ms)
if ! t_all=$(wait_dbsize $((n + stores)) 60); then
  echo "fleet: only $(dbsize) of $((n + stores)) status keys and terminals sets 60 s after the restart" >&2
  t_all=$(bench_ms)
fi
echo "kill=$t_kill back_cmd=$t_back all=$t_all maxclients=$maxclients agents=$n" >"$run/times.txt"
sleep 3
kill "$sampler_pid"; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=""
alive=0; for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then alive=$((alive + 1)); fi; done
kill -TERM "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
pids=()
rc=0
python3 "$here/fleet.py" report --run "$run" --agents "$n" --kill "$t_kill" --back-cmd "$t_back" \
  --all "$t_all" --maxclients "$maxclients" --png "$run/attempts.png" >"$run/restart.txt" || rc=$?
tee -a "$run/summary.txt" <"$run/restart.txt"
echo "  agents still running before the stop: $alive of $n" | tee -a "$run/summary.txt"
[ "$alive" = "$n" ] || rc=2
if [ -n "$png" ] && [ -f "$run/attempts.png" ]; then cp "$run/attempts.png" "$png"; fi
if [ "$check" = 1 ]; then exit "$rc"; fi
exit 0
