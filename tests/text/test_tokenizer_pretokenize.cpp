// SPDX-License-Identifier: Apache-2.0
// The tokenizer's text processing below BPE: Qwen2's split (hand-worked cases from the regex's
// semantics, then PCRE2 running the regex itself on random strings from a pool of tricky
// characters), the character classes, NFC, UTF-8 validation and lossy decoding.
#include "common/compare.hpp"
#include "text/tokenizer_test_support.hpp"

#include <tessera/text/tokenizer.hpp>

#include <catch2/catch_test_macros.hpp>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace tessera;
using pieces_t = std::vector<std::string_view>;
using text::detail::char_class;

}  // namespace

TEST_CASE("pre-tokenizer: hand-worked splits of Qwen2's regex", "[text][tokenizer][unit]") {
  struct split_case {
    std::string text;
    pieces_t want;
  };
  std::vector<split_case> const cases{
      {"Hello world", {"Hello", " world"}},
      {"it's", {"it", "'s"}},
      {"IT'S", {"IT", "'S"}},
      {"we'LL'Re'vE'M'd", {"we", "'LL", "'Re", "'vE", "'M", "'d"}},
      {"'sx", {"'s", "x"}},                      // no word boundary: "'s" wins at the apostrophe
      {"'tis", {"'t", "is"}},
      {"'hello", {"'hello"}},                    // not a contraction: [^\r\n\p{L}\p{N}]?\p{L}+
      {"''s", {"''", "s"}},                      // ' ?[^\s\p{L}\p{N}]+' takes both apostrophes
      {"x'\xC5\xBF", {"x", "'\xC5\xBF"}},        // 'ſ folds to 's
      {"x'\xE2\x84\xAA", {"x", "'\xE2\x84\xAA"}},  // Kelvin sign: a letter, but no contraction has k
      {"x\xE2\x80\x99s", {"x", "\xE2\x80\x99s"}},     // U+2019 is punctuation, not an apostrophe
      {"123", {"1", "2", "3"}},                  // \p{N} is one character
      {" 42", {" ", "4", "2"}},
      {"  hi", {" ", " hi"}},                    // \s+(?!\S) leaves one space to the word
      {"hi  ", {"hi", "  "}},                    // at the end the whole run
      {"a\n\nb", {"a", "\n\n", "b"}},
      {"a \n \n  b", {"a", " \n \n", " ", " b"}},  // \s*[\r\n]+ ends at the last newline
      {"\r\n", {"\r\n"}},
      {" !!!\n\nx", {" !!!\n\n", "x"}},          // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
      {"(hello)", {"(hello", ")"}},
      {"\thello", {"\thello"}},                  // any non-newline space may lead letters
      {"\nhello", {"\n", "hello"}},              // but not a newline
      {"\xE3\x80\x80word", {"\xE3\x80\x80word"}},  // U+3000 is white space and leads the word
      {"a\xC2\x85" "b", {"a", "\xC2\x85" "b"}},  // U+0085 (NEL) is \s
      {"a\xE1\xA0\x8E" "b", {"a", "\xE1\xA0\x8E" "b"}},  // U+180E is Cf, not \s, since Unicode 6.3
      {"\t\t!", {"\t", "\t", "!"}},
      {"x  !", {"x", " ", " !"}},
      {"\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C", {"\xE4\xBD\xA0\xE5\xA5\xBD", "\xEF\xBC\x8C"}},  // 你好，
  };
  for (auto const& c : cases) {
    INFO("text '" << test::escaped(c.text) << "'");
    auto const got = test::tessera_split(c.text);
    CHECK(test::show_pieces(got) == test::show_pieces(c.want));
  }
}

TEST_CASE("pre-tokenizer: the scanner equals PCRE2 running Qwen2's regex on random strings", "[text][tokenizer][unit]") {
  // Characters chosen for the regex's corners: every class, the newline/space distinction, the
  // contraction letters and folds, Unicode spaces, marks, letters new in Unicode 15 (unassigned
  // for both Oniguruma and PCRE2 10.42, which share Unicode 14 tables).
  std::vector<std::string> const pool{
      "a", "Z", "s", "S", "t", "T", "r", "e", "E", "v", "m", "l", "L", "d", "k", "'", "'", "'", " ", " ", " ", "\t",
      "\n", "\r", "\v", "\f", "0", "7", "!", ".", "_", "-", "(", "\xC5\xBF", "\xE2\x84\xAA", "\xC2\x85", "\xC2\xA0",
      "\xE3\x80\x80", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE1\xA0\x8E", "\xE2\x80\x8B", "\xCC\x81", "\xE4\xBD\xA0",
      "\xD9\xA3", "\xE2\x85\xAB", "\xE2\x91\xA0", "\xF0\x9F\x98\x80", "\xF0\x91\xBC\x84", "\xF0\xB1\x8D\x90",
      "\xF0\x91\xBD\x90", "\xE2\x80\x99", "\xEF\xBC\x81", "\xC3\xA9", "\x1C", "\x00"};
  test::pcre2_splitter const oracle;
  std::mt19937 rng(static_cast<unsigned>(test::seed()));
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    std::size_t const n = rng() % 24;
    for (std::size_t k = 0; k < n; ++k) s += pool[rng() % pool.size()];
    auto const want = oracle.split(s);
    auto const got = test::tessera_split(s);
    if (got != want) {
      INFO("seed " << test::seed() << " round " << round << " text '" << test::escaped(s) << "'");
      REQUIRE(test::show_pieces(got) == test::show_pieces(want));
    }
  }
}

TEST_CASE("unicode: character classes of the split", "[text][tokenizer][unit]") {
  using text::detail::classify;
  CHECK(classify('a') == char_class::letter);
  CHECK(classify('\n') == char_class::newline);
  CHECK(classify('\r') == char_class::newline);
  CHECK(classify('\v') == char_class::space);
  CHECK(classify(0x85) == char_class::space);     // NEL: Cc, but White_Space
  CHECK(classify(0x180E) == char_class::other);   // Cf since Unicode 6.3
  CHECK(classify(0x200B) == char_class::other);   // zero width space is Cf
  CHECK(classify(0x3000) == char_class::space);
  CHECK(classify(0x2029) == char_class::space);
  CHECK(classify(0x4F60) == char_class::letter);  // 你
  CHECK(classify(0x2160) == char_class::number);  // Ⅰ (Nl)
  CHECK(classify(0x2460) == char_class::number);  // ① (No)
  CHECK(classify(0x0301) == char_class::other);   // marks are not \p{L}
  CHECK(classify(0x1F600) == char_class::other);
  // Assigned in Unicode 15.0 (utf8proc 2.8), unknown to the reference's Oniguruma (Unicode 14).
  CHECK(classify(0x31350) == char_class::other);  // CJK Extension H
  CHECK(classify(0x11F04) == char_class::other);  // Kawi
  CHECK(classify(0x1E4F0) == char_class::other);  // Nag Mundari digit
  CHECK(classify(0x30000) == char_class::letter);  // CJK Extension G (Unicode 13) is known
  // Rust's \w for single_word added tokens.
  CHECK(text::detail::is_word_char('_'));
  CHECK(text::detail::is_word_char(0x0301));
  CHECK(text::detail::is_word_char(0x24B6));  // Ⓐ: Other_Alphabetic
  CHECK(text::detail::is_word_char(0x200D));  // ZWJ: Join_Control
  CHECK_FALSE(text::detail::is_word_char(0x2460));  // ①: No, not alphabetic
  CHECK_FALSE(text::detail::is_word_char('-'));
}

TEST_CASE("unicode: NFC with the reference's Unicode 9 exceptions", "[text][tokenizer][unit]") {
  text::detail::nfc_scratch scratch;
  auto const nfc = [&](std::string_view s) { return std::string(text::detail::nfc(s, scratch)); };
  CHECK(nfc("plain ascii") == "plain ascii");
  CHECK(nfc("e\xCC\x81") == "\xC3\xA9");                            // e + U+0301 -> é
  CHECK(nfc("\xC3\xA9") == "\xC3\xA9");
  CHECK(nfc("\xE2\x84\xAB") == "\xC3\x85");                         // U+212B -> U+00C5 (singleton)
  CHECK(nfc("\xE2\x84\xA6") == "\xCE\xA9");                         // U+2126 -> U+03A9
  CHECK(nfc("\xEF\xAC\x81") == "\xEF\xAC\x81");                     // ﬁ: compatibility only
  CHECK(nfc("a\xCC\x81\xCC\xA3") == "\xE1\xBA\xA1\xCC\x81");        // reordered: ạ + U+0301
  CHECK(nfc("\xE0\xA5\x98") == "\xE0\xA4\x95\xE0\xA4\xBC");         // U+0958: composition exclusion
  CHECK(nfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB") == "\xED\x95\x9C");  // conjoining jamo -> 한
  CHECK(nfc("\xEA\xB0\x80\xE1\x86\xA8") == "\xEA\xB0\x81");         // LV syllable + T -> LVT
  // U+1AC1 (Unicode 14, class 230) is unknown to the reference's Unicode 9 NFC: a starter there,
  // so nothing reorders around it, while U+0316 (220) and U+0301 (230) still reorder elsewhere.
  CHECK(nfc("a\xE1\xAB\x81\xCC\x96") == "a\xE1\xAB\x81\xCC\x96");
  CHECK(nfc("a\xCC\x81\xCC\x96") == "\xC3\xA1\xCC\x96");  // reordered, then a + U+0301 composes
  // The Dives Akuru pair composes in Unicode 13+, not in the reference.
  CHECK(nfc("\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0") == "\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0");
  CHECK(nfc("\xF0\x91\xA4\xB8") == "\xF0\x91\xA4\xB8");
  CHECK(nfc("") == "");
  // Canonical ordering of a long run of alternating marks (220 after 230) is a stable sort, not
  // utf8proc's quadratic exchange sort: all U+0316 first, then a + U+0301 composes to á.
  std::string marks = "a";
  std::string want = "\xC3\xA1";
  for (int k = 0; k < 50000; ++k) marks += "\xCC\x81\xCC\x96";
  for (int k = 0; k < 50000; ++k) want += "\xCC\x96";
  for (int k = 1; k < 50000; ++k) want += "\xCC\x81";
  CHECK(nfc(marks) == want);
}

TEST_CASE("utf8: validation and lossy decoding", "[text][tokenizer][unit]") {
  using text::detail::find_invalid_utf8;
  constexpr auto npos = std::string_view::npos;
  CHECK(find_invalid_utf8("") == npos);
  CHECK(find_invalid_utf8("plain text, more than eight bytes") == npos);
  CHECK(find_invalid_utf8("\xF4\x8F\xBF\xBF") == npos);  // U+10FFFF
  CHECK(find_invalid_utf8("\xEF\xBF\xBF") == npos);      // U+FFFF (a noncharacter, still well-formed)
  CHECK(find_invalid_utf8("abcdefgh\xC2") == 8);
  CHECK(find_invalid_utf8("abc\xF4\x90\x80\x80") == 3);
  CHECK(find_invalid_utf8("\xE0\x9F\xBF") == 0);
  CHECK(find_invalid_utf8("\xC1\xBF") == 0);
  std::string out;
  CHECK(text::detail::append_utf8_lossy(out, "ab\xE4\xBD", false) == 2);  // holds back the prefix
  CHECK(out == "ab");
  out.clear();
  CHECK(text::detail::append_utf8_lossy(out, "ab\xE4\xBD", true) == 4);
  CHECK(out == "ab\xEF\xBF\xBD");
}
