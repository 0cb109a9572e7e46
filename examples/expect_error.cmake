# SPDX-License-Identifier: Apache-2.0
# Runs an example that must refuse its input: exit status 1 (not 0, not a crash), and the refusal
# as one line, the last on stderr, "<program>: <reason>" with the reason matching EXPECT (what the
# program printed before it, such as the model it loaded, may precede it).
#   cmake -DEXPECT=<regex> -DCMD="<program>|<arg>|..." -P expect_error.cmake
string(REPLACE "|" ";" cmd "${CMD}")
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(STRIP "${err}" err)
message("exit ${rc}, stderr: ${err}")
if(NOT rc STREQUAL "1")
  message(FATAL_ERROR "expected exit status 1, got '${rc}'")
endif()
string(REGEX REPLACE "^.*\n" "" last_line "${err}")
if(NOT last_line MATCHES "^[a-z_]+: .*${EXPECT}")
  message(FATAL_ERROR "the last line of stderr is not '<program>: ...${EXPECT}...'")
endif()
