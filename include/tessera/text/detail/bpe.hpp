// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE: the merge-rank hash table, the merge loop and a word cache.
// The merge order is HF tokenizers' (models/bpe/word.rs, Word::merge_all): repeatedly apply the
// merge of lowest rank among all adjacent symbol pairs, the leftmost one on ties. Short words use
// an array scan, long ones a binary heap with lazy deletion; both give exactly that order.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace tessera::text::detail {

/// A merge as the loop uses it: its rank (position in the merge list) and the merged token's id.
struct merge_rule {
  std::uint32_t rank;
  std::uint32_t merged;
};

/// Open-addressing hash table (linear probing) from a pair of token ids to its merge_rule.
/// Ids are below 2^31, so the all-ones key never occurs and marks empty slots.
class pair_table {
 public:
  /// Reserves room for `n` pairs at a load factor of at most 1/2.
  explicit pair_table(std::size_t n = 0) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slots_.assign(cap, slot{empty_key, {}});
    mask_ = cap - 1;
  }

  /// Inserts or overwrites (a later duplicate of a merge wins, as in HF's HashMap::collect).
  void insert(std::uint32_t a, std::uint32_t b, merge_rule rule) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    auto const key = pack(a, b);
    std::size_t i = home(key);
    while (slots_[i].key != empty_key && slots_[i].key != key) i = (i + 1) & mask_;
    if (slots_[i].key == empty_key) ++size_;
    slots_[i] = {key, rule};
  }

  /// The rule merging (a, b), or nullptr.
  [[nodiscard]] merge_rule const* find(std::uint32_t a, std::uint32_t b) const noexcept {
    auto const key = pack(a, b);
    std::size_t i = home(key);
    for (;;) {
      slot const& s = slots_[i];
      if (s.key == key) return &s.rule;
      if (s.key == empty_key) return nullptr;
      i = (i + 1) & mask_;
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  struct slot {
    std::uint64_t key;
    merge_rule rule;
  };
  static constexpr std::uint64_t empty_key = ~std::uint64_t{0};

  static std::uint64_t pack(std::uint32_t a, std::uint32_t b) noexcept { return (std::uint64_t{a} << 32) | b; }
  [[nodiscard]] std::size_t home(std::uint64_t key) const noexcept {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_;  // Fibonacci hashing
  }
  void grow() {
    std::vector<slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, slot{empty_key, {}});
    mask_ = slots_.size() - 1;
    size_ = 0;
    for (slot const& s : old)
      if (s.key != empty_key) insert(static_cast<std::uint32_t>(s.key >> 32), static_cast<std::uint32_t>(s.key), s.rule);
  }

  std::vector<slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// Words up to this many symbols are merged by scanning an array; longer ones use a heap.
inline constexpr std::size_t bpe_scan_max_symbols = 32;

/// Scratch space of the heap-based merge (long words), reused across words.
struct bpe_scratch {
  struct node {
    std::uint32_t id;
    std::int32_t prev, next;  // neighbours in the list, -1 at the ends
    bool alive;
  };
  std::vector<node> nodes;
  std::vector<std::uint64_t> heap;  // (rank << 32) | position of the left symbol
};

/// Merges the symbols `ids[0, n)` in place and returns the new count. `scan_max` selects the
/// array scan for n <= scan_max (a parameter only so that tests can run both paths on one word).
inline std::size_t bpe_merge(pair_table const& pairs, std::uint32_t* ids, std::size_t n, bpe_scratch& scratch,
                             std::size_t scan_max = bpe_scan_max_symbols) {
  if (n < 2) return n;
  constexpr std::uint64_t no_merge = ~std::uint64_t{0};
  auto const rule_key = [&](std::uint32_t a, std::uint32_t b) -> std::uint64_t {
    merge_rule const* r = pairs.find(a, b);
    return r ? (std::uint64_t{r->rank} << 32) | r->merged : no_merge;
  };
  if (n <= scan_max) {
    // rules[k] describes the pair (ids[k], ids[k+1]) as rank << 32 | merged id: the minimum is
    // the lowest rank, and the strict comparison keeps the leftmost of equal ranks.
    std::array<std::uint64_t, bpe_scan_max_symbols> small_rules;
    std::vector<std::uint64_t> big_rules;
    std::uint64_t* rules = small_rules.data();
    if (n > small_rules.size()) {
      big_rules.resize(n);
      rules = big_rules.data();
    }
    for (std::size_t k = 0; k + 1 < n; ++k) rules[k] = rule_key(ids[k], ids[k + 1]);
    for (;;) {
      std::size_t best = n;
      std::uint64_t best_key = no_merge;
      for (std::size_t k = 0; k + 1 < n; ++k)
        if (rules[k] < best_key) best_key = rules[k], best = k;
      if (best == n) break;
      ids[best] = static_cast<std::uint32_t>(best_key);
      std::memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof(std::uint32_t));
      // rules[0, n - 1) shrinks by the entry of (ids[best + 1], ids[best + 2]).
      if (best + 3 <= n) std::memmove(rules + best + 1, rules + best + 2, (n - best - 3) * sizeof(std::uint64_t));
      --n;
      if (best > 0) rules[best - 1] = rule_key(ids[best - 1], ids[best]);
      if (best + 1 < n) rules[best] = rule_key(ids[best], ids[best + 1]);
    }
    return n;
  }
  // Heap of (rank, position) with lazy deletion, as HF's Word::merge_all: an entry is stale when
  // its left symbol was absorbed or its pair no longer has that rank.
  auto& nodes = scratch.nodes;
  auto& heap = scratch.heap;
  nodes.resize(n);
  heap.clear();
  for (std::size_t k = 0; k < n; ++k)
    nodes[k] = {ids[k], static_cast<std::int32_t>(k) - 1, k + 1 < n ? static_cast<std::int32_t>(k + 1) : -1, true};
  auto const push = [&](std::size_t pos, std::uint32_t rank) {
    heap.push_back((std::uint64_t{rank} << 32) | pos);
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (std::size_t k = 0; k + 1 < n; ++k)
    if (merge_rule const* r = pairs.find(ids[k], ids[k + 1])) push(k, r->rank);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    std::uint64_t const top = heap.back();
    heap.pop_back();
    auto const pos = static_cast<std::size_t>(top & 0xFFFFFFFFu);
    auto const rank = static_cast<std::uint32_t>(top >> 32);
    auto& left = nodes[pos];
    if (!left.alive || left.next < 0) continue;
    auto& right = nodes[static_cast<std::size_t>(left.next)];
    merge_rule const* r = pairs.find(left.id, right.id);
    if (r == nullptr || r->rank != rank) continue;  // stale entry
    left.id = r->merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) nodes[static_cast<std::size_t>(right.next)].prev = static_cast<std::int32_t>(pos);
    if (left.prev >= 0) {
      auto const p = static_cast<std::size_t>(left.prev);
      if (merge_rule const* rp = pairs.find(nodes[p].id, left.id)) push(p, rp->rank);
    }
    if (left.next >= 0) {
      if (merge_rule const* rn = pairs.find(left.id, nodes[static_cast<std::size_t>(left.next)].id)) push(pos, rn->rank);
    }
  }
  std::size_t m = 0;
  for (std::int32_t k = 0; k >= 0; k = nodes[static_cast<std::size_t>(k)].next) ids[m++] = nodes[static_cast<std::size_t>(k)].id;
  return m;
}

// ------------------------------------------------------------------------------------------------
// Word cache
// ------------------------------------------------------------------------------------------------

/// Direct-mapped cache from a word (its bytes) to its token ids, for words of up to 23 bytes
/// that merge into at most 8 tokens: one 64-byte slot per entry, a new word replaces the old one.
/// Results never depend on it; it only skips repeated merge loops on frequent words.
class word_cache {
 public:
  static constexpr std::size_t max_word_bytes = 23;
  static constexpr std::size_t max_word_tokens = 8;
  static constexpr std::size_t n_slots = 4096;

  word_cache() : slots_(std::make_unique<slot[]>(n_slots)) {}

  /// Copies the cached ids of `word` to `out` and returns their count, or 0 on a miss.
  [[nodiscard]] std::size_t find(std::string_view word, std::uint32_t* out) const noexcept {
    if (word.empty() || word.size() > max_word_bytes) return 0;
    auto const h = hash(word);
    slot const& s = slots_[h & (n_slots - 1)];
    if (s.hash != static_cast<std::uint32_t>(h >> 32) || s.n_bytes != word.size() ||
        std::memcmp(s.bytes, word.data(), word.size()) != 0)
      return 0;
    std::memcpy(out, s.ids, s.n_ids * sizeof(std::uint32_t));
    return s.n_ids;
  }

  /// Remembers the ids of `word` if both fit a slot.
  void insert(std::string_view word, std::uint32_t const* ids, std::size_t n_ids) noexcept {
    if (word.empty() || word.size() > max_word_bytes || n_ids == 0 || n_ids > max_word_tokens) return;
    auto const h = hash(word);
    slot& s = slots_[h & (n_slots - 1)];
    s.hash = static_cast<std::uint32_t>(h >> 32);
    s.n_bytes = static_cast<std::uint8_t>(word.size());
    s.n_ids = static_cast<std::uint8_t>(n_ids);
    std::memcpy(s.bytes, word.data(), word.size());
    std::memcpy(s.ids, ids, n_ids * sizeof(std::uint32_t));
  }

 private:
  struct slot {
    std::uint32_t hash = 0;
    std::uint8_t n_bytes = 0;  // 0: empty
    std::uint8_t n_ids = 0;
    char bytes[max_word_bytes + 3] = {};
    std::uint32_t ids[max_word_tokens] = {};
  };
  static_assert(sizeof(slot) == 64, "one cache line per slot");

  /// 64-bit hash of up to 23 bytes: 8-byte loads mixed by multiplication (xorshift-multiply).
  static std::uint64_t hash(std::string_view w) noexcept {
    std::uint64_t h = 0x9E3779B97F4A7C15ull ^ w.size();
    std::size_t i = 0;
    for (; i + 8 <= w.size(); i += 8) {
      std::uint64_t v;
      std::memcpy(&v, w.data() + i, 8);
      h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 29;
    }
    if (i < w.size()) {
      std::uint64_t v = 0;
      std::memcpy(&v, w.data() + i, w.size() - i);
      h = (h ^ v) * 0x94D049BB133111EBull;
    }
    h ^= h >> 31;
    h *= 0xD6E8FEB86659FD93ull;
    return h ^ (h >> 32);
  }

  std::unique_ptr<slot[]> slots_;
};

/// A few per-call workspaces (word cache and scratch buffers, type T) shared by the threads that
/// encode with one tokenizer. A call takes the first free one (try_lock, never waits); when all
/// are taken it gets none and the caller uses a temporary workspace instead.
template <class T>
class workspace_pool {
 public:
  static constexpr std::size_t n_workspaces = 8;

  /// A workspace held for the duration of one encode call (or none).
  class lease {
   public:
    lease() = default;
    lease(std::unique_lock<std::mutex> lock, T* ws) : lock_(std::move(lock)), ws_(ws) {}
    [[nodiscard]] T* get() const noexcept { return ws_; }

   private:
    std::unique_lock<std::mutex> lock_;
    T* ws_ = nullptr;
  };

  [[nodiscard]] lease acquire() {
    for (auto& e : entries_) {
      std::unique_lock<std::mutex> lock(e.mutex, std::try_to_lock);
      if (!lock.owns_lock()) continue;
      if (!e.ws) e.ws = std::make_unique<T>();
      return {std::move(lock), e.ws.get()};
    }
    return {};
  }

 private:
  struct entry {
    std::mutex mutex;
    std::unique_ptr<T> ws;
  };
  std::array<entry, n_workspaces> entries_;
};

}  // namespace tessera::text::detail
