# SPDX-License-Identifier: Apache-2.0
# Compiler flags for TESSERA_SIMD_ARCH and the warning/sanitizer defaults of tessera's own targets.

# tessera_simd_flags(<flags_var> <defs_var>): flags that select the SIMD target. xsimd picks its
# default_arch from the same flags, so backend::cpu follows TESSERA_SIMD_ARCH automatically.
function(tessera_simd_flags flags_var defs_var)
  set(arch "${TESSERA_SIMD_ARCH}")
  set(flags "")
  if(arch STREQUAL "native")
    set(flags -march=native)
  elseif(arch STREQUAL "x86-64-v3" OR arch STREQUAL "avx2")
    set(flags -march=x86-64-v3)
  elseif(arch STREQUAL "x86-64-v4")
    set(flags -march=x86-64-v4)
  elseif(arch STREQUAL "avx512")
    # x86-64-v4 plus the AVX-512 BF16 dot product (Cooper Lake, Sapphire Rapids, Zen 4 and later).
    set(flags -march=x86-64-v4 -mavx512bf16)
  elseif(arch STREQUAL "none")
    set(flags "")   # the compiler's baseline (SSE2 on x86-64): every fallback path is exercised
  else()
    message(FATAL_ERROR "TESSERA_SIMD_ARCH='${arch}' is not one of x86-64-v3, x86-64-v4, avx2, avx512, native, none")
  endif()
  set(${flags_var} ${flags} PARENT_SCOPE)
  set(${defs_var} TESSERA_SIMD_ARCH_NAME="${arch}" PARENT_SCOPE)
endfunction()

# tessera_target_defaults(<target>): warnings, -Werror and sanitizers for tessera's own
# tests, benchmarks and examples (never forced on consumers of the INTERFACE target).
# Targets that exist to prove that code compiles (the header check, the ODR check, documentation
# snippets) build at -O0 whatever the build type: they are bound by parsing and instantiation, the
# optimizer only adds time (the code they run is trivial), and the same headers are compiled with
# the build's optimization in the tests.
function(tessera_compile_check_defaults target)
  tessera_target_defaults(${target})
  target_compile_options(${target} PRIVATE -O0)
endfunction()

# Examples and benchmarks: the defaults, plus TESSERA_SMOKE_FLAGS (CI builds them at -O1: it only
# smoke-runs them, and their numbers are measured in builds of their own); examples take
# TESSERA_EXAMPLE_FLAGS instead where it is set (CI: -O0, their tests run tiny models).
function(tessera_program_defaults target)
  tessera_target_defaults(${target})
  set(extra "${TESSERA_SMOKE_FLAGS}")
  if(TESSERA_EXAMPLE_FLAGS AND ARGV1 STREQUAL "EXAMPLE")
    set(extra "${TESSERA_EXAMPLE_FLAGS}")
  endif()
  if(extra)
    separate_arguments(flags UNIX_COMMAND "${extra}")
    target_compile_options(${target} PRIVATE ${flags})
  endif()
endfunction()

function(tessera_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-psabi)
  if(TESSERA_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(TESSERA_SANITIZE)
    string(REPLACE ";" "," san "${TESSERA_SANITIZE}")
    target_compile_options(${target} PRIVATE -fsanitize=${san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${san})
  endif()
endfunction()
