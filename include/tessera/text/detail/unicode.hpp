// SPDX-License-Identifier: Apache-2.0
// Unicode character classes and NFC for the tokenizer, from utf8proc, matched to what HF
// tokenizers 0.20.3 computes. That reference uses two Unicode versions, both older than
// utf8proc 2.8's Unicode 15.0, and the few code points where the versions disagree are corrected
// here (measured with tools/golden/make_tokenizer_goldens.py, checked per code point by
// tests/golden/test_golden_tokenizer.cpp):
//   - the split regex runs in Oniguruma 6.9.8 (Unicode 14.0): the letters and numbers first
//     assigned in Unicode 15.0 are "unassigned" there, so neither \p{L} nor \p{N};
//   - NFC comes from the unicode-normalization-alignments crate (Unicode 9.0 data): the marks with
//     a non-zero combining class assigned after 9.0 (and one Dives Akuru composition) are plain
//     starters that never reorder, compose or decompose.
#pragma once

#include <tessera/text/detail/utf8.hpp>

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::text::detail {

/// Inclusive code point range.
struct cp_range {
  char32_t first, last;
};

/// True when cp lies in one of the sorted, disjoint `ranges`.
template <std::size_t N>
[[nodiscard]] constexpr bool in_ranges(std::array<cp_range, N> const& ranges, char32_t cp) noexcept {
  auto const it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                                   [](char32_t c, cp_range const& r) { return c < r.first; });
  return it != ranges.begin() && cp <= std::prev(it)->last;
}

/// Letters (L*) and numbers (N*) first assigned in Unicode 15.0 (DerivedAge.txt), which
/// Oniguruma 6.9.8's Unicode 14.0 tables leave unassigned. Exactly the code points where
/// utf8proc 2.8's \p{L} / \p{N} differ from HF's regex (4,388 code points, measured).
inline constexpr std::array<cp_range, 16> letters_numbers_new_in_unicode15{{
    {0x1123F, 0x11240}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33},
    {0x11F50, 0x11F59}, {0x1342F, 0x1342F}, {0x13441, 0x13446}, {0x1B132, 0x1B132},
    {0x1B155, 0x1B155}, {0x1D2C0, 0x1D2D3}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D},
    {0x1E4D0, 0x1E4EB}, {0x1E4F0, 0x1E4F9}, {0x2B739, 0x2B739}, {0x31350, 0x323AF},
}};

/// Code points that utf8proc 2.8 normalizes (non-zero canonical combining class, or the Dives
/// Akuru composition U+11935 U+11930 <-> U+11938) but HF's Unicode 9.0 NFC tables do not know:
/// for HF they are starters that never combine. All were assigned after Unicode 9.0 (measured).
inline constexpr std::array<cp_range, 39> nfc_inert_in_reference{{
    {0x07FD, 0x07FD},   {0x0898, 0x089F},   {0x08CA, 0x08D3},   {0x09FE, 0x09FE},   {0x0C3C, 0x0C3C},
    {0x0D3B, 0x0D3C},   {0x0EBA, 0x0EBA},   {0x1715, 0x1715},   {0x1ABF, 0x1ACE},   {0x1DF6, 0x1DFA},
    {0xA82C, 0xA82C},   {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50},
    {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A},
    {0x11930, 0x11930}, {0x11935, 0x11935}, {0x11938, 0x11938}, {0x1193D, 0x1193E}, {0x11943, 0x11943},
    {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42},
    {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F},
    {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF},
}};

// ------------------------------------------------------------------------------------------------
// Character classes of the split regex
// ------------------------------------------------------------------------------------------------

/// The class of a character as Qwen2's split regex sees it. `newline` is [\r\n]; `space` is the
/// rest of Oniguruma's \s, which is the White_Space property (U+0009..U+000D, U+0020, U+0085,
/// and the Zs / Zl / Zp categories; U+180E is not among them since Unicode 6.3).
enum class char_class : std::uint8_t { other, letter, number, space, newline };

/// Class of a non-ASCII code point (utf8proc categories, Unicode 15 additions removed).
[[nodiscard]] inline char_class classify_non_ascii(char32_t cp) noexcept {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return in_ranges(letters_numbers_new_in_unicode15, cp) ? char_class::other : char_class::letter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return in_ranges(letters_numbers_new_in_unicode15, cp) ? char_class::other : char_class::number;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return char_class::space;
    default:
      return cp == 0x85 ? char_class::space : char_class::other;  // NEL is Cc but White_Space
  }
}

/// Classes of the 128 ASCII characters.
inline constexpr std::array<char_class, 128> ascii_classes = [] {
  std::array<char_class, 128> t{};
  for (std::size_t c = 0; c < 128; ++c) {
    if (c == '\r' || c == '\n') t[c] = char_class::newline;
    else if (c == '\t' || c == '\v' || c == '\f' || c == ' ') t[c] = char_class::space;
    else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = char_class::letter;
    else if (c >= '0' && c <= '9') t[c] = char_class::number;
    else t[c] = char_class::other;
  }
  return t;
}();

/// Class of any code point.
[[nodiscard]] inline char_class classify(char32_t cp) noexcept {
  return cp < 0x80 ? ascii_classes[cp] : classify_non_ascii(cp);
}

/// Unicode White_Space (the \s of Rust's regex crate, used by HF for lstrip / rstrip of added
/// tokens; the same set as Oniguruma's \s).
[[nodiscard]] inline bool is_white_space(char32_t cp) noexcept {
  auto const c = classify(cp);
  return c == char_class::space || c == char_class::newline;
}

/// Characters of Other_Alphabetic that are not marks (PropList.txt): circled and squared Latin
/// letters. With the letters, Nl, marks, Nd, Pc and the joiners they make Rust's Unicode \w.
inline constexpr std::array<cp_range, 4> other_alphabetic_symbols{{
    {0x24B6, 0x24E9}, {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189},
}};

/// Rust regex's Unicode \w: Alphabetic, M, Nd, Pc, Join_Control (HF's single_word test).
[[nodiscard]] inline bool is_word_char(char32_t cp) noexcept {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
  if (cp == 0x200C || cp == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return in_ranges(other_alphabetic_symbols, cp);
  }
}

// ------------------------------------------------------------------------------------------------
// NFC
// ------------------------------------------------------------------------------------------------

/// What NFC may do around a character.
///   stable: a starter (combining class 0) that NFC leaves unchanged and that never combines with
///           the character before it. Text made only of stable characters is in NFC, and NFC of
///           a text is NFC of its parts cut just before any stable character.
///   inert:  unknown to the reference's NFC tables (nfc_inert_in_reference); cut on both sides.
///   active: anything else (marks, Hangul vowels / trailing consonants, decomposable characters
///           that NFC changes): normalized together with the stable starter before it.
enum class nfc_role : std::uint8_t { stable, inert, active };

/// Characters below U+0300 (Latin-1 and the Latin Extended blocks) are all stable.
inline constexpr char32_t nfc_stable_below = 0x300;

/// Composes the decomposed, canonically ordered `cps[0, n)` (utf8proc's canonical composition),
/// re-encoded as UTF-8 and appended to `out`. `cps` gets one spare element: utf8proc_reencode
/// writes a terminating NUL byte past the UTF-8 bytes.
inline void nfc_append_utf32(std::vector<utf8proc_int32_t>& cps, std::size_t n, std::string& out) {
  cps.resize(n + 1);
  auto const bytes = utf8proc_reencode(cps.data(), static_cast<utf8proc_ssize_t>(n),
                                       static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  // Cannot fail: the input is valid scalar values decomposed by utf8proc itself.
  out.append(reinterpret_cast<char const*>(cps.data()), static_cast<std::size_t>(bytes > 0 ? bytes : 0));
}

/// Canonically decomposes the UTF-8 `text` into `cps` and puts it in canonical order; returns the
/// number of code points. The decomposition is utf8proc's (utf8proc_decompose_char); the ordering
/// is a stable sort of each run of non-starters by combining class, O(n log n), where
/// utf8proc_decompose's own exchange sort is quadratic (a long run of alternating marks would
/// take minutes; HF's normalizer sorts these runs too).
inline std::size_t nfc_decompose(std::string_view text, std::vector<utf8proc_int32_t>& cps) {
  auto const opts = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size();) {
    auto const ch = decode_utf8(text, i);
    i += ch.len;
    for (;;) {
      if (cps.size() < n + 8) cps.resize(2 * (n + 8));
      auto const room = static_cast<utf8proc_ssize_t>(cps.size() - n);
      auto const k = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(ch.cp), cps.data() + n, room, opts, nullptr);
      if (k <= room) {
        n += static_cast<std::size_t>(k > 0 ? k : 0);  // k < 0 cannot happen for a valid scalar value
        break;
      }
      cps.resize(n + static_cast<std::size_t>(k));
    }
  }
  auto const ccc = [](utf8proc_int32_t c) { return utf8proc_get_property(c)->combining_class; };
  for (std::size_t i = 0; i < n;) {
    if (ccc(cps[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    while (j < n && ccc(cps[j]) != 0) ++j;
    if (j - i > 1)
      std::stable_sort(cps.begin() + static_cast<std::ptrdiff_t>(i), cps.begin() + static_cast<std::ptrdiff_t>(j),
                       [&](utf8proc_int32_t a, utf8proc_int32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  return n;
}

/// Bitmap over U+0000..U+2FFFF (every canonical decomposition lies there): set for characters
/// with a canonical decomposition, combining class 0, that NFC maps to themselves (precomposed
/// letters such as U+00E9). Built once per process (~2,000 single-character normalizations).
inline std::vector<std::uint64_t> const& nfc_self_composing_bitmap() {
  static std::vector<std::uint64_t> const bits = [] {
    constexpr char32_t end = 0x30000;
    std::vector<std::uint64_t> b(end / 64, 0);
    std::vector<utf8proc_int32_t> cps;
    std::string buf, out;
    for (char32_t cp = nfc_stable_below; cp < end; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      auto const* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
      if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0 || p->combining_class != 0) continue;
      buf.clear();
      append_utf8(buf, cp);
      out.clear();
      nfc_append_utf32(cps, nfc_decompose(buf, cps), out);
      if (out == buf) b[cp / 64] |= std::uint64_t{1} << (cp % 64);
    }
    return b;
  }();
  return bits;
}

/// The role of a character for NFC (see nfc_role).
[[nodiscard]] inline nfc_role nfc_role_of(char32_t cp) noexcept {
  if (cp < nfc_stable_below) return nfc_role::stable;
  if (in_ranges(nfc_inert_in_reference, cp)) return nfc_role::inert;
  if (cp >= 0xAC00 && cp <= 0xD7A3) return nfc_role::stable;  // Hangul syllables (algorithmic)
  // Hangul vowels and trailing consonants compose with the syllable or consonant before them.
  if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2)) return nfc_role::active;
  auto const* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
  if (p->combining_class != 0) return nfc_role::active;
  // Every other character that can be the second of a canonical composition is a mark (vowel
  // and length signs of Indic scripts, the Tamil / Sinhala / Myanmar / Balinese signs...).
  if (p->category == UTF8PROC_CATEGORY_MN || p->category == UTF8PROC_CATEGORY_MC ||
      p->category == UTF8PROC_CATEGORY_ME)
    return nfc_role::active;
  if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0) return nfc_role::stable;  // no canonical decomposition
  auto const& bits = nfc_self_composing_bitmap();
  bool const self = cp < 0x30000 && ((bits[cp / 64] >> (cp % 64)) & 1u) != 0;
  return self ? nfc_role::stable : nfc_role::active;
}

/// Scratch buffers of nfc(), reused across calls to keep normalization allocation-free.
struct nfc_scratch {
  std::string text;
  std::vector<utf8proc_int32_t> cps;
};

/// NFC of the valid UTF-8 `text` as HF tokenizers' NFC normalizer computes it. Returns `text`
/// itself when it is already normalized (the common case, found without copying), else a view of
/// scratch.text. Only the short runs around "active" characters go through utf8proc.
[[nodiscard]] inline std::string_view nfc(std::string_view text, nfc_scratch& scratch) {
  constexpr std::size_t none = std::string_view::npos;
  std::size_t copied = 0;             // text[0, copied) has been handled
  std::size_t starter = none;         // byte offset of the last stable starter not yet handled
  bool changed = false;
  std::size_t i = 0;
  while (i < text.size()) {
    auto const b = static_cast<unsigned char>(text[i]);
    if (b < 0xCC) {  // U+0000..U+02FF: stable (0xCC 0x80 is U+0300)
      starter = i;
      i += b < 0x80 ? 1 : 2;
      continue;
    }
    auto const ch = decode_utf8(text, i);
    auto const role = nfc_role_of(ch.cp);
    if (role != nfc_role::active) {
      starter = role == nfc_role::stable ? i : none;
      i += ch.len;
      continue;
    }
    // A run of active characters, with the stable starter before it (which may compose with
    // them), up to the next stable or inert character.
    std::size_t const begin = starter != none && starter >= copied ? starter : i;
    std::size_t end = i + ch.len;
    while (end < text.size()) {
      auto const next = decode_utf8(text, end);
      if (next.cp < nfc_stable_below || nfc_role_of(next.cp) != nfc_role::active) break;
      end += next.len;
    }
    if (!changed) {
      scratch.text.clear();
      changed = true;
    }
    scratch.text.append(text.substr(copied, begin - copied));
    nfc_append_utf32(scratch.cps, nfc_decompose(text.substr(begin, end - begin), scratch.cps), scratch.text);
    copied = end;
    starter = none;
    i = end;
  }
  if (!changed) return text;
  scratch.text.append(text.substr(copied));
  return scratch.text;
}

}  // namespace tessera::text::detail
