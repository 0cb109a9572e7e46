// SPDX-License-Identifier: Apache-2.0
// bf16 / f16 conversions: hand-worked edge values, and (where the CPU has them) exhaustive
// agreement with the hardware conversions (F16C vcvtps2ph, AVX512-BF16 vcvtneps2bf16).
#include <tessera/core/dtype.hpp>

#include <catch2/catch_test_macros.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using tessera::bf16;
using tessera::f16;

namespace {
std::uint16_t bf(float f) { return bf16::from_float(f).bits; }
std::uint16_t hf(float f) { return f16::from_float(f).bits; }
float fu(std::uint32_t u) { return std::bit_cast<float>(u); }
}  // namespace

TEST_CASE("bf16 rounds to nearest even on hand-worked values", "[core][dtype][unit]") {
  CHECK(bf(0.0f) == 0x0000);
  CHECK(bf(-0.0f) == 0x8000);
  CHECK(bf(1.0f) == 0x3F80);
  CHECK(bf(-2.0f) == 0xC000);
  // 1 + 2^-8 is exactly halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): ties to even.
  CHECK(bf(fu(0x3F808000)) == 0x3F80);
  // 1 + 3*2^-8 is halfway between 0x3F81 (odd) and 0x3F82 (even): goes up to even.
  CHECK(bf(fu(0x3F818000)) == 0x3F82);
  CHECK(bf(fu(0x3F808001)) == 0x3F81);  // just above the tie
  CHECK(bf(fu(0x3F807FFF)) == 0x3F80);  // just below the tie
  CHECK(bf(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(bf(-std::numeric_limits<float>::infinity()) == 0xFF80);
  CHECK(bf(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to inf
  CHECK(bf(fu(0x00000001)) == 0x0000);                       // smallest subnormal rounds to 0
  CHECK(bf(fu(0x00018000)) == 0x0002);                       // subnormal tie to even
  CHECK(bf(std::numeric_limits<float>::quiet_NaN()) == 0x7FC0);
  CHECK(bf(-std::numeric_limits<float>::quiet_NaN()) == 0x7FC0);
  CHECK(bf(fu(0x7F800001)) == 0x7FC0);  // signalling NaN never turns into inf
  CHECK(bf16::from_bits(0x3F81).to_float() == 1.0078125f);
}

TEST_CASE("f16 rounds to nearest even on hand-worked values", "[core][dtype][unit]") {
  CHECK(hf(0.0f) == 0x0000);
  CHECK(hf(-0.0f) == 0x8000);
  CHECK(hf(1.0f) == 0x3C00);
  CHECK(hf(65504.0f) == 0x7BFF);
  CHECK(hf(65519.0f) == 0x7BFF);   // below the midpoint to 65536
  CHECK(hf(65520.0f) == 0x7C00);   // the midpoint rounds to even = inf
  CHECK(hf(1e10f) == 0x7C00);
  CHECK(hf(-1e10f) == 0xFC00);
  CHECK(hf(std::ldexp(1.0f, -14)) == 0x0400);   // smallest normal
  CHECK(hf(std::ldexp(1.0f, -24)) == 0x0001);   // smallest subnormal
  CHECK(hf(std::ldexp(1.0f, -25)) == 0x0000);   // tie between 0 and 2^-24: even is 0
  CHECK(hf(std::ldexp(1.5f, -25)) == 0x0001);   // above the tie
  CHECK(hf(std::ldexp(3.0f, -25)) == 0x0002);   // 1.5 * 2^-24: tie between 1 and 2 -> 2
  CHECK(hf(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);        // tie -> even
  CHECK(hf(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);    // tie -> even (up)
  CHECK(hf(std::ldexp(1023.5f, -24)) == 0x0400);            // subnormal rounding carries into a normal
  CHECK((hf(std::numeric_limits<float>::quiet_NaN()) & 0x7E00) == 0x7E00);
  CHECK((hf(fu(0x7F800001)) & 0x7C00) == 0x7C00);
  CHECK((hf(fu(0x7F800001)) & 0x03FF) != 0);  // still a NaN, not inf
  CHECK(f16::from_bits(0x0001).to_float() == std::ldexp(1.0f, -24));
  CHECK(f16::from_bits(0x03FF).to_float() == std::ldexp(1023.0f, -24));
  CHECK(f16::from_bits(0x7C00).to_float() == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(f16::from_bits(0x7E00).to_float()));
}

TEST_CASE("f16 and bf16 round-trip every 16-bit pattern", "[core][dtype][unit]") {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    auto const h = f16::from_bits(static_cast<std::uint16_t>(b));
    float const f = h.to_float();
    if (std::isnan(f)) continue;
    REQUIRE(f16::from_float(f).bits == h.bits);
    auto const g = bf16::from_bits(static_cast<std::uint16_t>(b));
    if (!std::isnan(g.to_float())) REQUIRE(bf16::from_float(g.to_float()).bits == g.bits);
  }
}

#if defined(__F16C__)
TEST_CASE("f16::from_float equals F16C vcvtps2ph on a dense sweep of floats", "[core][dtype][unit]") {
  // Every 61st bit pattern over all 2^32 floats (70 million values) plus every pattern near the
  // f16 range boundaries; NaNs compared as NaN-ness and sign only.
  auto check = [](std::uint32_t u) {
    float const f = fu(u);
    std::uint16_t const hw = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    std::uint16_t const sw = hf(f);
    if (std::isnan(f)) return ((sw & 0x7C00) == 0x7C00) && (sw & 0x3FF) && ((sw ^ hw) & 0x8000) == 0;
    return sw == hw;
  };
  std::uint64_t bad = 0;
  for (std::uint64_t u = 0; u <= 0xFFFFFFFFull; u += 61) bad += !check(static_cast<std::uint32_t>(u));
  for (std::uint32_t u = 0x33000000u - 4096; u < 0x38800000u + 4096; ++u) bad += !check(u);
  for (std::uint32_t u = 0x477FF000u - 65536; u < 0x477FF000u + 65536; ++u) bad += !check(u);
  REQUIRE(bad == 0);
}
#endif

#if defined(__AVX512BF16__) && defined(__AVX512VL__)
TEST_CASE("bf16::from_float equals vcvtneps2bf16 for non-NaN floats", "[core][dtype][unit]") {
  // The instruction flushes subnormal inputs to zero (DAZ); PyTorch does not, so subnormals are
  // excluded here and covered by the hand-worked cases and the PyTorch goldens.
  std::uint64_t bad = 0;
  for (std::uint64_t u = 0; u <= 0xFFFFFFFFull; u += 61) {
    float const f = fu(static_cast<std::uint32_t>(u));
    if (std::isnan(f) || std::fpclassify(f) == FP_SUBNORMAL) continue;
    __m128bh const r = _mm_cvtneps_pbh(_mm_set1_ps(f));
    std::uint16_t hw;
    std::memcpy(&hw, &r, 2);
    bad += hw != bf(f);
  }
  REQUIRE(bad == 0);
}
#endif
