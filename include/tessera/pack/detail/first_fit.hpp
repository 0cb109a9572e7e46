// SPDX-License-Identifier: Apache-2.0
// First-fit bin assignment in O(log n_bins) per item: a max segment tree over the bins' usable
// capacities answers "leftmost bin with capacity >= need". Bins not yet opened hold the full
// capacity and lie right of every opened bin, so the leftmost fitting bin is always an open one
// when one fits, else the next fresh one -- exactly the sequential first-fit rule.
#pragma once

#include <tessera/core/config.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace tessera::pack::detail {

class first_fit_tree {
 public:
  /// n_bins bins (>= 1), each with capacity `capacity` and no items.
  first_fit_tree(index_t n_bins, index_t capacity) {
    leaves_ = 1;
    while (leaves_ < n_bins) leaves_ *= 2;
    // Padding leaves beyond n_bins get -1: never chosen.
    tree_.assign(static_cast<std::size_t>(2 * leaves_), -1);
    for (index_t b = 0; b < n_bins; ++b) tree_[static_cast<std::size_t>(leaves_ + b)] = capacity;
    for (index_t i = leaves_ - 1; i >= 1; --i) pull(i);
  }

  /// Leftmost bin whose usable capacity is >= need, or -1 if none.
  [[nodiscard]] index_t find(index_t need) const noexcept {
    if (tree_[1] < need) return -1;
    index_t i = 1;
    while (i < leaves_) i = tree_[static_cast<std::size_t>(2 * i)] >= need ? 2 * i : 2 * i + 1;
    return i - leaves_;
  }

  /// Sets the usable capacity of `bin` (-1 = closed: never chosen again).
  void set(index_t bin, index_t capacity) noexcept {
    index_t i = leaves_ + bin;
    tree_[static_cast<std::size_t>(i)] = capacity;
    for (i /= 2; i >= 1; i /= 2) pull(i);
  }

 private:
  void pull(index_t i) noexcept {
    tree_[static_cast<std::size_t>(i)] =
        std::max(tree_[static_cast<std::size_t>(2 * i)], tree_[static_cast<std::size_t>(2 * i + 1)]);
  }
  index_t leaves_ = 1;
  std::vector<index_t> tree_;
};

}  // namespace tessera::pack::detail
