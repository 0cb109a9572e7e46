// SPDX-License-Identifier: Apache-2.0
// The byte-level alphabet of GPT-2 style BPE (openai/gpt-2 encoder.py bytes_to_unicode, HF
// tokenizers pre_tokenizers/byte_level.rs): every byte is one printable character in the
// vocabulary's strings, so that 'Ġ' (U+0120) stands for the byte 0x20.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace tessera::text::detail {

/// byte_to_char[b]: the character that stands for byte b. The printable bytes '!'..'~',
/// 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 map to U+0100.. in byte order.
inline constexpr std::array<char32_t, 256> byte_to_char = [] {
  std::array<char32_t, 256> t{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    bool const printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return t;
}();

/// One past the largest character of the alphabet (U+0143).
inline constexpr char32_t byte_alphabet_end = 0x144;

/// char_to_byte[c] for c < byte_alphabet_end: the byte that character c stands for, or -1 when
/// c is not in the alphabet.
inline constexpr std::array<std::int16_t, byte_alphabet_end> char_to_byte = [] {
  std::array<std::int16_t, byte_alphabet_end> t{};
  t.fill(-1);
  for (int b = 0; b < 256; ++b) t[byte_to_char[static_cast<std::size_t>(b)]] = static_cast<std::int16_t>(b);
  return t;
}();

}  // namespace tessera::text::detail
