# The version, from one place: the latest entry of packaging/debian/changelog
# ("posagent (0.2.0-1) UNRELEASED; ..."): upstream version 0.2.0, Debian
# revision 1. The changelog is what a tarball carries and what the package
# must ship anyway; a git tag can be missing from a clone, the changelog
# cannot. Git adds what a changelog cannot know:
#
#   HEAD is tag v<upstream>, clean           <upstream>                  a release
#   tag v<upstream> in HEAD's history, or
#     the changelog entry is released        <upstream>+git<N>.<commit>  after it
#   otherwise (the entry is UNRELEASED)      <upstream>~git<N>.<commit>  before it
#   no git checkout (a tarball)              <upstream>
#
# N is the number of commits in HEAD's history (git rev-list --count), so a
# later commit gets a higher version and apt sees an upgrade; "~" sorts
# before the release itself, "+" after it. (A shallow clone counts only
# what it has: CI must fetch the whole history to build packages that
# compare.) The build id is the commit (12 hex digits, "-dirty" with
# uncommitted changes), or POS_BUILD_ID (default "none") outside git.
#
# Two uses:
#  - include()d at configure time (POS_VERSION_CONFIGURE): sets
#    POS_UPSTREAM_VERSION, POS_DEBIAN_REVISION and POS_MAINTAINER from the
#    changelog only;
#  - run at every build (cmake -P, SRC, OUT, POS_BUILD_ID): writes, each
#    only when its content changes so that nothing rebuilds needlessly,
#      OUT/version.c            pos_version[] and pos_build_id[]
#      OUT/version.cmake        the same for cpack (POS_VERSION, POS_BUILD_ID)
#      OUT/changelog.Debian     the changelog as installed, with an entry for
#                               a snapshot version on top

if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.18) # policies for cmake -P; include() has the project's
endif()

# Parses the changelog's first entry into <prefix>_UPSTREAM, _REVISION,
# _DIST, _MAINTAINER.
function(pos_changelog_head file prefix)
  file(STRINGS "${file}" _lines)
  list(GET _lines 0 _head)
  if(NOT _head MATCHES "^posagent \\(([0-9][0-9A-Za-z.+~]*)-([0-9A-Za-z.+~]+)\\) ([A-Za-z0-9-]+);")
    message(FATAL_ERROR "${file}: first line is not 'posagent (VERSION-REVISION) DIST; ...'")
  endif()
  set(${prefix}_UPSTREAM ${CMAKE_MATCH_1} PARENT_SCOPE)
  set(${prefix}_REVISION ${CMAKE_MATCH_2} PARENT_SCOPE)
  set(${prefix}_DIST ${CMAKE_MATCH_3} PARENT_SCOPE)
  foreach(_l IN LISTS _lines)
    if(_l MATCHES "^ -- (.+ <[^>]+>)  ")
      set(${prefix}_MAINTAINER "${CMAKE_MATCH_1}" PARENT_SCOPE)
      break()
    endif()
  endforeach()
endfunction()

# Writes content to file unless it already holds exactly that.
function(pos_write_if_changed file content)
  if(EXISTS "${file}")
    file(READ "${file}" _old)
    if(_old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${file}" "${content}")
endfunction()

if(POS_VERSION_CONFIGURE)
  pos_changelog_head(${CMAKE_CURRENT_LIST_DIR}/debian/changelog _pos_cl)
  set(POS_UPSTREAM_VERSION ${_pos_cl_UPSTREAM})
  set(POS_DEBIAN_REVISION ${_pos_cl_REVISION})
  set(POS_MAINTAINER "${_pos_cl_MAINTAINER}")
  return()
endif()

# ---- build time (cmake -P) ----
if(NOT SRC OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DSRC=dir -DOUT=dir [-DPOS_BUILD_ID=id] -P version.cmake")
endif()
pos_changelog_head(${SRC}/packaging/debian/changelog cl)
set(version ${cl_UPSTREAM})
if(POS_BUILD_ID)
  set(build ${POS_BUILD_ID})
else()
  set(build none)
endif()
set(snapshot_date "")

find_program(GIT git)
set(top "")
if(GIT)
  execute_process(COMMAND ${GIT} -C ${SRC} rev-parse --show-toplevel
                  OUTPUT_VARIABLE top OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
# Only this project's own checkout: a tarball unpacked inside some other
# repository must not take that one's commits.
if(top)
  get_filename_component(top "${top}" REALPATH)
  get_filename_component(src_real "${SRC}" REALPATH)
  if(NOT top STREQUAL src_real)
    set(top "")
  endif()
endif()
if(top)
  execute_process(COMMAND ${GIT} -C ${SRC} rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE hash OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${GIT} -C ${SRC} rev-list --count HEAD
                  OUTPUT_VARIABLE count OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${GIT} -C ${SRC} update-index -q --refresh OUTPUT_QUIET ERROR_QUIET)
  execute_process(COMMAND ${GIT} -C ${SRC} diff-index --quiet HEAD --
                  RESULT_VARIABLE dirty OUTPUT_QUIET ERROR_QUIET)
  execute_process(COMMAND ${GIT} -C ${SRC} describe --tags --exact-match --match v${cl_UPSTREAM}
                          HEAD
                  RESULT_VARIABLE not_release OUTPUT_QUIET ERROR_QUIET)
  execute_process(COMMAND ${GIT} -C ${SRC} describe --tags --match v${cl_UPSTREAM} HEAD
                  RESULT_VARIABLE not_released_yet OUTPUT_QUIET ERROR_QUIET)
  set(build ${hash})
  if(NOT dirty EQUAL 0)
    string(APPEND build "-dirty")
  endif()
  if(NOT not_release EQUAL 0 OR NOT dirty EQUAL 0)
    if(cl_DIST STREQUAL "UNRELEASED" AND NOT not_released_yet EQUAL 0)
      set(version "${cl_UPSTREAM}~git${count}.${hash}")
    else()
      set(version "${cl_UPSTREAM}+git${count}.${hash}")
    endif()
    execute_process(COMMAND ${GIT} -C ${SRC} log -1 --format=%cd
                            "--date=format:%a, %d %b %Y %H:%M:%S %z" HEAD
                    OUTPUT_VARIABLE snapshot_date OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
endif()

file(MAKE_DIRECTORY ${OUT})
pos_write_if_changed(${OUT}/version.c
"/* Generated by packaging/version.cmake at build time; do not edit. */
#include \"platform/version.h\"

const char pos_version[] = \"${version}\";
const char pos_build_id[] = \"${build}\";
")
pos_write_if_changed(${OUT}/version.cmake
"set(POS_VERSION \"${version}\")
set(POS_DEBIAN_REVISION \"${cl_REVISION}\")
set(POS_BUILD_ID \"${build}\")
")
file(READ ${SRC}/packaging/debian/changelog changelog)
if(snapshot_date)
  # The installed changelog names the package's own version.
  set(changelog "posagent (${version}-${cl_REVISION}) ${cl_DIST}; urgency=medium

  * Snapshot of commit ${hash} (build ${build}).

 -- ${cl_MAINTAINER}  ${snapshot_date}

${changelog}")
endif()
pos_write_if_changed(${OUT}/changelog.Debian "${changelog}")
