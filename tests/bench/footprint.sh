#!/usr/bin/env bash
# Footprint of an idle agent: stripped binary size, and after SECONDS (default
# 60) online: RSS, private and anonymous memory (from /proc/PID/smaps_rollup),
# and wake-ups per minute (context switches of the agent's threads).
# Usage: tests/bench/footprint.sh [--tls [--ca-bundle]] [--unit-env] [--map] [--items N] [seconds]
#        tests/bench/footprint.sh [--items N] --qemu-aarch64 BUILD/agent/posagent [seconds]
#
# --tls links over rediss:// (redis-server's TLS port, test certificates
# from tests/support/tls_certs.sh, RSA 2048) instead of redis://.
# --ca-bundle (with --tls) verifies against Debian's whole CA bundle
# (/etc/ssl/certs/ca-certificates.crt, about 140 CAs) with the test CA
# appended, as a till talking to a managed Redis with a public certificate
# would, instead of the test CA alone.
# --unit-env runs the agent with the environment the shipped unit sets
# (its Environment= lines: glibc's tcache off), as systemd would.
# --map adds the RSS and private memory of each mapping group (the binary,
# each shared library, heap, stack, anonymous), largest first: where the
# memory is.
#
# --items N loads N cache entries into redis before the agent starts (N/2
# inventory:S-BENCH:P-i keys with N/2 product:P-i keys they reference,
# JSON values of about 60 and 130 bytes), waits for the agent's warm-up to
# store them in its local cache ("warm-up: ... entries stored"), then
# measures the idle minute as usual.
#
# --qemu-aarch64 runs a cross-built aarch64 agent under qemu-aarch64 (user
# mode) instead, against the same native redis-server, and strips it with
# aarch64-linux-gnu-strip. What can be measured from outside differs:
#  - The process is qemu: its RSS, private and anonymous memory include the
#    emulator itself (its code, the translated-code cache, host libraries)
#    and are an upper bound of what the agent uses on a board.
#  - "guest" lines sum only the mappings in the guest's address space
#    (qemu-user maps an aarch64 guest 1:1 below 1 TiB, far from qemu's own
#    mappings; the script checks that the agent's binary is mapped there).
#    That is close to what the agent would show on an aarch64 board (same
#    binary, libraries and heap), but an estimate, not a board measurement.
#  - Wake-ups count qemu's threads too (its RCU thread); the main thread's
#    count is the agent's event loop.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
qemu_bin=""
items=0
tls=0
map=0
bundle=0
unit_env=0
while [ $# -gt 0 ]; do
  case $1 in
    --qemu-aarch64)
      qemu_bin=${2:?usage: footprint.sh --qemu-aarch64 PATH_TO_AARCH64_POSAGENT [seconds]}
      qemu_bin=$(cd "$(dirname "$qemu_bin")" && pwd)/$(basename "$qemu_bin")
      shift 2 ;;
    --items) items=${2:?usage: footprint.sh --items N}; shift 2 ;;
    --tls) tls=1; shift ;;
    --map) map=1; shift ;;
    --ca-bundle) bundle=1; shift ;;
    --unit-env) unit_env=1; shift ;;
    *) break ;;
  esac
done
secs=${1:-60}
if [ -n "$qemu_bin" ]; then
  bin=$qemu_bin
  command -v qemu-aarch64 >/dev/null || { echo "footprint: qemu-aarch64 not found (bash .ci/cross)" >&2; exit 1; }
else
  bin=$(bench_agent_bin)
fi
bench_workspace 17100
if [ "$tls" = 1 ]; then
  tport=$(bench_free_port $((port + 1)))
  bash "$here/../support/tls_certs.sh" "$work/certs" >/dev/null
  ca=$work/certs/ca.crt
  if [ "$bundle" = 1 ]; then
    cat /etc/ssl/certs/ca-certificates.crt "$ca" >"$work/certs/bundle.crt"
    ca=$work/certs/bundle.crt
  fi
  bench_start_redis "$port" "$work" --tls-port "$tport" \
    --tls-cert-file "$work/certs/server.crt" --tls-key-file "$work/certs/server.key" \
    --tls-ca-cert-file "$work/certs/ca.crt" --tls-auth-clients no
  # By address, as the plain link is: a host name would add the resolver's
  # threads and memory to the difference. The certificate names localhost.
  { bench_ini T-BENCH S-BENCH "rediss://127.0.0.1:$tport"
    printf '[tls]\nca_file = %s\nserver_name = localhost\n' "$ca"
  } >"$work/posagent.ini"
else
  bench_start_redis "$port" "$work"
  bench_ini T-BENCH S-BENCH "redis://127.0.0.1:$port" >"$work/posagent.ini"
fi
if [ "$items" -gt 0 ]; then
  half=$((items / 2))
  awk -v n="$half" 'BEGIN {
    for (i = 1; i <= n; i++) {
      printf "SET inventory:S-BENCH:P-%d \"{\\\"productId\\\":\\\"P-%d\\\",\\\"qty\\\":%d,\\\"updatedAt\\\":1764412800000}\"\n", i, i, i % 97
      printf "SET product:P-%d \"{\\\"id\\\":\\\"P-%d\\\",\\\"name\\\":\\\"Product %d\\\",\\\"price\\\":\\\"%d.99\\\",\\\"vat\\\":\\\"20\\\",\\\"barcode\\\":\\\"40063813%05d\\\"}\"\n", i, i, i, i % 50, i
    }
  }' | redis-cli -p "$port" >/dev/null
fi
if [ "$unit_env" = 1 ]; then
  while IFS= read -r kv; do
    export "${kv?}"
    echo "environment from the unit: $kv"
  done < <(sed -n 's/^Environment=//p' "$here/../../platform/systemd/posagent.service")
fi
if [ -n "$qemu_bin" ]; then
  # -L /: the multiarch loader and libc (see toolchains/debian-multiarch.cmake).
  qemu-aarch64 -L / "$bin" --config "$work/posagent.ini" 2>"$work/agent.log" &
else
  "$bin" --config "$work/posagent.ini" 2>"$work/agent.log" &
fi
agent_pid=$!
until [ -n "$(redis-cli -p "$port" get terminal:T-BENCH:status)" ]; do
  kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
  sleep 0.05
done
ctx() { # sum of voluntary + involuntary switches over the given status files
  local s=0 f
  for f in "$@"; do
    s=$((s + $(awk '/ctxt_switches/ {n += $2} END {print n}' "$f")))
  done
  echo "$s"
}
if [ "$items" -gt 0 ]; then
  until grep -q "warm-up: .* entries stored" "$work/agent.log"; do
    kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
    sleep 0.2
  done
  grep -o "warm-up: .* entries stored" "$work/agent.log" | tail -1
fi
c0=$(ctx /proc/"$agent_pid"/task/*/status)
m0=$(ctx /proc/"$agent_pid"/task/"$agent_pid"/status)
sleep "$secs"
c1=$(ctx /proc/"$agent_pid"/task/*/status)
m1=$(ctx /proc/"$agent_pid"/task/"$agent_pid"/status)
strip_cmd=strip
[ -n "$qemu_bin" ] && strip_cmd=aarch64-linux-gnu-strip
"$strip_cmd" -o "$work/posagent.stripped" "$bin"
size=$(stat -c %s "$work/posagent.stripped")
read -r rss pss anon priv < <(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Anonymous:/ {a=$2}
  /^Private_(Clean|Dirty):/ {v+=$2} END {print r, p, a, v}' /proc/"$agent_pid"/smaps_rollup)
wake=$(( (c1 - c0) * 60 / secs ))
# The local store's file mapping (LMDB maps data.mdb): clean file pages,
# counted in RSS and, as no other process maps them, in "private".
read -r mdb_rss mdb_dirty < <(awk -v f="$work/store/data.mdb" '
  /^[0-9a-f]+-[0-9a-f]+ / {m = ($6 == f); next}
  m && /^Rss:/ {r += $2} m && /^Private_Dirty:/ {d += $2}
  END {print r + 0, d + 0}' /proc/"$agent_pid"/smaps)
# RSS and private memory by mapping group (file name, or [heap], [stack],
# anonymous), largest RSS first.
by_mapping() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / {n = ($6 == "") ? "[anonymous]" : $6; next}
    /^Rss:/ {r[n] += $2} /^Private_(Clean|Dirty):/ {p[n] += $2}
    END {for (k in r) if (r[k] > 0) printf "%8d %8d  %s\n", r[k], p[k], k}' \
    /proc/"$agent_pid"/smaps | sort -rn
}
link="redis://"
[ "$tls" = 1 ] && link="rediss://"
[ "$bundle" = 1 ] && link="rediss:// (CA bundle of $(grep -c BEGIN "$ca") certificates)"
if [ -z "$qemu_bin" ]; then
  echo "posagent footprint after ${secs}s online over $link (idle, default heartbeat 20 s):"
  printf '  %-28s %8d bytes (%d KiB)\n' "stripped binary" "$size" $((size / 1024))
  printf '  %-28s %8d KiB\n' "RSS" "$rss" "PSS" "$pss" "private (clean+dirty)" "$priv" \
    "anonymous" "$anon"
  printf '  %-28s %8d per minute\n' "wake-ups (context switches)" "$wake"
  if [ "$items" -gt 0 ]; then
    printf '  %-28s %8d KiB (%d KiB dirty), in RSS and private\n' "store mapping (data.mdb)" \
      "$mdb_rss" "$mdb_dirty"
    printf '  %-28s %8d KiB\n' "private less data.mdb" $((priv - mdb_rss))
  fi
  if [ "$map" = 1 ]; then
    echo "  by mapping:  RSS KiB, private KiB"
    by_mapping | sed 's/^/  /'
  fi
  exit 0
fi

# Guest mappings: smaps entries that start below 1 TiB.
read -r grss ganon gpriv gok < <(awk -v bin="$bin" '
  /^[0-9a-f]+-[0-9a-f]+ / {
    split($1, r, "-"); guest = length(r[1]) <= 10
    if (guest && $6 == bin) seen = 1
    next
  }
  guest && /^Rss:/ {rss += $2}
  guest && /^Anonymous:/ {anon += $2}
  guest && /^Private_(Clean|Dirty):/ {priv += $2}
  END {print rss + 0, anon + 0, priv + 0, seen + 0}' /proc/"$agent_pid"/smaps)
mwake=$(( (m1 - m0) * 60 / secs ))
echo "posagent (aarch64, under qemu-aarch64) footprint after ${secs}s online (idle, default heartbeat 20 s):"
printf '  %-36s %8d bytes (%d KiB)\n' "stripped binary (aarch64)" "$size" $((size / 1024))
printf '  %-36s %8d KiB\n' "RSS, qemu process (upper bound)" "$rss" \
  "private, qemu process (upper bound)" "$priv" "anonymous, qemu process (upper bound)" "$anon"
if [ "$gok" = 1 ]; then
  printf '  %-36s %8d KiB\n' "RSS, guest mappings (estimate)" "$grss" \
    "private, guest mappings (estimate)" "$gpriv" "anonymous, guest mappings (estimate)" "$ganon"
else
  echo "  guest mappings: not found below 1 TiB (qemu placed the guest elsewhere); no estimate"
fi
printf '  %-36s %8d per minute\n' "wake-ups, all qemu threads" "$wake" \
  "wake-ups, main (event loop) thread" "$mwake"
if [ "$items" -gt 0 ]; then
  printf '  %-36s %8d KiB (%d KiB dirty), in the guest figures\n' "store mapping (data.mdb)" \
    "$mdb_rss" "$mdb_dirty"
fi
