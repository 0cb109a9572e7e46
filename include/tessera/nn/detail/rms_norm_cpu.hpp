// SPDX-License-Identifier: Apache-2.0
// nn::rms_norm, cpu backend: one row per OpenMP iteration; a sum of squares with xsimd batches
// (two independent accumulators), then y = (x * scale) * w in the same f32 order as HF.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>
#include <cstddef>

namespace tessera::nn::detail {

template <class Arch>
struct rms_norm_impl<backend::cpu_simd<Arch>> {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  /// Below this many elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 15;

  template <class W>
  static void run(tensor_view<float const, 2> x,   // [n_rows, dim]
                  tensor_view<W const, 1> weight,  // [dim]
                  float eps,
                  tensor_view<float, 2> y,         // [n_rows, dim]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const n_rows = x.extent(0), dim = x.extent(1);
    index_t const xs = x.stride(0), ys = y.stride(0);
    float const* const xp = x.data();
    float* const yp = y.data();
    W const* const w = weight.data();
    int const threads = ctx.threads();
    [[maybe_unused]] bool const parallel = threads > 1 && n_rows > 1 && n_rows * dim >= min_parallel_work;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
    for (index_t r = 0; r < n_rows; ++r) row(xp + r * xs, w, dim, eps, yp + r * ys);
  }

 private:
  template <class W>
  static void row(float const* x,  // [dim]
                  W const* w,      // [dim]
                  index_t n, float eps,
                  float* y) noexcept {  // [dim]; may be x
    using namespace backend::cpu_detail;
    auto const tail = static_cast<std::size_t>(n % width);
    index_t const body = n - static_cast<index_t>(tail);
    batch q0(0.0f), q1(0.0f);
    index_t j = 0;
    for (; j + 2 * width <= body; j += 2 * width) {
      batch const a = batch::load_unaligned(x + j), c = batch::load_unaligned(x + j + width);
      q0 = xsimd::fma(a, a, q0);
      q1 = xsimd::fma(c, c, q1);
    }
    for (; j < body; j += width) {
      batch const a = batch::load_unaligned(x + j);
      q0 = xsimd::fma(a, a, q0);
    }
    if (tail) {
      batch const a = load_partial_as_float<Arch>(x + body, tail, 0.0f);
      q1 = xsimd::fma(a, a, q1);
    }
    // An exact division and square root (not the ~12-bit rsqrt instruction): one scale per row.
    float const scale = 1.0f / std::sqrt(reduce_add(q0 + q1) / static_cast<float>(n) + eps);
    batch const sv(scale);
    for (j = 0; j < body; j += width)
      ((batch::load_unaligned(x + j) * sv) * load_as_float<Arch>(w + j)).store_unaligned(y + j);
    if (tail)
      store_partial<Arch>(y + body,
                          (load_partial_as_float<Arch>(x + body, tail, 0.0f) * sv) *
                              load_partial_as_float<Arch>(w + body, tail, 0.0f),
                          tail);
  }
};

}  // namespace tessera::nn::detail
