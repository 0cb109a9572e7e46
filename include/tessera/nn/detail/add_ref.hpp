// SPDX-License-Identifier: Apache-2.0
// nn::add, reference backend: one f32 addition per element.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

namespace tessera::nn::detail {

template <>
struct add_impl<backend::reference> {
  static void run(tensor_view<float const, 2> a,  // [n_rows, dim]
                  tensor_view<float const, 2> b,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  exec_ctx<backend::reference>&) {
    for (index_t r = 0; r < a.extent(0); ++r)
      for (index_t j = 0; j < a.extent(1); ++j) y(r, j) = a(r, j) + b(r, j);
  }
};

}  // namespace tessera::nn::detail
