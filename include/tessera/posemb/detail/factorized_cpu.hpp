// SPDX-License-Identifier: Apache-2.0
// posemb::factorized_*, cpu backend: OpenMP over tokens; each token combines two rows (table rows
// widened to f32, or sinusoid rows built in the thread's scratch with xsimd::sincos) into x with
// xsimd batches, in the reference's order of f32 operations.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cstddef>

#if defined(_OPENMP)
#include <omp.h>
#endif

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::posemb::detail {

template <class Arch>
struct factorized_impl<backend::cpu_simd<Arch>> {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  /// Below this many elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 15;

  template <class Coord, class W>
  static void run_learned(tensor_view<float, 2> x,             // [n_tokens, d_model]
                          tensor_view<Coord const, 2> coords,  // [n_tokens, 2]
                          tensor_view<W const, 2> table_y,     // [n_rows_y, d_phi]
                          tensor_view<W const, 2> table_x,     // [n_rows_x, d_phi]
                          combine_mode combine, exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const n_tokens = x.extent(0), d = x.extent(1);
    bool const parallel = ctx.threads() > 1 && n_tokens > 1 && n_tokens * d >= min_parallel_work;
    [[maybe_unused]] int const threads = parallel ? ctx.threads() : 1;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
    for (index_t t = 0; t < n_tokens; ++t) {
      index_t const ry = table_row(coords(t, 0), table_y.extent(0)), rx = table_row(coords(t, 1), table_x.extent(0));
      combine_row(x.row(t), d, combine, table_y.row(ry), table_x.row(rx));
    }
  }

  template <class Coord>
  static void run_sinusoidal(tensor_view<float, 2> x,             // [n_tokens, d_model]
                             tensor_view<Coord const, 2> coords,  // [n_tokens, 2]
                             combine_mode combine, sinusoid_options const& opt,
                             exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const n_tokens = x.extent(0), d = x.extent(1);
    index_t const d_phi = phi_width(combine, d), padded = (d_phi + width - 1) / width * width;
    bool const parallel = ctx.threads() > 1 && n_tokens > 1 && n_tokens * d >= min_parallel_work / 8;
    int const threads = parallel ? ctx.threads() : 1;

    backend::scratch_arena::frame frame = ctx.scratch().open();
    float* const freq = frame.alloc<float>(static_cast<std::size_t>(padded));    // [padded] w_{j/2}
    float* const odd = frame.alloc<float>(static_cast<std::size_t>(padded));     // [padded] 1 = cos column
    float* const rows = frame.alloc<float>(static_cast<std::size_t>(2 * padded * threads));  // [threads, 2, padded]
    for (index_t j = 0; j < padded; ++j) {
      freq[j] = j < d_phi ? rope_inv_freq(opt.base, d_phi, j / 2) : 0.0f;
      odd[j] = j % 2 == 1 ? 1.0f : 0.0f;
    }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
    for (index_t t = 0; t < n_tokens; ++t) {
      int tid = 0;
#if defined(_OPENMP)
      tid = omp_get_thread_num();
#endif
      float* const phi_y = rows + 2 * padded * tid;  // [padded]
      float* const phi_x = phi_y + padded;           // [padded]
      sinusoid_row(sinusoid_position(coords(t, 0), opt.fractional_scale), freq, odd, padded, phi_y);
      sinusoid_row(sinusoid_position(coords(t, 1), opt.fractional_scale), freq, odd, padded, phi_x);
      combine_row(x.row(t), d, combine, static_cast<float const*>(phi_y), static_cast<float const*>(phi_x));
    }
  }

 private:
  static void sinusoid_row(float p, float const* freq, float const* odd, index_t padded, float* out) noexcept {
    batch const pb(p);
    for (index_t j = 0; j < padded; j += width) {
      auto const [s, c] = xsimd::sincos(pb * batch::load_aligned(freq + j));  // f32 angle, as the reference
      xsimd::select(batch::load_aligned(odd + j) != batch(0.0f), c, s).store_aligned(out + j);
    }
  }

  /// x[0, d) += phi_y (op) phi_x; T is float, bf16 or f16 (widened exactly).
  template <class T>
  static void combine_row(float* x, index_t d, combine_mode combine, T const* phi_y, T const* phi_x) noexcept {
    switch (combine) {
      case combine_mode::sum:
        apply(x, d, phi_y, phi_x, [](batch a, batch y, batch b) { return (a + y) + b; });
        break;
      case combine_mode::product:
        apply(x, d, phi_y, phi_x, [](batch a, batch y, batch b) {
          batch const p = y * b;
          return a + p;
        });
        break;
      case combine_mode::concat:
        apply(x, d / 2, phi_y, phi_y, [](batch a, batch y, batch) { return a + y; });
        apply(x + d / 2, d / 2, phi_x, phi_x, [](batch a, batch b, batch) { return a + b; });
        break;
    }
  }

  template <class T, class F>
  static void apply(float* x, index_t n, T const* y, T const* b, F const& f) noexcept {
    using namespace backend::cpu_detail;
    index_t j = 0;
    for (; j + width <= n; j += width)
      f(batch::load_unaligned(x + j), load_as_float<Arch>(y + j), load_as_float<Arch>(b + j)).store_unaligned(x + j);
    if (j < n) {
      auto const tail = static_cast<std::size_t>(n - j);
      batch const r = f(load_partial_as_float<Arch>(x + j, tail, 0.0f), load_partial_as_float<Arch>(y + j, tail, 0.0f),
                        load_partial_as_float<Arch>(b + j, tail, 0.0f));
      store_partial<Arch>(x + j, r, tail);
    }
  }
};

}  // namespace tessera::posemb::detail

TESSERA_SIMD_DIAGNOSTICS_END
