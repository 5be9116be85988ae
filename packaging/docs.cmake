# Run at build time (cmake -P): the compressed documents the package
# installs.
#   BIN        the built posagent-tools (what posagent --print-config-man runs)
#   EMULATOR   how to run it on this machine ("|"-separated; empty: natively)
#   SRC, OUT   source directory, output directory (OUT/version's changelog too)
# Writes OUT/posagent.ini.5.gz (posagent --print-config-man),
# OUT/posagent.8.gz (packaging/man/posagent.8) and OUT/changelog.Debian.gz
# (packaging/version.cmake's). gzip -9n: no name or time in the header, so
# the same input gives the same bytes.
cmake_minimum_required(VERSION 3.18)
string(REPLACE "|" ";" emulator "${EMULATOR}")
file(MAKE_DIRECTORY ${OUT})

function(pos_gzip in out)
  execute_process(COMMAND gzip -9n -c ${in} OUTPUT_FILE ${out}.tmp RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip ${in} failed")
  endif()
  file(RENAME ${out}.tmp ${out})
endfunction()

execute_process(COMMAND ${emulator} ${BIN} --print-config-man
                OUTPUT_FILE ${OUT}/posagent.ini.5 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BIN} --print-config-man failed (${rc})")
endif()
pos_gzip(${OUT}/posagent.ini.5 ${OUT}/posagent.ini.5.gz)
pos_gzip(${SRC}/packaging/man/posagent.8 ${OUT}/posagent.8.gz)
pos_gzip(${OUT}/changelog.Debian ${OUT}/changelog.Debian.gz)
