// SPDX-License-Identifier: Apache-2.0
// exec_ctx<backend::cuda>: what a CUDA kernel needs besides its operands -- the device, a stream
// every block of this context runs on, a cuBLAS handle bound to that stream, and a device scratch
// arena. Like the host arena it grows only past its high-water mark, so steady-state runs of the
// same shapes allocate nothing; all allocation is stream-ordered (cudaMallocAsync).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cuda/buffer.cuh>
#include <tessera/backend/cuda/check.cuh>
#include <tessera/backend/cuda/device.cuh>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace tessera::backend {

/// Device memory allocated in the order of one stream (cudaMallocAsync / cudaFreeAsync). Arena
/// pointers stay valid until their frame ends; kernels queued on that stream may still use them
/// afterwards, since any later free or reuse is ordered after them on the same stream.
struct device_memory {
  static constexpr std::size_t alignment = 256;   // cudaMalloc's alignment; enough for any vector load
  static constexpr char const* name = "CUDA device";
  cudaStream_t stream = nullptr;

  device_memory() = default;
  device_memory(cudaStream_t s) noexcept : stream(s) {}  // NOLINT(google-explicit-constructor)
  [[nodiscard]] void* allocate(std::size_t bytes) const noexcept {
    void* p = nullptr;
    if (cudaMallocAsync(&p, bytes, stream) != cudaSuccess) {
      (void)cudaGetLastError();   // the arena reports the failure as tessera::error
      return nullptr;
    }
    return p;
  }
  void deallocate(void* p, std::size_t) const noexcept {
    // A destructor path: a failed free (device lost, context gone at exit) is ignored and cleared.
    if (cudaFreeAsync(p, stream) != cudaSuccess) (void)cudaGetLastError();
  }
};

/// The cuda backend's arena: device memory on the context's stream.
using device_scratch_arena = basic_scratch_arena<device_memory>;

/// Execution context of the cuda backend. Owns a non-blocking stream on `device`, a cuBLAS handle
/// bound to it and the scratch arena; every block run with this context is queued on stream().
/// Move-only. Throws tessera::error when the device cannot be used (check device_available()).
template <>
class exec_ctx<cuda> {
 public:
  explicit exec_ctx(int device = 0) : device_(device) {
    int const n = device_count();
    TESSERA_CHECK(device >= 0 && device < n, "exec_ctx<cuda>: device ", device, " requested, ", n,
                  " CUDA device(s) available");
    TESSERA_CUDA_CHECK(cudaSetDevice(device));
    TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    try {
      TESSERA_CUBLAS_CHECK(cublasCreate(&cublas_));
      TESSERA_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    } catch (...) {
      release();
      throw;
    }
    scratch_ = device_scratch_arena(stream_);
  }
  exec_ctx(exec_ctx&& o) noexcept
      : device_(o.device_), stream_(std::exchange(o.stream_, nullptr)), cublas_(std::exchange(o.cublas_, nullptr)),
        scratch_(std::move(o.scratch_)) {}
  exec_ctx& operator=(exec_ctx&& o) noexcept {
    if (this != &o) {
      release();
      device_ = o.device_;
      stream_ = std::exchange(o.stream_, nullptr);
      cublas_ = std::exchange(o.cublas_, nullptr);
      scratch_ = std::move(o.scratch_);
    }
    return *this;
  }
  exec_ctx(exec_ctx const&) = delete;
  exec_ctx& operator=(exec_ctx const&) = delete;
  ~exec_ctx() { release(); }

  [[nodiscard]] int device() const noexcept { return device_; }
  [[nodiscard]] cudaStream_t stream() const noexcept { return stream_; }
  [[nodiscard]] cublasHandle_t cublas() const noexcept { return cublas_; }
  [[nodiscard]] device_scratch_arena& scratch() noexcept { return scratch_; }

  /// A device buffer of n elements allocated on this context's stream.
  template <class T>
  [[nodiscard]] device_buffer<T> make_buffer(index_t n) {
    return device_buffer<T>(n, stream_);
  }
  /// Waits for everything queued on the stream (and reports asynchronous errors).
  void synchronize() const { TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  void release() noexcept {
    scratch_ = device_scratch_arena();   // frees the arena's blocks on the stream before it goes
    if (cublas_) (void)cublasDestroy(cublas_);
    if (stream_) {
      (void)cudaStreamSynchronize(stream_);
      (void)cudaStreamDestroy(stream_);
    }
    cublas_ = nullptr;
    stream_ = nullptr;
    (void)cudaGetLastError();
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  device_scratch_arena scratch_;
};

}  // namespace tessera::backend
