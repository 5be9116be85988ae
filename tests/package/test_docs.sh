#!/usr/bin/env bash
# posagent(8) and the bash completion follow the program: every option and
# command posagent --help names is in both, and the completion completes
# them (run in plain bash, as a shell would).
# Usage: test_docs.sh SOURCE_DIR POSAGENT_BINARY
# ($POSAGENT_WRAPPER runs a cross-built binary, as for the package test.)
set -uo pipefail
src=$1 bin=$2
man8="$src/packaging/man/posagent.8"
comp="$src/packaging/bash-completion/posagent"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# posagent runs posagent-tools for --help; an emulator may not run what a
# binary executes: then the tools beside it directly.
help_bin=$bin
[ -n "${POSAGENT_WRAPPER:-}" ] && help_bin=$(dirname "$bin")/posagent-tools
# shellcheck disable=SC2086
help=$(${POSAGENT_WRAPPER:-} "$help_bin" --help) || { echo "FAIL $bin --help"; exit 1; }
longs=$(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u)
shorts=$(grep -oE -- '(^| )-[a-zA-Z],' <<<"$help" | tr -d ' ,' | sort -u)
[ -n "$longs" ] && [ -n "$shorts" ] || { echo "FAIL no options found in --help"; exit 1; }
for o in $longs $shorts; do
  roff=${o//-/\\-}
  if grep -qF -- "$roff" "$man8"; then ok "posagent.8 has $o"; else bad "posagent.8 lacks $o"; fi
done
for o in $longs; do
  if grep -qw -- "$o" "$comp"; then ok "completion has $o"; else bad "completion lacks $o"; fi
done
# The commands, from the usage lines: "status | cache get KEY | outbox".
cmds=$(sed -n 's/^ *Usage: //; s/^ *//; /^posagent \[--config FILE\] [a-z]/s/^posagent \[--config FILE\] //p' \
  <<<"$help" | tr '|' '\n' | awk '{print $1}' | sort -u)
[ -n "$cmds" ] || { echo "FAIL no commands found in --help"; exit 1; }
for c in $cmds; do
  if grep -q "^\.BI\? $c\b" "$man8"; then ok "posagent.8 has command $c"; else bad "posagent.8 lacks command $c"; fi
done

# The completion itself: what it offers after the given words.
complete_after() { # words... (the last one is being completed)
  bash -c '
    . "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    _posagent
    printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " " | sed "s/ $//"
  ' _ "$comp" "$@"
}
expect() { # want, words...
  local want=$1; shift
  local got; got=$(complete_after "$@")
  if [ "$got" = "$want" ]; then ok "complete '$*' -> '$want'"; else bad "complete '$*' -> '$got', want '$want'"; fi
}
want_cmds=$(tr '\n' ' ' <<<"$cmds" | sed 's/ $//')
expect "$want_cmds" posagent ""
expect "cache" posagent ca
expect "get" posagent cache ""
expect "" posagent cache get ""
expect "" posagent status ""
expect "--check-config --config --config-dir" posagent --c
expect "status store" posagent --config /etc/posagent/posagent.ini st
expect "test-display test-print" posagent devices ""
expect "--all --json --socket" posagent journal --
expect "--json --socket" posagent status --
expect "devices" posagent --socket /run/x.sock dev
expect "$want_cmds" posagent -c x.ini ""
expect "--version" posagent --vers
[ $fails -eq 0 ] && echo "docs checks passed"
exit $((fails > 0))
