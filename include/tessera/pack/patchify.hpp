// SPDX-License-Identifier: Apache-2.0
// pack::patchify -- cuts an image into patch rows for a vision transformer, in the token and
// feature orders of the two model families tessera targets:
//   - Qwen2-VL / POINTS1.5 (Qwen2VLImageProcessor._preprocess, spec section 1.5): 14 x 14 patches,
//     a still image repeated over temporal_patch_size = 2 frames, tokens in 2 x 2 merge-window-major
//     order, features (c, t, py, px) = the flattening of the Conv3d patch-embedding kernel;
//   - NaViT (big_vision naflex patchify, vit-pytorch na_vit): tokens row-major, features
//     (py, px, c), one frame.
// Also the per-token (row, col) patch coordinates that 2-D RoPE and factorized position embeddings
// read, in the same token order.
#pragma once

#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pack/detail/patchify_impl.hpp>

#include <cstdint>
#include <limits>

namespace tessera::pack {

/// Order of the tokens (patches) of one image.
enum class token_order {
  merge_window_major,  ///< merge x merge windows row-major, patches inside a window row-major (Qwen2-VL)
  row_major,           ///< patches row-major over the whole grid (ViT, NaViT)
};

/// Order of the values inside one patch row.
enum class feature_order {
  c_t_py_px,  ///< channel, frame, patch row, patch column: Conv3d kernel [C, T, p, p] flattened (Qwen2-VL)
  t_py_px_c,  ///< frame, patch row, patch column, channel: channels last (big_vision, vit-pytorch)
};

/// How an image becomes patch rows.
struct patch_layout {
  index_t patch = 14;     ///< patch side in pixels
  index_t temporal = 2;   ///< frames per patch; a still image is repeated this many times
  index_t merge = 2;      ///< side of the token windows the merger concatenates (1 = no windows)
  token_order tokens = token_order::merge_window_major;
  feature_order features = feature_order::c_t_py_px;

  /// Values per patch row for an image with `channels` channels.
  [[nodiscard]] constexpr index_t n_features(index_t channels = 3) const noexcept {
    return channels * temporal * patch * patch;
  }
  /// Image sides must be multiples of this (Qwen2-VL: 28, the smart_resize factor).
  [[nodiscard]] constexpr index_t side_multiple() const noexcept { return patch * merge; }
};

/// Qwen2-VL / POINTS1.5: patch 14, 2 frames, 2 x 2 merge windows, Conv3d feature order; 1176 features.
inline constexpr patch_layout qwen2vl_layout{14, 2, 2, token_order::merge_window_major, feature_order::c_t_py_px};

/// NaViT-style: `patch` x `patch` patches, one frame, row-major tokens, (py, px, c) features.
[[nodiscard]] constexpr patch_layout navit_layout(index_t patch) noexcept {
  return {patch, 1, 1, token_order::row_major, feature_order::t_py_px_c};
}

/// The patch grid of an image (core/geometry.hpp), in this namespace too.
using tessera::patch_grid;

/// Checks `layout` and the image size against it and returns the patch grid.
/// Throws tessera::error if a layout field is < 1, or a side is not a positive multiple of
/// patch * merge.
[[nodiscard]] inline patch_grid grid_for(patch_layout const& layout, index_t height, index_t width) {
  TESSERA_CHECK(layout.patch >= 1 && layout.temporal >= 1 && layout.merge >= 1, "pack::patchify: patch (",
                layout.patch, "), temporal (", layout.temporal, ") and merge (", layout.merge, ") must all be >= 1");
  TESSERA_CHECK(layout.patch <= 4096 && layout.temporal <= 64 && layout.merge <= 64, "pack::patchify: patch ",
                layout.patch, ", temporal ", layout.temporal, ", merge ", layout.merge, " are beyond any real model");
  index_t const m = layout.side_multiple();
  TESSERA_CHECK(height > 0 && width > 0 && height % m == 0 && width % m == 0, "pack::patchify: image of ", height,
                " x ", width, " pixels; both sides must be positive multiples of patch * merge = ", m);
  TESSERA_CHECK(height / layout.patch <= std::numeric_limits<std::int32_t>::max() &&
                    width / layout.patch <= std::numeric_limits<std::int32_t>::max(),
                "pack::patchify: a patch grid of ", height / layout.patch, " x ", width / layout.patch,
                " does not fit int32 coordinates");
  return {1, height / layout.patch, width / layout.patch};
}

/// Cuts a [C, H, W] float image into patch rows.
///   image: [channels, height, width], any strides; height and width multiples of patch * merge.
///   out:   [grid.h * grid.w, layout.n_features(channels)], last dimension contiguous; rows may be
///          strided (e.g. a slice of a packed batch).
/// Token k covers patch (row, col) of patch_coords(); patch row values follow layout.features, every
/// frame t holding the same image. Pure data movement: bit-exact. `threads` = 0 takes OpenMP's default.
inline void patchify(tensor_view<float const, 3> image, patch_layout const& layout, tensor_view<float, 2> out,
                     int threads = 0) {
  patch_grid const g = grid_for(layout, image.extent(1), image.extent(2));
  index_t const channels = image.extent(0);
  TESSERA_CHECK(channels >= 1, "pack::patchify: the image has no channels");
  TESSERA_CHECK(out.extent(0) == g.n_patches() && out.extent(1) == layout.n_features(channels),
                "pack::patchify: out must be [", g.n_patches(), ", ", layout.n_features(channels), "], got [",
                out.extent(0), ", ", out.extent(1), "]");
  TESSERA_CHECK(out.is_row_contiguous(), "pack::patchify: the last dimension of out must be contiguous");
  float const* p = image.data();
  index_t const sc = image.stride(0), sy = image.stride(1), sx = image.stride(2);
  auto const src = [=](index_t c, index_t y, index_t x) { return p[c * sc + y * sy + x * sx]; };
  detail::patchify_rows(src, channels, layout.patch, layout.temporal, layout.merge,
                        layout.tokens == token_order::merge_window_major,
                        layout.features == feature_order::c_t_py_px, g.h, g.w, out.data(), out.stride(0),
                        threads > 0 ? threads : backend::default_threads());
}

/// Per-token patch coordinates for `grid` in `layout`'s token order: out[k] = (row, col), int32.
///   out: [grid.t * grid.h * grid.w, 2], last dimension contiguous. grid.t must be 1 (still images).
inline void patch_coords(patch_layout const& layout, patch_grid const& grid, tensor_view<std::int32_t, 2> out) {
  TESSERA_CHECK(grid.t == 1 && grid.h > 0 && grid.w > 0, "pack::patch_coords: grid (", grid.t, ", ", grid.h, ", ",
                grid.w, ") must have t = 1 and positive h, w");
  (void)grid_for(layout, grid.h * layout.patch, grid.w * layout.patch);
  TESSERA_CHECK(out.extent(0) == grid.n_patches() && out.extent(1) == 2, "pack::patch_coords: out must be [",
                grid.n_patches(), ", 2], got [", out.extent(0), ", ", out.extent(1), "]");
  TESSERA_CHECK(out.is_row_contiguous(), "pack::patch_coords: the last dimension of out must be contiguous");
  bool const window_major = layout.tokens == token_order::merge_window_major;
  for (index_t k = 0; k < grid.n_patches(); ++k) {
    detail::token_position const pos = detail::position_of(k, grid.w, layout.merge, window_major);
    std::int32_t* o = out.row(k);
    o[0] = static_cast<std::int32_t>(pos.row);
    o[1] = static_cast<std::int32_t>(pos.col);
  }
}

/// Patch rows and coordinates of one image, owned.
struct patches {
  host_buffer<float> values;         ///< [n_patches, n_features]
  host_buffer<std::int32_t> coords;  ///< [n_patches, 2] = (row, col)
  patch_grid grid;
  index_t n_features = 0;

  [[nodiscard]] index_t n_patches() const noexcept { return grid.n_patches(); }
  [[nodiscard]] tensor_view<float const, 2> rows() const { return values.view(n_patches(), n_features); }
  [[nodiscard]] tensor_view<std::int32_t const, 2> coordinates() const { return coords.view(n_patches(), 2); }
};

/// Allocating form of patchify + patch_coords.
[[nodiscard]] inline patches patchify(tensor_view<float const, 3> image, patch_layout const& layout = qwen2vl_layout,
                                      int threads = 0) {
  patches out;
  out.grid = grid_for(layout, image.extent(1), image.extent(2));
  out.n_features = layout.n_features(image.extent(0));
  out.values = host_buffer<float>(out.grid.n_patches() * out.n_features);
  out.coords = host_buffer<std::int32_t>(out.grid.n_patches() * 2);
  patchify(image, layout, out.values.view(out.grid.n_patches(), out.n_features), threads);
  patch_coords(layout, out.grid, out.coords.view(out.grid.n_patches(), 2));
  return out;
}

}  // namespace tessera::pack
