// SPDX-License-Identifier: Apache-2.0
// Token string -> id lookup for the tokenizer: an open-addressing hash table of ids whose keys
// are the token strings the tokenizer already stores (no second copy of the vocabulary).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace tessera::text::detail {

/// FNV-1a over 8-byte words with a final mix: fast on short tokens, spreads long ones.
[[nodiscard]] inline std::uint64_t hash_bytes(std::string_view s) noexcept {
  std::uint64_t h = 0xCBF29CE484222325ull ^ (s.size() * 0x9E3779B97F4A7C15ull);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t v;
    std::memcpy(&v, s.data() + i, 8);
    h = (h ^ v) * 0x100000001B3ull;
    h ^= h >> 32;
  }
  for (; i < s.size(); ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001B3ull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 32);
}

/// Maps strings to ids; the string of an id is given by a callable `key(id) -> string_view`.
class string_index {
 public:
  static constexpr std::uint32_t not_found = 0xFFFFFFFFu;

  /// Room for `n` entries at a load factor of at most 1/2 (before the first insert; later
  /// inserts grow the table themselves).
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (size_ == 0 && cap > slots_.size()) {
      slots_.assign(cap, slot{});
      mask_ = cap - 1;
    }
  }

  /// Adds id under key_of(id); the caller guarantees the string is not present yet.
  template <class KeyOf>
  void insert(std::uint32_t id, KeyOf const& key_of) {
    if (2 * (size_ + 1) > slots_.size()) rehash_with(slots_.empty() ? 16 : slots_.size() * 2, key_of);
    place(id, hash_bytes(key_of(id)));
    ++size_;
  }

  /// The id whose key_of(id) == s, or not_found.
  template <class KeyOf>
  [[nodiscard]] std::uint32_t find(std::string_view s, KeyOf const& key_of) const noexcept {
    if (slots_.empty()) return not_found;
    auto const h = hash_bytes(s);
    auto const tag = static_cast<std::uint32_t>(h >> 40);
    std::size_t i = static_cast<std::size_t>(h) & mask_;
    for (;;) {
      slot const& e = slots_[i];
      if (e.id == not_found) return not_found;
      if (e.tag == tag && key_of(e.id) == s) return e.id;
      i = (i + 1) & mask_;
    }
  }

 private:
  struct slot {
    std::uint32_t id = not_found;
    std::uint32_t tag = 0;  // high hash bits: most mismatches are rejected without a string compare
  };

  void place(std::uint32_t id, std::uint64_t h) {
    std::size_t i = static_cast<std::size_t>(h) & mask_;
    while (slots_[i].id != not_found) i = (i + 1) & mask_;
    slots_[i] = {id, static_cast<std::uint32_t>(h >> 40)};
  }
  template <class KeyOf>
  void rehash_with(std::size_t cap, KeyOf const& key_of) {
    std::vector<slot> old = std::move(slots_);
    slots_.assign(cap, slot{});
    mask_ = cap - 1;
    for (slot const& e : old)
      if (e.id != not_found) place(e.id, hash_bytes(key_of(e.id)));
  }

  std::vector<slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace tessera::text::detail
