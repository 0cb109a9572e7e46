// SPDX-License-Identifier: Apache-2.0
// nn::gelu / quick_gelu / silu, reference backend: each function evaluated in double with the
// C library and rounded to f32 once. The scalar functions are shared with nn::swiglu.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>

namespace tessera::nn::detail {

/// gelu(x) = x * Phi(x), written with erfc so that it keeps full relative accuracy for x << 0
/// (1 + erf(x / sqrt 2) cancels there); mathematically the same as torch's 0.5 x (1 + erf(..)).
[[nodiscard]] inline double gelu_erf_exact(double x) noexcept { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
/// torch's tanh approximation, constants as in aten/src/ATen/native/cpu/GeluKernel.cpp.
[[nodiscard]] inline double gelu_tanh_exact(double x) noexcept {
  double const beta = std::sqrt(2.0 / 3.14159265358979323846), kappa = 0.044715;
  return 0.5 * x * (1.0 + std::tanh(beta * (x + kappa * x * x * x)));
}
/// x * sigmoid(a * x) = x / (1 + exp(-a x)); exp overflow for x << 0 gives x / inf = -0, correct.
[[nodiscard]] inline double x_sigmoid_exact(double x, double a) noexcept { return x / (1.0 + std::exp(-a * x)); }

template <activation K>
[[nodiscard]] inline double activation_exact(double x) noexcept {
  if constexpr (K == activation::gelu_erf) return gelu_erf_exact(x);
  else if constexpr (K == activation::gelu_tanh) return gelu_tanh_exact(x);
  else if constexpr (K == activation::quick_gelu) return x_sigmoid_exact(x, static_cast<double>(quick_gelu_alpha));
  else return x_sigmoid_exact(x, 1.0);
}

template <>
struct activation_impl<backend::reference> {
  template <activation K>
  static void run(tensor_view<float const, 2> x,  // [n_rows, dim]
                  tensor_view<float, 2> y,        // [n_rows, dim]
                  exec_ctx<backend::reference>&) {
    for (index_t r = 0; r < x.extent(0); ++r)
      for (index_t j = 0; j < x.extent(1); ++j)
        y(r, j) = static_cast<float>(activation_exact<K>(static_cast<double>(x(r, j))));
  }
};

}  // namespace tessera::nn::detail
