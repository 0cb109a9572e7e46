// SPDX-License-Identifier: Apache-2.0
// Compile-fail test: a host tensor_view cannot be passed where a block of the cuda backend takes
// device views. The Space parameter of tensor_view makes this a compile error, with no CUDA
// toolkit needed to check it (see cmake/compile_fail.cmake for the conventions).
// expect-error: could not convert .*host_space.* to .*device_space
#include <tessera/backend/backend.hpp>
#include <tessera/core/tensor_view.hpp>

namespace {

// A stand-in block with the signature shape every public block has (style guide section 2):
// the backend tag first, views in that backend's memory space.
template <tessera::backend::tag Backend>
void scale_rows(tessera::tensor_view<float const, 1, tessera::backend::space_t<Backend>> x,
                tessera::tensor_view<float, 1, tessera::backend::space_t<Backend>> y) {
  (void)x;
  (void)y;
}

}  // namespace

void host_view_into_device() {
  float data[4] = {1.f, 2.f, 3.f, 4.f};
  float out[4] = {};
  tessera::tensor_view<float, 1> x(data, {4});   // host memory
  tessera::tensor_view<float, 1> y(out, {4});
#ifndef TESSERA_COMPILE_FAIL_CONTROL
  scale_rows<tessera::backend::cuda>(x, y);       // must not compile: host views, device block
#else
  scale_rows<tessera::backend::reference>(x, y);  // the same call for a host backend compiles
#endif
}
