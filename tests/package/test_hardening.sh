#!/usr/bin/env bash
# The shipped binary passes .ci/check-hardening, and the checker really
# checks: a deliberately unhardened program (same compiler) fails each of
# PIE, RELRO, BIND_NOW, NX stack, stack protector and FORTIFY.
# Usage: test_hardening.sh SOURCE_DIR POSAGENT_BINARY C_COMPILER
set -uo pipefail
src=$1 bin=$2 cc=$3
check="$src/.ci/check-hardening"
fails=0

if bash "$check" "$bin"; then
  echo "ok   $bin is hardened"
else
  echo "FAIL $bin is not hardened"; fails=$((fails + 1))
fi

work=$(mktemp -d /tmp/posagent-hardening-XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/weak.c" <<'C'
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    char buf[16];
    strcpy(buf, argc > 1 ? argv[1] : "x");
    printf("%s\n", buf);
    return 0;
}
C
if ! "$cc" -O0 -fno-stack-protector -U_FORTIFY_SOURCE -no-pie -fno-pie -Wl,-z,norelro \
     -Wl,-z,lazy -Wl,-z,execstack -o "$work/weak" "$work/weak.c" 2>"$work/cc.log"; then
  echo "FAIL cannot build the unhardened sample with $cc:"; cat "$work/cc.log"
  exit 1
fi
out=$(bash "$check" "$work/weak"); n=$?
echo "$out" | sed 's/^/  weak: /'
for want in "PIE" "RELRO" "BIND_NOW" "non-executable stack" "stack protector" "FORTIFY_SOURCE"; do
  # A here-string, not a pipe: under pipefail, grep -q leaving early would
  # kill echo with SIGPIPE and fail a check that holds (CI run 41, armhf).
  if grep -q "^FAIL $want" <<<"$out"; then
    echo "ok   unhardened sample caught: $want"
  else
    echo "FAIL unhardened sample passed: $want"; fails=$((fails + 1))
  fi
done
[ "$n" -ge 6 ] || { echo "FAIL checker exit status $n for the sample"; fails=$((fails + 1)); }
[ $fails -eq 0 ] && echo "hardening test passed"
exit $((fails > 0))
