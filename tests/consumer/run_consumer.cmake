# SPDX-License-Identifier: Apache-2.0
# Driver of the consumer.* CTest tests (registered in tests/extra.cmake):
#   cmake -DMODE=install -DTESSERA_BUILD_DIR=<build> -DPREFIX=<dir> -P run_consumer.cmake
#       installs the configured tessera build into a fresh PREFIX;
#   cmake -DMODE=find_package|add_subdirectory -DTESSERA_SOURCE_DIR=<src> -DWORK_DIR=<dir>
#         -DCACHE_FILE=<initial cache> -DGENERATOR=<name> [-DPREFIX=<dir>] -P run_consumer.cmake
#       configures, builds and runs tests/consumer in a fresh WORK_DIR and expects "OK".
# CACHE_FILE (cmake -C) carries the parent build's compiler, build type and tessera options.

function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "consumer: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer: failed (exit ${rc}): ${shown}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "install")
  file(REMOVE_RECURSE ${PREFIX})
  run(${CMAKE_COMMAND} --install ${TESSERA_BUILD_DIR} --prefix ${PREFIX})
  return()
endif()

set(source_dir ${CMAKE_CURRENT_LIST_DIR})
set(args -S ${source_dir} -B ${WORK_DIR} -G ${GENERATOR} -C ${CACHE_FILE}
         -DTESSERA_CONSUMER_MODE=${MODE} -DTESSERA_CONSUMER_WERROR=ON)
if(MODE STREQUAL "find_package")
  # Only the fresh install may satisfy find_package, never a tessera installed on the system.
  list(APPEND args -DCMAKE_PREFIX_PATH=${PREFIX} -Dtessera_ROOT=${PREFIX} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND args -DTESSERA_SOURCE_DIR=${TESSERA_SOURCE_DIR})
else()
  message(FATAL_ERROR "run_consumer.cmake: MODE must be install, find_package or add_subdirectory")
endif()

file(REMOVE_RECURSE ${WORK_DIR})
run(${CMAKE_COMMAND} ${args})
if(MODE STREQUAL "find_package" AND NOT run_output MATCHES "from ${PREFIX}/")
  message(FATAL_ERROR "consumer: find_package found a tessera outside ${PREFIX}")
endif()
run(${CMAKE_COMMAND} --build ${WORK_DIR})
run(${WORK_DIR}/consumer)
if(NOT run_output MATCHES "^OK")
  message(FATAL_ERROR "consumer: the program did not print OK")
endif()
