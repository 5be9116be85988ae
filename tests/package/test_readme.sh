#!/usr/bin/env bash
# The README's facts that come from elsewhere stay true:
#  - the local API command list (between the local-api-commands markers)
#    is what the agent serves: asked by COMMAND LIST from the binary under
#    test (.ci/local-api-commands), so a command added on any branch shows
#    here until .ci/update-docs writes it in;
#  - the Dependencies table names exactly the packages .ci/deps installs;
#  - every technician's command of posagent --help appears as
#    "posagent <command>".
# (The package's Depends line is checked against the built .deb by
# test_deb.sh.)
# Usage: test_readme.sh SOURCE_DIR POSAGENT_BINARY
set -uo pipefail
src=$1 bin=$2
readme="$src/README.md"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# ---- the local API's commands ----
if ! command -v redis-cli >/dev/null; then
  echo "skip: no redis-cli (redis-tools) to ask the agent"
  exit 77
fi
want=$("$src/.ci/local-api-commands" "$bin") || { echo "FAIL cannot list the agent's commands"; exit 1; }
have=$(sed -n '/<!-- local-api-commands:begin/,/<!-- local-api-commands:end/p' "$readme" | sed '1d;$d')
if [ -z "$want" ]; then
  bad "the agent listed no command"
elif [ "$want" = "$have" ]; then
  ok "README lists the local API's commands: $want"
else
  bad "README's local API commands are out of date (run .ci/update-docs <build>/agent/posagent)"
  echo "  README: $have"
  echo "  agent:  $want"
fi

# ---- dependencies: the table and .ci/deps ----
deps=$(sed -n '/^pkgs=(/,/)/p' "$src/.ci/deps" | sed 's/^pkgs=(//; s/"\$@"//; s/)//' | tr -s ' \n' '\n' |
  grep -v '^$' | LC_ALL=C sort -u)
table=$(sed -n '/^### Dependencies/,/^## /p' "$readme" | grep '^| `' | cut -d'|' -f2 |
  grep -o '`[a-z0-9.+-]*`' | tr -d '`' | LC_ALL=C sort -u)
[ -n "$deps" ] && [ -n "$table" ] || { echo "FAIL cannot read .ci/deps or the README's table"; exit 1; }
for p in $deps; do
  if grep -qx -- "$p" <<<"$table"; then ok "README names $p"; else bad "README's Dependencies lack $p (.ci/deps installs it)"; fi
done
for p in $table; do
  grep -qx -- "$p" <<<"$deps" || bad "README's Dependencies name $p, which .ci/deps does not install"
done

# ---- the technician's commands ----
# posagent runs posagent-tools for --help; an emulator may not run what a
# binary executes: then the tools beside it directly.
help_bin=$bin
[ -n "${POSAGENT_WRAPPER:-}" ] && help_bin=$(dirname "$bin")/posagent-tools
# shellcheck disable=SC2086
help=$(${POSAGENT_WRAPPER:-} "$help_bin" --help) || { echo "FAIL $bin --help"; exit 1; }
cmds=$(sed -n 's/^ *Usage: //; s/^ *//; /^posagent \[--config FILE\] [a-z]/s/^posagent \[--config FILE\] //p' \
  <<<"$help" | tr '|' '\n' | awk '{print $1}' | LC_ALL=C sort -u)
for c in $cmds; do
  if grep -q "posagent $c\b" "$readme"; then ok "README shows posagent $c"; else bad "README never shows posagent $c"; fi
done

[ $fails -eq 0 ] && echo "README checks passed"
exit $((fails > 0))
