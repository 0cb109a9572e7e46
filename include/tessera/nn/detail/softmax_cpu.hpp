// SPDX-License-Identifier: Apache-2.0
// nn::softmax, cpu backend: one row per OpenMP iteration; three sweeps with xsimd batches (max;
// e = exp(x - max) stored into y and summed; y /= sum). xsimd::exp is within 1.5 ulp of exp (see
// tests/nn/test_softmax.cpp), well inside the f32 budget.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cstddef>
#include <limits>

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::nn::detail {

template <class Arch>
struct softmax_impl<backend::cpu_simd<Arch>> {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  /// Below this many elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 14;

  static void run(tensor_view<float const, 2> x,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const n_rows = x.extent(0), dim = x.extent(1);
    index_t const xs = x.stride(0), ys = y.stride(0);
    float const* const xp = x.data();
    float* const yp = y.data();
    int const threads = ctx.threads();
    [[maybe_unused]] bool const parallel = threads > 1 && n_rows > 1 && n_rows * dim >= min_parallel_work;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
    for (index_t r = 0; r < n_rows; ++r) row(xp + r * xs, dim, yp + r * ys);
  }

 private:
  static void row(float const* x,  // [dim]
                  index_t n,
                  float* y) noexcept {  // [dim]; may be x
    using namespace backend::cpu_detail;
    constexpr float inf = std::numeric_limits<float>::infinity();
    auto const tail = static_cast<std::size_t>(n % width);
    index_t const body = n - static_cast<index_t>(tail);

    batch m0(-inf), m1(-inf);
    index_t j = 0;
    for (; j + 2 * width <= body; j += 2 * width) {
      m0 = xsimd::max(m0, batch::load_unaligned(x + j));
      m1 = xsimd::max(m1, batch::load_unaligned(x + j + width));
    }
    for (; j < body; j += width) m0 = xsimd::max(m0, batch::load_unaligned(x + j));
    if (tail) m1 = xsimd::max(m1, load_partial_as_float<Arch>(x + body, tail, -inf));
    float const m = reduce_max(xsimd::max(m0, m1));
    if (m == -inf) {  // every entry -inf: 0 / 0, NaN as in PyTorch
      for (index_t k = 0; k < n; ++k) y[k] = std::numeric_limits<float>::quiet_NaN();
      return;
    }
    // With +inf or NaN in the row, x - m or exp gives NaN in some lane, the sum is NaN and so is
    // the whole row (PyTorch's result). Padding lanes hold -inf: exp(-inf - m) = 0.
    batch const mv(m);
    batch s0(0.0f), s1(0.0f);
    for (j = 0; j + 2 * width <= body; j += 2 * width) {
      batch const e0 = xsimd::exp(batch::load_unaligned(x + j) - mv);
      batch const e1 = xsimd::exp(batch::load_unaligned(x + j + width) - mv);
      e0.store_unaligned(y + j);
      e1.store_unaligned(y + j + width);
      s0 += e0;
      s1 += e1;
    }
    for (; j < body; j += width) {
      batch const e = xsimd::exp(batch::load_unaligned(x + j) - mv);
      e.store_unaligned(y + j);
      s0 += e;
    }
    if (tail) {
      batch const e = xsimd::exp(load_partial_as_float<Arch>(x + body, tail, -inf) - mv);
      store_partial<Arch>(y + body, e, tail);
      s1 += e;
    }
    // Divide rather than multiply by 1 / sum: one rounding per element, like the reference.
    batch const sv(reduce_add(s0 + s1));
    for (j = 0; j < body; j += width) (batch::load_unaligned(y + j) / sv).store_unaligned(y + j);
    if (tail) store_partial<Arch>(y + body, load_partial_as_float<Arch>(y + body, tail, 0.0f) / sv, tail);
  }
};

}  // namespace tessera::nn::detail

TESSERA_SIMD_DIAGNOSTICS_END
