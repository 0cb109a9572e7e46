// SPDX-License-Identifier: Apache-2.0
// posemb::rope_1d -- rotary position embedding with 1-D positions, GPT-NeoX "half split" pairing
// (dimension d rotates with d + head_dim / 2), as HF transformers' Qwen2RotaryEmbedding +
// apply_rotary_pos_emb / rotate_half compute it in f32 (the Qwen2.5 decoder of POINTS1.5).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace tessera::posemb {

namespace detail {
template <class Backend>
struct rope_1d_impl {  // specialized in detail/rope_1d_ref.hpp, detail/rope_1d_cpu.hpp
  static_assert(always_false<Backend>,
                "posemb::rope_1d has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/posemb/rope_1d.hpp was included through tessera.hpp)");
};

/// inv_freq[i] of transformers' default rope init (_compute_default_rope_parameters, 4.46):
///   inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
/// evaluated the way torch does it in f32: the exponent 2i / dim is an f32 division; `base ** t`
/// is an f32 pow (base rounded to f32; torch's CPU kernel is Sleef's 1-ulp powf, here the
/// correctly rounded value via double pow, so the two can differ by 1 ulp in rare cases);
/// `1.0 / t` is an f32 reciprocal.
[[nodiscard]] inline float rope_inv_freq(float theta, index_t head_dim, index_t i) noexcept {
  float const e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
  auto const p = static_cast<float>(std::pow(static_cast<double>(theta), static_cast<double>(e)));
  return 1.0f / p;
}
}  // namespace detail

/// Mirrors HF Qwen2RotaryEmbedding (default rope type, attention_scaling 1) followed by
/// apply_rotary_pos_emb on q or k, in f32, in place. With h = head_dim / 2 and d < h:
///   angle[d] = float(position) * inv_freq[d]          (f32 product, as HF's inv_freq @ positions)
///   out[d]     = x[d] * cos(angle[d]) - x[d + h] * sin(angle[d])
///   out[d + h] = x[d + h] * cos(angle[d]) + x[d] * sin(angle[d])
///   x:         [n_tokens, n_heads, head_dim] f32, rotated in place; head_dim even; the token and
///              head strides are free (e.g. the q or k columns of a fused qkv projection), the last
///              dimension must be contiguous.
///   positions: [n_tokens] int32, each >= 0 (0..L-1 for a prompt, past_len for decoded tokens).
///              Large positions are legal: like HF, the angle is rounded to f32 first.
///   theta:     rope base (rope_theta; Qwen2.5: 1e6), finite and > 0.
/// Workspace: the cpu backend takes (1 + 2 * threads) * head_dim / 2 floats (inv_freq, and one
/// cos / sin row per thread) from ctx.scratch().
/// Determinism: bitwise reproducible for a backend and shape, independent of the thread count.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void rope_1d(tensor_view<float, 3, backend::space_t<Backend>> x,
             tensor_view<std::int32_t const, 1, backend::space_t<Backend>> positions, float theta,
             exec_ctx<Backend>& ctx) {
  index_t const n_tokens = x.extent(0), head_dim = x.extent(2);
  TESSERA_CHECK(head_dim % 2 == 0, "posemb::rope_1d: head_dim must be even (pairs d, d + head_dim / 2), got ",
                head_dim);
  TESSERA_CHECK(positions.extent(0) == n_tokens, "posemb::rope_1d: positions must have ", n_tokens,
                " entries (x is [", n_tokens, ", ", x.extent(1), ", ", head_dim, "]), got ", positions.extent(0));
  TESSERA_CHECK(x.is_row_contiguous(), "posemb::rope_1d: the last dimension of x must be contiguous (stride 1), got ",
                x.stride(2));
  TESSERA_CHECK(theta > 0.0f && std::isfinite(theta), "posemb::rope_1d: theta must be finite and > 0, got ", theta);
  if constexpr (std::is_same_v<backend::space_t<Backend>, backend::host_space>) {
    for (index_t t = 0; t < n_tokens; ++t)
      TESSERA_CHECK(positions(t) >= 0, "posemb::rope_1d: positions must be >= 0, token ", t, " has ", positions(t));
  }
  if (n_tokens == 0 || x.extent(1) == 0 || head_dim == 0) return;
  detail::rope_1d_impl<Backend>::run(x, positions, theta, ctx);
}

}  // namespace tessera::posemb

#include <tessera/posemb/detail/rope_1d_ref.hpp>
#include <tessera/posemb/detail/rope_1d_cpu.hpp>
