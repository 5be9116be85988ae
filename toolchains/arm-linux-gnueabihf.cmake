# Cross build for 32-bit ARM Linux, hard float (armhf: ARMv7-A, VFPv3-D16,
# Thumb-2) with Debian's cross compiler and Debian multiarch libraries:
#   bash .ci/cross armhf        (crossbuild-essential-armhf, qemu-user, libuv1-dev:armhf, ...)
#   cmake --preset armhf && cmake --build --preset armhf && ctest --preset armhf
# When the armhf libraries cannot be installed, the armhf-compile preset
# (POS_CROSS_COMPILE_ONLY) still compiles everything for 32 bits: see
# debian-multiarch.cmake.
set(POS_TRIPLET arm-linux-gnueabihf)
set(POS_QEMU qemu-arm)
set(POS_DEBIAN_ARCH armhf)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
include(${CMAKE_CURRENT_LIST_DIR}/debian-multiarch.cmake)
