// SPDX-License-Identifier: Apache-2.0
// The rotation shared by the cpu backends of posemb::rope_1d and posemb::rope_2d: GPT-NeoX "half
// split" pairs (d, d + half) rotated by a precomputed cos / sin row, with xsimd batches.
#pragma once

#include <tessera/backend/cpu/simd.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cstddef>

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::posemb::detail {

/// x[d] <- x[d] cos[d] - x[d + half] sin[d], x[d + half] <- x[d + half] cos[d] + x[d] sin[d] for
/// d < half, in f32. cos_row / sin_row are aligned and padded to a multiple of the batch width.
template <class Arch>
void rotate_half_split(float* x,              // [2 * half], rotated in place
                       float const* cos_row,  // [padded]
                       float const* sin_row,  // [padded]
                       index_t half) noexcept {
  using namespace backend::cpu_detail;
  using batch = fbatch<Arch>;
  constexpr auto width = static_cast<index_t>(batch::size);
  index_t d = 0;
  for (; d + width <= half; d += width) {
    batch const a = batch::load_unaligned(x + d), b = batch::load_unaligned(x + half + d);
    batch const c = batch::load_aligned(cos_row + d), s = batch::load_aligned(sin_row + d);
    (a * c - b * s).store_unaligned(x + d);
    (b * c + a * s).store_unaligned(x + half + d);
  }
  if (d < half) {
    auto const tail = static_cast<std::size_t>(half - d);
    batch const a = load_partial_as_float<Arch>(x + d, tail, 0.0f);
    batch const b = load_partial_as_float<Arch>(x + half + d, tail, 0.0f);
    batch const c = batch::load_aligned(cos_row + d), s = batch::load_aligned(sin_row + d);
    store_partial<Arch>(x + d, a * c - b * s, tail);
    store_partial<Arch>(x + half + d, b * c + a * s, tail);
  }
}

}  // namespace tessera::posemb::detail

TESSERA_SIMD_DIAGNOSTICS_END
