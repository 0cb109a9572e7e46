// SPDX-License-Identifier: Apache-2.0
// pool::patch_merge_2x2, reference backend: element by element, per image, frame, window, quadrant.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pack/patchify.hpp>

#include <span>

namespace tessera::pool::detail {

template <>
struct patch_merge_impl<backend::reference> {
  static void run(tensor_view<float const, 2> x,  // [n_tokens, dim]
                  std::span<patch_grid const> grids, bool window_major,
                  tensor_view<float, 2> out,  // [n_tokens / 4, 4 * dim]
                  exec_ctx<backend::reference>&) {
    index_t const dim = x.extent(1);
    index_t base = 0, o = 0;
    for (patch_grid const& g : grids)
      for (index_t f = 0; f < g.t; ++f, base += g.h * g.w)
        for (index_t w = 0; w < g.h * g.w / 4; ++w, ++o)
          for (int q = 0; q < 4; ++q) {
            index_t const src = merge_source(base, w, q, g.w, window_major);
            for (index_t j = 0; j < dim; ++j) out(o, q * dim + j) = x(src, j);
          }
  }
};

}  // namespace tessera::pool::detail
