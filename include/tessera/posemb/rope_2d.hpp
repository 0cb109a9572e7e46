// SPDX-License-Identifier: Apache-2.0
// posemb::rope_2d -- the 2-D rotary position embedding of the Qwen2-VL / POINTS1.5 vision encoder:
// transformers' VisionRotaryEmbedding(head_dim / 2, theta) + Qwen2VisionTransformer.rot_pos_emb +
// apply_rotary_pos_emb_vision (4.46), in f32, in place; plus the (row, col) position ids of
// rot_pos_emb for a list of image grids.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/posemb/rope_1d.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

namespace tessera::posemb {

namespace detail {
template <class Backend>
struct rope_2d_impl {  // specialized in detail/rope_2d_ref.hpp, detail/rope_2d_cpu.hpp
  static_assert(always_false<Backend>,
                "posemb::rope_2d has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/posemb/rope_2d.hpp was included through tessera.hpp)");
};

/// The rotary frequency of dimension d (0 <= d < head_dim / 2) of rope_2d: HF's
/// VisionRotaryEmbedding(dim = head_dim / 2) has head_dim / 4 frequencies
///   inv_freq[k] = 1 / theta^(2k / (head_dim / 2))   (f32, computed as rope_inv_freq does)
/// and rot_pos_emb concatenates [row * inv_freq | col * inv_freq], so dims [0, head_dim / 4) take
/// inv_freq[d] with the row, dims [head_dim / 4, head_dim / 2) inv_freq[d - head_dim / 4] with the col.
[[nodiscard]] inline float rope_2d_inv_freq(float theta, index_t head_dim, index_t d) noexcept {
  index_t const quarter = head_dim / 4;
  return rope_inv_freq(theta, head_dim / 2, d < quarter ? d : d - quarter);
}

/// Host-side checks shared by rope_2d and rope_2d_angles.
template <class Space>
void check_rope_2d_positions(char const* block, tensor_view<std::int32_t const, 2, Space> const& pos,
                             index_t n_tokens) {
  TESSERA_CHECK(pos.extent(0) == n_tokens && pos.extent(1) == 2, block, ": pos must be [", n_tokens,
                ", 2] (row, col), got [", pos.extent(0), ", ", pos.extent(1), "]");
  if constexpr (std::is_same_v<Space, backend::host_space>) {
    for (index_t t = 0; t < n_tokens; ++t)
      TESSERA_CHECK(pos(t, 0) >= 0 && pos(t, 1) >= 0, block, ": positions must be >= 0, token ", t, " has (",
                    pos(t, 0), ", ", pos(t, 1), ")");
  }
}
}  // namespace detail

/// Mirrors HF Qwen2-VL's vision RoPE (VisionRotaryEmbedding(head_dim / 2, theta), rot_pos_emb,
/// apply_rotary_pos_emb_vision) on q or k, in f32, in place. With h = head_dim / 2, q = head_dim / 4,
/// inv_freq[k] = 1 / theta^(2k / h) (k < q) and, for d < h,
///   angle[d] = float(row) * inv_freq[d]        for d < q        (f32 products, as HF's outer())
///            = float(col) * inv_freq[d - q]    for q <= d < h
///   out[d]     = x[d] * cos(angle[d]) - x[d + h] * sin(angle[d])      (rotate_half pairing d <-> d + h)
///   out[d + h] = x[d + h] * cos(angle[d]) + x[d] * sin(angle[d])
/// i.e. dims [0, q) and [h, h + q) rotate with the row, the rest with the column; the same angles
/// for every head. Pitfall (spec 7.6): interleaved pairs or swapped row / col silently break it.
///   x:     [n_tokens, n_heads, head_dim] f32, rotated in place; head_dim % 4 == 0; token and head
///          strides free (q or k inside a fused qkv projection), last dimension contiguous.
///   pos:   [n_tokens, 2] int32 (row, col) >= 0, in the token order of x (qwen2vl_position_ids()
///          builds HF's window-major ids; pack::patch_coords gives the same for one still image).
///   theta: rope base (Qwen2-VL: 10000), finite and > 0.
/// Numerics: cos / sin of the f32 angle; the reference rounds double cos / sin to f32 (correctly
/// rounded), the cpu backend uses xsimd::sincos (about 1 ulp), torch's f32 kernels are within 1 ulp.
/// Workspace: the cpu backend takes (2 + 2 * threads) * head_dim / 2 floats from ctx.scratch().
/// Determinism: bitwise reproducible for a backend and shape, independent of the thread count.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void rope_2d(tensor_view<float, 3, backend::space_t<Backend>> x,
             tensor_view<std::int32_t const, 2, backend::space_t<Backend>> pos, float theta,
             exec_ctx<Backend>& ctx) {
  index_t const n_tokens = x.extent(0), head_dim = x.extent(2);
  TESSERA_CHECK(head_dim % 4 == 0, "posemb::rope_2d: head_dim must be a multiple of 4 (row and column halves of ",
                "the rotated pairs), got ", head_dim);
  TESSERA_CHECK(x.is_row_contiguous(), "posemb::rope_2d: the last dimension of x must be contiguous (stride 1), got ",
                x.stride(2));
  TESSERA_CHECK(theta > 0.0f && std::isfinite(theta), "posemb::rope_2d: theta must be finite and > 0, got ", theta);
  detail::check_rope_2d_positions("posemb::rope_2d", pos, n_tokens);
  if (n_tokens == 0 || x.extent(1) == 0 || head_dim == 0) return;
  detail::rope_2d_impl<Backend>::run(x, pos, theta, ctx);
}

/// HF's `rotary_pos_emb` (rot_pos_emb's output, before the cat(freqs, freqs)): the f32 angles
/// angles[t, d] of rope_2d for d < head_dim / 2, = [row * inv_freq | col * inv_freq]. Host only;
/// for tests and debugging (rope_2d never materializes it).
///   pos: [n_tokens, 2] int32 (row, col) >= 0; angles: [n_tokens, head_dim / 2] f32, last dim contiguous.
inline void rope_2d_angles(tensor_view<std::int32_t const, 2> pos, float theta, index_t head_dim,
                           tensor_view<float, 2> angles) {
  TESSERA_CHECK(head_dim > 0 && head_dim % 4 == 0, "posemb::rope_2d_angles: head_dim must be a positive multiple ",
                "of 4, got ", head_dim);
  TESSERA_CHECK(theta > 0.0f && std::isfinite(theta), "posemb::rope_2d_angles: theta must be finite and > 0, got ",
                theta);
  detail::check_rope_2d_positions("posemb::rope_2d_angles", pos, pos.extent(0));
  TESSERA_CHECK(angles.extent(0) == pos.extent(0) && angles.extent(1) == head_dim / 2,
                "posemb::rope_2d_angles: angles must be [", pos.extent(0), ", ", head_dim / 2, "], got [",
                angles.extent(0), ", ", angles.extent(1), "]");
  index_t const quarter = head_dim / 4;
  for (index_t t = 0; t < pos.extent(0); ++t)
    for (index_t d = 0; d < head_dim / 2; ++d)
      angles(t, d) = static_cast<float>(pos(t, d < quarter ? 0 : 1)) * detail::rope_2d_inv_freq(theta, head_dim, d);
}

/// Number of tokens of a list of grids: sum of t * h * w (HF: the rows of pixel_values / 4 dims).
[[nodiscard]] inline index_t n_grid_tokens(std::span<patch_grid const> grids) {
  index_t n = 0;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    patch_grid const& g = grids[i];
    TESSERA_CHECK(g.t >= 1 && g.h >= 1 && g.w >= 1, "posemb::n_grid_tokens: grid ", i, " (", g.t, ", ", g.h, ", ",
                  g.w, ") must have t, h, w >= 1");
    TESSERA_CHECK(g.h <= std::numeric_limits<std::int32_t>::max() / g.w &&
                      g.h * g.w <= std::numeric_limits<std::int32_t>::max() / g.t &&
                      n <= std::numeric_limits<std::int32_t>::max() - g.n_patches(),
                  "posemb::n_grid_tokens: the token count exceeds int32 at grid ", i);
    n += g.n_patches();
  }
  return n;
}

/// The (row, col) position ids of HF Qwen2VisionTransformer.rot_pos_emb for images with the given
/// grid_thw rows, concatenated in image order: per image, the h x w grid in merge x merge
/// window-major order (windows row-major, patches inside a window row-major: (0,0), (0,1), (1,0),
/// (1,1), (0,2), ...), repeated t times (`.repeat(t, 1)`). The token order of pack::patchify with
/// pack::qwen2vl_layout.
///   grids: t, h, w >= 1, h and w multiples of merge (HF reshapes by them).
///   out:   [n_grid_tokens(grids), 2] int32, last dimension contiguous.
inline void qwen2vl_position_ids(std::span<patch_grid const> grids, tensor_view<std::int32_t, 2> out,
                                 index_t merge = 2) {
  TESSERA_CHECK(merge >= 1 && merge <= 64, "posemb::qwen2vl_position_ids: merge must be in [1, 64], got ", merge);
  index_t const n = n_grid_tokens(grids);
  TESSERA_CHECK(out.extent(0) == n && out.extent(1) == 2, "posemb::qwen2vl_position_ids: out must be [", n,
                ", 2], got [", out.extent(0), ", ", out.extent(1), "]");
  TESSERA_CHECK(out.is_row_contiguous(), "posemb::qwen2vl_position_ids: the last dimension of out must be contiguous");
  index_t base = 0;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    patch_grid const& g = grids[i];
    TESSERA_CHECK(g.h % merge == 0 && g.w % merge == 0, "posemb::qwen2vl_position_ids: grid ", i, " is ", g.h, " x ",
                  g.w, " patches; both sides must be multiples of merge = ", merge);
    index_t const frame = g.h * g.w;
    for (index_t k = 0; k < frame; ++k) {
      pack::detail::token_position const p = pack::detail::position_of(k, g.w, merge, true);
      for (index_t f = 0; f < g.t; ++f) {
        std::int32_t* o = out.row(base + f * frame + k);
        o[0] = static_cast<std::int32_t>(p.row);
        o[1] = static_cast<std::int32_t>(p.col);
      }
    }
    base += g.n_patches();
  }
}

}  // namespace tessera::posemb

#include <tessera/posemb/detail/rope_2d_ref.hpp>
#include <tessera/posemb/detail/rope_2d_cpu.hpp>
