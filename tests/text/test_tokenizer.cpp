// SPDX-License-Identifier: Apache-2.0
// Unit tests of text::tokenizer on the committed tiny tokenizer (tests/text/data/tiny_tokenizer.json:
// the 256 byte symbols with id = byte value, 31 merges making ids 256..286, added tokens 287..298
// plus "hello" = 260). Expected ids are worked out by hand from that file (the merge ranks are
// its list positions); tests/golden/test_golden_tokenizer.cpp compares the same tokenizer with HF.
#include "common/compare.hpp"
#include "text/tokenizer_test_support.hpp"

#include <tessera/text/tokenizer.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace tessera;
using Catch::Matchers::ContainsSubstring;
using ids_t = std::vector<text::token_id>;

text::tokenizer const& tiny() {
  static text::tokenizer const t = text::tokenizer::from_tokenizer_json(test::tiny_tokenizer_path());
  return t;
}

// Ids of the tiny vocabulary (positions in its merge list give the merge ranks).
constexpr text::token_id id_he = 256, id_hello = 260, id_gworld = 265, id_gg = 273, id_er = 275, id_ni = 286;
constexpr text::token_id id_eot = 287, id_im_start = 288, id_im_end = 289, id_tool = 290, id_mask = 291, id_l = 292,
                         id_r = 293, id_sw = 294, id_cafe = 295, id_angstrom = 296, id_hello_world = 297, id_im = 298;

std::string const replacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

TEST_CASE("tokenizer: vocabulary lookups of the tiny tokenizer", "[text][tokenizer][unit]") {
  auto const& t = tiny();
  CHECK(t.vocab_size() == 299);
  CHECK(t.normalizes_nfc());
  CHECK(t.token_to_id("he") == id_he);
  CHECK(t.token_to_id("Ġworld") == id_gworld);
  CHECK(t.token_to_id("<|im_start|>") == id_im_start);
  CHECK(t.token_to_id("A") == 'A');
  CHECK(t.token_to_id("Ġ") == ' ');  // U+0120 stands for the byte 0x20
  CHECK(t.id_to_token(id_ni) == "\xC3\xA4\xC2\xBD\xC5\x82");  // "ä½ł", the byte-level form of 你
  CHECK(t.id_to_token(id_angstrom) == "\xE2\x84\xAB");         // the content as written: U+212B
  CHECK(t.token_bytes(id_ni) == "\xE4\xBD\xA0");
  CHECK(t.token_bytes(id_gworld) == " world");
  CHECK(t.token_bytes(id_hello_world) == "hello world");  // ' ' is not in the byte alphabet: raw UTF-8
  CHECK_FALSE(t.find_token("nope").has_value());
  CHECK(t.special_token_id("<|im_end|>") == id_im_end);
  CHECK(t.is_special(id_mask));
  CHECK_FALSE(t.is_special(id_tool));
  CHECK_FALSE(t.is_special(id_hello));
  REQUIRE(t.added_tokens().size() == 13);
  CHECK(t.added_tokens()[0].content == "hello");
  CHECK(t.added_tokens()[0].id == id_hello);

  REQUIRE_THROWS_AS(t.token_to_id("nope"), tessera::error);
  REQUIRE_THROWS_WITH(t.token_to_id("nope"), ContainsSubstring("no token 'nope'"));
  REQUIRE_THROWS_WITH(t.special_token_id("<tool>"), ContainsSubstring("not special"));
  REQUIRE_THROWS_WITH(t.special_token_id("<|nope|>"), ContainsSubstring("no special token"));
  for (text::token_id bad : {-1, 299, 1 << 30}) {
    INFO("id " << bad);
    REQUIRE_THROWS_WITH(t.id_to_token(bad), ContainsSubstring("is not a token id"));
    REQUIRE_THROWS_WITH(t.token_bytes(bad), ContainsSubstring("is not a token id"));
    REQUIRE_THROWS_WITH(t.is_special(bad), ContainsSubstring("is not a token id"));
  }
}

TEST_CASE("tokenizer: BPE merges by rank, leftmost first", "[text][tokenizer][unit]") {
  auto const& t = tiny();
  // "the": pairs (t,h) rank 10 and (h,e) rank 0: "he" merges first and (t, he) is no merge.
  CHECK(t.encode("the") == ids_t{'t', id_he});
  // " world": Ġw (5), or (6), Ġwor (7), ld (8), Ġworld (9).
  CHECK(t.encode(" world") == ids_t{id_gworld});
  CHECK(t.encode("the world") == ids_t{'t', id_he, id_gworld});
  // "user": only (e,r) merges.
  CHECK(t.encode("user") == ids_t{'u', 's', id_er});
  // Three spaces then a word: \s+(?!\S) leaves the last space to " spaces"; the pair "Ġ Ġ" is
  // listed twice (the later rank, 31, applies).
  CHECK(t.encode("   spaces") == ids_t{id_gg, ' ', 's', 'p', 'a', 'c', 'e', 's'});
  // Four spaces at the end: "ĠĠ ĠĠ" (rank 18) needs two "ĠĠ" (rank 31) first.
  CHECK(t.encode("a    ") == ids_t{'a', 274});
  CHECK(t.encode("") == ids_t{});
  CHECK(t.encode("\xE4\xBD\xA0") == ids_t{id_ni});  // 你
  // NFC first: e + U+0301 becomes é, bytes C3 A9 = "Ã©" (merge 27).
  CHECK(t.encode("e\xCC\x81") == ids_t{283});
}

TEST_CASE("tokenizer: added tokens are matched leftmost-longest, with their flags", "[text][tokenizer][unit]") {
  auto const& t = tiny();
  CHECK(t.encode("hello") == ids_t{id_hello});
  CHECK(t.encode("hello world") == ids_t{id_hello_world});  // the longer added token wins
  CHECK(t.encode("helloworld") == ids_t{id_hello, 'w', 262, 264});  // "world" without Ġ: w, or, ld
  CHECK(t.encode("<|im_start|>user") == ids_t{id_im_start, 'u', 's', id_er});
  CHECK(t.encode("<|im_") == ids_t{id_im, '_'});  // "<|im" is a token too
  CHECK(t.encode("a<tool>b") == ids_t{'a', id_tool, 'b'});
  // lstrip + rstrip swallow the white space around [MASK].
  CHECK(t.encode("a [MASK] b") == ids_t{'a', id_mask, 'b'});
  CHECK(t.encode("a \t[MASK]\n\n b") == ids_t{'a', id_mask, 'b'});
  CHECK(t.encode("a <l> b") == ids_t{'a', id_l, ' ', 'b'});
  CHECK(t.encode("a <r> b") == ids_t{'a', ' ', id_r, 'b'});
  // single_word: only with no word character on either side.
  CHECK(t.encode("a <sw> b") == ids_t{'a', ' ', id_sw, ' ', 'b'});
  CHECK(t.encode("<sw>") == ids_t{id_sw});
  CHECK(t.encode("a<sw>b") == ids_t{'a', '<', 's', 'w', '>', 'b'});  // pieces "a" "<sw" ">b"
  CHECK(t.encode("x<sw>") != ids_t{'x', id_sw});
  // normalized tokens match after NFC: "cafe" + U+0301 -> "café"; U+00C5 matches the content U+212B.
  CHECK(t.encode("cafe\xCC\x81") == ids_t{id_cafe});
  CHECK(t.encode("\xC3\x85") == ids_t{id_angstrom});
  CHECK(t.encode("\xE2\x84\xAB") == ids_t{id_angstrom});
  // allow_special = false: special tokens are text (the skipped match hides "<|im" inside it);
  // non-special added tokens still match.
  CHECK(t.encode("<|im_start|>", false) ==
        ids_t{'<', '|', 'i', 'm', '_', 's', 't', 'a', 'r', 't', '|', '>'});
  CHECK(t.encode("<tool>", false) == ids_t{id_tool});
  CHECK(t.encode("<|endoftext|>", true) == ids_t{id_eot});
}

TEST_CASE("tokenizer: decode and its replacement of ill-formed UTF-8", "[text][tokenizer][unit]") {
  auto const& t = tiny();
  CHECK(t.decode(ids_t{'h', 'e', 'l', 'l', 'o'}) == "hello");
  CHECK(t.decode(ids_t{id_im_start, 'h', 'i', id_im_end}) == "<|im_start|>hi<|im_end|>");
  CHECK(t.decode(ids_t{id_im_start, 'h', 'i', id_im_end}, true) == "hi");
  CHECK(t.decode(ids_t{id_tool}, true) == "<tool>");  // not special: kept
  CHECK(t.decode(ids_t{id_angstrom}) == "\xE2\x84\xAB");
  CHECK(t.decode(ids_t{}) == "");
  // One U+FFFD per maximal ill-formed subpart (Unicode 15, 3.9; Rust's from_utf8_lossy).
  struct lossy_case {
    ids_t bytes;
    std::string want;
  };
  std::string const R = replacement;
  for (auto const& c : std::vector<lossy_case>{
           {{0x80}, R},                                   // lone continuation byte
           {{0xC0, 0x80}, R + R},                         // overlong: C0 never starts a character
           {{0xE0, 0x80, 0x80}, R + R + R},               // overlong 3-byte: E0 needs A0..BF next
           {{0xED, 0xA0, 0x80}, R + R + R},               // UTF-16 surrogate D800
           {{0xF4, 0x90, 0x80, 0x80}, R + R + R + R},     // above U+10FFFF
           {{0xF5}, R},                                   // never a lead byte
           {{0xE4, 0xBD}, R},                             // truncated at the end: one replacement
           {{0xF0, 0x9F, 0x98}, R},                       // truncated 4-byte sequence
           {{0xE4, 0xBD, 'A'}, R + "A"},                  // truncated before another character
           {{0xF0, 0x9F, 'A', 'B'}, R + "AB"},
           {{0xC3, 0xC3, 0xA9}, R + "\xC3\xA9"},
           {{'A', 0x80, 'B'}, "A" + R + "B"},
           {{0xF0, 0x9F, 0x98, 0x80}, "\xF0\x9F\x98\x80"},  // U+1F600, complete
       }) {
    INFO("bytes " << test::join_ids(c.bytes));
    CHECK(t.decode(c.bytes) == c.want);
    // The streaming decoder gives the same text, never a split character.
    auto s = t.stream();
    std::string streamed;
    for (auto id : c.bytes) {
      std::string const piece = s.push(id);
      CHECK(text::detail::find_invalid_utf8(piece) == std::string_view::npos);
      streamed += piece;
    }
    streamed += s.finish();
    CHECK(streamed == c.want);
  }
  REQUIRE_THROWS_WITH(t.decode(ids_t{'a', 299}), ContainsSubstring("decode: 299 is not a token id"));
  REQUIRE_THROWS_WITH(t.decode(ids_t{-5}), ContainsSubstring("is not a token id"));
}

TEST_CASE("tokenizer: the streaming decoder holds back incomplete characters", "[text][tokenizer][unit]") {
  auto const& t = tiny();
  auto s = t.stream();
  CHECK(s.push(0xE4).empty());
  CHECK(s.push(0xBD).empty());
  CHECK(s.push(0xA0) == "\xE4\xBD\xA0");
  CHECK(s.push('x') == "x");
  CHECK(s.push(0xF0).empty());
  CHECK(s.push(0x9F).empty());
  CHECK(s.push('!') == replacement + "!");  // the held bytes were a dead end
  CHECK(s.push(0xC3).empty());
  CHECK(s.finish() == replacement);  // incomplete at the end
  CHECK(s.finish().empty());
  REQUIRE_THROWS_AS(s.push(1000), tessera::error);
  auto skip = t.stream(true);
  CHECK(skip.push(id_im_start).empty());
  CHECK(skip.push(id_hello) == "hello");
  // Random byte tokens: concatenated output == decode, in any split.
  std::mt19937 rng(static_cast<unsigned>(test::seed()));
  for (int round = 0; round < 300; ++round) {
    ids_t ids(rng() % 20);
    for (auto& id : ids) id = static_cast<text::token_id>(rng() % 2 ? 0x80 + rng() % 0x80 : rng() % 299);
    auto st = t.stream(round % 2 == 1);
    std::string out;
    for (auto id : ids) out += st.push(id);
    out += st.finish();
    INFO("seed " << test::seed() << " round " << round << " ids " << test::join_ids(ids));
    REQUIRE(out == t.decode(ids, round % 2 == 1));
  }
}

TEST_CASE("tokenizer: encode refuses invalid UTF-8, naming the offset", "[text][tokenizer][unit]") {
  auto const& t = tiny();
  REQUIRE_THROWS_WITH(t.encode("ab\x80"), ContainsSubstring("not valid UTF-8 (byte 0x80 at offset 2"));
  REQUIRE_THROWS_WITH(t.encode("\xED\xA0\x80"), ContainsSubstring("byte 0xED at offset 0"));
  REQUIRE_THROWS_WITH(t.encode("\xF0\x9F\x98"), ContainsSubstring("offset 0"));
  REQUIRE_THROWS_WITH(t.encode("ok\xC0\xAF"), ContainsSubstring("byte 0xC0 at offset 2"));
  CHECK(t.encode(std::string_view("a\0b", 3)) == ids_t{'a', 0, 'b'});  // NUL is a character
}

TEST_CASE("tokenizer: array-scan and heap BPE both follow the textbook merge order", "[text][tokenizer][unit]") {
  // Random merge tables over a small alphabet; every word is merged by the array scan, by the
  // heap (scan_max forces each path) and by the textbook loop: find the lowest-rank adjacent
  // pair, leftmost on ties, merge it, repeat.
  std::mt19937 rng(static_cast<unsigned>(test::seed()));
  for (int table = 0; table < 20; ++table) {
    struct rule {
      std::uint32_t a, b, merged;
    };
    std::vector<rule> rules;
    std::uint32_t next_id = 6;
    text::detail::pair_table pairs;
    for (std::uint32_t rank = 0; rank < 40; ++rank) {
      std::uint32_t const a = static_cast<std::uint32_t>(rng() % next_id), b = static_cast<std::uint32_t>(rng() % next_id);
      if (pairs.find(a, b) != nullptr) continue;
      rules.push_back({a, b, next_id});
      pairs.insert(a, b, {rank, next_id});
      ++next_id;
    }
    auto const textbook = [&](std::vector<std::uint32_t> w) {
      for (;;) {
        std::size_t best = w.size();
        std::uint32_t best_rank = ~0u, merged = 0;
        for (std::size_t k = 0; k + 1 < w.size(); ++k)
          if (auto const* r = pairs.find(w[k], w[k + 1]); r != nullptr && r->rank < best_rank)
            best = k, best_rank = r->rank, merged = r->merged;
        if (best == w.size()) return w;
        w[best] = merged;
        w.erase(w.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      }
    };
    text::detail::bpe_scratch scratch;
    for (int round = 0; round < 100; ++round) {
      std::vector<std::uint32_t> word(1 + rng() % 200);
      for (auto& s : word) s = static_cast<std::uint32_t>(rng() % 6);
      auto const want = textbook(word);
      for (std::size_t scan_max : {std::size_t{1}, std::size_t{1000}}) {
        auto w = word;
        w.resize(text::detail::bpe_merge(pairs, w.data(), w.size(), scratch, scan_max));
        INFO("seed " << test::seed() << " table " << table << " round " << round << " scan_max " << scan_max);
        REQUIRE(w == want);
      }
    }
  }
}

TEST_CASE("tokenizer: concurrent encodes agree with a sequential one", "[text][tokenizer][unit]") {
  auto const& t = tiny();
  std::vector<std::string> texts;
  for (int k = 0; k < 200; ++k) texts.push_back("hello the world " + std::to_string(k) + " [MASK] and <tool> café\n");
  std::vector<ids_t> want;
  for (auto const& s : texts) want.push_back(t.encode(s));
  std::vector<std::thread> threads;
  std::vector<int> ok(12, 1);
  for (std::size_t w = 0; w < ok.size(); ++w)  // more threads than word caches
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 5; ++rep)
        for (std::size_t k = 0; k < texts.size(); ++k)
          if (t.encode(texts[k]) != want[k]) ok[w] = 0;
    });
  for (auto& th : threads) th.join();
  for (int v : ok) CHECK(v == 1);
}

TEST_CASE("tokenizer: moves keep working", "[text][tokenizer][unit]") {
  auto a = text::tokenizer::from_tokenizer_json(test::tiny_tokenizer_path());
  auto b = std::move(a);
  CHECK(b.encode("hello world") == ids_t{id_hello_world});
  text::tokenizer c = text::tokenizer::from_tokenizer_json(test::tiny_tokenizer_path());
  c = std::move(b);
  CHECK(c.decode(ids_t{id_gworld}) == " world");
}
