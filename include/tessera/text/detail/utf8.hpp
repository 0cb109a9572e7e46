// SPDX-License-Identifier: Apache-2.0
// UTF-8 for the tokenizer: decoding of valid text, validation, encoding, and lossy decoding that
// replaces ill-formed bytes exactly as Rust's String::from_utf8_lossy does (one U+FFFD per maximal
// subpart of an ill-formed sequence, Unicode 15 section 3.9 "U+FFFD substitution of maximal
// subparts"), which is what HF tokenizers' ByteLevel decoder returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::text::detail {

/// One decoded code point and the number of bytes it occupies.
struct decoded_char {
  char32_t cp;
  std::uint32_t len;
};

/// Decodes the character starting at s[i]. Precondition: s is valid UTF-8 and i < s.size() is the
/// first byte of a character (the tokenizer validates its input once, at entry).
[[nodiscard]] inline decoded_char decode_utf8(std::string_view s, std::size_t i) noexcept {
  auto const b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1};
  auto const b1 = static_cast<char32_t>(static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
  if (b0 < 0xE0) return {(static_cast<char32_t>(b0 & 0x1Fu) << 6) | b1, 2};
  auto const b2 = static_cast<char32_t>(static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
  if (b0 < 0xF0) return {(static_cast<char32_t>(b0 & 0x0Fu) << 12) | (b1 << 6) | b2, 3};
  auto const b3 = static_cast<char32_t>(static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
  return {(static_cast<char32_t>(b0 & 0x07u) << 18) | (b1 << 12) | (b2 << 6) | b3, 4};
}

/// Appends the UTF-8 encoding of a Unicode scalar value.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0u | (cp >> 6));
    out += static_cast<char>(0x80u | (cp & 0x3Fu));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0u | (cp >> 12));
    out += static_cast<char>(0x80u | ((cp >> 6) & 0x3Fu));
    out += static_cast<char>(0x80u | (cp & 0x3Fu));
  } else {
    out += static_cast<char>(0xF0u | (cp >> 18));
    out += static_cast<char>(0x80u | ((cp >> 12) & 0x3Fu));
    out += static_cast<char>(0x80u | ((cp >> 6) & 0x3Fu));
    out += static_cast<char>(0x80u | (cp & 0x3Fu));
  }
}

/// How the bytes at s[i..] begin: a complete well-formed character (`length` bytes), an
/// ill-formed sequence whose maximal subpart is `length` bytes (>= 1), or a proper prefix of a
/// well-formed character cut off by the end of `s` (`length` bytes, 1..3).
struct utf8_step {
  enum kind_t : std::uint8_t { complete, ill_formed, truncated } kind;
  std::uint32_t length;
};

/// Classifies the sequence at s[i] by Table 3-7 (well-formed UTF-8 byte sequences) of the Unicode
/// standard: the second byte's range depends on the lead byte (E0: A0..BF, ED: 80..9F, F0: 90..BF,
/// F4: 80..8F), which excludes overlong forms, surrogates and code points above U+10FFFF.
[[nodiscard]] inline utf8_step utf8_step_at(std::string_view s, std::size_t i) noexcept {
  auto const b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {utf8_step::complete, 1};
  std::uint32_t need = 0;             // continuation bytes after the lead byte
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {utf8_step::ill_formed, 1};  // 80..C1 and F5..FF never start a character
  }
  for (std::uint32_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return {utf8_step::truncated, k};
    auto const b = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return {utf8_step::ill_formed, k};
  }
  return {utf8_step::complete, need + 1};
}

/// Offset of the first byte of `s` that is not part of well-formed UTF-8, or npos if all of it is.
[[nodiscard]] inline std::size_t find_invalid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path: 8 bytes at a time while none has its top bit set.
    while (i + 8 <= s.size()) {
      std::uint64_t w = 0;
      for (std::size_t k = 0; k < 8; ++k) w |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[i + k])) << (8 * k);
      if ((w & 0x8080808080808080ull) != 0) break;
      i += 8;
    }
    if (i >= s.size()) break;
    auto const step = utf8_step_at(s, i);
    if (step.kind != utf8_step::complete) return i;
    i += step.length;
  }
  return std::string_view::npos;
}

/// Appends `bytes` to `out` as text, each maximal subpart of an ill-formed sequence replaced by
/// U+FFFD (String::from_utf8_lossy). When `final` is false, a proper prefix of a character at the
/// very end is left unconsumed, so that a streaming caller can complete it with later bytes;
/// returns the number of bytes consumed (bytes.size() when `final`). Feeding the bytes in pieces
/// (carrying the unconsumed tail over) gives the same text as one call on all of them.
inline std::size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final) {
  static constexpr char replacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::size_t i = 0;
  while (i < bytes.size()) {
    auto const step = utf8_step_at(bytes, i);
    if (step.kind == utf8_step::complete) {
      out.append(bytes.data() + i, step.length);
    } else if (step.kind == utf8_step::ill_formed) {
      out.append(replacement, 3);
    } else {  // truncated at the end of the input
      if (!final) return i;
      out.append(replacement, 3);
    }
    i += step.length;
  }
  return i;
}

}  // namespace tessera::text::detail
