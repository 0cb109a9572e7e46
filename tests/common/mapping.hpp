// SPDX-License-Identifier: Apache-2.0
// test::inside_mapping: whether a bound view points into a checkpoint's mapped shards (zero-copy
// binding), shared by the checkpoint tests and the config goldens.
#pragma once

#include <tessera/core/tensor_view.hpp>
#include <tessera/io/safetensors.hpp>

#include <cstddef>
#include <span>

namespace tessera::test {

/// True when [p, p + n) lies inside the data region of one of the checkpoint's shards.
template <class T>
bool inside_mapping(io::checkpoint const& ck, T const* p, index_t n) {
  auto const* b = reinterpret_cast<std::byte const*>(p);
  for (std::size_t s = 0; s < ck.n_shards(); ++s) {
    std::span<std::byte const> const d = ck.shard(s).data();
    if (b >= d.data() && b + n * static_cast<index_t>(sizeof(T)) <= d.data() + d.size()) return true;
  }
  return false;
}

}  // namespace tessera::test
