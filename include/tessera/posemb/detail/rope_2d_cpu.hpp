// SPDX-License-Identifier: Apache-2.0
// posemb::rope_2d, cpu backend: OpenMP over tokens; per token the f32 angles (row * inv_row +
// col * inv_col, where one of the two tables is 0 in every lane, so the sum is exactly HF's single
// product) and their cos / sin (xsimd::sincos) go into the thread's scratch rows, applied to every
// head with xsimd batches.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/posemb/detail/rotate_half_cpu.hpp>

#include <cstddef>
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::posemb::detail {

template <class Arch>
struct rope_2d_impl<backend::cpu_simd<Arch>> {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  /// Below this many elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 14;

  static void run(tensor_view<float, 3> x,                // [n_tokens, n_heads, head_dim]
                  tensor_view<std::int32_t const, 2> pos,  // [n_tokens, 2] = (row, col)
                  float theta, exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const n_tokens = x.extent(0), n_heads = x.extent(1), head_dim = x.extent(2);
    index_t const half = head_dim / 2, quarter = head_dim / 4, padded = (half + width - 1) / width * width;
    bool const parallel = ctx.threads() > 1 && n_tokens > 1 && n_tokens * n_heads * head_dim >= min_parallel_work;
    int const threads = parallel ? ctx.threads() : 1;

    // 64-byte aligned blocks; padded is a multiple of the batch width, so every row is aligned.
    backend::scratch_arena::frame frame = ctx.scratch().open();
    float* const inv_row = frame.alloc<float>(static_cast<std::size_t>(padded));              // [padded]
    float* const inv_col = frame.alloc<float>(static_cast<std::size_t>(padded));              // [padded]
    float* const rows = frame.alloc<float>(static_cast<std::size_t>(2 * padded * threads));   // [threads, 2, padded]
    for (index_t d = 0; d < padded; ++d) {
      float const f = d < half ? rope_2d_inv_freq(theta, head_dim, d) : 0.0f;
      inv_row[d] = d < quarter ? f : 0.0f;
      inv_col[d] = d < quarter ? 0.0f : f;
    }

    float* const xp = x.data();
    index_t const ts = x.stride(0), hs = x.stride(1), ps = pos.stride(0), pc = pos.stride(1);
    std::int32_t const* const pp = pos.data();
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
#endif
    for (index_t t = 0; t < n_tokens; ++t) {
      int tid = 0;
#if defined(_OPENMP)
      tid = omp_get_thread_num();
#endif
      float* const cos_row = rows + 2 * padded * tid;  // [padded]
      float* const sin_row = cos_row + padded;         // [padded]
      batch const r(static_cast<float>(pp[t * ps])), c(static_cast<float>(pp[t * ps + pc]));
      for (index_t d = 0; d < padded; d += width) {
        // One of the two products is +0 in every lane: the sum is the other product, exactly.
        batch const angle = r * batch::load_aligned(inv_row + d) + c * batch::load_aligned(inv_col + d);
        auto const [s, co] = xsimd::sincos(angle);
        co.store_aligned(cos_row + d);
        s.store_aligned(sin_row + d);
      }
      for (index_t h = 0; h < n_heads; ++h) rotate_half_split<Arch>(xp + t * ts + h * hs, cos_row, sin_row, half);
    }
  }

};

}  // namespace tessera::posemb::detail

TESSERA_SIMD_DIAGNOSTICS_END
