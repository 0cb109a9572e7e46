// SPDX-License-Identifier: Apache-2.0
// Backend tags and their traits. A block is a primary template specialized per tag; the tag is
// always the first template parameter of a public function and defaults to backend::cpu.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/memory_space.hpp>

// GCC 12.2 warns about intentionally undefined vectors inside its own intrinsics once xsimd's
// math functions are inlined (GCC bug 105593, fixed in GCC 12.3 and 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop
#else
#include <xsimd/xsimd.hpp>
#endif

namespace tessera::backend {

using tessera::device_space;  // core/memory_space.hpp
using tessera::host_space;

/// Plain loops, no SIMD, no threads: obviously correct, the oracle every test compares to.
struct reference {};
/// xsimd SIMD + OpenMP threads for the architecture fixed at compile time by TESSERA_SIMD_ARCH.
template <class Arch = xsimd::default_arch>
struct cpu_simd {
  using arch = Arch;
};
/// cuBLAS / cuBLASLt and tessera's own CUDA kernels (TESSERA_ENABLE_CUDA).
struct cuda {};

template <class B>
struct traits;  // one specialization per tag
template <>
struct traits<reference> {
  using space = host_space;
  static constexpr char const* name = "reference";
};
template <class A>
struct traits<cpu_simd<A>> {
  using space = host_space;
  static constexpr char const* name = "cpu";
};
template <>
struct traits<cuda> {
  using space = device_space;
  static constexpr char const* name = "cuda";
};

/// A backend tag: anything with a traits<> specialization.
template <class B>
concept tag = requires { typename traits<B>::space; };

template <tag B>
using space_t = typename traits<B>::space;

/// The SIMD backend for the compile-time architecture.
using cpu = cpu_simd<>;

template <tag B>
inline constexpr char const* name_v = traits<B>::name;

}  // namespace tessera::backend

#ifndef TESSERA_DEFAULT_BACKEND
/// Backend used by code that does not name one.
#define TESSERA_DEFAULT_BACKEND ::tessera::backend::cpu
#endif
