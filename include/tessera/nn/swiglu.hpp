// SPDX-License-Identifier: Apache-2.0
// nn::swiglu -- the gated activation of the Qwen2 MLP (Qwen2MLP: down_proj(act_fn(gate_proj(x)) *
// up_proj(x)) with act_fn = silu): y = silu(gate) * up, element-wise on f32 [n_rows, d_ff] views.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>

namespace tessera::nn {

namespace detail {
template <class Backend>
struct swiglu_impl {  // specialized in detail/swiglu_ref.hpp, detail/swiglu_cpu.hpp
  static_assert(always_false<Backend>,
                "nn::swiglu has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/nn/swiglu.hpp was included through tessera.hpp)");
};
}  // namespace detail

/// Mirrors the element-wise part of HF Qwen2MLP: y = act_fn(gate) * up with act_fn = SiLU,
/// i.e. y = gate / (1 + exp(-gate)) * up, in f32.
///   gate: [n_rows, d_ff] f32 (gate_proj(x)); rows may be strided, last dimension contiguous.
///   up:   [n_rows, d_ff] f32 (up_proj(x)); rows may be strided, last dimension contiguous.
///   y:    [n_rows, d_ff] f32, last dimension contiguous; may be exactly gate or exactly up (same
///         data and strides), otherwise must not overlap them. gate and up may be two column
///         ranges of one fused [n_rows, 2 * d_ff] projection.
/// Workspace: none. Determinism: element-wise, so bitwise reproducible and independent of the
/// thread count.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void swiglu(tensor_view<float const, 2, backend::space_t<Backend>> gate,
            tensor_view<float const, 2, backend::space_t<Backend>> up,
            tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  TESSERA_CHECK(up.extent(0) == gate.extent(0) && up.extent(1) == gate.extent(1), "nn::swiglu: up must be [",
                gate.extent(0), ", ", gate.extent(1), "] like gate, got [", up.extent(0), ", ", up.extent(1), "]");
  TESSERA_CHECK(y.extent(0) == gate.extent(0) && y.extent(1) == gate.extent(1), "nn::swiglu: y must be [",
                gate.extent(0), ", ", gate.extent(1), "] like gate, got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(gate.is_row_contiguous() && up.is_row_contiguous() && y.is_row_contiguous(),
                "nn::swiglu: the last dimension of gate, up and y must be contiguous (stride 1), got strides ",
                gate.stride(1), ", ", up.stride(1), ", ", y.stride(1));
  auto const* const yd = static_cast<void const*>(y.data());
  TESSERA_CHECK((yd != static_cast<void const*>(gate.data()) || y.strides() == gate.strides()) &&
                    (yd != static_cast<void const*>(up.data()) || y.strides() == up.strides()),
                "nn::swiglu: in place, y must be exactly gate or up (same strides)");
  if (gate.extent(0) == 0 || gate.extent(1) == 0) return;
  detail::swiglu_impl<Backend>::run(gate, up, y, ctx);
}

}  // namespace tessera::nn

#include <tessera/nn/detail/swiglu_ref.hpp>
#include <tessera/nn/detail/swiglu_cpu.hpp>
