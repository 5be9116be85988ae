#!/usr/bin/env bash
# .ci/check-layers really checks: on small throwaway trees it passes a clean
# one (with the real table, .ci/layers) and fails, naming file:line, on a
# forbidden include (also one written as a relative path), on a cycle
# between two folders that the table lets include each other, on a folder
# the table does not know, and on a table that names an unknown folder.
# Usage: test_layers.sh SOURCE_DIR
set -uo pipefail
src=$1
check="$src/.ci/check-layers"
fails=0
work=$(mktemp -d /tmp/posagent-layers-XXXXXX)
trap 'rm -rf "$work"' EXIT

put() { # path, then the file's lines
  local path=$1; shift
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$@" >"$path"
}

# Runs the checker on a tree; want "pass" or "fail", then the patterns its
# output must hold (fixed strings, one line each).
expect() { # name, tree, want, pattern...
  local name=$1 tree=$2 want=$3; shift 3
  local out rc=0
  out=$(python3 "$check" "$tree" 2>&1) || rc=$?
  echo "$out" | sed "s/^/  $name: /"
  if [ "$want" = pass ] && [ $rc -ne 0 ]; then
    echo "FAIL $name: exit status $rc, expected 0"; fails=$((fails + 1)); return
  fi
  if [ "$want" = fail ] && [ $rc -ne 1 ]; then
    echo "FAIL $name: exit status $rc, expected 1"; fails=$((fails + 1)); return
  fi
  for p in "$@"; do
    if ! grep -qF -- "$p" <<<"$out"; then
      echo "FAIL $name: output lacks: $p"; fails=$((fails + 1)); return
    fi
  done
  echo "ok   $name"
}

# A clean tree under the real table: every door used goes downwards; a
# sibling included by its bare name, system and foreign quoted headers, and
# tests/ (not checked) that include anything.
clean="$work/clean"
mkdir -p "$clean/.ci"
cp "$src/.ci/layers" "$clean/.ci/layers"
put "$clean/platform/clock.h" '#include <stdint.h>'
put "$clean/platform/clock.c" '#include "platform/clock.h"'
put "$clean/hal/device.h" '#include "platform/clock.h"'
put "$clean/hal/sim/sim.h" '#include "hal/device.h"'
put "$clean/hal/sim/sim.c" '#include "sim.h"' '#include "foreign_lib.h"'
put "$clean/hal/drivers/drv.c" '#include "hal/sim/sim.h"' '#include "platform/clock.h"'
put "$clean/conf/config.c" '#include "hal/device.h"' '#  include "platform/clock.h"'
put "$clean/agent/msg/msg.h" '#include "hal/device.h"'
put "$clean/agent/store/store.h" '#include "platform/clock.h"'
put "$clean/agent/payment/payment.c" '#include "agent/msg/msg.h"' \
    '#include "agent/store/store.h"' '#include "hal/sim/sim.h"'
put "$clean/agent/agent.c" '#include "agent/payment/payment.c"' '#include "conf/config.c"'
put "$clean/tests/test_x.c" '#include "agent/agent.c"' '#include "tests/nowhere/y.h"'
expect clean "$clean" pass "check-layers: ok"

# A lower layer reaching up (platform -> hal), and the store reaching into
# the payment folder through a relative path.
bad="$work/forbidden"
cp -r "$clean" "$bad"
put "$bad/platform/log.c" '#include <stdio.h>' '' '#include "hal/device.h"'
put "$bad/agent/store/store.c" '#include "store.h"' '#include "../payment/payment.c"'
expect forbidden "$bad" fail \
  'platform/log.c:3: forbidden: platform includes hal ("hal/device.h"); .ci/layers:' \
  'allows platform -> nothing of ours' \
  'agent/store/store.c:2: forbidden: agent/store includes agent/payment ("../payment/payment.c")' \
  'cycle: agent/payment -> agent/store -> agent/payment' \
  "2 forbidden includes, 2 cycles"

# A cycle the table would allow include by include: still a failure.
cyc="$work/cycle"
mkdir -p "$cyc/.ci"
printf '%s\n' 'low -' 'left  low right' 'right low left' >"$cyc/.ci/layers"
put "$cyc/low/base.h" '/* nothing */'
put "$cyc/left/l.h" '#include "low/base.h"' '#include "right/r.h"'
put "$cyc/right/r.c" '#include "low/base.h"' '' '#include "left/l.h"'
expect cycle "$cyc" fail \
  'cycle: left -> right -> left' \
  'left/l.h:2: left includes right ("right/r.h")' \
  'right/r.c:3: right includes left ("left/l.h")' \
  '0 forbidden includes, 1 cycle,'
# ... and the same tree without the back door passes.
put "$cyc/right/r.c" '#include "low/base.h"'
expect no-cycle "$cyc" pass "check-layers: ok"

# A folder the table does not know, and an include of a file in it.
miss="$work/missing"
cp -r "$clean" "$miss"
put "$miss/agent/extra/extra.h" '#include "platform/clock.h"'
put "$miss/agent/agent.h" '#include "agent/extra/extra.h"'
expect missing "$miss" fail \
  'agent/extra/extra.h: missing: folder agent/extra has no line in .ci/layers' \
  'agent/agent.h:1: missing: agent includes "agent/extra/extra.h"'

# A table naming a folder that has no line of its own (a typo) is no table.
typo="$work/typo"
mkdir -p "$typo/.ci"
printf '%s\n' 'low -' 'high low midle' >"$typo/.ci/layers"
put "$typo/low/base.h" '/* nothing */'
put "$typo/high/h.c" '#include "low/base.h"'
expect typo "$typo" fail '.ci/layers:2: high names midle, which has no rule line'

[ $fails -eq 0 ] && echo "layers test passed"
exit $((fails > 0))
