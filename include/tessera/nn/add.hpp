// SPDX-License-Identifier: Apache-2.0
// nn::add -- the residual connection of every transformer block (h = x + attn(...), out = h +
// mlp(...)): y = a + b element-wise on f32 [n_rows, dim] views.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

namespace tessera::nn {

namespace detail {
template <class Backend>
struct add_impl {  // specialized in detail/add_ref.hpp, detail/add_cpu.hpp
  static_assert(always_false<Backend>,
                "nn::add has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/nn/add.hpp was included through tessera.hpp)");
};
}  // namespace detail

/// Mirrors torch.add(a, b) / `a + b` on f32 (the residual add of HF Qwen2DecoderLayer and
/// Qwen2VLVisionBlock). One f32 addition per element, so every backend gives the same bits.
///   a, b: [n_rows, dim] f32; rows may be strided, the last dimension must be contiguous.
///   y:    [n_rows, dim] f32, last dimension contiguous; may be exactly a or exactly b (same data
///         and strides: the usual in-place residual `x += f(x)`), otherwise must not overlap them.
/// Workspace: none. Determinism: exact (correctly rounded f32 sums).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void add(tensor_view<float const, 2, backend::space_t<Backend>> a,
         tensor_view<float const, 2, backend::space_t<Backend>> b, tensor_view<float, 2, backend::space_t<Backend>> y,
         exec_ctx<Backend>& ctx) {
  TESSERA_CHECK(b.extent(0) == a.extent(0) && b.extent(1) == a.extent(1), "nn::add: b must be [", a.extent(0), ", ",
                a.extent(1), "] like a, got [", b.extent(0), ", ", b.extent(1), "]");
  TESSERA_CHECK(y.extent(0) == a.extent(0) && y.extent(1) == a.extent(1), "nn::add: y must be [", a.extent(0), ", ",
                a.extent(1), "] like a, got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(a.is_row_contiguous() && b.is_row_contiguous() && y.is_row_contiguous(),
                "nn::add: the last dimension of a, b and y must be contiguous (stride 1), got strides ", a.stride(1),
                ", ", b.stride(1), ", ", y.stride(1));
  auto const* const yd = static_cast<void const*>(y.data());
  TESSERA_CHECK((yd != static_cast<void const*>(a.data()) || y.strides() == a.strides()) &&
                    (yd != static_cast<void const*>(b.data()) || y.strides() == b.strides()),
                "nn::add: in place, y must be exactly a or b (same strides)");
  if (a.extent(0) == 0 || a.extent(1) == 0) return;
  detail::add_impl<Backend>::run(a, b, y, ctx);
}

}  // namespace tessera::nn

#include <tessera/nn/detail/add_ref.hpp>
#include <tessera/nn/detail/add_cpu.hpp>
