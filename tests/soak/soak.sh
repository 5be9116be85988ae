#!/usr/bin/env bash
# Soak: one agent, one redis-server, forced reconnects, payments and cache
# reads for a while; the agent's file descriptors and memory must stay flat
# and nothing may go wrong once the link has recovered.
#
# Usage: tests/soak/soak.sh [options]
#   --duration S     how long to run (default 60)
#   --period S       a forced reconnect every S seconds (default 5); they
#                    rotate through: CLIENT KILL of the agent's connections
#                    while idle, CLIENT KILL while a payment is at the pinpad,
#                    and a full redis-server restart (SIGKILL, --down seconds
#                    down, reads checked while it is down, then started again
#                    on the same port and its keys loaded again)
#   --down S         seconds Redis stays down in a restart (default 1)
#   --pay-every S    one payment every S seconds (default 2)
#   --sample S       sample fds and memory every S seconds (default 5)
#   --warmup S       samples before S are not judged (default: a quarter of
#                    the duration, at least 15); nor, in a run that gets
#                    there, samples before the 1,250th payment: the agent
#                    keeps 1,024 finished payments and prunes the journal
#                    from 1,088 on, every 64; a prune reads the journal into
#                    one buffer, and glibc keeps the heap that buffer grew
#                    from the second prune on (a one-time step of ~300 KiB)
#   --mem-slack KIB  allowed growth of anonymous and private memory after
#                    warm-up (default 256)
#   --cycles N       instead of --duration: N reconnect cycles back to back,
#                    CLIENT KILL only, each one waited for (the agent's
#                    reconnect delay is set to 1..10 ms); a payment every 50
#                    cycles, reads every 10, a sample every 100. Meant for the
#                    Sanitize build:
#                      POSAGENT_BIN=build/sanitize/agent/posagent tests/soak/soak.sh --cycles 10000
#   --out DIR        keep everything in DIR (samples.csv, events.csv,
#                    agent.log, summary.txt); default: a temporary directory,
#                    removed unless the run fails
#   --judge DIR      judge the samples and the agent log of a run kept in
#                    DIR again (with this script's rules) and exit
#
# POSAGENT_BIN selects the agent binary (default: a Release build in
# build/release, built if needed). The agent's stderr is searched for
# sanitizer reports, and its exit status on SIGTERM must be 0 (under ASan
# that includes LeakSanitizer's verdict). Memory growth is not judged for an
# ASan build (its quarantine of freed memory grows by design; LeakSanitizer
# judges leaks there); file descriptors are.
#
# "After recovery": every forced disruption opens a window that starts when
# it is induced and ends RECOVERY_GRACE_MS (2000) after the script saw the
# link online again (INFO link: online:1 and a higher connects count). A
# warn or error line the agent logs outside every such window, after it
# first came online, is an error after recovery; there must be none.
#
# Exit status: 0 when every check passed, 1 otherwise (the reasons are listed
# at the end of the summary).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../bench/lib.sh"

duration=60 period=5 down=1 pay_every=2 sample=5 warmup="" slack=256 cycles=0 out="" judge=""
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --period) period=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    --pay-every) pay_every=$2; shift 2 ;;
    --sample) sample=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --mem-slack) slack=$2; shift 2 ;;
    --cycles) cycles=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --judge) judge=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
done
warmup_arg=$warmup
if [ -z "$warmup" ]; then
  warmup=$((duration / 4)); [ "$warmup" -ge 15 ] || warmup=15
fi
# Samples from warm-up on (cycles mode: the second tenth of the samples on).
judge_samples() { # dir: fds and memory verdict on DIR/samples.csv; exit status 1 on growth
  awk -F, -v warm="$warmup" -v cycles="$cycles" -v slack="$slack" -v asan="$asan" '
  NR == 1 { next }
  { t[++n] = $1; for (c = 2; c <= 7; c++) v[c, n] = $c; pay[n] = $9 }
  END {
    split("fds rss_kb private_kb anon_kb store_map_kb private_less_store_kb", name, " ")
    first = 1
    if (cycles > 0) first = int(n / 10) + 1
    else {
      while (first < n && t[first] < warm) first++
      if (pay[n] >= 1250) while (first < n && pay[first] < 1250) first++
    }
    m = n - first + 1
    q = int(m / 4); if (q < 1) q = 1
    printf "  samples: %d, judged from t=%ss (%d samples); head/tail = min of the first/last %d judged samples\n", n, t[first], m, q
    printf "  %-22s %8s %8s %8s %8s %8s %8s %12s\n", "metric", "first", "last", "min", "max", "head", "tail", "slope/h"
    bad = 0
    for (c = 2; c <= 7; c++) {
      mn = v[c, 1]; mx = v[c, 1]
      for (i = 1; i <= n; i++) { if (v[c, i] < mn) mn = v[c, i]; if (v[c, i] > mx) mx = v[c, i] }
      head = v[c, first]; for (i = first; i < first + q; i++) if (v[c, i] < head) head = v[c, i]
      tail = v[c, n]; for (i = n - q + 1; i <= n; i++) if (v[c, i] < tail) tail = v[c, i]
      sx = sy = sxx = sxy = 0
      for (i = first; i <= n; i++) { sx += t[i]; sy += v[c, i]; sxx += t[i] * t[i]; sxy += t[i] * v[c, i] }
      d = m * sxx - sx * sx; slope = d > 0 ? (m * sxy - sx * sy) / d * 3600 : 0
      printf "  %-22s %8d %8d %8d %8d %8d %8d %12.1f\n", name[c - 1], v[c, 1], v[c, n], mn, mx, head, tail, slope
      if (name[c - 1] == "fds" && tail > head) { print "  FAIL: file descriptors grew"; bad = 1 }
      if (!asan && (name[c - 1] == "anon_kb" || name[c - 1] == "private_less_store_kb") && tail - head > slack) {
        printf "  FAIL: %s grew by %d KiB after warm-up (allowed %d)\n", name[c - 1], tail - head, slack; bad = 1
      }
    }
    if (asan) print "  memory not judged: ASan build (LeakSanitizer judges leaks at exit)"
    exit bad
  }' "$1/samples.csv"
}

late_errors() { # dir: warn/error lines outside the disruption windows (see the header)
  awk -F, -v grace=2000 '
  function days(y, m, d) { y -= m <= 2; era = int(y / 400); yoe = y - era * 400
    doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
    return era * 146097 + yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy - 719468 }
  FNR == NR { if (FNR > 1) { if ($2 == "disrupt") open[++nw] = $1; else if ($2 == "recovered" && nw > 0) shut[nw] = $1 + grace }
              next }
  # Start-up (to the first "link: online") is not judged: a deliberate
  # warning such as "running as root ([security] allow_root)" belongs there.
  !online { if (/link: online/) online = 1; next }
  $2 == "warn" || $2 == "error" {
    ts = $1
    ms = (days(substr(ts, 1, 4) + 0, substr(ts, 6, 2) + 0, substr(ts, 9, 2) + 0) * 86400 \
          + substr(ts, 12, 2) * 3600 + substr(ts, 15, 2) * 60 + substr(ts, 18, 2)) * 1000 + substr(ts, 21, 3)
    inside = 0
    for (i = 1; i <= nw; i++) if (ms >= open[i] - 100 && (!(i in shut) || ms <= shut[i])) inside = 1
    if (!inside) print
  }' "$1/events.csv" FS=' ' "$1/agent.log"
}
if [ -n "$judge" ]; then
  if [ -z "$warmup_arg" ]; then # a quarter of the run, at least 15 s
    warmup=$(($(tail -1 "$judge/samples.csv" | cut -d, -f1) / 4)); [ "$warmup" -ge 15 ] || warmup=15
  fi
  if ldd "${POSAGENT_BIN:-/nonexistent}" 2>/dev/null | grep -q libasan; then asan=1; else asan=0; fi
  [ -f "$judge/samples.csv" ] || { echo "soak: no $judge/samples.csv" >&2; exit 64; }
  rc=0
  judge_samples "$judge" || rc=1
  late=$(late_errors "$judge")
  if [ -n "$late" ]; then echo "  FAIL: warn/error after recovery:"; echo "$late" | head -20 | sed 's/^/    /'; rc=1; fi
  [ "$rc" = 0 ] && echo "  PASS (samples and log)"
  exit "$rc"
fi
command -v redis-server >/dev/null || { echo "soak: redis-server not found (bash .ci/deps)" >&2; exit 1; }
bin=$(bench_agent_bin)
asan=0
if ldd "$bin" 2>/dev/null | grep -q libasan; then asan=1; fi
if [ -n "$out" ]; then
  mkdir -p "$out"; work=$(cd "$out" && pwd); keep=1
else
  work=$(mktemp -d /tmp/posagent-soak-XXXXXX); keep=0
fi
port=$(bench_free_port 17300)
tid=T-SOAK sid=S-SOAK
sock=$work/agent.sock
agent_pid="" sub_pid="" BENCH_REDIS_PID=""
failed=0
cleanup() {
  [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null
  [ -n "$BENCH_REDIS_PID" ] && kill "$BENCH_REDIS_PID" 2>/dev/null
  wait 2>/dev/null
  if [ "$keep" = 0 ] && [ "$failed" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rcli() { redis-cli -p "$port" "$@"; }
lcli() { redis-cli -s "$sock" "$@"; }
now_ms() { date +%s%3N; }
log_event() { echo "$(now_ms),$1,$2" >>"$work/events.csv"; }

# ---- the cloud's keys: product values the reads are checked against
nkeys=20
product_value() { echo "{\"id\":\"P-$1\",\"name\":\"Soak product $1\",\"price\":\"$1.99\"}"; }
# With the index sets the cloud keeps beside them (CONTRACT.md "Indexes for
# warm-up"), and one inventory entry, so that the store's index exists: a
# cloud that follows the contract gives the agent no reason to warn.
seed_keys() {
  local i
  {
    for i in $(seq "$nkeys"); do
      printf 'SET product:P-%d %s\n' "$i" "'$(product_value "$i")'"
      printf 'SADD index:products P-%d\n' "$i"
    done
    printf 'SET inventory:%s:P-1 %s\n' "$sid" "'{\"productId\":\"P-1\",\"quantity\":5}'"
    printf 'SADD index:inventory:%s P-1\n' "$sid"
  } | rcli >/dev/null
}
reads_ok=0 reads_failed=0 reads_offline_ok=0
check_reads() { # label: one MGET of every key through the local socket
  local got want i args=()
  for i in $(seq "$nkeys"); do args+=("product:P-$i"); done
  got=$(lcli MGET "${args[@]}" 2>&1 || true)
  want=$(for i in $(seq "$nkeys"); do product_value "$i"; done)
  if [ "$got" = "$want" ]; then
    reads_ok=$((reads_ok + 1))
    if [ "$1" = offline ]; then reads_offline_ok=$((reads_offline_ok + 1)); fi
  else
    reads_failed=$((reads_failed + 1))
    log_event read_failed "$1"
    echo "soak: $1 read returned: $(echo "$got" | head -c 300)" >&2
  fi
}

# ---- a subscriber on the payment channel that outlives redis restarts
start_subscriber() {
  (while :; do
    redis-cli -p "$port" --csv subscribe "payment:$tid" >>"$work/payment.log" 2>/dev/null || true
    sleep 0.05
  done) &
  sub_pid=$!
}
wait_subscribers() { # both the agent and our subscriber on payment:<id>
  local t0; t0=$(now_ms)
  while [ "$(rcli pubsub numsub "payment:$tid" 2>/dev/null | sed -n 2p)" != 2 ]; do
    [ $(($(now_ms) - t0)) -lt 15000 ] || return 1
    sleep 0.02
  done
}

# ---- payments: every request must be answered PAYMENT_APPROVED
pay_n=0 pay_ok=0 pay_failed=0
request_payment() { # tx: published until the agent hears it (PUBLISH counts 2 receivers)
  local t0 msg; t0=$(now_ms)
  msg="{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"$1\",\"amount\":$((pay_n % 50 + 1)).25,\"currency\":\"EUR\"}"
  until [ "$(rcli publish "payment:$tid" "$msg" 2>/dev/null)" = 2 ]; do
    [ $(($(now_ms) - t0)) -lt 15000 ] || return 1
    sleep 0.05
  done
}
await_approved() { # tx
  local t0; t0=$(now_ms)
  until grep -q "PAYMENT_APPROVED.*transactionId[^,]*\"$1[\\\\]\"" "$work/payment.log"; do
    if [ $(($(now_ms) - t0)) -gt 20000 ]; then
      pay_failed=$((pay_failed + 1)); log_event payment_lost "$1"
      echo "soak: no PAYMENT_APPROVED for $1 within 20 s" >&2
      return 0
    fi
    sleep 0.02
  done
  pay_ok=$((pay_ok + 1))
}

# ---- the link, as the agent reports it on its local socket
link_connects() { lcli INFO link 2>/dev/null | tr -d '\r' | awk -F: '$1 == "connects" {print $2}'; }
link_online() { lcli INFO link 2>/dev/null | tr -d '\r' | awk -F: '$1 == "online" {print $2}'; }
agent_ids() { rcli client list | awk -v n="name=posagent:$tid" '$0 ~ n" " {sub("id=", "", $1); print $1}'; }
kill_agent_clients() {
  local id
  for id in $(agent_ids); do rcli client kill id "$id" >/dev/null || true; done
}
recover_fail=0
await_recovery() { # connects count before the disruption, what
  local t0 c; t0=$(now_ms)
  while :; do
    c=$(link_connects || true)
    if [ -n "$c" ] && [ "$c" -gt "$1" ] && [ "$(link_online)" = 1 ]; then break; fi
    if [ $(($(now_ms) - t0)) -gt 30000 ]; then
      recover_fail=$((recover_fail + 1)); log_event not_recovered "$2"; return 0
    fi
    sleep 0.01
  done
  log_event recovered "$2"
}

# ---- samples: fds and memory of the agent process
echo "t_s,fds,rss_kb,private_kb,anon_kb,store_map_kb,private_less_store_kb,connects,payments_ok,reads_ok" \
  >"$work/samples.csv"
t_start=0
take_sample() {
  local fds rss priv anon mdb
  fds=$(ls /proc/"$agent_pid"/fd | wc -l)
  read -r rss anon priv < <(awk '/^Rss:/ {r=$2} /^Anonymous:/ {a=$2}
    /^Private_(Clean|Dirty):/ {v+=$2} END {print r, a, v}' /proc/"$agent_pid"/smaps_rollup)
  mdb=$(awk -v f="$work/store/data.mdb" '/^[0-9a-f]+-[0-9a-f]+ / {m = ($6 == f); next}
    m && /^Rss:/ {r += $2} END {print r + 0}' /proc/"$agent_pid"/smaps)
  echo "$(( ($(now_ms) - t_start) / 1000 )),$fds,$rss,$priv,$anon,$mdb,$((priv - mdb)),$(link_connects),$pay_ok,$reads_ok" \
    >>"$work/samples.csv"
}

# ---- start
echo "ms,event,detail" >"$work/events.csv"
: >"$work/payment.log"
bench_start_redis "$port" "$work"
seed_keys
if [ "$cycles" -gt 0 ]; then retry="retry_delay_ms = 1
max_retry_delay_ms = 10"; else retry=""; fi
cat >"$work/posagent.ini" <<INI
[terminal]
id = $tid
store_id = $sid
[redis]
url = redis://127.0.0.1:$port
$retry
[heartbeat]
interval_s = 5
ttl_s = 15
[hal]
sim_dir = $work/sim
sim_pinpad_delay_ms = 300
[store]
path = $work/store
map_size_mb = 16
[local]
socket = $sock
INI
"$bin" --config "$work/posagent.ini" 2>"$work/agent.log" &
agent_pid=$!
start_subscriber
t_start=$(now_ms)
wait_subscribers || { echo "soak: the agent never subscribed" >&2; cat "$work/agent.log" >&2; failed=1; exit 1; }
log_event recovered start
echo "soak: agent $agent_pid ($bin), redis on $port, output in $work"

disrupt() { # kind
  local before; before=$(link_connects)
  log_event disrupt "$1"
  case $1 in
    kill) kill_agent_clients ;;
    restart)
      kill -9 "$BENCH_REDIS_PID"; wait "$BENCH_REDIS_PID" 2>/dev/null || true
      sleep "$down"
      check_reads offline
      bench_start_redis "$port" "$work"
      seed_keys
      ;;
  esac
  await_recovery "$before" "$1"
  if [ "$1" = restart ]; then wait_subscribers || log_event not_subscribed restart; fi
}

n_disrupt=0
if [ "$cycles" -gt 0 ]; then
  for c in $(seq "$cycles"); do
    if [ $((c % 50)) = 0 ]; then
      pay_n=$((pay_n + 1)); request_payment "tx-$pay_n" || pay_failed=$((pay_failed + 1))
      disrupt kill; await_approved "tx-$pay_n"
    else
      disrupt kill
    fi
    n_disrupt=$((n_disrupt + 1))
    if [ $((c % 10)) = 0 ]; then check_reads online; fi
    if [ $((c % 100)) = 0 ]; then take_sample; fi
    if [ $((c % 1000)) = 0 ]; then echo "soak: $c cycles, $(tail -1 "$work/samples.csv")"; fi
  done
else
  kinds=(kill kill-paying restart)
  end=$((t_start + duration * 1000))
  next_disrupt=$((t_start + period * 1000)) next_pay=$t_start next_sample=$t_start
  while [ "$(now_ms)" -lt "$end" ]; do
    now=$(now_ms)
    if [ "$now" -ge "$next_pay" ] || [ "$now" -ge "$next_disrupt" ]; then
      kind=""
      if [ "$now" -ge "$next_disrupt" ]; then
        kind=${kinds[$((n_disrupt % 3))]}; n_disrupt=$((n_disrupt + 1))
        next_disrupt=$((next_disrupt + period * 1000))
        [ "$next_disrupt" -gt "$(now_ms)" ] || next_disrupt=$(($(now_ms) + period * 1000))
      fi
      if [ "$kind" = kill ] || [ "$kind" = restart ]; then
        disrupt "$kind"
      else
        pay_n=$((pay_n + 1))
        if request_payment "tx-$pay_n"; then
          [ "$kind" = kill-paying ] && disrupt kill
          await_approved "tx-$pay_n"
        else
          pay_failed=$((pay_failed + 1)); log_event payment_not_heard "tx-$pay_n"
        fi
        next_pay=$((next_pay + pay_every * 1000))
      fi
    fi
    check_reads online
    if [ "$(now_ms)" -ge "$next_sample" ]; then
      take_sample; next_sample=$((next_sample + sample * 1000))
    fi
    sleep 0.1
  done
fi
take_sample

# ---- stop the agent: SIGTERM must give exit status 0
kill -TERM "$agent_pid"
agent_rc=0; wait "$agent_pid" || agent_rc=$?
agent_pid=""

# ---- judge
summary=$work/summary.txt
{
  if [ "$cycles" -gt 0 ]; then
    echo "soak: $cycles reconnect cycles (CLIENT KILL), agent $bin"
  else
    echo "soak: ${duration}s, a disruption every ${period}s (CLIENT KILL idle / during a payment / redis restart ${down}s down), agent $bin"
  fi
  echo "  disruptions: $n_disrupt, link connects: $(tail -1 "$work/samples.csv" | cut -d, -f8), not recovered within 30 s: $recover_fail"
  echo "  payments: $pay_n requested, $pay_ok approved, $pay_failed lost"
  echo "  reads (MGET of $nkeys keys): $reads_ok ok ($reads_offline_ok while redis was down), $reads_failed wrong"
} >"$summary"

judge_samples "$work" >>"$summary" || failed=1
late=$(late_errors "$work")
nlate=0; [ -z "$late" ] || nlate=$(echo "$late" | wc -l)
san=$(grep -cE 'AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer' "$work/agent.log" || true)
{
  echo "  agent log: $(wc -l <"$work/agent.log") lines, $(grep -cE ' (warn|error) ' "$work/agent.log" || true) warn/error, $nlate of them after recovery, $san sanitizer reports"
  [ "$nlate" = 0 ] || { echo "  FAIL: warn/error after recovery:"; echo "$late" | head -20 | sed 's/^/    /'; }
  [ "$san" = 0 ] || echo "  FAIL: sanitizer reports in agent.log"
  [ "$agent_rc" = 0 ] || echo "  FAIL: agent exit status $agent_rc on SIGTERM"
  [ "$pay_failed" = 0 ] || echo "  FAIL: $pay_failed payments without PAYMENT_APPROVED"
  [ "$reads_failed" = 0 ] || echo "  FAIL: $reads_failed reads returned wrong values"
  [ "$recover_fail" = 0 ] || echo "  FAIL: $recover_fail disruptions not recovered within 30 s"
  [ "$pay_ok" -gt 0 ] || echo "  FAIL: no payment completed"
} >>"$summary"
grep -q FAIL "$summary" && failed=1
if [ "$failed" = 0 ]; then echo "  PASS" >>"$summary"; fi
cat "$summary"
[ "$failed" = 0 ] || echo "soak: output kept in $work" >&2
exit "$failed"
