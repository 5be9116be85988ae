# Cross build for 64-bit ARM Linux (aarch64) with Debian's cross compiler
# and Debian multiarch libraries:
#   bash .ci/cross arm64        (crossbuild-essential-arm64, qemu-user, libuv1-dev:arm64, ...)
#   cmake --preset aarch64 && cmake --build --preset aarch64 && ctest --preset aarch64
# Tests run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR).
set(POS_TRIPLET aarch64-linux-gnu)
set(POS_QEMU qemu-aarch64)
set(POS_DEBIAN_ARCH arm64)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-multiarch.cmake)
