// SPDX-License-Identifier: Apache-2.0
// seq_offsets: the validated, immutable offsets of packed variable-length sequences
// (n_seqs + 1 int32 entries; = HF Qwen2-VL `cu_seqlens`, FlashInfer `indptr`). Every masked op
// reads it; no op ever builds an n x n mask.
#pragma once

#include <tessera/core/error.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <vector>

namespace tessera {

class seq_offsets {
 public:
  /// Offsets [0, l0, l0+l1, ...] from per-sequence lengths. Empty sequences are legal; negative
  /// lengths and totals beyond int32 are errors.
  template <class Int>
  [[nodiscard]] static seq_offsets from_lengths(std::span<Int const> lengths) {
    std::vector<std::int32_t> off;
    off.reserve(lengths.size() + 1);
    off.push_back(0);
    std::int64_t total = 0;
    for (std::size_t s = 0; s < lengths.size(); ++s) {
      auto const len = static_cast<std::int64_t>(lengths[s]);
      TESSERA_CHECK(len >= 0, "seq_offsets::from_lengths: sequence ", s, " has negative length ", len);
      total += len;
      TESSERA_CHECK(total <= std::numeric_limits<std::int32_t>::max(), "seq_offsets::from_lengths: ",
                    "the total token count exceeds int32 at sequence ", s);
      off.push_back(static_cast<std::int32_t>(total));
    }
    return seq_offsets(std::move(off));
  }
  [[nodiscard]] static seq_offsets from_lengths(std::initializer_list<std::int64_t> lengths) {
    return from_lengths(std::span<std::int64_t const>(lengths.begin(), lengths.size()));
  }
  template <class Int>
  [[nodiscard]] static seq_offsets from_lengths(std::vector<Int> const& lengths) {
    return from_lengths(std::span<Int const>(lengths));
  }

  /// Adopts existing cumulative offsets (e.g. HF `cu_seqlens`): must start at 0 and never decrease.
  [[nodiscard]] static seq_offsets from_cu_seqlens(std::span<std::int32_t const> cu) {
    TESSERA_CHECK(!cu.empty(), "seq_offsets::from_cu_seqlens: needs at least one entry (the leading 0)");
    TESSERA_CHECK(cu[0] == 0, "seq_offsets::from_cu_seqlens: first entry must be 0, got ", cu[0]);
    for (std::size_t i = 1; i < cu.size(); ++i)
      TESSERA_CHECK(cu[i] >= cu[i - 1], "seq_offsets::from_cu_seqlens: entry ", i, " (", cu[i],
                    ") is smaller than entry ", i - 1, " (", cu[i - 1], ")");
    return seq_offsets(std::vector<std::int32_t>(cu.begin(), cu.end()));
  }

  /// One sequence covering n_tokens.
  [[nodiscard]] static seq_offsets single(std::int64_t n_tokens) { return from_lengths({n_tokens}); }

  [[nodiscard]] std::int64_t n_seqs() const noexcept { return static_cast<std::int64_t>(off_.size()) - 1; }
  [[nodiscard]] std::int64_t n_tokens() const noexcept { return off_.back(); }
  [[nodiscard]] std::int64_t begin(std::int64_t s) const noexcept { return off_[static_cast<std::size_t>(s)]; }
  [[nodiscard]] std::int64_t end(std::int64_t s) const noexcept { return off_[static_cast<std::size_t>(s) + 1]; }
  [[nodiscard]] std::int64_t length(std::int64_t s) const noexcept { return end(s) - begin(s); }
  [[nodiscard]] std::int64_t max_length() const noexcept {
    std::int64_t m = 0;
    for (std::int64_t s = 0; s < n_seqs(); ++s) m = std::max(m, length(s));
    return m;
  }
  /// The n_seqs + 1 offsets (what a CUDA kernel receives as cu_seqlens).
  [[nodiscard]] std::span<std::int32_t const> offsets() const noexcept { return off_; }

 private:
  explicit seq_offsets(std::vector<std::int32_t> off) : off_(std::move(off)) {}
  std::vector<std::int32_t> off_;
};

}  // namespace tessera
