// SPDX-License-Identifier: Apache-2.0
// Added (special) tokens: the token type shared with the public API, and the splitter that finds
// them in text as HF tokenizers' AddedVocabulary::find_matches does: an Aho-Corasick search with
// leftmost-longest semantics (among the matches that start leftmost, the longest; the search goes
// on after its end), then the single_word / lstrip / rstrip rules of each token.
#pragma once

#include <tessera/text/detail/unicode.hpp>
#include <tessera/text/detail/utf8.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::text {

/// A token matched whole in the text before the BPE model runs (HF tokenizers' AddedToken).
struct added_token {
  std::int32_t id = 0;
  std::string content;       ///< the exact text matched (and what decode() writes for it)
  bool special = false;      ///< skipped by decode(skip_special = true); see encode(allow_special)
  bool normalized = false;   ///< matched in the NFC-normalized text instead of the raw text
  bool lstrip = false;       ///< also swallows the white space before it
  bool rstrip = false;       ///< also swallows the white space after it
  bool single_word = false;  ///< only matched when no word character (Unicode \w) touches it

  friend bool operator==(added_token const&, added_token const&) = default;
};

}  // namespace tessera::text

namespace tessera::text::detail {

/// Byte trie over the contents of a set of added tokens, searched leftmost-longest.
class added_matcher {
 public:
  added_matcher() = default;

  /// patterns[k] = (text to match, index of its token in the tokenizer's added list). Texts are
  /// non-empty and distinct.
  explicit added_matcher(std::vector<std::pair<std::string, std::uint32_t>> const& patterns) {
    std::map<std::pair<std::uint32_t, unsigned char>, std::uint32_t> children;  // while building
    nodes_.push_back({});
    for (auto const& [text, token] : patterns) {
      std::uint32_t cur = 0;
      for (char ch : text) {
        auto const b = static_cast<unsigned char>(ch);
        auto [it, added] = children.try_emplace({cur, b}, static_cast<std::uint32_t>(nodes_.size()));
        if (added) {
          nodes_.push_back({});
          if (cur == 0) first_byte_[b] = true;
        }
        cur = it->second;
      }
      nodes_[cur].token = token;
    }
    edges_.reserve(children.size());
    for (auto const& [key, to] : children) edges_.push_back({key.first, key.second, to});  // sorted by (node, byte)
  }

  [[nodiscard]] bool empty() const noexcept { return nodes_.size() <= 1; }

  /// The leftmost-longest match in text[from..]: (begin, end, token index), or begin == npos.
  struct match {
    std::size_t begin, end;
    std::uint32_t token;
  };
  [[nodiscard]] match find(std::string_view text, std::size_t from) const noexcept {
    for (std::size_t p = from; p < text.size(); ++p) {
      if (!first_byte_[static_cast<unsigned char>(text[p])]) continue;
      std::uint32_t cur = 0;
      match best{std::string_view::npos, 0, 0};
      for (std::size_t q = p; q < text.size(); ++q) {
        cur = child(cur, static_cast<unsigned char>(text[q]));
        if (cur == no_node) break;
        if (nodes_[cur].token != no_token) best = {p, q + 1, nodes_[cur].token};
      }
      if (best.begin != std::string_view::npos) return best;
    }
    return {std::string_view::npos, 0, 0};
  }

 private:
  static constexpr std::uint32_t no_node = 0xFFFFFFFFu;
  static constexpr std::uint32_t no_token = 0xFFFFFFFFu;
  struct node {
    std::uint32_t token = no_token;
  };
  struct edge {
    std::uint32_t from;
    unsigned char byte;
    std::uint32_t to;
  };

  [[nodiscard]] std::uint32_t child(std::uint32_t from, unsigned char b) const noexcept {
    auto const it = std::lower_bound(edges_.begin(), edges_.end(), std::pair{from, b}, [](edge const& e, auto const& key) {
      return e.from != key.first ? e.from < key.first : e.byte < key.second;
    });
    return it != edges_.end() && it->from == from && it->byte == b ? it->to : no_node;
  }

  std::vector<node> nodes_;
  std::vector<edge> edges_;
  std::array<bool, 256> first_byte_{};
};

/// The first code point of `s` (non-empty, valid UTF-8).
[[nodiscard]] inline char32_t first_char(std::string_view s) noexcept { return decode_utf8(s, 0).cp; }

/// The last code point of `s` (non-empty, valid UTF-8).
[[nodiscard]] inline char32_t last_char(std::string_view s) noexcept {
  std::size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0u) == 0x80u) --i;
  return decode_utf8(s, i).cp;
}

/// Splits `text` around the added tokens that `matcher` finds, calling emit(piece, token) with
/// token = index into `tokens` for a token and -1 for the text between tokens (HF's
/// AddedVocabulary::find_matches, including its behaviour when an rstrip token's white space
/// reaches into the next match, which the loader rules out). With `skip_special`, matches of
/// special tokens are dropped (HF's encode_special_tokens) and their text stays plain text.
template <class Emit>
void split_added(std::string_view text, added_matcher const& matcher, std::span<added_token const> tokens,
                 bool skip_special, Emit&& emit) {
  std::size_t start_offset = 0;  // end of the last emitted token
  for (std::size_t from = 0;;) {
    auto const m = matcher.find(text, from);
    if (m.begin == std::string_view::npos) break;
    from = m.end;
    added_token const& tok = tokens[m.token];
    if (skip_special && tok.special) continue;
    std::size_t start = m.begin, stop = m.end;
    if (tok.single_word) {
      bool const space_before = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      bool const space_after = stop == text.size() || !is_word_char(first_char(text.substr(stop)));
      if (!space_before || !space_after) continue;
    }
    if (tok.lstrip) {
      // Start of the white-space run that ends at `start`, but not before the previous token
      // (HF takes the maximum of the two; stopping there keeps the scan linear).
      std::size_t s = start;
      while (s > start_offset) {
        std::size_t k = s - 1;
        while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0u) == 0x80u) --k;
        if (!is_white_space(decode_utf8(text, k).cp)) break;
        s = k;
      }
      start = std::max(s, start_offset);
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        auto const ch = decode_utf8(text, stop);
        if (!is_white_space(ch.cp)) break;
        stop += ch.len;
      }
    }
    if (start_offset < start) emit(text.substr(start_offset, start - start_offset), std::int64_t{-1});
    emit(text.substr(start, stop - start), static_cast<std::int64_t>(m.token));
    start_offset = stop;
  }
  if (start_offset < text.size()) emit(text.substr(start_offset), std::int64_t{-1});
}

}  // namespace tessera::text::detail
