// SPDX-License-Identifier: Apache-2.0
// tensor_view: a non-owning, strided, fixed-rank view in PyTorch dimension order (outermost
// first). The Space parameter makes handing host memory to the CUDA backend a compile error.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/memory_space.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <type_traits>

namespace tessera {

template <class T, int Rank, class Space = host_space>
class tensor_view {
  static_assert(Rank >= 1, "tensor_view: Rank must be at least 1");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using space = Space;
  using extents_t = std::array<index_t, Rank>;
  static constexpr int rank = Rank;

  tensor_view() noexcept : data_(nullptr), extents_{}, strides_{} {}

  /// Row-major, contiguous view over `data`.
  tensor_view(T* data, extents_t extents) : data_(data), extents_(extents) {
    index_t s = 1;
    for (int d = Rank - 1; d >= 0; --d) {
      TESSERA_CHECK(extents_[d] >= 0, "tensor_view: extent ", d, " is negative (", extents_[d], ")");
      strides_[d] = s;
      s *= extents_[d];
    }
  }

  /// Strided view; strides are in elements and may be anything non-negative.
  tensor_view(T* data, extents_t extents, extents_t strides) : data_(data), extents_(extents), strides_(strides) {
    for (int d = 0; d < Rank; ++d)
      TESSERA_CHECK(extents_[d] >= 0 && strides_[d] >= 0, "tensor_view: dimension ", d, " has extent ",
                    extents_[d], " and stride ", strides_[d], "; both must be non-negative");
  }

  /// tensor_view<T> converts to tensor_view<T const>.
  template <class U>
    requires(std::is_same_v<T, U const> && !std::is_same_v<T, U>)
  tensor_view(tensor_view<U, Rank, Space> const& other) noexcept  // NOLINT(google-explicit-constructor)
      : data_(other.data()), extents_(other.extents()), strides_(other.strides()) {}

  [[nodiscard]] TESSERA_HOST_DEVICE T* data() const noexcept { return data_; }
  [[nodiscard]] TESSERA_HOST_DEVICE index_t extent(int d) const noexcept { return extents_[static_cast<std::size_t>(d)]; }
  [[nodiscard]] TESSERA_HOST_DEVICE index_t stride(int d) const noexcept { return strides_[static_cast<std::size_t>(d)]; }
  [[nodiscard]] TESSERA_HOST_DEVICE extents_t const& extents() const noexcept { return extents_; }
  [[nodiscard]] TESSERA_HOST_DEVICE extents_t const& strides() const noexcept { return strides_; }

  /// Number of elements (product of extents).
  [[nodiscard]] index_t size() const noexcept {
    index_t n = 1;
    for (auto e : extents_) n *= e;
    return n;
  }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }

  /// True when the elements are densely packed in row-major order.
  [[nodiscard]] bool is_contiguous() const noexcept {
    index_t s = 1;
    for (int d = Rank - 1; d >= 0; --d) {
      if (extents_[d] != 1 && strides_[d] != s) return false;
      s *= extents_[d];
    }
    return true;
  }
  /// True when the last dimension has stride 1 (rows may be strided).
  [[nodiscard]] bool is_row_contiguous() const noexcept { return extents_[Rank - 1] <= 1 || strides_[Rank - 1] == 1; }

  /// Element access; bounds-checked when TESSERA_DEBUG is on.
  template <std::integral... I>
    requires(sizeof...(I) == Rank)
  [[nodiscard]] T& operator()(I... i) const {
    std::array<index_t, Rank> const idx{static_cast<index_t>(i)...};
    index_t off = 0;
    for (int d = 0; d < Rank; ++d) {
      TESSERA_DEBUG_ASSERT(idx[d] >= 0 && idx[d] < extents_[d], "tensor_view: index ", idx[d], " out of [0, ",
                           extents_[d], ") in dimension ", d);
      off += idx[d] * strides_[d];
    }
    return data_[off];
  }

  /// Pointer to the first element of row i of the outermost dimension.
  [[nodiscard]] T* row(index_t i) const {
    TESSERA_DEBUG_ASSERT(i >= 0 && i < extents_[0], "tensor_view: row ", i, " out of [0, ", extents_[0], ")");
    return data_ + i * strides_[0];
  }

  /// The view of rows [begin, end) of the outermost dimension.
  [[nodiscard]] tensor_view slice_rows(index_t begin, index_t end) const {
    TESSERA_CHECK(0 <= begin && begin <= end && end <= extents_[0], "tensor_view::slice_rows: [", begin, ", ", end,
                  ") is outside [0, ", extents_[0], ")");
    extents_t e = extents_;
    e[0] = end - begin;
    return tensor_view(data_ + begin * strides_[0], e, strides_);
  }

 private:
  T* data_;
  extents_t extents_;
  extents_t strides_;
};

template <class T, int Rank>
using host_view = tensor_view<T, Rank, host_space>;

/// True when two views have the same extents.
template <class T, class U, int Rank, class S>
[[nodiscard]] bool same_extents(tensor_view<T, Rank, S> const& a, tensor_view<U, Rank, S> const& b) noexcept {
  return a.extents() == b.extents();
}

}  // namespace tessera
