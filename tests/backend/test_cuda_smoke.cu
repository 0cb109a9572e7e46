// SPDX-License-Identifier: Apache-2.0
// Smoke test of the CUDA backend's plumbing: device buffers round-trip through the device, a
// kernel launched on the context's stream sees and writes device views, errors become
// tessera::error. Every test SKIPs when no CUDA device answers (style guide section 8).
#include <tessera/backend/cuda/exec_ctx.cuh>
#include <tessera/core/dtype.hpp>

#include <catch2/catch_test_macros.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace {

using tessera::index_t;
using device_view = tessera::tensor_view<float, 2, tessera::backend::device_space>;
using const_device_view = tessera::tensor_view<float const, 2, tessera::backend::device_space>;

// y[i, j] = a * x[i, j] + i; one thread per element, rows may be strided. Takes pointers and
// strides: tensor_view's accessors are host functions.
__global__ void scale_add_row_kernel(float const* x, index_t x_stride, float* y, index_t y_stride, index_t cols,
                                     float a) {
  index_t const i = blockIdx.y;
  index_t const j = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  y[i * y_stride + j] = a * x[i * x_stride + j] + static_cast<float>(i);
}

void require_device() {
  if (!tessera::backend::device_available()) SKIP("no CUDA device answers (cudaGetDeviceCount failed or found none)");
}

}  // namespace

TEST_CASE("device_available answers without throwing", "[cuda][unit]") {
  // False on a machine without a driver or a GPU (cudaErrorInsufficientDriver, cudaErrorNoDevice).
  bool available = false;
  CHECK_NOTHROW(available = tessera::backend::device_available());
  CHECK(available == (tessera::backend::device_count() > 0));
}

TEST_CASE("a device buffer round-trips host data", "[cuda][unit]") {
  require_device();
  tessera::exec_ctx<tessera::backend::cuda> ctx;
  std::vector<float> host(1000);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i) * 0.5f - 7.f;

  auto d = ctx.make_buffer<float>(static_cast<index_t>(host.size()));
  d.copy_from_host(std::span<float const>(host));
  std::vector<float> back(host.size(), -1.f);
  d.copy_to_host(std::span<float>(back));
  CHECK(back == host);

  auto moved = std::move(d);                      // move-only: the memory travels, the source empties
  CHECK(d.empty());
  CHECK(moved.size() == static_cast<index_t>(host.size()));
  auto h = tessera::to_host(moved);
  CHECK(h[999] == host[999]);

  CHECK_THROWS_AS(moved.copy_from_host(std::span<float const>(std::vector<float>(1001))), tessera::error);
  CHECK_THROWS_AS(moved.view(10, 101), tessera::error);
}

TEST_CASE("a kernel on the context's stream reads and writes device views", "[cuda][unit]") {
  require_device();
  tessera::exec_ctx<tessera::backend::cuda> ctx;
  index_t const rows = 3, cols = 129;            // 129: a tail past the 128-thread block
  std::vector<float> x_host(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < x_host.size(); ++i) x_host[i] = static_cast<float>(i % 17);

  auto x = ctx.make_buffer<float>(rows * cols);
  auto y = ctx.make_buffer<float>(rows * cols);
  x.copy_from_host(std::span<float const>(x_host));
  const_device_view xv = x.view(rows, cols);     // [rows, cols]
  device_view yv = y.view(rows, cols);           // [rows, cols]

  dim3 const grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(rows));
  scale_add_row_kernel<<<grid, 128, 0, ctx.stream()>>>(xv.data(), xv.stride(0), yv.data(), yv.stride(0), cols, 2.f);
  TESSERA_CUDA_CHECK_LAUNCH();

  auto got = tessera::to_host(y);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      float const want = 2.f * x_host[static_cast<std::size_t>(i * cols + j)] + static_cast<float>(i);
      REQUIRE(got[i * cols + j] == want);      // exact: small integers
    }
}

TEST_CASE("the device scratch arena reaches a steady state", "[cuda][unit]") {
  require_device();
  tessera::exec_ctx<tessera::backend::cuda> ctx;
  auto& arena = ctx.scratch();
  for (int round = 0; round < 3; ++round) {
    auto f = arena.open();
    float* a = f.alloc<float>(1000);
    float* b = f.alloc<float>(5000);
    CHECK(reinterpret_cast<std::uintptr_t>(a) % 256 == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(b) % 256 == 0);
    TESSERA_CUDA_CHECK(cudaMemsetAsync(b, 0, 5000 * sizeof(float), ctx.stream()));
  }
  auto const after_warmup = arena.allocations();
  { auto f = arena.open(); (void)f.alloc<float>(6000); }
  CHECK(arena.allocations() == after_warmup);
  ctx.synchronize();
}

TEST_CASE("TESSERA_CUDA_CHECK and TESSERA_CUBLAS_CHECK throw tessera::error", "[cuda][unit]") {
  // Needs no device: the error names and strings come from the runtime and cuBLAS libraries.
  CHECK_NOTHROW(TESSERA_CUDA_CHECK(cudaSuccess));
  try {
    TESSERA_CUDA_CHECK(cudaErrorInvalidDevice);
    FAIL("TESSERA_CUDA_CHECK did not throw");
  } catch (tessera::error const& e) {
    CHECK(e.message().find("cudaErrorInvalidDevice") != std::string::npos);   // the name
    CHECK(e.message().find("in `cudaErrorInvalidDevice`") != std::string::npos);   // the expression
    CHECK(std::string(e.where().file_name()).find("test_cuda_smoke.cu") != std::string::npos);
  }
  try {
    TESSERA_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED);
    FAIL("TESSERA_CUBLAS_CHECK did not throw");
  } catch (tessera::error const& e) {
    CHECK(e.message().find("CUBLAS_STATUS_NOT_INITIALIZED") != std::string::npos);
  }
}

TEST_CASE("failed runtime calls become tessera::error", "[cuda][unit]") {
  require_device();
  CHECK_THROWS_AS(tessera::exec_ctx<tessera::backend::cuda>(tessera::backend::device_count()), tessera::error);
  try {
    TESSERA_CUDA_CHECK(cudaSetDevice(-1));
    FAIL("cudaSetDevice(-1) succeeded");
  } catch (tessera::error const& e) {
    CHECK(e.message().find("cudaErrorInvalidDevice") != std::string::npos);
    CHECK(e.message().find("cudaSetDevice(-1)") != std::string::npos);
  }
}
