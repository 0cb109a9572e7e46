// SPDX-License-Identifier: Apache-2.0
// nn::gelu / quick_gelu / silu, cpu backend: torch's f32 formulas on xsimd batches (xsimd::erf,
// tanh, exp), and the element-wise row drivers shared with nn::swiglu and nn::add: OpenMP over
// chunks of rows, the last partial batch of a row through a padded register.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <cstddef>

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::nn::detail {

/// One activation on a batch, in f32 with the formula and operation order of torch's CPU kernels
/// (GeluKernel.cpp; silu as x / (1 + exp(-x))). Measured error of the xsimd functions against the
/// exact activation: tests/nn/test_activation.cpp, "activation approximations".
template <activation K, class A>
[[nodiscard]] inline backend::cpu_detail::fbatch<A> activation_batch(backend::cpu_detail::fbatch<A> const& x) noexcept {
  using batch = backend::cpu_detail::fbatch<A>;
  if constexpr (K == activation::gelu_erf) {
    return x * batch(0.5f) * (batch(1.0f) + xsimd::erf(x * batch(0.70710678118654752f)));  // M_SQRT1_2
  } else if constexpr (K == activation::gelu_tanh) {
    batch const inner = batch(0.7978845608028654f) * (x + batch(0.044715f) * (x * x * x));  // sqrt(2 / pi)
    return batch(0.5f) * x * (batch(1.0f) + xsimd::tanh(inner));
  } else if constexpr (K == activation::quick_gelu) {
    // exp overflows to inf for x << 0 and x / inf = -0: no special case needed.
    return x / (batch(1.0f) + xsimd::exp(batch(-quick_gelu_alpha) * x));
  } else {
    return x / (batch(1.0f) + xsimd::exp(-x));
  }
}

/// Element-wise drivers. Work is split into units of up to `chunk` elements of one row, so a
/// single long row still spreads over the threads; chunk is a multiple of every batch width, so
/// only a row's last unit has a partial batch.
struct elementwise {
  static constexpr index_t chunk = 4096;
  /// Below this many elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 15;

  /// y[r, :] = f(x[r, :]) batch by batch; y may be x.
  template <class A, class F>
  static void map(tensor_view<float const, 2> x,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  int threads, F const& f) {
    for_units(x.extent(0), x.extent(1), threads, [&](index_t r, index_t begin, index_t len) {
      map_span<A>(x.data() + r * x.stride(0) + begin, y.data() + r * y.stride(0) + begin, len, f);
    });
  }

  /// y[r, :] = f(a[r, :], b[r, :]) batch by batch; y may be a or b.
  template <class A, class F>
  static void zip(tensor_view<float const, 2> a,  // [n_rows, dim]
                  tensor_view<float const, 2> b,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  int threads, F const& f) {
    for_units(a.extent(0), a.extent(1), threads, [&](index_t r, index_t begin, index_t len) {
      zip_span<A>(a.data() + r * a.stride(0) + begin, b.data() + r * b.stride(0) + begin,
                  y.data() + r * y.stride(0) + begin, len, f);
    });
  }

 private:
  template <class Body>
  static void for_units(index_t n_rows, index_t dim, int threads, Body const& body) {
    index_t const per_row = (dim + chunk - 1) / chunk, units = n_rows * per_row;
    [[maybe_unused]] bool const parallel = threads > 1 && units > 1 && n_rows * dim >= min_parallel_work;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
    for (index_t u = 0; u < units; ++u) {
      index_t const r = u / per_row, begin = (u % per_row) * chunk;
      body(r, begin, std::min(chunk, dim - begin));
    }
  }

  template <class A, class F>
  static void map_span(float const* x, float* y, index_t n, F const& f) noexcept {  // [n] each
    using namespace backend::cpu_detail;
    constexpr auto width = static_cast<index_t>(fbatch<A>::size);
    index_t j = 0;
    for (; j + width <= n; j += width) f(fbatch<A>::load_unaligned(x + j)).store_unaligned(y + j);
    if (j < n) {
      auto const tail = static_cast<std::size_t>(n - j);
      store_partial<A>(y + j, f(load_partial_as_float<A>(x + j, tail, 0.0f)), tail);
    }
  }

  template <class A, class F>
  static void zip_span(float const* a, float const* b, float* y, index_t n, F const& f) noexcept {  // [n] each
    using namespace backend::cpu_detail;
    constexpr auto width = static_cast<index_t>(fbatch<A>::size);
    index_t j = 0;
    for (; j + width <= n; j += width)
      f(fbatch<A>::load_unaligned(a + j), fbatch<A>::load_unaligned(b + j)).store_unaligned(y + j);
    if (j < n) {
      auto const tail = static_cast<std::size_t>(n - j);
      auto const av = load_partial_as_float<A>(a + j, tail, 0.0f), bv = load_partial_as_float<A>(b + j, tail, 0.0f);
      store_partial<A>(y + j, f(av, bv), tail);
    }
  }
};

template <class Arch>
struct activation_impl<backend::cpu_simd<Arch>> {
  template <activation K>
  static void run(tensor_view<float const, 2> x,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    elementwise::map<Arch>(x, y, ctx.threads(),
                           [](backend::cpu_detail::fbatch<Arch> const& v) { return activation_batch<K, Arch>(v); });
  }
};

}  // namespace tessera::nn::detail

TESSERA_SIMD_DIAGNOSTICS_END
