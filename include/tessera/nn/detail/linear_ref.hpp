// SPDX-License-Identifier: Apache-2.0
// nn::linear, reference backend: the plain triple loop. The oracle accumulates in double so its
// own rounding does not enter comparisons; the result is rounded to f32 once.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/quant/format.hpp>

#include <vector>

namespace tessera::nn::detail {

template <>
struct linear_impl<backend::reference> {
  template <class W, class Bias>
  static void run(tensor_view<float const, 2> x,      // [n_tokens, d_in]
                  tensor_view<W const, 2> w,          // [d_out, d_in]
                  tensor_view<Bias const, 1> bias,    // [d_out] or [0]
                  tensor_view<float, 2> y,            // [n_tokens, d_out]
                  exec_ctx<backend::reference>&, product_precision precision) {
    bool const round_x = precision == product_precision::bf16;
    for (index_t m = 0; m < x.extent(0); ++m)
      for (index_t n = 0; n < w.extent(0); ++n) {
        double acc = bias.extent(0) ? static_cast<double>(to_float(bias(n))) : 0.0;
        for (index_t k = 0; k < x.extent(1); ++k) {
          float const xv = round_x ? bf16::from_float(x(m, k)).to_float() : x(m, k);
          acc += static_cast<double>(xv) * static_cast<double>(to_float(w(n, k)));
        }
        y(m, n) = static_cast<float>(acc);
      }
  }
};

/// Quantized weights: each row of W dequantized (exact), then the same loop.
template <>
struct qlinear_impl<backend::reference> {
  template <class Bias>
  static void run(tensor_view<float const, 2> x, quant::qmatrix const& w, tensor_view<Bias const, 1> bias,
                  tensor_view<float, 2> y, exec_ctx<backend::reference>&, product_precision precision) {
    bool const round_x = precision == product_precision::bf16;
    std::vector<float> row(static_cast<std::size_t>(w.cols));
    for (index_t n = 0; n < w.rows; ++n) {
      quant::dequantize_row(w, n, row.data());
      for (index_t m = 0; m < x.extent(0); ++m) {
        double acc = bias.extent(0) ? static_cast<double>(to_float(bias(n))) : 0.0;
        for (index_t k = 0; k < w.cols; ++k) {
          float const xv = round_x ? bf16::from_float(x(m, k)).to_float() : x(m, k);
          acc += static_cast<double>(xv) * static_cast<double>(row[static_cast<std::size_t>(k)]);
        }
        y(m, n) = static_cast<float>(acc);
      }
    }
  }
  template <class Bias>
  static void run_group(tensor_view<float const, 2> x, std::span<quantized_output<Bias> const> outs,
                        exec_ctx<backend::reference>& ctx, product_precision precision) {
    for (quantized_output<Bias> const& o : outs) run(x, o.w, o.bias, o.y, ctx, precision);
  }
};

}  // namespace tessera::nn::detail
