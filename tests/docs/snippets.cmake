# SPDX-License-Identifier: Apache-2.0
# Documentation snippets are compiled (style guide section 7). At configure time every fenced
# ```cpp block of README.md and docs/*.md is written to its own .cpp file in the build tree:
#   - a block is one complete translation unit (it has its own #include lines);
#   - a block that defines `int main(` is linked and run by CTest as docs.<file>.<line>;
#     other blocks are compiled into the object library tessera_docs_snippets;
#   - the first line of a block may be a marker:
#       // docs: no-run        compile and link, but do not run (needs files, a GPU, ...)
#       // docs: no-compile    not compiled at all (illustration only; say why on the same line)
#   - the fence must start at column 0 and read exactly ```cpp.
# All of it is part of ALL, so a snippet that does not compile fails the build; compiler messages
# point at the Markdown file and line (#line). Editing a Markdown file re-runs the configure step.

# The Markdown is scanned with string(FIND)/string(SUBSTRING) on whole strings, never as CMake
# lists: C++ code is full of ';' and '[', which list operations would split or mangle.
function(tessera_add_doc_snippets)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/docs_snippets)
  file(MAKE_DIRECTORY ${out_dir})
  file(GLOB doc_files CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
  list(PREPEND doc_files ${PROJECT_SOURCE_DIR}/README.md)
  set(objects "")
  set(generated "")
  set(n_run 0)
  foreach(md IN LISTS doc_files)
    if(NOT EXISTS ${md})
      continue()
    endif()
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${md})
    get_filename_component(stem ${md} NAME_WE)
    file(READ ${md} rest)
    set(rest "\n${rest}")   # so that a fence on the first line is found like any other
    set(line 0)             # number of newlines consumed so far, minus the one added above
    while(TRUE)
      string(FIND "${rest}" "\n```cpp\n" open)
      if(open EQUAL -1)
        break()
      endif()
      # Count the lines before the fence.
      string(SUBSTRING "${rest}" 0 ${open} before)
      string(REGEX MATCHALL "\n" nl "${before}")
      list(LENGTH nl n)
      math(EXPR fence_line "${line} + ${n} + 1")   # 1-based line of the ```cpp fence
      math(EXPR start "${open} + 8")                # first character of the code
      string(SUBSTRING "${rest}" ${start} -1 rest)
      string(FIND "${rest}" "\n```" close)
      if(close EQUAL -1)
        message(FATAL_ERROR "${md}:${fence_line}: ```cpp block is never closed")
      endif()
      string(SUBSTRING "${rest}" 0 ${close} code)
      string(SUBSTRING "${rest}" ${close} -1 rest)
      string(REGEX MATCHALL "\n" nl "${code}")
      list(LENGTH nl n)
      math(EXPR line "${fence_line} + ${n}")        # lines consumed up to the closing fence's "\n"

      if(code MATCHES "^// docs: no-compile")
        continue()
      endif()
      set(name ${stem}.${fence_line})
      set(src ${out_dir}/${stem}_${fence_line}.cpp)
      math(EXPR code_line "${fence_line} + 1")
      tessera_write_if_changed(${src} "#line ${code_line} \"${md}\"\n${code}\n")
      list(APPEND generated ${src})
      if(code MATCHES "int main\\(")
        string(MAKE_C_IDENTIFIER "tessera_docs_${stem}_${fence_line}" target)
        add_executable(${target} ${src})
        target_link_libraries(${target} PRIVATE tessera::tessera)
        tessera_compile_check_defaults(${target})
        if(NOT code MATCHES "^// docs: no-run")
          add_test(NAME docs.${name} COMMAND ${target} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
          set_tests_properties(docs.${name} PROPERTIES LABELS "docs")
          math(EXPR n_run "${n_run} + 1")
        endif()
      else()
        list(APPEND objects ${src})
      endif()
    endwhile()
  endforeach()
  if(objects)
    add_library(tessera_docs_snippets OBJECT ${objects})
    target_link_libraries(tessera_docs_snippets PRIVATE tessera::tessera)
    tessera_compile_check_defaults(tessera_docs_snippets)
  endif()
  # Drop files of snippets that were removed or moved.
  file(GLOB stale ${out_dir}/*.cpp)
  if(generated)
    list(REMOVE_ITEM stale ${generated})
  endif()
  if(stale)
    file(REMOVE ${stale})
  endif()
  list(LENGTH generated n_all)
  message(STATUS "tessera: ${n_all} documentation snippets compiled, ${n_run} of them run as tests")
endfunction()
