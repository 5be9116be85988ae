#!/usr/bin/env bash
# Payment latency as the cloud sees it (docs/latency.md): a hiredis echo
# (the floor), the agent with its store on tmpfs, the agent with its store
# on disk, and that disk's one-block fdatasync, in one run on one
# redis-server, with issue 12's budgets beside the figures.
#
#   tests/bench/payment_latency.sh [-n N] [-w WARMUP] [--disk-dir DIR] [--shm-dir DIR]
#                                  [--cpu C] [--gap-ms G] [--check]
#
# N payments per row (default 500). Builds the release agent and the
# benchmark in build/release (tests on) unless POSAGENT_BIN and
# POS_BENCH_BIN name them. The disk row runs in the build directory (on the
# checkout's disk) unless --disk-dir or POS_BENCH_DISK_DIR says otherwise;
# it is refused on tmpfs. --check exits 1 when a budget is missed. --cpu C
# runs the agents with [store] cpu = C; --gap-ms G pauses G ms after each
# payment (default: back to back).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${POS_BENCH_BUILD:-$root/build/release}
if [ -z "${POSAGENT_BIN:-}" ] || [ -z "${POS_BENCH_BIN:-}" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPOS_BUILD_TESTS=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target posagent bench_payment >/dev/null
fi
export POSAGENT_BIN=${POSAGENT_BIN:-$build/agent/posagent}
bench=${POS_BENCH_BIN:-$build/tests/bench_payment}
disk=${POS_BENCH_DISK_DIR:-$build}
# The last --disk-dir on the command line wins.
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = "--disk-dir" ]; then j=$((i + 1)); disk=${!j}; fi
done
fstype=$(stat -f -c %T "$disk")
case $fstype in
  tmpfs | ramfs)
    echo "$disk is on $fstype: the disk row needs a disk (--disk-dir DIR)" >&2
    exit 64
    ;;
esac
echo "agent: $POSAGENT_BIN"
echo "disk directory: $disk (stat -f: $fstype, on $(df --output=source "$disk" | tail -1))"
exec "$bench" --disk-dir "$disk" "$@"
