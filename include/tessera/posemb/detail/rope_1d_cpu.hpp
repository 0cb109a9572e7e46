// SPDX-License-Identifier: Apache-2.0
// posemb::rope_1d, cpu backend: OpenMP over tokens; per token the cos / sin row is computed once
// with xsimd::sincos (within 1.5 ulp, see tests/posemb/test_rope_1d.cpp) into the thread's scratch
// row and applied to every head with xsimd batches.
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
struct rope_1d_impl<backend::cpu_simd<Arch>> {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  /// Below this many elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 14;

  static void run(tensor_view<float, 3> x,                     // [n_tokens, n_heads, head_dim]
                  tensor_view<std::int32_t const, 1> positions,  // [n_tokens]
                  float theta, exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const n_tokens = x.extent(0), n_heads = x.extent(1), head_dim = x.extent(2);
    index_t const half = head_dim / 2, padded = (half + width - 1) / width * width;
    bool const parallel = ctx.threads() > 1 && n_tokens > 1 && n_tokens * n_heads * head_dim >= min_parallel_work;
    int const threads = parallel ? ctx.threads() : 1;

    // 64-byte aligned blocks; padded is a multiple of the batch width, so every row is aligned.
    backend::scratch_arena::frame frame = ctx.scratch().open();
    float* const inv_freq = frame.alloc<float>(static_cast<std::size_t>(padded));            // [padded]
    float* const rows = frame.alloc<float>(static_cast<std::size_t>(2 * padded * threads));  // [threads, 2, padded]
    for (index_t d = 0; d < padded; ++d) inv_freq[d] = d < half ? rope_inv_freq(theta, head_dim, d) : 0.0f;

    float* const xp = x.data();
    index_t const ts = x.stride(0), hs = x.stride(1), ps = positions.stride(0);
    std::int32_t const* const pp = positions.data();
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
      batch const pos(static_cast<float>(pp[t * ps]));
      for (index_t d = 0; d < padded; d += width) {
        auto const [s, c] = xsimd::sincos(pos * batch::load_aligned(inv_freq + d));  // f32 angle, as HF
        c.store_aligned(cos_row + d);
        s.store_aligned(sin_row + d);
      }
      for (index_t h = 0; h < n_heads; ++h) rotate_half_split<Arch>(xp + t * ts + h * hs, cos_row, sin_row, half);
    }
  }

};

}  // namespace tessera::posemb::detail

TESSERA_SIMD_DIAGNOSTICS_END
