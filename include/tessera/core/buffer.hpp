// SPDX-License-Identifier: Apache-2.0
// buffer<T, Space>: owning, move-only storage. Host buffers are 64-byte aligned (one cache line,
// one AVX-512 register) and hand out tensor_views; the device specialization lives in
// backend/cuda/buffer.cuh. Blocks take views only; models own buffers.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tessera {

inline constexpr std::size_t buffer_alignment = 64;
/// Host buffers of at least this many bytes start on a 2 MiB boundary, span whole 2 MiB pages and
/// are advised to Linux as transparent-huge-page candidates (MADV_HUGEPAGE; a hint, honoured when
/// the system's THP mode is "madvise" or "always"). A decode step streams every weight once: with
/// 4 KiB pages that is a page walk per 4 KiB (about 240,000 per token for 1 GB of bf16 weights).
/// On the development machine (AMD EPYC, KVM) the difference was within run-to-run noise; the
/// cost is at most one partly used huge page per large buffer.
inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

namespace detail {
/// Checks that a view with these extents fits in `size` elements; `who` names the buffer kind.
template <std::size_t Rank>
void check_view_fits(std::array<index_t, Rank> const& extents, index_t size, char const* who) {
  index_t n = 1;
  for (auto e : extents) {
    TESSERA_CHECK(e >= 0, who, "::view: negative extent ", e);
    n *= e;
  }
  TESSERA_CHECK(n <= size, who, "::view: a view of ", n, " elements does not fit in a buffer of ", size);
}

/// The alignment of a host allocation of `bytes`: a huge page for large ones, a cache line else.
[[nodiscard]] constexpr std::size_t host_alignment(std::size_t bytes) noexcept {
  return bytes >= huge_page_bytes ? huge_page_bytes : buffer_alignment;
}
}  // namespace detail

template <class T, class Space = host_space>
class buffer;

template <class T>
class buffer<T, host_space> {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "tessera::buffer holds trivially copyable element types only");

 public:
  using value_type = T;
  using space = host_space;

  buffer() noexcept = default;
  /// n elements, uninitialized (trivial types: the memory holds whatever was there).
  explicit buffer(index_t n) { allocate(n); }
  /// n elements, each set to `value`.
  buffer(index_t n, T const& value) {
    allocate(n);
    std::fill_n(data_, n, value);
  }
  buffer(buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
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
  [[nodiscard]] std::span<T> span() noexcept { return {data_, static_cast<std::size_t>(size_)}; }
  [[nodiscard]] std::span<T const> span() const noexcept { return {data_, static_cast<std::size_t>(size_)}; }
  [[nodiscard]] T& operator[](index_t i) noexcept { return data_[i]; }
  [[nodiscard]] T const& operator[](index_t i) const noexcept { return data_[i]; }

  /// A contiguous row-major view of the first prod(extents) elements.
  template <std::size_t Rank>
  [[nodiscard]] tensor_view<T, static_cast<int>(Rank)> view(std::array<index_t, Rank> const& extents) {
    check_extents(extents);
    return {data_, extents};
  }
  template <std::size_t Rank>
  [[nodiscard]] tensor_view<T const, static_cast<int>(Rank)> view(std::array<index_t, Rank> const& extents) const {
    check_extents(extents);
    return {data_, extents};
  }
  /// Brace-list overloads: buf.view({rows, cols}).
  [[nodiscard]] tensor_view<T, 1> view(index_t n) { return view(std::array<index_t, 1>{n}); }
  [[nodiscard]] tensor_view<T, 2> view(index_t a, index_t b) { return view(std::array<index_t, 2>{a, b}); }
  [[nodiscard]] tensor_view<T const, 2> view(index_t a, index_t b) const { return view(std::array<index_t, 2>{a, b}); }
  [[nodiscard]] tensor_view<T, 3> view(index_t a, index_t b, index_t c) { return view(std::array<index_t, 3>{a, b, c}); }

 private:
  void allocate(index_t n) {
    TESSERA_CHECK(n >= 0, "buffer: element count must be non-negative, got ", n);
    TESSERA_CHECK(static_cast<std::size_t>(n) <= (std::numeric_limits<std::size_t>::max() - huge_page_bytes) / sizeof(T),
                  "buffer: ", n, " elements of ", sizeof(T), " bytes overflow the address space");
    if (n == 0) return;
    // Round the byte count up to the alignment so vector tails may over-read within the block
    // (and large buffers cover whole huge pages).
    std::size_t const bytes = allocated_bytes(n);
    std::size_t const align = alignment_of(n);
    // nothrow: an impossible size becomes a tessera::error naming it (also under sanitizers and
    // -fno-exceptions), never std::bad_alloc from deep inside a model.
    data_ = static_cast<T*>(::operator new(bytes, std::align_val_t{align}, std::nothrow));
    TESSERA_CHECK(data_ != nullptr, "buffer: cannot allocate ", bytes, " bytes (", n, " elements)");
    size_ = n;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == huge_page_bytes) (void)::madvise(data_, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  }
  /// Alignment and rounded size of an allocation of n elements (both from the unrounded size, so
  /// that release() recomputes the alignment allocate() used).
  [[nodiscard]] static std::size_t alignment_of(index_t n) noexcept {
    return detail::host_alignment(static_cast<std::size_t>(n) * sizeof(T));
  }
  [[nodiscard]] static std::size_t allocated_bytes(index_t n) noexcept {
    std::size_t const align = alignment_of(n);
    return (static_cast<std::size_t>(n) * sizeof(T) + align - 1) / align * align;
  }
  void release() noexcept {
    if (data_) ::operator delete(data_, std::align_val_t{alignment_of(size_)});
    data_ = nullptr;
    size_ = 0;
  }
  template <std::size_t Rank>
  void check_extents(std::array<index_t, Rank> const& extents) const {
    detail::check_view_fits(extents, size_, "buffer");
  }

  T* data_ = nullptr;
  index_t size_ = 0;
};

template <class T>
using host_buffer = buffer<T, host_space>;

}  // namespace tessera
