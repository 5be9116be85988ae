#!/usr/bin/env bash
# Builds the posagent .deb from a configured and built tree and checks it.
#
#   tests/package/test_deb.sh BUILD_DIR DEBIAN_ARCH
#
# 1. cpack -G DEB (into a scratch directory, not the build tree's packages/).
# 2. The package as a file: dpkg-deb -f (Package, Architecture, Depends),
#    dpkg-deb -c (the file list and modes), the control archive (conffiles,
#    maintainer scripts that parse), and the binary itself (its ELF machine
#    matches the architecture, it is stripped), the documents (copyright,
#    changelog, manual pages, bash completion), the version against the
#    changelog, and lintian: no error and no warning (the package's
#    overrides each say why).
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
#    $POSAGENT_WRAPPER) and says the package's version, the unit enabled
#    by deb-systemd-helper, the configuration's owner and mode registered
#    with dpkg-statoverride and kept through an upgrade that replaces the
#    file, an administrator's owner and mode kept through a reinstall, a
#    reinstall (upgrade path), remove (conffile kept, unit still enabled)
#    and purge (configuration, state, override and enablement gone; the
#    user is kept on purpose, see packaging/debian/postrm).
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
# The README states the Depends line (section Packages): it must be this one.
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
readme_depends=$(grep -o '^  `adduser, [^`]*`' "$src/README.md" | tr -d '`' | sed 's/^ *//')
check "README's Depends line is the package's" test "$readme_depends" = "$depends"
[ "$readme_depends" = "$depends" ] || echo "  README says: $readme_depends (update section Packages)"

dpkg-deb -c "$deb" >"$work/contents"
sed 's/^/  /' "$work/contents"
has_entry() { # mode-prefix path
  awk -v m="$1" -v p="$2" '$6 == p && index($1, m) == 1 {f = 1} END {exit !f}' "$work/contents"
}
check "/usr/bin/posagent, 0755" has_entry -rwxr-xr-x ./usr/bin/posagent
check "/usr/lib/posagent/posagent-tools, 0755" has_entry -rwxr-xr-x ./usr/lib/posagent/posagent-tools
check "/etc/posagent/posagent.ini, 0640" has_entry -rw-r----- ./etc/posagent/posagent.ini
check "/lib/systemd/system/posagent.service" has_entry -rw-r--r-- ./lib/systemd/system/posagent.service
check "/var/lib/posagent/, 0750" has_entry drwxr-x--- ./var/lib/posagent/
check "/usr/share/doc/posagent/README.md" has_entry -rw-r--r-- ./usr/share/doc/posagent/README.md
check "/usr/share/doc/posagent/contract.md (the cloud contract)" \
  has_entry -rw-r--r-- ./usr/share/doc/posagent/contract.md
check "/usr/share/doc/posagent/copyright" has_entry -rw-r--r-- ./usr/share/doc/posagent/copyright
check "/usr/share/doc/posagent/changelog.Debian.gz" \
  has_entry -rw-r--r-- ./usr/share/doc/posagent/changelog.Debian.gz
check "/usr/share/man/man8/posagent.8.gz" has_entry -rw-r--r-- ./usr/share/man/man8/posagent.8.gz
check "/usr/share/man/man5/posagent.ini.5.gz" \
  has_entry -rw-r--r-- ./usr/share/man/man5/posagent.ini.5.gz
check "/usr/share/bash-completion/completions/posagent" \
  has_entry -rw-r--r-- ./usr/share/bash-completion/completions/posagent
check "/usr/share/lintian/overrides/posagent" \
  has_entry -rw-r--r-- ./usr/share/lintian/overrides/posagent

mkdir -p "$work/control" "$work/x"
dpkg-deb -e "$deb" "$work/control"
check "conffiles is /etc/posagent/posagent.ini" \
  test "$(cat "$work/control/conffiles")" = /etc/posagent/posagent.ini
for s in postinst prerm postrm; do
  check "$s is executable and parses" sh -n "$work/control/$s"
  check "$s mode 0755" test "$(stat -c %a "$work/control/$s")" = 755
done

dpkg-deb -x "$deb" "$work/x"
version=$(field Version)
maintainer=$(field Maintainer)
echo "Version: $version; Maintainer: $maintainer"
check "Maintainer is a real address (not @localhost)" \
  sh -c 'echo "$1" | grep -Eq "^[^<]+ <[^@<>]+@[^@<>.]+\.[^@<>]+>$" && ! echo "$1" | grep -q localhost' \
  _ "$maintainer"
cl_head=$(zcat "$work/x/usr/share/doc/posagent/changelog.Debian.gz" | sed -n 1p) # reads all: no SIGPIPE
check "changelog.Debian.gz's latest entry is this version ($cl_head)" \
  test "$cl_head" != "${cl_head#"posagent ($version) "}"
check "copyright is machine-readable (DEP-5)" \
  grep -qx "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" \
  "$work/x/usr/share/doc/posagent/copyright"
for page in man8/posagent.8.gz man5/posagent.ini.5.gz; do
  check "$page renders without a warning" sh -c \
    '! LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null | grep -q .' \
    _ "$work/x/usr/share/man/$page"
done
check "posagent.ini(5) documents every key of the example file" sh -c '
  zcat "$1" >"$1.txt"
  for k in $(sed -n "s/^;* *\([a-z_]*\) = .*/\1/p" "$2" | sort -u); do
    grep -qx ".B $k" "$1.txt" || { echo "  missing: $k"; exit 1; }
  done' _ "$work/x/usr/share/man/man5/posagent.ini.5.gz" "$work/x/etc/posagent/posagent.ini"
check "lintian-overrides: each override has a comment saying why" awk '
  /^#/ {c = 1; next} /^posagent:/ {if (!c) exit 1; c = 0; next} {c = 0}
' "$work/x/usr/share/lintian/overrides/posagent"

if command -v lintian >/dev/null; then
  # All tags shown (info and pedantic too, for the record); errors and
  # warnings fail.
  lint_rc=0
  lintian --display-info --pedantic --fail-on error,warning --tag-display-limit 0 \
    "$deb" >"$work/lintian.out" 2>&1 || lint_rc=$?
  sed 's/^/  lintian: /' "$work/lintian.out"
  check "lintian: no error, no warning" test "$lint_rc" -eq 0
else
  echo "skip lintian not installed (.ci/deps installs it)"
fi
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
  ! grep -qx "$arch" <<<"$(dpkg --print-foreign-architectures)"; then
  skip="dpkg does not know architecture $arch here"
fi
if [ -n "$skip" ]; then
  echo "SKIP install into a throwaway root: $skip"
  [ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
  exit 77
fi

mkdir -p "$work/upper" "$work/ovl" "$work/root"
cp "$deb" "$work/posagent.deb"
# The next version, as far as dpkg can tell: the same package with a
# higher version and a changed configuration file.
dpkg-deb -R "$deb" "$work/next"
sed -i "s/^Version: .*/Version: ${version}+next/" "$work/next/DEBIAN/control"
echo "; next version" >>"$work/next/etc/posagent/posagent.ini"
(cd "$work/next" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | xargs -0 md5sum \
  >DEBIAN/md5sums)
dpkg-deb --root-owner-group -b "$work/next" "$work/posagent-next.deb" >/dev/null
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
# posagent runs posagent-tools for the documents, --check-config, --help, acl,
# store and the CLI
# (an emulator may not run what a binary executes: then the tools directly).
if [ -z "${WRAP:-}" ]; then
  check "installed posagent runs posagent-tools (--print-example-config)" \
    sh -c '/usr/bin/posagent --print-example-config | grep -q "^\[redis\]"'
else
  # shellcheck disable=SC2086
  check "installed posagent-tools runs (--print-example-config)" \
    sh -c "$WRAP /usr/lib/posagent/posagent-tools --print-example-config | grep -q '^\[redis\]'"
fi
# (--check-config too is posagent-tools'.)
checker=/usr/bin/posagent
[ -n "${WRAP:-}" ] && checker=/usr/lib/posagent/posagent-tools
check "installed config checks with the ids set" \
  env POSAGENT_TERMINAL_ID=T-PKG POSAGENT_STORE_ID=S-PKG POSAGENT_ALLOW_UNSIGNED=1 ${WRAP:-} $checker \
  --check-config --config /etc/posagent/posagent.ini
# shellcheck disable=SC2086
v=$(${WRAP:-} /usr/bin/posagent --version 2>/dev/null | sed -n '1s/^posagent \([^ ]*\) (build .*)$/\1/p')
pkgv=$(dpkg-query -W -f='${Version}' posagent)
check "posagent --version ($v) is the package's version ($pkgv)" \
  test -n "$v" -a "${pkgv%-*}" = "$v"
wants=/etc/systemd/system/multi-user.target.wants/posagent.service
check "unit enabled on install (deb-systemd-helper)" test -L "$wants"
override() { dpkg-statoverride --list /etc/posagent/posagent.ini; }
check "config's owner and mode registered (dpkg-statoverride)" \
  test "$(override)" = "root posagent 640 /etc/posagent/posagent.ini"

# An upgrade whose package brings a new version of the configuration (not
# edited here): dpkg installs the new file, with the registered owner and
# mode, not the package's root:root.
check "upgrade with a new configuration file" dpkg -i /posagent-next.deb
check "upgrade: new configuration installed" grep -q "^; next version" /etc/posagent/posagent.ini
check "upgrade: config still root:posagent 0640" \
  test "$(stat -c %U:%G:%a /etc/posagent/posagent.ini)" = root:posagent:640
check "downgrade back to this package" dpkg -i /posagent.deb

# An administrator's owner and mode: set with chmod, or with
# dpkg-statoverride; a reinstall (the upgrade path) leaves both alone.
chmod 0600 /etc/posagent/posagent.ini
check "reinstall (upgrade path) keeps working" dpkg -i /posagent.deb
check "reinstall: administrator's chmod 0600 kept" \
  test "$(stat -c %U:%G:%a /etc/posagent/posagent.ini)" = root:posagent:600
dpkg-statoverride --remove /etc/posagent/posagent.ini
dpkg-statoverride --update --add root adm 0640 /etc/posagent/posagent.ini
check "reinstall with an administrator's dpkg-statoverride" dpkg -i /posagent.deb
check "reinstall: administrator's override kept" \
  test "$(override)" = "root adm 640 /etc/posagent/posagent.ini"
check "reinstall: administrator's owner kept" \
  test "$(stat -c %U:%G:%a /etc/posagent/posagent.ini)" = root:adm:640

echo "# local edit" >>/etc/posagent/posagent.ini
check "dpkg -r" dpkg -r posagent
check "remove: binary gone" test ! -e /usr/bin/posagent
check "remove: edited conffile kept" grep -q "# local edit" /etc/posagent/posagent.ini
check "remove: unit still enabled (disabled only on purge)" test -L "$wants"
check "dpkg -P" dpkg -P posagent
check "purge: /etc/posagent gone" test ! -e /etc/posagent
check "purge: /var/lib/posagent gone" test ! -e /var/lib/posagent
check "purge: dpkg-statoverride gone" sh -c '! dpkg-statoverride --list /etc/posagent/posagent.ini'
check "purge: unit no longer enabled" test ! -e "$wants"
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
  cp "$w/posagent.deb" "$w/posagent-next.deb" "$w/inroot.sh" "$w/root/"
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
