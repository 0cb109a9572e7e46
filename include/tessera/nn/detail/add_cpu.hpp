// SPDX-License-Identifier: Apache-2.0
// nn::add, cpu backend: batch additions through the element-wise driver of activation_cpu.hpp
// (OpenMP over row chunks); bitwise equal to the reference.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>

namespace tessera::nn::detail {

template <class Arch>
struct add_impl<backend::cpu_simd<Arch>> {
  static void run(tensor_view<float const, 2> a,  // [n_rows, dim]
                  tensor_view<float const, 2> b,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    using batch = backend::cpu_detail::fbatch<Arch>;
    elementwise::zip<Arch>(a, b, y, ctx.threads(), [](batch const& u, batch const& v) { return u + v; });
  }
};

}  // namespace tessera::nn::detail
