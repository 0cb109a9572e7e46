// SPDX-License-Identifier: Apache-2.0
// nn::softmax, reference backend: maximum, then exp and sum in double, one division per element
// rounded to f32 once.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>
#include <limits>

namespace tessera::nn::detail {

template <>
struct softmax_impl<backend::reference> {
  static void run(tensor_view<float const, 2> x,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  exec_ctx<backend::reference>&) {
    constexpr double inf = std::numeric_limits<double>::infinity();
    index_t const dim = x.extent(1);
    for (index_t r = 0; r < x.extent(0); ++r) {
      double m = -inf;
      for (index_t j = 0; j < dim; ++j) m = std::fmax(m, static_cast<double>(x(r, j)));  // fmax skips NaN
      if (m == -inf) {  // every entry -inf: 0 / 0, NaN as in PyTorch
        for (index_t j = 0; j < dim; ++j) y(r, j) = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      // +inf gives m = inf and inf - inf = NaN; a NaN entry gives exp(NaN): either way the sum is
      // NaN and so is the whole row, as in PyTorch.
      double sum = 0.0;
      for (index_t j = 0; j < dim; ++j) sum += std::exp(static_cast<double>(x(r, j)) - m);
      for (index_t j = 0; j < dim; ++j) y(r, j) = static_cast<float>(std::exp(static_cast<double>(x(r, j)) - m) / sum);
    }
  }
};

}  // namespace tessera::nn::detail
