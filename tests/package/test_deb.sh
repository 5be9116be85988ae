#!/usr/bin/env bash
# Builds the posagent .deb from a configured and built tree and checks it.
#
#   tests/package/test_deb.sh BUILD_DIR DEBIAN_ARCH
#
# 1. cpack -G DEB (into a scratch directory, not the build tree's packages/).
# 2. The package as a file: dpkg-deb -f (Package, Architecture, Depends),
#    dpkg-deb -c (the file list and modes), the control archive (conffiles,
#    maintainer scripts that parse), and the binary itself (its ELF machine
#    matches the architecture, it is stripped).
# 3. A real install, with the real dpkg, adduser and maintainer scripts,
#    into a throwaway root: an overlay of this machine's / (so dpkg checks
#    Depends against real installed libraries, and postinst finds adduser
#    and /etc/passwd) whose writes go to a scratch directory, mounted in a
#    private mount namespace (unshare -m) and entered with chroot. Nothing
#    reaches the real system: the user dpkg creates, its database and the
#    installed files live in the scratch upper directory, and the mounts
#    vanish with the namespace. Checked: install, the posagent user and the
#    state directory's owner, conffiles registered, the installed binary
#    runs (under qemu-user for a foreign architecture, via
#    $POSAGENT_WRAPPER), a reinstall (upgrade path), remove (conffile kept)
#    and purge (configuration and state gone; the user is kept on purpose,
#    see packaging/debian/postrm).
#    Why not the alternatives: `dpkg --root=DIR` runs maintainer scripts in
#    a chroot of DIR, which would need a whole Debian system there
#    (debootstrap: minutes and the network), and --force-script-chrootless
#    would run postinst against the real system's users; `dpkg -x` runs no
#    scripts at all. The overlay needs root and overlayfs: without them
#    step 3 is skipped with a message and the test exits 77 (ctest: skipped).
set -euo pipefail

build=${1:?usage: test_deb.sh BUILD_DIR DEBIAN_ARCH}
arch=${2:?usage: test_deb.sh BUILD_DIR DEBIAN_ARCH}
build=$(cd "$build" && pwd)
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { # description command...
  local d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}

work=$(mktemp -d /tmp/posagent-deb-XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# ---- 1. build the package ----
if ! (cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1); then
  cat "$work/cpack.log"
  echo "FAIL cpack -G DEB"
  exit 1
fi
deb=$(ls "$work"/pkg/posagent_*_"$arch".deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  ls -l "$work/pkg"
  echo "FAIL no posagent_*_$arch.deb"
  exit 1
fi
echo "package: $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# ---- 2. the package as a file ----
field() { dpkg-deb -f "$deb" "$1"; }
check "Package is posagent" test "$(field Package)" = posagent
check "Architecture is $arch" test "$(field Architecture)" = "$arch"
depends=$(field Depends)
echo "Depends: $depends"
for lib in libc6 libuv1 libhiredis0.14 libinih1 libcjson1 adduser; do
  check "Depends names $lib" grep -Eq "(^|, )$lib( |,|$)" <<<"$depends"
done

dpkg-deb -c "$deb" >"$work/contents"
sed 's/^/  /' "$work/contents"
has_entry() { # mode-prefix path
  awk -v m="$1" -v p="$2" '$6 == p && index($1, m) == 1 {f = 1} END {exit !f}' "$work/contents"
}
check "/usr/bin/posagent, 0755" has_entry -rwxr-xr-x ./usr/bin/posagent
check "/etc/posagent/posagent.ini, 0640" has_entry -rw-r----- ./etc/posagent/posagent.ini
check "/lib/systemd/system/posagent.service" has_entry -rw-r--r-- ./lib/systemd/system/posagent.service
check "/var/lib/posagent/, 0750" has_entry drwxr-x--- ./var/lib/posagent/
check "/usr/share/doc/posagent/README.md" has_entry -rw-r--r-- ./usr/share/doc/posagent/README.md

mkdir -p "$work/control" "$work/x"
dpkg-deb -e "$deb" "$work/control"
check "conffiles is /etc/posagent/posagent.ini" \
  test "$(cat "$work/control/conffiles")" = /etc/posagent/posagent.ini
for s in postinst prerm postrm; do
  check "$s is executable and parses" sh -n "$work/control/$s"
  check "$s mode 0755" test "$(stat -c %a "$work/control/$s")" = 755
done

dpkg-deb -x "$deb" "$work/x"
machine=$(readelf -h "$work/x/usr/bin/posagent" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
case $arch in
  amd64) want="Advanced Micro Devices X86-64" ;;
  arm64) want="AArch64" ;;
  armhf) want="ARM" ;;
  *) want="$machine" ;;
esac
check "binary machine is $want ($machine)" test "$machine" = "$want"
check "binary is stripped" sh -c "! readelf -S '$work/x/usr/bin/posagent' | grep -q '\.symtab'"
echo "binary: $(stat -c %s "$work/x/usr/bin/posagent") bytes; NEEDED:" \
  "$(readelf -d "$work/x/usr/bin/posagent" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"

# ---- 3. install into a throwaway root ----
skip=""
if [ "$(id -u)" -ne 0 ]; then
  skip="not root"
elif ! command -v unshare >/dev/null || ! grep -qw overlay /proc/filesystems; then
  skip="no unshare or no overlayfs"
elif [ "$arch" != "$(dpkg --print-architecture)" ] &&
  ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  skip="dpkg does not know architecture $arch here"
fi
if [ -n "$skip" ]; then
  echo "SKIP install into a throwaway root: $skip"
  [ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
  exit 77
fi

mkdir -p "$work/upper" "$work/ovl" "$work/root"
cp "$deb" "$work/posagent.deb"
cat >"$work/inroot.sh" <<'EOS'
# Runs inside the throwaway root (chroot), as root.
set -u
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
getent passwd posagent >/dev/null && had_user=1 || had_user=0

check "dpkg -i (Depends satisfied by this system)" dpkg -i /posagent.deb
check "posagent user exists" getent passwd posagent
if [ $had_user -eq 0 ]; then
  check "posagent user is a system user with home /var/lib/posagent" \
    sh -c 'getent passwd posagent | awk -F: "{exit !(\$3 < 1000 && \$6 == \"/var/lib/posagent\")}"'
fi
check "posagent group exists" getent group posagent
check "state dir owned by posagent:posagent" \
  test "$(stat -c %U:%G /var/lib/posagent)" = posagent:posagent
check "config root:posagent 0640" \
  test "$(stat -c %U:%G:%a /etc/posagent/posagent.ini)" = root:posagent:640
check "conffile registered" \
  sh -c 'dpkg-query -W -f="\${Conffiles}" posagent | grep -q "/etc/posagent/posagent.ini"'
check "unit installed" test -f /lib/systemd/system/posagent.service
# shellcheck disable=SC2086
out=$(${WRAP:-} /usr/bin/posagent --version 2>&1) && ok "installed binary runs: $(echo "$out" | head -1)" ||
  bad "installed binary runs: $out"
check "installed config checks with the ids set" \
  env POSAGENT_TERMINAL_ID=T-PKG POSAGENT_STORE_ID=S-PKG POSAGENT_ALLOW_UNSIGNED=1 ${WRAP:-} /usr/bin/posagent \
  --check-config --config /etc/posagent/posagent.ini
check "reinstall (upgrade path) keeps working" dpkg -i /posagent.deb
echo "# local edit" >>/etc/posagent/posagent.ini
check "dpkg -r" dpkg -r posagent
check "remove: binary gone" test ! -e /usr/bin/posagent
check "remove: edited conffile kept" grep -q "# local edit" /etc/posagent/posagent.ini
check "dpkg -P" dpkg -P posagent
check "purge: /etc/posagent gone" test ! -e /etc/posagent
check "purge: /var/lib/posagent gone" test ! -e /var/lib/posagent
check "purge: posagent user kept (postrm's choice)" getent passwd posagent
exit $fails
EOS

# The emulator for a foreign binary (set by tests/CMakeLists.txt for cross builds).
wrap=""
[ "$arch" != "$(dpkg --print-architecture)" ] && wrap=${POSAGENT_WRAPPER:-}

rc=0
unshare -m --propagation private bash -c '
  set -e
  w=$1 wrap=$2
  mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/ovl" "$w/root"
  mount --rbind /dev "$w/root/dev"
  mount -t proc proc "$w/root/proc"
  mount -t tmpfs tmpfs "$w/root/run"
  mount -t tmpfs tmpfs "$w/root/tmp"
  cp "$w/posagent.deb" "$w/inroot.sh" "$w/root/"
  WRAP=$wrap chroot "$w/root" /bin/bash /inroot.sh
' _ "$work" "$wrap" || rc=$?
if [ $rc -gt 100 ] || { [ $rc -ne 0 ] && [ ! -d "$work/upper/var" ]; }; then
  echo "FAIL could not set up the throwaway root (rc $rc)"
  fails=$((fails + 1))
else
  fails=$((fails + rc))
fi

if [ $fails -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all package checks passed"
