// SPDX-License-Identifier: Apache-2.0
// Geometry shared by the image readers, the packers and the position embeddings: an image's size
// in pixels and its grid of patches (HF's image_grid_thw row).
#pragma once

#include <tessera/core/config.hpp>

namespace tessera {

/// An image size in pixels.
struct image_size {
  index_t height = 0;
  index_t width = 0;
  friend constexpr bool operator==(image_size const&, image_size const&) = default;
};

/// Patch grid of one image, HF's image_grid_thw row: (t, h, w) in patches. A still image has t = 1.
struct patch_grid {
  index_t t = 1;
  index_t h = 0;
  index_t w = 0;
  [[nodiscard]] constexpr index_t n_patches() const noexcept { return t * h * w; }
  friend constexpr bool operator==(patch_grid const&, patch_grid const&) = default;
};

}  // namespace tessera
