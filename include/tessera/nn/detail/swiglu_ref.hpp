// SPDX-License-Identifier: Apache-2.0
// nn::swiglu, reference backend: silu(gate) * up in double, rounded to f32 once.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>

namespace tessera::nn::detail {

template <>
struct swiglu_impl<backend::reference> {
  static void run(tensor_view<float const, 2> gate,  // [n_rows, d_ff]
                  tensor_view<float const, 2> up,    // [n_rows, d_ff]
                  tensor_view<float, 2> y,           // [n_rows, d_ff]
                  exec_ctx<backend::reference>&) {
    for (index_t r = 0; r < gate.extent(0); ++r)
      for (index_t j = 0; j < gate.extent(1); ++j)
        y(r, j) = static_cast<float>(x_sigmoid_exact(static_cast<double>(gate(r, j)), 1.0) *
                                     static_cast<double>(up(r, j)));
  }
};

}  // namespace tessera::nn::detail
