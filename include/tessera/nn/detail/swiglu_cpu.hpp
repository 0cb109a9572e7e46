// SPDX-License-Identifier: Apache-2.0
// nn::swiglu, cpu backend: silu(gate) * up on xsimd batches (the silu of nn::silu, then one f32
// product, as torch's act_fn(gate) * up), through the element-wise driver of activation_cpu.hpp.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>

namespace tessera::nn::detail {

template <class Arch>
struct swiglu_impl<backend::cpu_simd<Arch>> {
  static void run(tensor_view<float const, 2> gate,  // [n_rows, d_ff]
                  tensor_view<float const, 2> up,    // [n_rows, d_ff]
                  tensor_view<float, 2> y,           // [n_rows, d_ff]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    using batch = backend::cpu_detail::fbatch<Arch>;
    elementwise::zip<Arch>(gate, up, y, ctx.threads(), [](batch const& g, batch const& u) {
      return activation_batch<activation::silu, Arch>(g) * u;
    });
  }
};

}  // namespace tessera::nn::detail
