// SPDX-License-Identifier: Apache-2.0
// pool::patch_merge_2x2 -- the token merge of Qwen2-VL's PatchMerger (and of the POINTS1.5
// vision_projector, spec 3): every 2 x 2 window of patch tokens becomes one row of 4 * dim values
// [(0,0) | (0,1) | (1,0) | (1,1)], windows in raster order per image (and frame).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pack/patchify.hpp>

#include <cstdint>
#include <span>

namespace tessera::pool {

namespace detail {
template <class Backend>
struct patch_merge_impl {  // specialized in detail/patch_merge_ref.hpp, detail/patch_merge_cpu.hpp
  static_assert(always_false<Backend>,
                "pool::patch_merge_2x2 has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/pool/patch_merge.hpp was included through tessera.hpp)");
};

/// Input row of quadrant q (0: (0,0), 1: (0,1), 2: (1,0), 3: (1,1)) of window w of a frame of
/// grid_h x grid_w tokens starting at row `base`.
[[nodiscard]] inline index_t merge_source(index_t base, index_t w, int q, index_t grid_w, bool window_major) noexcept {
  if (window_major) return base + 4 * w + q;
  index_t const wpr = grid_w / 2, row = 2 * (w / wpr) + q / 2, col = 2 * (w % wpr) + q % 2;
  return base + row * grid_w + col;
}
}  // namespace detail

/// Mirrors PatchMerger's `ln_q(x).view(-1, 4 * dim)` (spatial_merge_size 2) on already normed rows:
/// out[o, q * dim + j] = x[source(o, q), j] for the four quadrants q of window o.
///   x:     [n_tokens, dim] f32, the tokens of the images of `grids` back to back (image i has
///          t * h * w tokens, frames in order), in `order`:
///          - token_order::merge_window_major (Qwen2-VL, pack::qwen2vl_layout): the 4 tokens of a
///            window are consecutive, so this is HF's reshape (with a contiguous x,
///            `tensor_view<float const, 2>(x.data(), {n_tokens / 4, 4 * dim})` is the same without a copy);
///          - token_order::row_major (ViT / NaViT layouts): a gather producing the same rows.
///          Rows may be strided, last dimension contiguous.
///   grids: t, h, w >= 1 with h and w even.
///   out:   [n_tokens / 4, 4 * dim] f32, rows in image, frame, window-raster order (one LLM token
///          each); rows may be strided, last dimension contiguous; must not overlap x.
/// Pure data movement: bit-exact on every backend. Workspace: none.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void patch_merge_2x2(tensor_view<float const, 2, backend::space_t<Backend>> x, std::span<patch_grid const> grids,
                     pack::token_order order, tensor_view<float, 2, backend::space_t<Backend>> out,
                     exec_ctx<Backend>& ctx) {
  index_t n_tokens = 0;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    patch_grid const& g = grids[i];
    TESSERA_CHECK(g.t >= 1 && g.h >= 2 && g.w >= 2 && g.h % 2 == 0 && g.w % 2 == 0, "pool::patch_merge_2x2: grid ",
                  i, " (", g.t, ", ", g.h, ", ", g.w, ") needs t >= 1 and even h, w >= 2");
    index_t const left = x.extent(0) - n_tokens;  // rows of x not yet covered; overflow-free test:
    TESSERA_CHECK(g.h <= left / g.w && g.t <= left / (g.h * g.w),
                  "pool::patch_merge_2x2: the grids cover more tokens than x has (", x.extent(0), " rows) at grid ", i);
    n_tokens += g.n_patches();
  }
  TESSERA_CHECK(n_tokens == x.extent(0), "pool::patch_merge_2x2: the grids cover ", n_tokens, " tokens, x has ",
                x.extent(0), " rows");
  TESSERA_CHECK(out.extent(0) == n_tokens / 4 && out.extent(1) == 4 * x.extent(1),
                "pool::patch_merge_2x2: out must be [", n_tokens / 4, ", ", 4 * x.extent(1), "], got [", out.extent(0),
                ", ", out.extent(1), "]");
  TESSERA_CHECK(x.is_row_contiguous() && out.is_row_contiguous(),
                "pool::patch_merge_2x2: the last dimension of x and out must be contiguous");
  if (n_tokens == 0 || x.extent(1) == 0) return;
  detail::patch_merge_impl<Backend>::run(x, grids, order == pack::token_order::merge_window_major, out, ctx);
}

}  // namespace tessera::pool

#include <tessera/pool/detail/patch_merge_ref.hpp>
#include <tessera/pool/detail/patch_merge_cpu.hpp>
