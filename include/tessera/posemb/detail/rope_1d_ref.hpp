// SPDX-License-Identifier: Apache-2.0
// posemb::rope_1d, reference backend: per token and frequency, the f32 angle, its cos and sin
// in double rounded to f32 (correctly rounded, where torch's f32 cos / sin are within 1 ulp),
// then HF's rotation in f32.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>
#include <cstdint>

namespace tessera::posemb::detail {

template <>
struct rope_1d_impl<backend::reference> {
  static void run(tensor_view<float, 3> x,                     // [n_tokens, n_heads, head_dim]
                  tensor_view<std::int32_t const, 1> positions,  // [n_tokens]
                  float theta, exec_ctx<backend::reference>&) {
    index_t const half = x.extent(2) / 2;
    for (index_t t = 0; t < x.extent(0); ++t) {
      auto const pos = static_cast<float>(positions(t));
      for (index_t d = 0; d < half; ++d) {
        float const angle = pos * rope_inv_freq(theta, x.extent(2), d);
        auto const c = static_cast<float>(std::cos(static_cast<double>(angle)));
        auto const s = static_cast<float>(std::sin(static_cast<double>(angle)));
        for (index_t h = 0; h < x.extent(1); ++h) {
          float const a = x(t, h, d), b = x(t, h, d + half);
          x(t, h, d) = a * c - b * s;         // q * cos + rotate_half(q) * sin, first half
          x(t, h, d + half) = b * c + a * s;  // second half
        }
      }
    }
  }
};

}  // namespace tessera::posemb::detail
