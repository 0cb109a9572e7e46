// SPDX-License-Identifier: Apache-2.0
// attn::masked_attention, reference backend: the textbook two-pass softmax per query row, in
// double. Pass 1 computes the scaled scores of the keys the row sees (into a scratch row of
// max kv_len doubles) and their maximum; pass 2 sums exp(score - max) and accumulates
// exp(score - max) * v; the row is divided by the sum. No tiling, no SIMD, no threads: the
// oracle of the cpu kernel's tests.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

namespace tessera::attn::detail {

template <>
struct masked_attention_impl<backend::reference> {
  template <class KV>
  static void run(tensor_view<float const, 3> q,    // [n_q_tokens, n_heads, head_dim]
                  tensor_view<KV const, 3> k,       // [n_kv_tokens, n_kv_heads, head_dim] f32 or bf16
                  tensor_view<KV const, 3> v,       // [n_kv_tokens, n_kv_heads, head_dim] f32 or bf16
                  std::span<seq_range const> ranges,
                  tensor_view<float, 3> out,        // [n_q_tokens, n_heads, head_dim]
                  tensor_view<float, 2> lse,        // [n_heads, n_q_tokens] or empty
                  attention_params const& p, exec_ctx<backend::reference>& ctx) {
    index_t const n_heads = q.extent(1), head_dim = q.extent(2), group = n_heads / k.extent(1);
    bool const has_lse = lse.extent(0) != 0;
    double const scale = p.scale;
    index_t max_kv = 0;
    for (seq_range const& r : ranges) max_kv = std::max(max_kv, r.kv_end - r.kv_begin);
    backend::scratch_arena::frame frame = ctx.scratch().open();
    double* const score = frame.alloc<double>(static_cast<std::size_t>(max_kv));  // [max_kv] one row's scores
    double* const acc = frame.alloc<double>(static_cast<std::size_t>(head_dim));   // [head_dim]

    for (seq_range const& r : ranges) {
      index_t const q_len = r.q_end - r.q_begin, kv_len = r.kv_end - r.kv_begin;
      for (index_t h = 0; h < n_heads; ++h) {
        index_t const g = h / group;  // the kv head of query head h
        for (index_t i = 0; i < q_len; ++i) {
          index_t const qi = r.q_begin + i;
          // Keys [0, n_seen) of the sequence are visible (bottom-right aligned causal rule).
          index_t n_seen = kv_len;
          if (p.causal) n_seen = std::min(kv_len, std::max<index_t>(0, kv_len - q_len + i + 1));
          float const* const qrow = &q(qi, h, index_t{0});  // [head_dim], contiguous
          // Pass 1: scaled scores and their maximum.
          double max = -std::numeric_limits<double>::infinity();
          for (index_t j = 0; j < n_seen; ++j) {
            KV const* const krow = &k(r.kv_begin + j, g, index_t{0});
            double dot = 0;
            for (index_t d = 0; d < head_dim; ++d) dot += static_cast<double>(qrow[d]) * to_float(krow[d]);
            score[j] = scale * dot;
            max = std::max(max, score[j]);
          }
          // Pass 2: exp(score - max), its sum, and the weighted sum of values.
          double sum = 0;
          for (index_t d = 0; d < head_dim; ++d) acc[d] = 0;
          for (index_t j = 0; j < n_seen; ++j) {
            double const e = std::exp(score[j] - max);
            KV const* const vrow = &v(r.kv_begin + j, g, index_t{0});
            sum += e;
            for (index_t d = 0; d < head_dim; ++d) acc[d] += e * to_float(vrow[d]);
          }
          // No visible key: out = 0, lse = -inf (sum = 0 and max = -inf).
          for (index_t d = 0; d < head_dim; ++d) out(qi, h, d) = n_seen > 0 ? static_cast<float>(acc[d] / sum) : 0.0f;
          if (has_lse)
            lse(h, qi) = n_seen > 0 ? static_cast<float>(max + std::log(sum))
                                    : -std::numeric_limits<float>::infinity();
        }
      }
    }
  }
};

}  // namespace tessera::attn::detail
