// SPDX-License-Identifier: Apache-2.0
// Compile-fail test: the real nn::linear refuses host views for the cuda backend (its views must
// be in device_space); no CUDA toolkit is needed to check this.
// expect-error: (no matching function for call to .*linear|could not convert)
#include <tessera/nn/linear.hpp>

template <class Backend>
void call(tessera::exec_ctx<tessera::backend::reference>& ctx) {
  float x[4] = {}, w[4] = {}, y[4] = {};
  tessera::tensor_view<float const, 2> xv(x, {2, 2}), wv(w, {2, 2});
  tessera::tensor_view<float, 2> yv(y, {2, 2});
  tessera::nn::linear<Backend>(xv, wv, yv, ctx);
}

void linear_host_views_on_cuda() {
  tessera::exec_ctx<tessera::backend::reference> ctx;
#ifndef TESSERA_COMPILE_FAIL_CONTROL
  call<tessera::backend::cuda>(ctx);
#else
  call<tessera::backend::reference>(ctx);
#endif
}
