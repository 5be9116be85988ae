#!/usr/bin/env bash
# TLS cost on the Redis link (not a timed test: run it by hand).
#   tests/bench/tls.sh [N] [DOWN]
# Against one redis-server with a plain and a TLS port (certificates from
# tests/support/tls_certs.sh, RSA 2048), for the release agent:
#  1. handshake time, full vs resumed: the agent logs each one ("TLS full
#     handshake in X ms", from TCP connected to handshake done). The first
#     two are full; N drops of both connections (CLIENT KILL LADDR, Redis
#     stays up) give 2N resumed ones; N Redis restarts give 2N full ones
#     (a new server process has no session cache).
#  2. reconnect after a Redis restart (kill -9, DOWN seconds down, default
#     1), plain vs TLS, each N times: the agent's own "online ... after X ms"
#     (first connection attempt to online: connect, handshake, AUTH,
#     SUBSCRIBE) and the wall time from Redis answering PING to the status
#     key rewritten (includes the backoff wait: 100 ms base, 500 ms cap).
#  3. memory once online: VmRSS and private memory, plain vs TLS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
n=${1:-10}; down=${2:-1}
bin=$(bench_agent_bin)
bench_workspace 17300
tport=$(bench_free_port $((port + 1)))
bash "$root/tests/support/tls_certs.sh" "$work/certs" >/dev/null

start_redis() {
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --logfile "$work/redis.log" --tls-port "$tport" --tls-cert-file "$work/certs/server.crt" \
    --tls-key-file "$work/certs/server.key" --tls-ca-cert-file "$work/certs/ca.crt" \
    --tls-auth-clients no &
  BENCH_REDIS_PID=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.01; done
}
stop_redis() { kill -9 "$BENCH_REDIS_PID"; wait "$BENCH_REDIS_PID" 2>/dev/null || true; }
stats() { # label, then numbers on stdin
  sort -n | awk -v label="$1" '{ v[NR] = $1; s += $1 }
    END { if (NR == 0) { print label ": no samples"; exit }
          printf "  %-40s n=%-3d min %7.3f  median %7.3f  mean %7.3f  max %7.3f\n", label, NR,
                 v[1], v[int((NR + 1) / 2)], s / NR, v[NR] }'
}
online_count() { grep -c "link: online" "$1" || true; }
wait_online() { # log, count
  until [ "$(online_count "$1")" -ge "$2" ]; do sleep 0.005; done
}
status_set() { [ -n "$(redis-cli -p "$port" get terminal:T-BENCH:status 2>/dev/null)" ]; }
mem() { # pid -> "RSS kB, private kB"
  local rss priv
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$1/status")
  priv=$(awk '/^Private_(Clean|Dirty)/ { s += $2 } END { print s }' "/proc/$1/smaps_rollup")
  echo "$rss $priv"
}

run_agent() { # mode (plain|tls)
  local url tlsconf=""
  if [ "$1" = tls ]; then
    url="rediss://localhost:$tport"
    tlsconf="[tls]
ca_file = $work/certs/ca.crt"
  else
    url="redis://127.0.0.1:$port"
  fi
  { bench_ini T-BENCH S-BENCH "$url" "-$1"
    printf '[redis]\nretry_delay_ms = 100\nmax_retry_delay_ms = 500\n%s\n' "$tlsconf"
  } >"$work/$1.ini"
  "$bin" --config "$work/$1.ini" 2>"$work/$1.log" &
  agent_pid=$!
  wait_online "$work/$1.log" 1
}

start_redis
declare -A rss priv online_ms back_ms
for mode in plain tls; do
  run_agent "$mode"
  log="$work/$mode.log"
  sleep 2 # settle: warm-up, first heartbeat
  read -r rss[$mode] priv[$mode] < <(mem "$agent_pid")
  if [ "$mode" = tls ]; then
    for i in $(seq "$n"); do
      c=$(online_count "$log")
      redis-cli -p "$port" client kill laddr "127.0.0.1:$tport" >/dev/null
      wait_online "$log" $((c + 1))
    done
  fi
  : >"$work/back-$mode"
  for i in $(seq "$n"); do
    c=$(online_count "$log")
    stop_redis
    sleep "$down"
    start_redis
    t0=$(bench_ms)
    until status_set; do sleep 0.005; done
    echo $(( $(bench_ms) - t0 )) >>"$work/back-$mode"
    wait_online "$log" $((c + 1))
  done
  kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=""
done

echo "$("$bin" --version | head -1), $(nproc) CPUs, $(uname -m); N=$n, Redis down ${down}s"
echo "TLS handshake (ms, agent log: TCP connected -> handshake done, TLS 1.2, RSA 2048 server key):"
sed -n 's/.*TLS full handshake in \([0-9.]*\) ms.*/\1/p' "$work/tls.log" | stats "full"
sed -n 's/.*TLS resumed handshake in \([0-9.]*\) ms.*/\1/p' "$work/tls.log" | stats "resumed (session resumption)"
grep -o "(TLSv[^)]*)" "$work/tls.log" | sort | uniq -c | sed 's/^/  /'
echo "Reconnect after a Redis restart (ms):"
for mode in plain tls; do
  # the first "online" is the start; the last n are the restarts
  sed -n 's/.*link: online .* after \([0-9]*\) ms.*/\1/p' "$work/$mode.log" | tail -n "$n" |
    stats "$mode: attempt -> online"
  stats "$mode: redis back -> status rewritten" <"$work/back-$mode"
done
echo "Memory once online (kB): plain RSS ${rss[plain]}, private ${priv[plain]}; TLS RSS ${rss[tls]}, private ${priv[tls]}; TLS adds RSS $((rss[tls] - rss[plain])), private $((priv[tls] - priv[plain]))"
