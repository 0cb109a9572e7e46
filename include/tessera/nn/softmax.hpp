// SPDX-License-Identifier: Apache-2.0
// nn::softmax -- torch.softmax(x, dim=-1) on f32 rows, with the row maximum subtracted first so
// that exp never overflows (the attention probabilities of HF Qwen2's eager path, in f32).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

namespace tessera::nn {

namespace detail {
template <class Backend>
struct softmax_impl {  // specialized in detail/softmax_ref.hpp, detail/softmax_cpu.hpp
  static_assert(always_false<Backend>,
                "nn::softmax has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/nn/softmax.hpp was included through tessera.hpp)");
};
}  // namespace detail

/// Mirrors torch.softmax(x, dim=-1) / nn.Softmax(dim=-1) for f32:
///   y[r, j] = exp(x[r, j] - max_r) / sum_k exp(x[r, k] - max_r).
///   x: [n_rows, dim] f32; rows may be strided, the last dimension must be contiguous.
///   y: [n_rows, dim] f32, last dimension contiguous; either exactly x (same data and strides: in
///      place) or not overlapping x.
/// Special values, as PyTorch: -inf entries (masked scores) give 0; a row whose entries are all
/// -inf gives NaN everywhere (0 / 0; PyTorch returns NaN too -- masked attention handles empty
/// rows itself, see attn/); a row containing +inf or NaN gives NaN everywhere. Huge finite values
/// do not overflow (the maximum is subtracted).
/// Workspace: none. Determinism: bitwise reproducible for a backend and shape, and independent of
/// the thread count (one thread reduces a whole row).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void softmax(tensor_view<float const, 2, backend::space_t<Backend>> x,
             tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  TESSERA_CHECK(y.extent(0) == x.extent(0) && y.extent(1) == x.extent(1), "nn::softmax: y must be [", x.extent(0),
                ", ", x.extent(1), "] like x, got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(x.is_row_contiguous() && y.is_row_contiguous(),
                "nn::softmax: the last dimension of x and y must be contiguous (stride 1), got strides ", x.stride(1),
                " and ", y.stride(1));
  TESSERA_CHECK(static_cast<void const*>(y.data()) != static_cast<void const*>(x.data()) || y.strides() == x.strides(),
                "nn::softmax: in place, y must be exactly x (same strides), got row strides ", y.stride(0), " and ",
                x.stride(0));
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  detail::softmax_impl<Backend>::run(x, y, ctx);
}

}  // namespace tessera::nn

#include <tessera/nn/detail/softmax_ref.hpp>
#include <tessera/nn/detail/softmax_cpu.hpp>
