# Shared helpers for the benchmark scripts (sourced).
# Benchmarks run as whoever starts them (root in CI): let the agent run so,
# and take the unsigned messages the scripts publish.
export POSAGENT_ALLOW_ROOT=1 POSAGENT_ALLOW_UNSIGNED=1
bench_free_port() {
  local p=${1:-17000}
  while (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
bench_start_redis() { # port dir [more redis-server options]
  local port=$1 dir=$2; shift 2
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/redis-$port.log" "$@" &
  BENCH_REDIS_PID=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
}
# A fresh work directory ($work: /tmp/PREFIX-XXXXXX) and a free port from
# BASE ($port); at exit the agent ($agent_pid) and Redis are killed and
# $work removed. Redis is the caller's to start.
bench_workspace() { # base-port [prefix]
  work=$(mktemp -d "/tmp/${2:-posagent-bench}-XXXXXX")
  port=$(bench_free_port "$1")
  agent_pid=""
  trap 'kill $agent_pid $BENCH_REDIS_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
}
# The agent's configuration on stdout: terminal ID of store STORE, Redis
# at URL, everything it writes under $work (SUFFIX tells two agents apart).
# A caller adds sections after it (a section may appear twice).
bench_ini() { # id store url [suffix]
  cat <<INI
[terminal]
id = $1
store_id = $2
[redis]
url = $3
[hal]
sim_dir = $work/sim${4:-}
[store]
path = $work/store${4:-}
[local]
socket = $work/agent${4:-}.sock
INI
}
bench_agent_bin() {
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ -z "${POSAGENT_BIN:-}" ]; then
    # Tests off only in a new build directory: build/release is shared with
    # .ci/test and payment_latency.sh, which turn them on.
    local tests=()
    [ -f "$root/build/release/CMakeCache.txt" ] || tests=(-DPOS_BUILD_TESTS=OFF)
    cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release "${tests[@]}" >/dev/null
    cmake --build "$root/build/release" -j"$(nproc)" >/dev/null
    POSAGENT_BIN="$root/build/release/agent/posagent"
  fi
  echo "$POSAGENT_BIN"
}
bench_ms() { date +%s%3N; }
