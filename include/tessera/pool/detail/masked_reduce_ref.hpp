// SPDX-License-Identifier: Apache-2.0
// pool::masked_mean / masked_max, reference backend: per sequence and column, a plain loop over the
// sequence's tokens (the mean accumulates in f64).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pool/detail/pool_common.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

namespace tessera::pool::detail {

template <>
struct masked_mean_impl<backend::reference> {
  static void run(tensor_view<float const, 2> x,  // [n_tokens, dim]
                  seq_offsets const& seqs,
                  tensor_view<float, 2> out,  // [n_seqs, dim]
                  exec_ctx<backend::reference>&, std::span<std::uint8_t const> masked) {
    for (index_t s = 0; s < seqs.n_seqs(); ++s)
      for (index_t j = 0; j < x.extent(1); ++j) {
        double sum = 0.0;
        for (index_t t = seqs.begin(s); t < seqs.end(s); ++t) sum += static_cast<double>(x(t, j));
        bool const empty = is_masked(masked, s) || seqs.length(s) == 0;
        out(s, j) = empty ? 0.0f : static_cast<float>(sum / static_cast<double>(seqs.length(s)));
      }
  }
};

template <>
struct masked_max_impl<backend::reference> {
  static void run(tensor_view<float const, 2> x,  // [n_tokens, dim]
                  seq_offsets const& seqs,
                  tensor_view<float, 2> out,  // [n_seqs, dim]
                  exec_ctx<backend::reference>&, std::span<std::uint8_t const> masked) {
    for (index_t s = 0; s < seqs.n_seqs(); ++s)
      for (index_t j = 0; j < x.extent(1); ++j) {
        float m = -std::numeric_limits<float>::infinity();
        for (index_t t = seqs.begin(s); t < seqs.end(s); ++t) {
          float const v = x(t, j);
          if (std::isnan(v) || v > m) m = v;
          if (std::isnan(m)) break;
        }
        bool const empty = is_masked(masked, s) || seqs.length(s) == 0;
        out(s, j) = empty ? 0.0f : m;
      }
  }
};

}  // namespace tessera::pool::detail
