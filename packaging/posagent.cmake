# Install layout and the Debian package (CPack DEB).
#
#   cmake --install build/release            (prefix /usr unless one is given)
#   cd build/release && cpack -G DEB         -> posagent_<version>-<revision>_amd64.deb
#   cd build/aarch64 && cpack -G DEB         -> posagent_<version>-<revision>_arm64.deb
#
# Version and revision are those of the build (packaging/version.cmake:
# packaging/debian/changelog, and git between releases), read by cpack from
# what the last build generated: build first.
#
# Layout (prefix /usr, as packaged):
#   /usr/bin/posagent                         (agent/CMakeLists.txt installs it)
#   /usr/lib/posagent/posagent-tools          the commands posagent executes (docs, acl,
#                                             store, the CLI; agent/main_tools.c)
#   /etc/posagent/posagent.ini                conffile, from conf/posagent.ini
#   /lib/systemd/system/posagent.service      from platform/systemd/
#   /var/lib/posagent                         state directory (owner set by postinst)
#   /usr/share/doc/posagent/                  README, the design notes, copyright,
#                                             changelog.Debian.gz
#   /usr/share/man/man8/posagent.8.gz         packaging/man/posagent.8
#   /usr/share/man/man5/posagent.ini.5.gz     posagent --print-config-man, at build time
#   /usr/share/bash-completion/completions/posagent
#   /usr/share/lintian/overrides/posagent     each override says why
# Stage an install elsewhere with DESTDIR (DESTDIR=/tmp/root cmake --install
# build/release).

if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX "/usr" CACHE PATH "Install prefix" FORCE)
endif()
include(GNUInstallDirs)

# /etc, /var and the unit directory are chosen when installing, from the
# prefix in force then (cmake --install --prefix, or /usr when cpack builds
# the .deb), not from the one cached at configure time: the package's
# layout must not depend on how a build tree was first configured.
# Prefix /usr: /etc, /var, /lib/systemd/system; any other prefix P:
# P/etc, P/var, P/lib/systemd/system. DESTDIR is honoured by file(INSTALL).
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/packaging/state/posagent)
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(_pos_etc /etc)
    set(_pos_var /var)
    set(_pos_unit /lib/systemd/system)
  else()
    set(_pos_etc \"\${CMAKE_INSTALL_PREFIX}/etc\")
    set(_pos_var \"\${CMAKE_INSTALL_PREFIX}/var\")
    set(_pos_unit \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
  endif()
  file(INSTALL DESTINATION \"\${_pos_etc}/posagent\" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
       FILES \"${CMAKE_SOURCE_DIR}/conf/posagent.ini\")
  file(INSTALL DESTINATION \"\${_pos_unit}\" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES \"${CMAKE_SOURCE_DIR}/platform/systemd/posagent.service\")
  file(INSTALL DESTINATION \"\${_pos_var}/lib\" TYPE DIRECTORY
       DIR_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
       FILES \"${CMAKE_BINARY_DIR}/packaging/state/posagent\")
")
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
file(GLOB _pos_docs ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${_pos_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/packaging/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/packaging/bash-completion/posagent
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/debian/posagent.lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME posagent)

# Generated at every build (packaging/docs.cmake): posagent.ini(5) from the
# schema, by posagent-tools just built (which posagent --print-config-man
# runs; directly here, as an emulator may not run what a binary executes), and
# the compressed manual pages and changelog. Not in the compile-only cross
# check, whose "binary" cannot run.
if(NOT POS_CROSS_COMPILE_ONLY)
  string(REPLACE ";" "|" _pos_emulator "${CMAKE_CROSSCOMPILING_EMULATOR}")
  set(_pos_docs_out ${POS_GENERATED}/posagent.ini.5.gz ${POS_GENERATED}/posagent.8.gz
      ${POS_GENERATED}/changelog.Debian.gz)
  add_custom_command(OUTPUT ${_pos_docs_out}
    COMMAND ${CMAKE_COMMAND} -DBIN=$<TARGET_FILE:posagent-tools> -DEMULATOR=${_pos_emulator}
            -DSRC=${CMAKE_SOURCE_DIR} -DOUT=${POS_GENERATED}
            -P ${CMAKE_SOURCE_DIR}/packaging/docs.cmake
    DEPENDS posagent-tools ${CMAKE_SOURCE_DIR}/packaging/man/posagent.8
            ${CMAKE_SOURCE_DIR}/packaging/docs.cmake ${POS_GENERATED}/changelog.Debian
    COMMENT "Manual pages and changelog for the package"
    VERBATIM)
  add_custom_target(pos_docs ALL DEPENDS ${_pos_docs_out})
  add_dependencies(pos_docs pos_version)
  install(FILES ${POS_GENERATED}/changelog.Debian.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
  install(FILES ${POS_GENERATED}/posagent.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
  install(FILES ${POS_GENERATED}/posagent.ini.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
endif()

# ---- CPack: one .deb for the architecture being built ----
# The Debian architecture comes from the toolchain file (POS_DEBIAN_ARCH),
# else from the target processor; dpkg's own would be the build machine's.
if(NOT POS_DEBIAN_ARCH)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(POS_DEBIAN_ARCH amd64)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
    set(POS_DEBIAN_ARCH arm64)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
    set(POS_DEBIAN_ARCH armhf)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(i.86)$")
    set(POS_DEBIAN_ARCH i386)
  else()
    set(POS_DEBIAN_ARCH ${CMAKE_SYSTEM_PROCESSOR})
  endif()
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME posagent)
# Replaced at packaging time by the built version (posagent-cpack.cmake.in).
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "posagent")
# The maintainer of the latest changelog entry.
set(CPACK_PACKAGE_CONTACT "${POS_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "point-of-sale terminal agent")
# Lines of at most 80 columns (lintian): cpack indents each by one space.
set(CPACK_PACKAGE_DESCRIPTION
    "Runs on each till of the cloud POS system, whose state lives in Redis:
the terminal's heartbeat and status, the payment, inventory and alert
channels, and the customer display, receipt printer and card pinpad
(ESC/POS, Epson and CD5220 displays, Ingenico Telium pinpads) through a
hardware abstraction layer.

A local store keeps cached products, inventory, users and sessions, an
outbox of what is to be delivered and a journal of payments, so that the
till keeps working while Redis cannot be reached. The POS application
talks to the agent through a local socket in the Redis protocol.

Runs as its own user under a hardened systemd unit; TLS to Redis with
mbedTLS; signed payment messages.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${POS_DEBIAN_REVISION})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${POS_DEBIAN_ARCH})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps, which reads the binary's
# NEEDED entries and the libraries' symbols files (libuv1, libhiredis0.14,
# libinih1, libcjson1, libc6, with the right minimum versions). For a cross
# build it is told the host architecture (see posagent-cpack.cmake.in), so
# it uses the cross objdump and the multiarch :arch packages. adduser is
# what postinst needs.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)

set(POS_DEB_HOST_ARCH "")
if(CMAKE_CROSSCOMPILING)
  set(POS_DEB_HOST_ARCH ${POS_DEBIAN_ARCH})
endif()
set(POS_VERSION_FILE ${POS_GENERATED}/version.cmake)
configure_file(${CMAKE_SOURCE_DIR}/packaging/posagent-cpack.cmake.in
               ${CMAKE_BINARY_DIR}/posagent-cpack.cmake @ONLY)
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_BINARY_DIR}/posagent-cpack.cmake)

include(CPack)
