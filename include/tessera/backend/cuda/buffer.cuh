// SPDX-License-Identifier: Apache-2.0
// buffer<T, device_space>: owning, move-only CUDA device memory, allocated and freed in stream
// order (cudaMallocAsync / cudaFreeAsync on the stream given at construction, usually
// ctx.stream()). Hands out device tensor_views, which only cuda-backend blocks accept.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cuda/check.cuh>
#include <tessera/core/buffer.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>

namespace tessera {

template <class T>
class buffer<T, backend::device_space> {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "tessera::buffer holds trivially copyable element types only");

 public:
  using value_type = T;
  using space = backend::device_space;

  buffer() noexcept = default;
  /// n elements of uninitialized device memory, usable by work queued on `stream` after this
  /// call (other streams must synchronize with `stream` first). Freed on the same stream.
  buffer(index_t n, cudaStream_t stream) : stream_(stream) {
    TESSERA_CHECK(n >= 0, "device buffer: element count must be non-negative, got ", n);
    TESSERA_CHECK(static_cast<std::size_t>(n) <= std::numeric_limits<std::size_t>::max() / sizeof(T),
                  "device buffer: ", n, " elements of ", sizeof(T), " bytes overflow the address space");
    if (n == 0) return;
    void* p = nullptr;
    TESSERA_CUDA_CHECK(cudaMallocAsync(&p, static_cast<std::size_t>(n) * sizeof(T), stream));
    data_ = static_cast<T*>(p);
    size_ = n;
  }
  buffer(buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), stream_(o.stream_) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      stream_ = o.stream_;
    }
    return *this;
  }
  buffer(buffer const&) = delete;
  buffer& operator=(buffer const&) = delete;
  ~buffer() { release(); }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] T const* data() const noexcept { return data_; }
  [[nodiscard]] index_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] cudaStream_t stream() const noexcept { return stream_; }

  /// A contiguous row-major device view of the first prod(extents) elements.
  template <std::size_t Rank>
  [[nodiscard]] tensor_view<T, static_cast<int>(Rank), space> view(std::array<index_t, Rank> const& extents) {
    check_extents(extents);
    return {data_, extents};
  }
  template <std::size_t Rank>
  [[nodiscard]] tensor_view<T const, static_cast<int>(Rank), space> view(
      std::array<index_t, Rank> const& extents) const {
    check_extents(extents);
    return {data_, extents};
  }
  [[nodiscard]] tensor_view<T, 1, space> view(index_t n) { return view(std::array<index_t, 1>{n}); }
  [[nodiscard]] tensor_view<T, 2, space> view(index_t a, index_t b) { return view(std::array<index_t, 2>{a, b}); }
  [[nodiscard]] tensor_view<T const, 2, space> view(index_t a, index_t b) const {
    return view(std::array<index_t, 2>{a, b});
  }
  [[nodiscard]] tensor_view<T, 3, space> view(index_t a, index_t b, index_t c) {
    return view(std::array<index_t, 3>{a, b, c});
  }

  /// Copies src into the first src.size() elements, in stream order, and waits for the copy:
  /// a setup helper (loading weights, test inputs), not for run paths.
  void copy_from_host(std::span<T const> src) {
    TESSERA_CHECK(static_cast<index_t>(src.size()) <= size_, "device buffer::copy_from_host: ", src.size(),
                  " elements do not fit in a buffer of ", size_);
    if (src.empty()) return;
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(data_, src.data(), src.size_bytes(), cudaMemcpyHostToDevice, stream_));
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  /// Copies the first dst.size() elements to dst after the work queued on the stream, and waits.
  void copy_to_host(std::span<T> dst) const {
    TESSERA_CHECK(static_cast<index_t>(dst.size()) <= size_, "device buffer::copy_to_host: ", dst.size(),
                  " elements requested from a buffer of ", size_);
    if (dst.empty()) return;
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(dst.data(), data_, dst.size_bytes(), cudaMemcpyDeviceToHost, stream_));
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  void release() noexcept {
    // A destructor cannot throw: a failed free (device lost, context gone at exit) is ignored,
    // and cleared so that the next TESSERA_CUDA_CHECK_LAUNCH does not report it.
    if (data_ && cudaFreeAsync(data_, stream_) != cudaSuccess) (void)cudaGetLastError();
    data_ = nullptr;
    size_ = 0;
  }
  template <std::size_t Rank>
  void check_extents(std::array<index_t, Rank> const& extents) const {
    detail::check_view_fits(extents, size_, "device buffer");
  }

  T* data_ = nullptr;
  index_t size_ = 0;
  cudaStream_t stream_ = nullptr;
};

template <class T>
using device_buffer = buffer<T, backend::device_space>;

/// A host buffer with the same contents as a device buffer (a test and debugging helper).
template <class T>
[[nodiscard]] host_buffer<T> to_host(device_buffer<T> const& d) {
  host_buffer<T> h(d.size());
  d.copy_to_host(h.span());
  return h;
}

}  // namespace tessera
