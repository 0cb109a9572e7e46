// SPDX-License-Identifier: Apache-2.0
// Qwen2's pre-tokenizer split as a hand-written scanner: the pieces that HF tokenizers' Split
// pre-tokenizer (behavior Isolated) cuts with the regex
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// run by Oniguruma (leftmost alternative first, greedy quantifiers with backtracking). Each
// alternative is resolved in closed form below; tests/text/test_tokenizer_pretokenize.cpp checks
// the pieces against PCRE2 running the regex itself, over the whole golden corpus.
#pragma once

#include <tessera/text/detail/unicode.hpp>
#include <tessera/text/detail/utf8.hpp>

#include <cstddef>
#include <string_view>

namespace tessera::text::detail {

/// The exact pattern string of Qwen2's Split pre-tokenizer (as tokenizer.json stores it).
inline constexpr std::string_view qwen2_split_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// A character of the text being split: its class and its length in bytes.
struct classified_char {
  char_class cls;
  std::uint32_t len;
};

[[nodiscard]] inline classified_char classify_at(std::string_view s, std::size_t i) noexcept {
  auto const b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {ascii_classes[b], 1};
  auto const ch = decode_utf8(s, i);
  return {classify_non_ascii(ch.cp), ch.len};
}

/// End of the contraction `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at s[i] == '\'', or i if none matches.
/// Oniguruma's case folding adds exactly one non-ASCII character here: U+017F LATIN SMALL LETTER
/// LONG S folds to 's' (the Kelvin sign folds to 'k', which the pattern does not contain).
[[nodiscard]] inline std::size_t match_contraction(std::string_view s, std::size_t i) noexcept {
  auto const at = [&](std::size_t k) -> char {
    return i + k < s.size() ? static_cast<char>(s[i + k] | 0x20) : '\0';  // ASCII lower case
  };
  switch (at(1)) {
    case 's':
    case 't':
    case 'm':
    case 'd':
      return i + 2;
    case 'r':
    case 'v':
      return at(2) == 'e' ? i + 3 : i;
    case 'l':
      return at(2) == 'l' ? i + 3 : i;
    default:
      break;
  }
  if (i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xC5 && static_cast<unsigned char>(s[i + 2]) == 0xBF)
    return i + 3;  // 'ſ
  return i;
}

/// End of the regex match that starts at s[i] (i < s.size()); never equal to i.
[[nodiscard]] inline std::size_t match_qwen2_piece(std::string_view s, std::size_t i) noexcept {
  std::size_t const n = s.size();
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (s[i] == '\'') {
    if (std::size_t const e = match_contraction(s, i); e != i) return e;
  }
  auto const run_of = [&](std::size_t p, char_class cls) {  // end of the run of `cls` from p
    while (p < n) {
      auto const c = classify_at(s, p);
      if (c.cls != cls) break;
      p += c.len;
    }
    return p;
  };
  auto const c0 = classify_at(s, i);
  std::size_t const after0 = i + c0.len;
  switch (c0.cls) {
    case char_class::letter:  // [^\r\n\p{L}\p{N}]?\p{L}+ without the optional character
      return run_of(after0, char_class::letter);
    case char_class::number:  // \p{N}: one character
      return after0;
    case char_class::other:
    case char_class::space: {
      // [^\r\n\p{L}\p{N}]?\p{L}+: any non-newline, non-letter, non-number character, then letters.
      if (after0 < n && classify_at(s, after0).cls == char_class::letter) return run_of(after0, char_class::letter);
      // ` ?[^\s\p{L}\p{N}]+[\r\n]*`: an optional U+0020, "other" characters, then \r / \n.
      std::size_t run = n;  // start of the "other" run, n if the alternative fails
      if (c0.cls == char_class::other) run = i;
      else if (s[i] == ' ' && after0 < n && classify_at(s, after0).cls == char_class::other) run = after0;
      if (run != n) {
        std::size_t p = run_of(run, char_class::other);
        while (p < n && (s[p] == '\r' || s[p] == '\n')) ++p;
        return p;
      }
      break;  // white space: the last three alternatives
    }
    case char_class::newline:
      break;
  }
  // c0 is white space. Scan its maximal run, noting where the last newline ends and where the
  // run's last character starts.
  std::size_t p = i, last_newline_end = i, last_start = i;
  while (p < n) {
    auto const c = classify_at(s, p);
    if (c.cls != char_class::space && c.cls != char_class::newline) break;
    last_start = p;
    p += c.len;
    if (c.cls == char_class::newline) last_newline_end = p;
  }
  // \s*[\r\n]+ : \s* backtracks from the whole run to just before its last newline.
  if (last_newline_end != i) return last_newline_end;
  // \s+(?!\S) : the whole run at the end of the text, else the run minus its last character
  // (which is followed by more white space, not \S) when that leaves at least one character.
  if (p == n) return p;
  if (last_start != i) return last_start;
  // \s+ : a single white-space character before a non-space.
  return p;
}

/// Calls emit(piece) for each piece of `s` in order; the pieces are non-empty and concatenate
/// to `s`. Precondition: s is valid UTF-8.
template <class Emit>
void split_qwen2(std::string_view s, Emit&& emit) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t const e = match_qwen2_piece(s, i);
    emit(s.substr(i, e - i));
    i = e;
  }
}

}  // namespace tessera::text::detail
