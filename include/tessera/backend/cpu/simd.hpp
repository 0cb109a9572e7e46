// SPDX-License-Identifier: Apache-2.0
// The small xsimd layer the cpu kernels share: the batch type of the compile-time architecture,
// a compat shim for the calls that changed names after xsimd 8.1 (hadd -> reduce_add,
// bitwise_cast's template argument), and widening loads of bf16 / f16 into float batches.
#pragma once

#include <tessera/core/dtype.hpp>

#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

// GCC 12.2 warns about the intentionally undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_ps and friends) once they are inlined into a kernel: GCC bug 105593, fixed in
// 12.3 and 13. Kernel headers wrap their code in these two macros to silence exactly that.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#define TESSERA_SIMD_DIAGNOSTICS_BEGIN                              \
  _Pragma("GCC diagnostic push")                                    \
  _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")             \
  _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define TESSERA_SIMD_DIAGNOSTICS_END _Pragma("GCC diagnostic pop")
#else
#define TESSERA_SIMD_DIAGNOSTICS_BEGIN
#define TESSERA_SIMD_DIAGNOSTICS_END
#endif

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::backend::cpu_detail {

template <class Arch>
using fbatch = xsimd::batch<float, Arch>;
template <class Arch>
using ibatch = xsimd::batch<std::int32_t, Arch>;
template <class Arch>
using ubatch = xsimd::batch<std::uint32_t, Arch>;

/// Horizontal sum of a batch (xsimd 8.1: hadd; 9+: reduce_add).
template <class T, class A>
[[nodiscard]] inline T reduce_add(xsimd::batch<T, A> const& v) noexcept {
#if XSIMD_VERSION_MAJOR >= 9
  return xsimd::reduce_add(v);
#else
  return xsimd::hadd(v);
#endif
}

/// Horizontal max of a batch.
template <class T, class A>
[[nodiscard]] inline T reduce_max(xsimd::batch<T, A> const& v) noexcept {
#if XSIMD_VERSION_MAJOR >= 9
  return xsimd::reduce_max(v);
#else
  alignas(64) T tmp[xsimd::batch<T, A>::size];
  v.store_aligned(tmp);
  T m = tmp[0];
  for (std::size_t i = 1; i < xsimd::batch<T, A>::size; ++i) m = tmp[i] > m ? tmp[i] : m;
  return m;
#endif
}

/// a * b + c on every lane with one rounding where the target has FMA. xsimd 8.1's fma for its
/// AVX-512 architectures is a multiply and an add, fused only where the compiler contracts them
/// (GCC does at -O3, not always at -O1); the intrinsics here are fused at every level.
template <class A>
[[nodiscard]] inline fbatch<A> fmadd(fbatch<A> const& a, fbatch<A> const& b, fbatch<A> const& c) noexcept {
#if defined(__AVX512F__)
  if constexpr (fbatch<A>::size == 16) return _mm512_fmadd_ps(a, b, c);
#endif
#if defined(__FMA__)
  if constexpr (fbatch<A>::size == 8) return _mm256_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

/// Reinterprets the bits of a batch as another element type of the same width.
template <class To, class From, class A>
[[nodiscard]] inline xsimd::batch<To, A> bitcast(xsimd::batch<From, A> const& v) noexcept {
#if XSIMD_VERSION_MAJOR >= 9
  return xsimd::bitwise_cast<To>(v);
#else
  return xsimd::bitwise_cast<xsimd::batch<To, A>>(v);
#endif
}

/// Loads fbatch::size elements of T (float, bf16 or f16) and widens them to float (exact).
template <class A, class T>
[[nodiscard]] inline fbatch<A> load_as_float(T const* p) noexcept {
  constexpr std::size_t n = fbatch<A>::size;
  if constexpr (std::is_same_v<T, float>) {
    return fbatch<A>::load_unaligned(p);
  } else if constexpr (std::is_same_v<T, bf16>) {
#if defined(__AVX512F__)
    if constexpr (n == 16) {
      __m256i const h = _mm256_loadu_si256(reinterpret_cast<__m256i const*>(p));
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
#endif
#if defined(__AVX2__)
    if constexpr (n == 8) {
      __m128i const h = _mm_loadu_si128(reinterpret_cast<__m128i const*>(p));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
#endif
    alignas(64) std::uint32_t tmp[n];
    for (std::size_t i = 0; i < n; ++i) tmp[i] = static_cast<std::uint32_t>(p[i].bits) << 16;
    return bitcast<float>(ubatch<A>::load_aligned(tmp));
  } else {
    static_assert(std::is_same_v<T, f16>, "load_as_float: element type must be float, bf16 or f16");
#if defined(__AVX512F__)
    if constexpr (n == 16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<__m256i const*>(p)));
#endif
#if defined(__F16C__)
    if constexpr (n == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<__m128i const*>(p)));
#endif
    alignas(64) float tmp[n];
    for (std::size_t i = 0; i < n; ++i) tmp[i] = p[i].to_float();
    return fbatch<A>::load_aligned(tmp);
  }
}

/// bf16::from_float on every lane: the bf16 bit patterns (round to nearest even; NaN -> 0x7FC0),
/// one per 32-bit lane.
template <class A>
[[nodiscard]] inline ubatch<A> bf16_bits(fbatch<A> const& v) noexcept {
  auto const u = bitcast<std::uint32_t>(v);
  auto const r = (u + (((u >> 16) & ubatch<A>(1u)) + ubatch<A>(0x7FFFu))) >> 16;
  return xsimd::select((u & ubatch<A>(0x7FFFFFFFu)) > ubatch<A>(0x7F800000u), ubatch<A>(0x7FC0u), r);
}

/// Rounds a float batch to bf16 (round to nearest even; NaN -> 0x7FC0) and stores it.
template <class A>
inline void store_as_bf16(bf16* p, fbatch<A> const& v) noexcept {
  constexpr std::size_t n = fbatch<A>::size;
  auto const r = bf16_bits<A>(v);
#if defined(__AVX512F__)
  if constexpr (n == 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(__m512i(r)));
    return;
  }
#endif
  alignas(64) std::uint32_t tmp[n];
  r.store_aligned(tmp);
  for (std::size_t i = 0; i < n; ++i) p[i] = bf16::from_bits(static_cast<std::uint16_t>(tmp[i]));
}

// ---- row tails (appended for the nn element-wise / row-wise kernels) -------------------------

/// Loads the n < fbatch::size elements of T at p, widened to float; the other lanes hold `fill`
/// (0 for sums, -inf for maxima, ...). Never touches memory past p[n - 1].
template <class A, class T>
[[nodiscard]] inline fbatch<A> load_partial_as_float(T const* p, std::size_t n, float fill) noexcept {
  alignas(64) float tmp[fbatch<A>::size];
  for (std::size_t i = 0; i < fbatch<A>::size; ++i) tmp[i] = i < n ? to_float(p[i]) : fill;
  return fbatch<A>::load_aligned(tmp);
}

/// Stores the first n < fbatch::size lanes of v to p; p[n] and beyond are not written.
template <class A>
inline void store_partial(float* p, fbatch<A> const& v, std::size_t n) noexcept {
  alignas(64) float tmp[fbatch<A>::size];
  v.store_aligned(tmp);
  for (std::size_t i = 0; i < n; ++i) p[i] = tmp[i];
}

}  // namespace tessera::backend::cpu_detail

TESSERA_SIMD_DIAGNOSTICS_END
