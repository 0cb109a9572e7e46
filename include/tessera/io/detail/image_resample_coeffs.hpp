// SPDX-License-Identifier: Apache-2.0
// Filter coefficients of Pillow 11's bicubic resampling (libImaging/Resample.c, precompute_coeffs
// and normalize_coeffs_8bpc), reproduced operation for operation so that the fixed-point weights
// are the same integers Pillow computes:
//   - Keys' cubic with a = -0.5 on a support of 2 input pixels, widened by the scale factor when
//     downsampling (antialiasing): support = 2 * max(in / out, 1);
//   - window [xmin, xmax) around center = (x + 0.5) * scale, both ends rounded by (int)(v + 0.5),
//     clipped to the image; weights normalized to sum 1 in double precision;
//   - weights to fixed point with PRECISION_BITS = 22: (int)(w * 2^22 +- 0.5), rounding away from 0.
// Every product whose result feeds an addition goes through no_fma(): Pillow's x86-64 wheels are
// built without FMA, while a compiler allowed to contract a*b+c (GCC with -std=gnu++20, clang's
// default, on targets with FMA) rounds such expressions once instead of twice. A weight flips only
// if that last-bit change crosses a rounding boundary of the 22-bit conversion: measured, no weight
// differs over 23,400 size pairs (1..700 -> 1..700) with GCC 12 and clang 14 at -ffp-contract=fast,
// so the barriers are insurance that costs nothing measurable (they run once per output pixel).
// Do not compile tessera with -ffast-math: reassociating the normalization sum breaks exactness.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>

#include <climits>
#include <cmath>
#include <cstdint>
#include <vector>

namespace tessera::io::detail {

/// Fixed-point precision of Pillow's 8-bit resampling: 32 bits - 8 for the sample - 2 for overflow.
inline constexpr int pillow_precision_bits = 32 - 8 - 2;

/// `x` rounded to double and opaque to the optimizer, so it cannot become part of a fused multiply-add.
[[nodiscard]] inline double no_fma(double x) noexcept {
  volatile double v = x;
  return v;
}

/// Pillow's bicubic_filter (a = -0.5), with the same operation order.
[[nodiscard]] inline double pillow_bicubic_filter(double x) noexcept {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) {  // ((a + 2) * x - (a + 3)) * x * x + 1
    double const p = no_fma((a + 2.0) * x);
    return no_fma((p - (a + 3.0)) * x * x) + 1;
  }
  if (x < 2.0) {  // (((x - 5) * x + 8) * x - 4) * a
    double const p = no_fma((x - 5) * x);
    double const q = no_fma((p + 8) * x);
    return no_fma((q - 4) * a);  // the caller adds it to the weight sum
  }
  return 0.0;
}

/// Coefficients of one resampling direction: for output index i, the input window starts at
/// start[i], has count[i] pixels, and weights k[i * ksize + t] (fixed point, 2^22 = 1).
struct resample_coeffs {
  int ksize = 0;
  std::vector<int> start;
  std::vector<int> count;
  std::vector<std::int32_t> k;
};

/// precompute_coeffs + normalize_coeffs_8bpc for `in_size` -> `out_size` over the box [0, in_size).
[[nodiscard]] inline resample_coeffs pillow_bicubic_coeffs(int in_size, int out_size) {
  // Pillow passes the box as C floats; in1 - in0 is computed in float (exact below 2^24).
  float const in0 = 0.0f, in1 = static_cast<float>(in_size);
  double const scale = static_cast<double>(in1 - in0) / out_size;
  double const filterscale = scale < 1.0 ? 1.0 : scale;
  double const support = no_fma(2.0 * filterscale);
  int const ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  // Pillow's own overflow check (it raises MemoryError past it).
  TESSERA_CHECK(out_size <= INT_MAX / (ksize * static_cast<int>(sizeof(double))), "io::resize_bicubic: resampling ",
                in_size, " -> ", out_size, " pixels needs more filter taps than Pillow allows");
  resample_coeffs c;
  c.ksize = ksize;
  c.start.resize(static_cast<std::size_t>(out_size));
  c.count.resize(static_cast<std::size_t>(out_size));
  c.k.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(ksize), 0);
  std::vector<double> w(static_cast<std::size_t>(ksize));
  double const ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    double const center = in0 + no_fma((xx + 0.5) * scale);
    int xmin = static_cast<int>(center - support + 0.5);  // (int) truncates toward zero, as in C
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double const v = pillow_bicubic_filter(no_fma((x + xmin - center + 0.5) * ss));
      w[static_cast<std::size_t>(x)] = v;
      ww += v;
    }
    std::int32_t* k = c.k.data() + static_cast<std::size_t>(xx) * static_cast<std::size_t>(ksize);
    for (int x = 0; x < xmax; ++x) {
      double v = w[static_cast<std::size_t>(x)];
      if (ww != 0.0) v /= ww;
      // normalize_coeffs_8bpc: the product by 2^22 is exact, so contraction cannot change it.
      k[x] = v < 0 ? static_cast<std::int32_t>(-0.5 + v * (1 << pillow_precision_bits))
                   : static_cast<std::int32_t>(0.5 + v * (1 << pillow_precision_bits));
    }
    c.start[static_cast<std::size_t>(xx)] = xmin;
    c.count[static_cast<std::size_t>(xx)] = xmax;
  }
  return c;
}

/// Pillow's clip8: the accumulator (with the 2^21 rounding bias already added) shifted down by 22
/// bits and clamped to 0..255. The right shift of a negative value is arithmetic (C++20).
[[nodiscard]] inline std::uint8_t pillow_clip8(std::int32_t acc) noexcept {
  std::int32_t const v = acc >> pillow_precision_bits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

/// Rows of the source that the vertical pass reads: the horizontal pass only computes these
/// (Pillow's ybox_first / ybox_last trimming).
struct row_window {
  int first = 0;
  int last = 0;  // one past the last row
};
[[nodiscard]] inline row_window used_rows(resample_coeffs const& vert) noexcept {
  auto const n = vert.start.size();
  return {vert.start.front(), vert.start[n - 1] + vert.count[n - 1]};
}

}  // namespace tessera::io::detail
