# Shared part of the Debian cross toolchain files. The including file sets
#   POS_TRIPLET      GNU triplet of Debian's cross compiler (aarch64-linux-gnu)
#   POS_QEMU         qemu user-mode emulator for the tests (qemu-aarch64)
#   POS_DEBIAN_ARCH  Debian architecture, for the .deb (arm64)
#   CMAKE_SYSTEM_PROCESSOR
#
# Libraries come from Debian multiarch -dev packages (libuv1-dev:arm64 ...):
# their headers are in /usr/include, their libraries and .pc files in
# /usr/lib/<triplet>. There is no separate sysroot; Debian's cross gcc
# already searches /usr/<triplet> (its libc) and the multiarch directories.
# For a board SDK with a real sysroot, see README.md, "Cross builds and
# boards".
set(CMAKE_SYSTEM_NAME Linux)

set(CMAKE_C_COMPILER ${POS_TRIPLET}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${POS_TRIPLET})

# pkg-config sees only the target's .pc files, never the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${POS_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Programs (redis-server, valgrind, strip...) are the build machine's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# ctest runs target binaries through qemu user-mode emulation (no
# binfmt_misc needed); -L is where the target's dynamic loader is looked for.
# With Debian multiarch that must be "/": the loader of libc6:<arch>
# (/lib/ld-linux-*.so.*) matches the libc.so.6 that the multiarch libraries
# bring (/lib/<triplet>). "-L /usr/<triplet>" would pair the cross
# toolchain's loader (libc6-<arch>-cross, another glibc build) with that
# libc.so.6: most programs run, but a dynamically linked child hangs right
# after fork() (seen with 2.36-8cross1 against 2.36-9+deb12u14), which
# every integration test does. Set POS_QEMU_PREFIX to a board SDK's sysroot.
set(POS_QEMU_PREFIX "/" CACHE PATH "qemu-user -L prefix: where the target's loader and libc are")
set(CMAKE_CROSSCOMPILING_EMULATOR ${POS_QEMU} -L ${POS_QEMU_PREFIX})

# Compile-only check (the armhf-compile preset), for when the target's
# libraries cannot be installed: the library headers used are the build
# machine's (those of libuv, hiredis, inih, cJSON, cmocka, mbedTLS, LMDB are
# the same for every architecture), every file is compiled for the target
# with the project's flags and -Werror, and "linking" is a partial link
# (ld -r) of the objects alone, so no target library is needed. Nothing it
# builds can run.
# (try_compile projects read this file too, and the environment is the
# process's: they must make the same choice.)
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES POS_CROSS_COMPILE_ONLY)
if(POS_CROSS_COMPILE_ONLY)
  execute_process(COMMAND dpkg-architecture -qDEB_BUILD_MULTIARCH
                  OUTPUT_VARIABLE _pos_build_multiarch OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET)
  if(_pos_build_multiarch STREQUAL "")
    set(_pos_build_multiarch x86_64-linux-gnu)
  endif()
  set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${_pos_build_multiarch}/pkgconfig:/usr/share/pkgconfig")
  set(CMAKE_C_LINK_EXECUTABLE "<CMAKE_C_COMPILER> -nostdlib -r -o <TARGET> <OBJECTS>")
  set(CMAKE_CROSSCOMPILING_EMULATOR "")
endif()
