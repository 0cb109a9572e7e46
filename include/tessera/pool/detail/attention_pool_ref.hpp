// SPDX-License-Identifier: Apache-2.0
// pool::map_head / navit_pool attention kernel, reference backend: per sequence and head, the
// k-norm (when asked) in torch's f32 order, then scores, softmax and the weighted sum of v in f64
// (workspace: max sequence length + head_dim doubles from ctx.scratch()).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pool/detail/pool_common.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

namespace tessera::pool::detail {

template <>
struct pool_attend_impl<backend::reference> {
  static void run(attend_args const& a,
                  tensor_view<float const, 3> k,  // [n_tokens, n_heads, head_dim]
                  tensor_view<float const, 3> v,  // [n_tokens, n_heads, head_dim]
                  seq_offsets const& seqs, std::span<std::uint8_t const> masked,
                  tensor_view<float, 2> out,  // [n_seqs, n_heads * head_dim]
                  exec_ctx<backend::reference>& ctx) {
    index_t const n_heads = k.extent(1), hd = k.extent(2), max_len = seqs.max_length();
    backend::scratch_arena::frame frame = ctx.scratch().open();
    double* const w = frame.alloc<double>(static_cast<std::size_t>(max_len > 0 ? max_len : 1));  // [len]
    double* const acc = frame.alloc<double>(static_cast<std::size_t>(hd));                       // [head_dim]
    for (index_t s = 0; s < seqs.n_seqs(); ++s)
      for (index_t h = 0; h < n_heads; ++h) {
        if (is_masked(masked, s) || seqs.length(s) == 0) {
          for (index_t i = 0; i < hd; ++i) out(s, h * hd + i) = 0.0f;
          continue;
        }
        index_t const begin = seqs.begin(s), len = seqs.length(s);
        double m = -std::numeric_limits<double>::infinity();
        for (index_t j = 0; j < len; ++j) {
          w[j] = score(a, k, begin + j, h);
          m = std::max(m, w[j]);
        }
        double sum = 0.0;
        for (index_t j = 0; j < len; ++j) sum += (w[j] = std::exp(w[j] - m));
        for (index_t i = 0; i < hd; ++i) acc[i] = 0.0;
        for (index_t j = 0; j < len; ++j)
          for (index_t i = 0; i < hd; ++i) acc[i] += w[j] * static_cast<double>(v(begin + j, h, i));
        for (index_t i = 0; i < hd; ++i) out(s, h * hd + i) = static_cast<float>(acc[i] / sum);
      }
  }

 private:
  /// scale * q_h . k'_jh, with k' the RMS-normed k (torch's f32 order) when a.k_gamma is set.
  static double score(attend_args const& a, tensor_view<float const, 3> const& k, index_t j, index_t h) {
    index_t const hd = k.extent(2);
    float den = 1.0f;
    if (a.k_gamma) {
      double ss = 0.0;
      for (index_t i = 0; i < hd; ++i) ss += static_cast<double>(k(j, h, i)) * static_cast<double>(k(j, h, i));
      float const norm = static_cast<float>(std::sqrt(ss));
      den = norm > normalize_eps ? norm : normalize_eps;
    }
    double dot = 0.0;
    for (index_t i = 0; i < hd; ++i) {
      float kk = k(j, h, i);
      if (a.k_gamma) kk = kk / den * a.k_norm_scale * a.k_gamma[h * hd + i];
      dot += static_cast<double>(a.q[h * hd + i]) * static_cast<double>(kk);
    }
    return static_cast<double>(a.scale) * dot;
  }
};

}  // namespace tessera::pool::detail
