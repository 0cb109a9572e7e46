# SPDX-License-Identifier: Apache-2.0
# The layer check (docs/architecture.md): every header under include/tessera/ may include only
# headers of its own area or of a lower floor, and the compute floors (vision/, lm/) nothing from
# io/ or model/. Run as a CTest test:
#   cmake -DROOT=<include dir> [-DPLANT="from.hpp:to.hpp"] -P cmake/check_layers.cmake
# PLANT adds one include edge that is not in the files (the test that proves the check can fail
# plants a back-include this way). Exits with an error listing every offending include.

cmake_minimum_required(VERSION 3.25)

if(NOT ROOT)
  message(FATAL_ERROR "check_layers: pass -DROOT=<the include directory>")
endif()

# Floors, bottom up. Areas on one floor may not include each other.
set(floor_core 0)
set(floor_quant 1)
set(floor_backend 2)
set(floor_nn 3)
set(floor_pack 3)
set(floor_posemb 4)
set(floor_attn 4)
set(floor_pool 4)
set(floor_io 5)
set(floor_text 6)
set(floor_vision 7)
set(floor_lm 7)
set(floor_model 8)
set(floor_tessera.hpp 9)
# Areas that must not include another area even where the floors would allow it.
set(deny_vision io text model)
set(deny_lm io model)

# area_of(<path relative to ROOT, e.g. tessera/nn/linear.hpp> <out var>)
function(area_of path out)
  string(REGEX REPLACE "^tessera/([^/]+).*$" "\\1" area "${path}")
  set(${out} "${area}" PARENT_SCOPE)
endfunction()

get_filename_component(ROOT "${ROOT}" ABSOLUTE)
file(GLOB_RECURSE headers RELATIVE ${ROOT} ${ROOT}/tessera/*.hpp ${ROOT}/tessera/*.cuh)
set(edges "")
foreach(h IN LISTS headers)
  file(STRINGS ${ROOT}/${h} lines REGEX "^[ \t]*#[ \t]*include[ \t]*<tessera/")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*<([^>]+)>.*$" "\\1" target "${line}")
    list(APPEND edges "${h}:${target}")
  endforeach()
endforeach()
if(PLANT)
  list(APPEND edges "${PLANT}")
endif()

set(bad "")
set(n_edges 0)
foreach(edge IN LISTS edges)
  math(EXPR n_edges "${n_edges} + 1")
  string(REPLACE ":" ";" pair "${edge}")
  list(GET pair 0 from)
  list(GET pair 1 to)
  area_of("${from}" a)
  area_of("${to}" b)
  if(NOT DEFINED floor_${a} OR NOT DEFINED floor_${b})
    list(APPEND bad "${from} includes ${to}: an area without a floor (add it to cmake/check_layers.cmake and docs/architecture.md)")
    continue()
  endif()
  if(a STREQUAL b)
    continue()
  endif()
  if(NOT floor_${b} LESS floor_${a})
    list(APPEND bad "${from} (floor ${floor_${a}}, ${a}/) includes ${to} (floor ${floor_${b}}, ${b}/): not a lower floor")
  elseif(b IN_LIST deny_${a})
    list(APPEND bad "${from} includes ${to}: ${a}/ may not include ${b}/")
  endif()
endforeach()

list(LENGTH headers n_headers)
if(bad)
  list(LENGTH bad n_bad)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "check_layers: ${n_bad} include(s) against the floors:\n  ${text}")
endif()
message(STATUS "check_layers: ${n_headers} headers, ${n_edges} includes, all downwards")
