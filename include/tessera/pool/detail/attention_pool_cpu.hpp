// SPDX-License-Identifier: Apache-2.0
// pool::map_head / navit_pool attention kernel, cpu backend: the (sequence, head) pairs are split
// over OpenMP threads; per pair one pass of xsimd dot products gives the f32 scores (with the RMS
// k-norm folded in: (q . (gamma * k)) * sqrt(hd) / max(||k||, eps)), a scalar pass the f32 softmax
// weights, and one pass accumulates the weighted v rows into the output slice.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pool/detail/pool_common.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>

#if defined(_OPENMP)
#include <omp.h>
#endif

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::pool::detail {

template <class Arch>
struct pool_attend_impl<backend::cpu_simd<Arch>> {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  /// Below this many k elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 14;

  static void run(attend_args const& a,
                  tensor_view<float const, 3> k,  // [n_tokens, n_heads, head_dim]
                  tensor_view<float const, 3> v,  // [n_tokens, n_heads, head_dim]
                  seq_offsets const& seqs, std::span<std::uint8_t const> masked,
                  tensor_view<float, 2> out,  // [n_seqs, n_heads * head_dim]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    index_t const n_heads = k.extent(1), hd = k.extent(2), inner = n_heads * hd;
    index_t const n_items = seqs.n_seqs() * n_heads, max_len = seqs.max_length();
    bool const parallel = ctx.threads() > 1 && n_items > 1 && k.extent(0) * inner >= min_parallel_work;
    int const threads = parallel ? ctx.threads() : 1;

    backend::scratch_arena::frame frame = ctx.scratch().open();
    float* const qg = frame.alloc<float>(static_cast<std::size_t>(inner));  // [inner] q (* k_gamma)
    float* const scores = frame.alloc<float>(static_cast<std::size_t>((max_len > 0 ? max_len : 1) * threads));
    for (index_t i = 0; i < inner; ++i) qg[i] = a.k_gamma ? a.q[i] * a.k_gamma[i] : a.q[i];

#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (parallel)
#endif
    for (index_t item = 0; item < n_items; ++item) {
      int tid = 0;
#if defined(_OPENMP)
      tid = omp_get_thread_num();
#endif
      index_t const s = item / n_heads, h = item % n_heads;
      float* const o = out.row(s) + h * hd;  // [head_dim]
      std::memset(o, 0, static_cast<std::size_t>(hd) * sizeof(float));
      if (is_masked(masked, s) || seqs.length(s) == 0) continue;
      float* const sc = scores + tid * max_len;  // [len]
      index_t const begin = seqs.begin(s), len = seqs.length(s);
      float const* const qh = qg + h * hd;
      float m = -std::numeric_limits<float>::infinity();
      for (index_t j = 0; j < len; ++j) {
        float const* const kj = &k(begin + j, h, 0);
        float score;
        if (a.k_gamma) {
          auto const [dot, ss] = dot_and_square(qh, kj, hd);
          float const norm = std::sqrt(ss), den = norm > normalize_eps ? norm : normalize_eps;
          score = a.scale * (dot * (a.k_norm_scale / den));
        } else {
          score = a.scale * dot_and_square(qh, kj, hd).first;
        }
        sc[j] = score;
        m = score > m ? score : m;
      }
      float sum = 0.0f;
      for (index_t j = 0; j < len; ++j) {
        sc[j] = std::exp(sc[j] - m);  // max subtraction: every weight in (0, 1], the largest 1
        sum += sc[j];
      }
      for (index_t j = 0; j < len; ++j) axpy(o, sc[j], &v(begin + j, h, 0), hd);
      scale_row(o, 1.0f / sum, hd);
    }
  }

 private:
  /// (sum q_i k_i, sum k_i^2) in f32 batches.
  static std::pair<float, float> dot_and_square(float const* q, float const* kk, index_t n) noexcept {
    using namespace backend::cpu_detail;
    batch dot(0.0f), ss(0.0f);
    index_t i = 0;
    for (; i + width <= n; i += width) {
      batch const kb = batch::load_unaligned(kk + i);
      dot = xsimd::fma(batch::load_unaligned(q + i), kb, dot);
      ss = xsimd::fma(kb, kb, ss);
    }
    if (i < n) {
      auto const tail = static_cast<std::size_t>(n - i);
      batch const kb = load_partial_as_float<Arch>(kk + i, tail, 0.0f);
      dot = xsimd::fma(load_partial_as_float<Arch>(q + i, tail, 0.0f), kb, dot);
      ss = xsimd::fma(kb, kb, ss);
    }
    return {reduce_add(dot), reduce_add(ss)};
  }

  /// o += p * vv over n floats.
  static void axpy(float* o, float p, float const* vv, index_t n) noexcept {
    using namespace backend::cpu_detail;
    batch const pb(p);
    index_t i = 0;
    for (; i + width <= n; i += width)
      xsimd::fma(pb, batch::load_unaligned(vv + i), batch::load_unaligned(o + i)).store_unaligned(o + i);
    if (i < n) {
      auto const tail = static_cast<std::size_t>(n - i);
      store_partial<Arch>(o + i,
                          xsimd::fma(pb, load_partial_as_float<Arch>(vv + i, tail, 0.0f),
                                     load_partial_as_float<Arch>(o + i, tail, 0.0f)),
                          tail);
    }
  }

  static void scale_row(float* o, float f, index_t n) noexcept {
    for (index_t i = 0; i < n; ++i) o[i] *= f;
  }
};

}  // namespace tessera::pool::detail

TESSERA_SIMD_DIAGNOSTICS_END
