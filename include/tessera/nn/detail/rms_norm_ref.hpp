// SPDX-License-Identifier: Apache-2.0
// nn::rms_norm, reference backend: the mean of squares in double, the scale 1/sqrt(ms + eps)
// rounded to f32, then HF's two f32 products (x * scale, then * weight).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>

namespace tessera::nn::detail {

template <>
struct rms_norm_impl<backend::reference> {
  template <class W>
  static void run(tensor_view<float const, 2> x,   // [n_rows, dim]
                  tensor_view<W const, 1> weight,  // [dim]
                  float eps,
                  tensor_view<float, 2> y,         // [n_rows, dim]
                  exec_ctx<backend::reference>&) {
    index_t const dim = x.extent(1);
    for (index_t r = 0; r < x.extent(0); ++r) {
      double sq = 0.0;
      for (index_t j = 0; j < dim; ++j) sq += static_cast<double>(x(r, j)) * static_cast<double>(x(r, j));
      auto const scale =
          static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(dim) + static_cast<double>(eps)));
      for (index_t j = 0; j < dim; ++j) {
        float const normed = x(r, j) * scale;   // HF: hidden_states * torch.rsqrt(variance + eps)
        y(r, j) = to_float(weight(j)) * normed;  // HF: self.weight * hidden_states
      }
    }
  }
};

}  // namespace tessera::nn::detail
