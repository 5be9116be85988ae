#!/usr/bin/env bash
# The sample systemd unit (platform/systemd/posagent.service) carries the
# hardening docs/hardening.md promises, and systemd-analyze accepts it.
# Usage: test_systemd_unit.sh SOURCE_DIR POSAGENT_BINARY [GENERATED_DIR]
# GENERATED_DIR holds the built manual pages (posagent.8.gz,
# posagent.ini.5.gz), which the unit's Documentation= names and
# systemd-analyze verify looks up.
set -uo pipefail
src=$1 bin=$2 gen=${3:-}
unit="$src/platform/systemd/posagent.service"
fails=0
has() { # directive=value (exact line)
  if grep -qx "$1" "$unit"; then echo "ok   $1"; else echo "FAIL missing: $1"; fails=$((fails + 1)); fi
}
has "User=posagent"
has "NoNewPrivileges=yes"
has "ProtectSystem=strict"
has "ProtectHome=yes"
has "PrivateTmp=yes"
has "DevicePolicy=closed"
has "DeviceAllow=char-ttyS rw"
has "DeviceAllow=char-ttyUSB rw"
has "DeviceAllow=char-ttyACM rw"
has "DeviceAllow=char-usb rw"
has "ReadWritePaths=/var/lib/posagent /run/posagent"
has "StateDirectory=posagent"
has "RuntimeDirectory=posagent"
# The agent gives this directory to [local] socket_group; posagent's own
# group (which reads posagent.ini) gets no more than 0750 on it.
has "RuntimeDirectoryMode=0750"
has "Group=posagent"
has "CapabilityBoundingSet="
has "RestrictSUIDSGID=yes"
has "UMask=0027"
# Start-up semantics: ready when serving locally (READY=1 from the agent),
# a finite start timeout, no restart loop on a bad configuration (exit 78),
# the watchdog, and no wait for network-online.target (an offline till).
has "Type=notify"
has "NotifyAccess=main"
has "RestartPreventExitStatus=78"
has "Restart=always"
has "WatchdogSec=30"
timeout=$(sed -n 's/^TimeoutStartSec=\([0-9]*\)$/\1/p' "$unit")
if [ -n "$timeout" ] && [ "$timeout" -ge 5 ] && [ "$timeout" -le 90 ]; then
  echo "ok   TimeoutStartSec=$timeout (5..90 s)"
else
  echo "FAIL TimeoutStartSec must be 5..90 s: $(grep '^TimeoutStartSec' "$unit" || echo unset)"
  fails=$((fails + 1))
fi
if grep -Eq "^(Wants|Requires|After)=.*network-online" "$unit"; then
  echo "FAIL the unit waits for network-online.target"; fails=$((fails + 1))
else
  echo "ok   no network-online.target dependency"
fi

if command -v systemd-analyze >/dev/null; then
  work=$(mktemp -d /tmp/posagent-unit-XXXXXX)
  trap 'rm -rf "$work"' EXIT
  # verify wants the ExecStart binary to exist: point it at this build's;
  # and the manual pages: this build's.
  sed "s#/usr/bin/posagent#$bin#" "$unit" >"$work/posagent.service"
  if [ -n "$gen" ]; then
    mkdir -p "$work/man/man5" "$work/man/man8"
    cp "$gen/posagent.8.gz" "$work/man/man8/" && cp "$gen/posagent.ini.5.gz" "$work/man/man5/"
    export MANPATH="$work/man:"
  fi
  if out=$(systemd-analyze verify "$work/posagent.service" 2>&1) && [ -z "$out" ]; then
    echo "ok   systemd-analyze verify"
  else
    echo "FAIL systemd-analyze verify:"; echo "$out"; fails=$((fails + 1))
  fi
  exposure=$(systemd-analyze security --offline=true "$work/posagent.service" 2>/dev/null |
             sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  if [ -n "$exposure" ]; then
    # systemd's own score, 0 (locked down) .. 10 (unprotected).
    if awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
      echo "ok   systemd-analyze security exposure $exposure (<= 2.0)"
    else
      echo "FAIL systemd-analyze security exposure $exposure (> 2.0)"; fails=$((fails + 1))
    fi
  fi
else
  echo "skip systemd-analyze not installed: directives checked only"
fi
[ $fails -eq 0 ] && echo "unit checks passed"
exit $((fails > 0))
