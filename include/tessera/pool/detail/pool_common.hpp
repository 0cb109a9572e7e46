// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the pool blocks: the masked_seqs argument (one byte per packed sequence,
// 1 = padding run to skip), its checks, and the column chunking of the cpu reductions.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>

#include <cstdint>
#include <span>

namespace tessera::pool::detail {

// The two masked reductions share their implementation files (detail/masked_reduce_*.hpp), so both
// primary templates live here.
template <class Backend>
struct masked_mean_impl {  // specialized in detail/masked_reduce_ref.hpp, detail/masked_reduce_cpu.hpp
  static_assert(always_false<Backend>,
                "pool::masked_mean has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/pool/masked_mean.hpp was included through tessera.hpp)");
};
template <class Backend>
struct masked_max_impl {  // specialized in detail/masked_reduce_ref.hpp, detail/masked_reduce_cpu.hpp
  static_assert(always_false<Backend>,
                "pool::masked_max has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/pool/masked_max.hpp was included through tessera.hpp)");
};

/// masked_seqs is empty (no padding) or has one 0 / 1 byte per sequence.
inline void check_masked_seqs(char const* block, seq_offsets const& seqs, std::span<std::uint8_t const> masked) {
  TESSERA_CHECK(masked.empty() || static_cast<std::int64_t>(masked.size()) == seqs.n_seqs(), block,
                ": masked_seqs must be empty or have one entry per sequence (", seqs.n_seqs(), "), got ",
                masked.size());
  for (std::size_t s = 0; s < masked.size(); ++s)
    TESSERA_CHECK(masked[s] <= 1, block, ": masked_seqs entries must be 0 or 1, sequence ", s, " has ",
                  static_cast<int>(masked[s]));
}

/// True when sequence s is a padding run (its output row is 0).
[[nodiscard]] inline bool is_masked(std::span<std::uint8_t const> masked, std::int64_t s) noexcept {
  return !masked.empty() && masked[static_cast<std::size_t>(s)] != 0;
}

}  // namespace tessera::pool::detail
