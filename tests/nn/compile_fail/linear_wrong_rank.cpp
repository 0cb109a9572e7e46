// SPDX-License-Identifier: Apache-2.0
// Compile-fail test: nn::linear takes 2-D activations; a 3-D view is a compile error, not a
// runtime surprise.
// expect-error: no matching function for call to .*linear
#include <tessera/nn/linear.hpp>

void linear_wrong_rank() {
  float x[8] = {}, w[4] = {}, y[8] = {};
  tessera::exec_ctx<tessera::backend::reference> ctx;
  tessera::tensor_view<float const, 2> wv(w, {2, 2});
#ifndef TESSERA_COMPILE_FAIL_CONTROL
  tessera::nn::linear(tessera::tensor_view<float const, 3>(x, {2, 2, 2}), wv, tessera::tensor_view<float, 3>(y, {2, 2, 2}), ctx);
#else
  tessera::nn::linear(tessera::tensor_view<float const, 2>(x, {4, 2}), wv, tessera::tensor_view<float, 2>(y, {4, 2}), ctx);
#endif
}
