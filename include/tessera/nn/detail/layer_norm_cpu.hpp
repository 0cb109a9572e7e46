// SPDX-License-Identifier: Apache-2.0
// nn::layer_norm, cpu backend: one row per OpenMP iteration; each row is swept three times with
// xsimd batches (it stays in L1 between sweeps): sum, corrected deviations, normalize + affine.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace tessera::nn::detail {

template <class Arch>
struct layer_norm_impl<backend::cpu_simd<Arch>> {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  /// Below this many elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 15;

  template <class W>
  static void run(tensor_view<float const, 2> x,   // [n_rows, dim]
                  tensor_view<W const, 1> weight,  // [dim]
                  tensor_view<W const, 1> bias,    // [dim] or [0]
                  float eps,
                  tensor_view<float, 2> y,         // [n_rows, dim]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    if (bias.extent(0) != 0) rows<W, true>(x, weight.data(), bias.data(), eps, y, ctx.threads());
    else rows<W, false>(x, weight.data(), nullptr, eps, y, ctx.threads());
  }

 private:
  template <class W, bool HasBias>
  static void rows(tensor_view<float const, 2> x, W const* w, W const* b, float eps, tensor_view<float, 2> y,
                   int threads) {
    index_t const n_rows = x.extent(0), dim = x.extent(1);
    index_t const xs = x.stride(0), ys = y.stride(0);
    float const* const xp = x.data();
    float* const yp = y.data();
    [[maybe_unused]] bool const parallel = threads > 1 && n_rows > 1 && n_rows * dim >= min_parallel_work;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
    for (index_t r = 0; r < n_rows; ++r) row<W, HasBias>(xp + r * xs, w, b, dim, eps, yp + r * ys);
  }

  // Statistics: the corrected two-pass algorithm (Chan, Golub & LeVeque 1983; Higham, "Accuracy
  // and Stability of Numerical Algorithms", 2nd ed., sec. 1.9). Pass 1 gives a mean m; pass 2
  // sums d = x - m and d^2; the corrected mean is m + c with c = sum(d) / n, and
  //   var = (sum(d^2) - sum(d)^2 / n) / n,   y = ((x - m) - c) * rstd * w + b.
  // Nothing cancels when |mean| >> std (unlike E[x^2] - mean^2), and c is never folded into m:
  // x - m is exact for x near m, so the deviations keep their full precision even where an f32
  // mean could not (mean 1000: ulp 6e-5). A constant row gives d == c, hence y == bias exactly,
  // as PyTorch's Welford-style RowwiseMoments does. Welford itself needs a division per element;
  // two sweeps over an L1-resident row are cheaper. The f32 sums run in 2-4 independent batch
  // accumulators (a blocked summation: error grows with n / (k * width), not n).
  template <class W, bool HasBias>
  static void row(float const* x,  // [dim]
                  W const* w,      // [dim]
                  W const* b,      // [dim] or nullptr
                  index_t n, float eps,
                  float* y) noexcept {  // [dim]; may be x
    using namespace backend::cpu_detail;
    auto const tail = static_cast<std::size_t>(n % width);
    index_t const body = n - static_cast<index_t>(tail);

    batch s0(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
    index_t j = 0;
    for (; j + 4 * width <= body; j += 4 * width) {
      s0 += batch::load_unaligned(x + j);
      s1 += batch::load_unaligned(x + j + width);
      s2 += batch::load_unaligned(x + j + 2 * width);
      s3 += batch::load_unaligned(x + j + 3 * width);
    }
    for (; j < body; j += width) s0 += batch::load_unaligned(x + j);
    if (tail) s1 += load_partial_as_float<Arch>(x + body, tail, 0.0f);
    float const nf = static_cast<float>(n);
    float const m = reduce_add((s0 + s1) + (s2 + s3)) / nf;

    batch const mv(m);
    batch d0(0.0f), d1(0.0f), q0(0.0f), q1(0.0f);
    for (j = 0; j + 2 * width <= body; j += 2 * width) {
      batch const a = batch::load_unaligned(x + j) - mv;
      batch const c = batch::load_unaligned(x + j + width) - mv;
      d0 += a;
      d1 += c;
      q0 = xsimd::fma(a, a, q0);
      q1 = xsimd::fma(c, c, q1);
    }
    for (; j < body; j += width) {
      batch const a = batch::load_unaligned(x + j) - mv;
      d0 += a;
      q0 = xsimd::fma(a, a, q0);
    }
    if (tail) {  // padding lanes hold m, so their deviation is exactly 0
      batch const a = load_partial_as_float<Arch>(x + body, tail, m) - mv;
      d1 += a;
      q1 = xsimd::fma(a, a, q1);
    }
    float const sd = reduce_add(d0 + d1), sq = reduce_add(q0 + q1);
    float const c = sd / nf;
    float const var = std::max((sq - sd * (sd / nf)) / nf, 0.0f);
    float const rstd = 1.0f / std::sqrt(var + eps);

    batch const cv(c), rstdv(rstd);
    for (j = 0; j < body; j += width) {
      batch const t = ((batch::load_unaligned(x + j) - mv) - cv) * rstdv;
      batch const wv = load_as_float<Arch>(w + j);
      if constexpr (HasBias) xsimd::fma(t, wv, load_as_float<Arch>(b + j)).store_unaligned(y + j);
      else (t * wv).store_unaligned(y + j);
    }
    if (tail) {
      batch const t = ((load_partial_as_float<Arch>(x + body, tail, 0.0f) - mv) - cv) * rstdv;
      batch const wv = load_partial_as_float<Arch>(w + body, tail, 0.0f);
      if constexpr (HasBias)
        store_partial<Arch>(y + body, xsimd::fma(t, wv, load_partial_as_float<Arch>(b + body, tail, 0.0f)), tail);
      else
        store_partial<Arch>(y + body, t * wv, tail);
    }
  }
};

}  // namespace tessera::nn::detail
