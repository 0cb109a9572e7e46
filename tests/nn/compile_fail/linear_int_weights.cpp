// SPDX-License-Identifier: Apache-2.0
// Compile-fail test: nn::linear accepts f32, bf16 and f16 weights only (concept weight_type).
// expect-error: (weight_type|no matching function for call to .*linear)
#include <tessera/nn/linear.hpp>

#include <cstdint>

void linear_int_weights() {
  float x[4] = {}, y[4] = {};
  std::int32_t w[4] = {};
  tessera::exec_ctx<tessera::backend::reference> ctx;
  tessera::tensor_view<float const, 2> xv(x, {2, 2});
  tessera::tensor_view<float, 2> yv(y, {2, 2});
#ifndef TESSERA_COMPILE_FAIL_CONTROL
  tessera::nn::linear(xv, tessera::tensor_view<std::int32_t const, 2>(w, {2, 2}), yv, ctx);
#else
  (void)w;
  float wf[4] = {};
  tessera::nn::linear(xv, tessera::tensor_view<float const, 2>(wf, {2, 2}), yv, ctx);
#endif
}
