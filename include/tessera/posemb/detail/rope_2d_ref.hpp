// SPDX-License-Identifier: Apache-2.0
// posemb::rope_2d, reference backend: per token and dimension the f32 angle (row or col times
// inv_freq), its cos and sin in double rounded to f32, then HF's rotation in f32.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>
#include <cstdint>

namespace tessera::posemb::detail {

template <>
struct rope_2d_impl<backend::reference> {
  static void run(tensor_view<float, 3> x,                // [n_tokens, n_heads, head_dim]
                  tensor_view<std::int32_t const, 2> pos,  // [n_tokens, 2] = (row, col)
                  float theta, exec_ctx<backend::reference>&) {
    index_t const head_dim = x.extent(2), half = head_dim / 2, quarter = head_dim / 4;
    for (index_t t = 0; t < x.extent(0); ++t)
      for (index_t d = 0; d < half; ++d) {
        float const p = static_cast<float>(pos(t, d < quarter ? 0 : 1));
        float const angle = p * rope_2d_inv_freq(theta, head_dim, d);
        auto const c = static_cast<float>(std::cos(static_cast<double>(angle)));
        auto const s = static_cast<float>(std::sin(static_cast<double>(angle)));
        for (index_t h = 0; h < x.extent(1); ++h) {
          float const a = x(t, h, d), b = x(t, h, d + half);
          x(t, h, d) = a * c - b * s;         // x * cos + rotate_half(x) * sin, first half
          x(t, h, d + half) = b * c + a * s;  // second half
        }
      }
  }
};

}  // namespace tessera::posemb::detail
