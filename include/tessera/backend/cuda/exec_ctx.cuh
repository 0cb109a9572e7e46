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

/// Bump allocator over device memory, allocated in the order of one stream. Pointers stay valid
/// until the frame that handed them out ends; kernels queued on that stream may still use them
/// afterwards, since any later free or reuse is ordered after them on the same stream.
class device_scratch_arena {
 public:
  static constexpr std::size_t alignment = 256;   // cudaMalloc's alignment; enough for any vector load

  class frame {
   public:
    explicit frame(device_scratch_arena& a) noexcept : arena_(&a) { ++a.depth_; }
    frame(frame const&) = delete;
    frame& operator=(frame const&) = delete;
    ~frame() { arena_->end_frame(); }
    /// n elements of T in device memory, 256-byte aligned, uninitialized.
    template <class T>
    [[nodiscard]] T* alloc(std::size_t n) {
      return static_cast<T*>(arena_->bump(n * sizeof(T)));
    }

   private:
    device_scratch_arena* arena_;
  };

  explicit device_scratch_arena(cudaStream_t stream = nullptr) noexcept : stream_(stream) {}
  device_scratch_arena(device_scratch_arena const&) = delete;
  device_scratch_arena& operator=(device_scratch_arena const&) = delete;
  device_scratch_arena(device_scratch_arena&& o) noexcept
      : stream_(o.stream_), blocks_(std::move(o.blocks_)), used_(o.used_), allocations_(o.allocations_),
        depth_(o.depth_) {
    o.blocks_.clear();
  }
  device_scratch_arena& operator=(device_scratch_arena&& o) noexcept {
    if (this != &o) {
      free_all();
      stream_ = o.stream_;
      blocks_ = std::move(o.blocks_);
      o.blocks_.clear();
      used_ = o.used_;
      allocations_ = o.allocations_;
      depth_ = o.depth_;
    }
    return *this;
  }
  ~device_scratch_arena() { free_all(); }

  /// Ensures one block of at least `bytes`, so that requests up to that size never allocate.
  void reserve(std::size_t bytes) {
    TESSERA_CHECK(depth_ == 0, "device_scratch_arena::reserve: cannot grow while a frame is open");
    if (capacity() >= bytes && blocks_.size() <= 1) return;
    std::size_t const total = std::max(bytes, capacity());
    free_all();
    add_block(total);
  }
  [[nodiscard]] frame open() noexcept { return frame(*this); }
  [[nodiscard]] std::size_t capacity() const noexcept {
    std::size_t c = 0;
    for (auto const& b : blocks_) c += b.size;
    return c;
  }
  /// How many device blocks this arena has allocated so far.
  [[nodiscard]] std::size_t allocations() const noexcept { return allocations_; }

 private:
  struct block {
    std::byte* data = nullptr;
    std::size_t size = 0;
  };

  void add_block(std::size_t bytes) {
    bytes = (bytes + alignment - 1) / alignment * alignment;
    void* p = nullptr;
    TESSERA_CUDA_CHECK(cudaMallocAsync(&p, bytes, stream_));
    blocks_.push_back(block{static_cast<std::byte*>(p), bytes});
    ++allocations_;
    used_ = 0;
  }
  void* bump(std::size_t bytes) {
    TESSERA_CHECK(depth_ > 0, "device_scratch_arena: alloc outside a frame");
    bytes = (bytes + alignment - 1) / alignment * alignment;
    if (blocks_.empty() || used_ + bytes > blocks_.back().size) add_block(std::max(bytes, capacity()));
    void* p = blocks_.back().data + used_;
    used_ += bytes;
    return p;
  }
  void free_all() noexcept {
    for (auto const& b : blocks_)
      if (cudaFreeAsync(b.data, stream_) != cudaSuccess) (void)cudaGetLastError();
    blocks_.clear();
    used_ = 0;
  }
  void end_frame() noexcept {
    if (--depth_ > 0) return;
    if (blocks_.size() > 1) {   // merge: the next frame of the same size fits in one block
      std::size_t const total = capacity();
      free_all();
      try {
        add_block(total);
      } catch (...) {           // out of memory while merging: the next request allocates again
      }
    }
    used_ = 0;
  }

  cudaStream_t stream_;
  std::vector<block> blocks_;
  std::size_t used_ = 0;
  std::size_t allocations_ = 0;
  int depth_ = 0;
};

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
