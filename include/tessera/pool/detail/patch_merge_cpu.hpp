// SPDX-License-Identifier: Apache-2.0
// pool::patch_merge_2x2, cpu backend: per image, the output rows are split over OpenMP threads;
// each row is four memcpy of dim floats.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pack/patchify.hpp>

#include <cstddef>
#include <cstring>
#include <span>

namespace tessera::pool::detail {

template <class Arch>
struct patch_merge_impl<backend::cpu_simd<Arch>> {
  /// Below this many elements the OpenMP fork costs more than the copy.
  static constexpr index_t min_parallel_work = index_t{1} << 16;

  static void run(tensor_view<float const, 2> x,  // [n_tokens, dim]
                  std::span<patch_grid const> grids, bool window_major,
                  tensor_view<float, 2> out,  // [n_tokens / 4, 4 * dim]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const dim = x.extent(1);
    auto const bytes = static_cast<std::size_t>(dim) * sizeof(float);
    index_t base = 0, o0 = 0;
    for (patch_grid const& g : grids) {
      index_t const frame = g.h * g.w, n_out = g.t * frame / 4, per_frame = frame / 4;
      bool const parallel = ctx.threads() > 1 && n_out > 1 && n_out * 4 * dim >= min_parallel_work;
      [[maybe_unused]] int const threads = parallel ? ctx.threads() : 1;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
      for (index_t r = 0; r < n_out; ++r) {
        index_t const f = r / per_frame, w = r % per_frame;
        float* const o = out.row(o0 + r);
        for (int q = 0; q < 4; ++q)
          std::memcpy(o + q * dim, x.row(merge_source(base + f * frame, w, q, g.w, window_major)), bytes);
      }
      base += g.t * frame;
      o0 += n_out;
    }
  }
};

}  // namespace tessera::pool::detail
