# SPDX-License-Identifier: Apache-2.0
# Compile-fail tests (style guide section 8): code that must NOT compile, checked by CTest.
#
# Every tests/<area>/compile_fail/<name>.cpp is one test, compile_fail.<area>.<name>:
#   - the file names the diagnostic it expects in a line `// expect-error: <CMake regex>`;
#   - the lines that must be rejected sit under `#ifndef TESSERA_COMPILE_FAIL_CONTROL`, with a
#     valid alternative in the #else branch;
#   - the control build (TESSERA_COMPILE_FAIL_CONTROL defined) is part of ALL, so the rest of the
#     file is known to compile and the failure comes from the marked lines only;
#   - the test builds the target without the define (excluded from ALL) and passes only when
#     that build fails with output matching the expected regex (cmake/run_compile_fail.cmake).

function(tessera_add_compile_fail_tests tests_dir)
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${tests_dir}/*/compile_fail/*.cpp)
  list(SORT sources)
  foreach(src IN LISTS sources)
    file(RELATIVE_PATH rel ${tests_dir} ${src})                 # nn/compile_fail/linear_rank.cpp
    string(REGEX REPLACE "/compile_fail/" "." name "${rel}")     # nn.linear_rank.cpp
    string(REGEX REPLACE "\\.cpp$" "" name "${name}")
    string(MAKE_C_IDENTIFIER "compile_fail_${name}" target)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})   # re-read expect-error on edits
    file(STRINGS ${src} expect_lines REGEX "^// expect-error: ")
    if(NOT expect_lines)
      message(FATAL_ERROR "${src}: a compile-fail test needs a line `// expect-error: <regex>`")
    endif()
    list(GET expect_lines 0 expect)
    string(REGEX REPLACE "^// expect-error: " "" expect "${expect}")

    add_library(${target}_control OBJECT ${src})
    add_library(${target} OBJECT EXCLUDE_FROM_ALL ${src})
    target_compile_definitions(${target}_control PRIVATE TESSERA_COMPILE_FAIL_CONTROL=1)
    foreach(t IN ITEMS ${target} ${target}_control)
      target_link_libraries(${t} PRIVATE tessera::tessera)
      tessera_target_defaults(${t})
    endforeach()
    add_test(NAME compile_fail.${name}
             COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR} -DTARGET=${target}
                     -DCONFIG=$<CONFIG> "-DEXPECT=${expect}"
                     -P ${PROJECT_SOURCE_DIR}/cmake/run_compile_fail.cmake)
    # Builds in the shared build tree: one at a time.
    set_tests_properties(compile_fail.${name} PROPERTIES LABELS "compile_fail" RESOURCE_LOCK tessera_build_tree)
  endforeach()
endfunction()
