// SPDX-License-Identifier: Apache-2.0
// nn::layer_norm, reference backend: two passes per row in double (mean, then the mean of squared
// deviations), output rounded to f32 once, so the oracle's own rounding does not enter comparisons.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>

namespace tessera::nn::detail {

template <>
struct layer_norm_impl<backend::reference> {
  template <class W>
  static void run(tensor_view<float const, 2> x,   // [n_rows, dim]
                  tensor_view<W const, 1> weight,  // [dim]
                  tensor_view<W const, 1> bias,    // [dim] or [0]
                  float eps,
                  tensor_view<float, 2> y,         // [n_rows, dim]
                  exec_ctx<backend::reference>&) {
    index_t const dim = x.extent(1);
    bool const has_bias = bias.extent(0) != 0;
    for (index_t r = 0; r < x.extent(0); ++r) {
      double sum = 0.0;
      for (index_t j = 0; j < dim; ++j) sum += static_cast<double>(x(r, j));
      double const mean = sum / static_cast<double>(dim);
      double sq = 0.0;
      for (index_t j = 0; j < dim; ++j) {
        double const d = static_cast<double>(x(r, j)) - mean;
        sq += d * d;
      }
      double const rstd = 1.0 / std::sqrt(sq / static_cast<double>(dim) + static_cast<double>(eps));
      for (index_t j = 0; j < dim; ++j) {   // reads x(r, j) before writing y(r, j): in place is fine
        double v = (static_cast<double>(x(r, j)) - mean) * rstd * static_cast<double>(to_float(weight(j)));
        if (has_bias) v += static_cast<double>(to_float(bias(j)));
        y(r, j) = static_cast<float>(v);
      }
    }
  }
};

}  // namespace tessera::nn::detail
