# SPDX-License-Identifier: Apache-2.0
# cmake -DBUILD_DIR=... -DTARGET=... -DCONFIG=... -DEXPECT=<regex> -P run_compile_fail.cmake
# Builds TARGET and succeeds only when the build fails with output matching EXPECT.
foreach(v IN ITEMS BUILD_DIR TARGET EXPECT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_compile_fail.cmake: -D${v}=... is required")
  endif()
endforeach()
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET} ${config_args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but it must not: the code under "
                      "#ifndef TESSERA_COMPILE_FAIL_CONTROL is accepted.\n${out}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "${TARGET} failed to compile, but not with the expected diagnostic "
                      "/${EXPECT}/:\n${out}")
endif()
message(STATUS "${TARGET} is rejected as expected (/${EXPECT}/)")
