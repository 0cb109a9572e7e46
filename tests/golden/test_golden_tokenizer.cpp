// SPDX-License-Identifier: Apache-2.0
// text::tokenizer against the reference, HF transformers' Qwen2TokenizerFast (HF tokenizers
// 0.20.3), through golden files made by tools/golden/make_tokenizer_goldens.py (versions, seed and
// checksums in tests/golden/tokenizer_manifest.json):
//   - ids of >= 10,000 corpus strings, with both loaders (vocab.json + merges.txt, and a
//     tokenizer.json written here in HF's layout), also with special tokens not recognized;
//   - decode() and the streaming decoder on id sequences, many decoding to invalid UTF-8;
//   - per code point: the regex classes \p{L} \p{N} \s, (?i) folds, and NFC on probe strings;
//   - the tiny committed tokenizer's ids (every added-token flag);
//   - the pre-tokenizer split against PCRE2 running Qwen2's regex, on the whole corpus.
// The Qwen2 vocabulary is read from ../shared/data/qwen2-tokenizer; those tests SKIP without it.
#include "text/tokenizer_test_support.hpp"

#include <tessera/text/tokenizer.hpp>

#include <catch2/catch_test_macros.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace tessera;
using nlohmann::json;
using test::escaped;
using test::join_ids;
namespace fs = std::filesystem;

fs::path golden(char const* name) { return fs::path(TESSERA_SOURCE_DIR) / "tests/golden" / name; }

/// One corpus string with its reference ids.
struct corpus_entry {
  std::string category;
  std::string text;
  std::vector<text::token_id> ids;
  std::vector<text::token_id> ids_no_special;  // ids with encode_special_tokens (== ids when absent in the file)
};

std::vector<corpus_entry> const& corpus() {
  static std::vector<corpus_entry> const entries = [] {
    std::vector<corpus_entry> out;
    for (char const* file : {"tokenizer_corpus.jsonl", "tokenizer_corpus_long.jsonl"})
      for (auto const& line : test::read_lines(golden(file))) {
        json const j = json::parse(line);
        corpus_entry e{j.at("cat").get<std::string>(), j.at("text").get<std::string>(),
                       test::unpack_ids(j.at("ids").get<std::string>()), {}};
        e.ids_no_special = j.contains("ids_no_special") ? test::unpack_ids(j.at("ids_no_special").get<std::string>()) : e.ids;
        out.push_back(std::move(e));
      }
    return out;
  }();
  return entries;
}

json const& manifest() {
  static json const m = json::parse(test::read_file(golden("tokenizer_manifest.json")));
  return m;
}

/// 64-bit FNV-1a, as the generator records it for the shared input files.
std::string fnv1a64_hex(std::string_view data) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (char c : data) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001B3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

/// Skips unless the shared tokenizer files exist and are the ones the goldens were made from.
void require_shared_tokenizer() {
  if (!test::have_qwen2_tokenizer())
    SKIP("shared Qwen2 tokenizer not found at " << test::qwen2_tokenizer_dir().string()
                                                << " (the vocabulary is never copied into the repository)");
  for (char const* name : {"vocab.json", "merges.txt", "added_tokens_qwen2_5.json"}) {
    auto const want = manifest().at("inputs").at(name).at("fnv1a64").get<std::string>();
    INFO("shared file " << name << " differs from the one tests/golden/tokenizer_manifest.json was made with");
    REQUIRE(fnv1a64_hex(test::read_file(test::qwen2_tokenizer_dir() / name)) == want);
  }
}

/// Encodes every corpus string and compares with the reference; prints the first mismatch with
/// the token strings around it. Returns the number of mismatching strings.
std::size_t count_corpus_mismatches(text::tokenizer const& tok, bool allow_special, char const* what) {
  std::size_t mismatches = 0;
  std::vector<text::token_id> got;
  for (std::size_t k = 0; k < corpus().size(); ++k) {
    auto const& e = corpus()[k];
    auto const& want = allow_special ? e.ids : e.ids_no_special;
    got.clear();
    tok.encode_append(e.text, got, allow_special);
    if (got == want) continue;
    if (mismatches++ == 0) {
      std::size_t i = 0;
      while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
      std::size_t const from = i > 5 ? i - 5 : 0;
      std::ostringstream os;
      os << what << ": first mismatch, corpus string " << k << " (" << e.category << "): '" << escaped(e.text) << "'\n"
         << "  first difference at id " << i << "\n  want " << join_ids(want, from, 15) << "\n  got  "
         << join_ids(got, from, 15) << "\n  want tokens:";
      for (std::size_t j = from; j < want.size() && j < from + 15; ++j) os << " '" << escaped(tok.id_to_token(want[j]), 40) << "'";
      os << "\n  got tokens: ";
      for (std::size_t j = from; j < got.size() && j < from + 15; ++j) os << " '" << escaped(tok.id_to_token(got[j]), 40) << "'";
      UNSCOPED_INFO(os.str());
    }
  }
  return mismatches;
}

/// tokenizer.json exactly as tokenizers 0.20.3 writes it for Qwen2TokenizerFast (save_pretrained):
/// key order, components and flags; vocab in id order; merges as pairs or as legacy strings.
std::string hf_tokenizer_json(fs::path const& dir, bool legacy_merges) {
  json const vocab = json::parse(test::read_file(dir / "vocab.json"));
  std::vector<std::pair<std::int64_t, std::string>> by_id;
  for (auto const& [k, v] : vocab.items()) by_id.emplace_back(v.get<std::int64_t>(), k);
  std::sort(by_id.begin(), by_id.end());
  // The vocabulary object is written as text: ordered_json's linear key lookup would be quadratic.
  std::string vocab_text = "{";
  for (auto const& [id, token] : by_id)
    vocab_text += (vocab_text.size() > 1 ? "," : "") + json(token).dump() + ":" + std::to_string(id);
  vocab_text += "}";
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  std::istringstream in(test::read_file(dir / "merges.txt"));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("#version") || line.empty()) continue;
    auto const sp = line.find(' ');
    if (legacy_merges) merges.push_back(line);
    else merges.push_back({line.substr(0, sp), line.substr(sp + 1)});
  }
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (auto const& a : json::parse(test::read_file(dir / "added_tokens_qwen2_5.json")))
    added.push_back({{"id", a.at("id")}, {"content", a.at("content")}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", a.at("special")}});
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", std::string(text::detail::qwen2_split_pattern)}}},
         {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},           {"dropout", nullptr},       {"unk_token", nullptr},
                {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
                {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", "@VOCAB@"},
                {"merges", merges}};
  std::string text = j.dump(2);
  auto const at = text.find("\"@VOCAB@\"");
  return text.replace(at, 9, vocab_text);
}

}  // namespace

TEST_CASE("golden tokenizer: corpus ids equal HF tokenizers' (vocab.json + merges.txt + added tokens)",
          "[golden][text][tokenizer]") {
  require_shared_tokenizer();
  auto const tok = text::tokenizer::from_dir(test::qwen2_tokenizer_dir());
  REQUIRE(corpus().size() >= 10000);
  REQUIRE(tok.vocab_size() == 151665);
  CHECK(count_corpus_mismatches(tok, true, "from_dir") == 0);
  CHECK(count_corpus_mismatches(tok, false, "from_dir, allow_special = false") == 0);
}

TEST_CASE("golden tokenizer: a tokenizer.json in HF's layout gives the same ids", "[golden][text][tokenizer]") {
  require_shared_tokenizer();
  test::temp_dir tmp;
  for (bool legacy : {false, true}) {
    INFO((legacy ? "merges as \"a b\" strings" : "merges as [a, b] pairs"));
    auto const path = tmp.path() / (legacy ? "legacy_tokenizer.json" : "tokenizer.json");
    test::write_file(path, hf_tokenizer_json(test::qwen2_tokenizer_dir(), legacy));
    auto const tok = text::tokenizer::from_tokenizer_json(path);
    REQUIRE(tok.vocab_size() == 151665);
    CHECK(count_corpus_mismatches(tok, true, legacy ? "tokenizer.json (legacy merges)" : "tokenizer.json") == 0);
    if (!legacy) CHECK(count_corpus_mismatches(tok, false, "tokenizer.json, allow_special = false") == 0);
  }
}

TEST_CASE("golden tokenizer: decode and streaming decode equal HF's decode", "[golden][text][tokenizer]") {
  require_shared_tokenizer();
  auto const tok = text::tokenizer::from_dir(test::qwen2_tokenizer_dir());
  std::size_t n = 0, invalid_utf8 = 0;
  for (auto const& line : test::read_lines(golden("tokenizer_decode.jsonl"))) {
    json const j = json::parse(line);
    auto const ids = j.at("ids").get<std::vector<text::token_id>>();
    auto const want = j.at("text").get<std::string>();
    auto const want_skip = j.at("text_skip_special").get<std::string>();
    INFO("case " << n << ": ids " << join_ids(ids));
    REQUIRE(escaped(tok.decode(ids)) == escaped(want));
    REQUIRE(escaped(tok.decode(ids, true)) == escaped(want_skip));
    for (bool skip : {false, true}) {
      auto stream = tok.stream(skip);
      std::string streamed;
      for (auto id : ids) {
        std::string const piece = stream.push(id);
        // Never a split character: every piece is valid UTF-8 on its own.
        REQUIRE(text::detail::find_invalid_utf8(piece) == std::string_view::npos);
        streamed += piece;
      }
      streamed += stream.finish();
      REQUIRE(escaped(streamed) == escaped(skip ? want_skip : want));
    }
    std::string bytes;
    for (auto id : ids) bytes += tok.token_bytes(id);
    invalid_utf8 += text::detail::find_invalid_utf8(bytes) != std::string_view::npos;
    ++n;
  }
  CHECK(n > 1000);
  CHECK(invalid_utf8 > 500);  // the file does exercise the replacement
}

TEST_CASE("golden tokenizer: regex character classes equal Oniguruma's, per code point", "[golden][text][tokenizer]") {
  json const u = json::parse(test::read_file(golden("tokenizer_unicode.json")));
  using text::detail::char_class;
  auto const member = [&](char const* key) {
    std::vector<bool> m(0x110000, false);
    for (auto const& r : u.at(key))
      for (auto c = r[0].get<std::uint32_t>(); c <= r[1].get<std::uint32_t>(); ++c) m[c] = true;
    return m;
  };
  auto const letter = member("letter"), number = member("number"), space = member("space");
  std::size_t wrong = 0;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    auto const c = text::detail::classify(cp);
    bool const is_space = c == char_class::space || c == char_class::newline;
    bool const ok = (c == char_class::letter) == letter[cp] && (c == char_class::number) == number[cp] &&
                    is_space == space[cp] && (c == char_class::newline) == (cp == '\r' || cp == '\n');
    if (!ok && wrong++ < 5)
      UNSCOPED_INFO("U+" << std::hex << static_cast<std::uint32_t>(cp) << std::dec << ": tessera class "
                         << static_cast<int>(c) << ", reference L " << letter[cp] << " N " << number[cp] << " s "
                         << space[cp]);
  }
  CHECK(wrong == 0);
  // (?i) in the contractions: the characters matched where each letter of the pattern stands.
  // A one-character contraction ('s 't 'm 'd) cannot tell its letters apart, nor can 're / 've in
  // their first letter, so those are compared as unions of the reference's per-letter folds.
  auto const folds = [&](std::string const& letters) {
    std::vector<std::uint32_t> v;
    for (char l : letters)
      for (auto const& c : u.at("contraction_folds").at(std::string(1, l))) v.push_back(c.get<std::uint32_t>());
    std::sort(v.begin(), v.end());
    return v;
  };
  struct probe {
    std::string letters, before, after;  // "'" before cp after, matched whole
  };
  for (probe const& p : {probe{"stmd", "'", ""}, probe{"rv", "'", "e"}, probe{"e", "'r", ""}, probe{"e", "'v", ""},
                         probe{"l", "'", "l"}, probe{"l", "'l", ""}}) {
    std::vector<std::uint32_t> got;
    for (char32_t cp = 0; cp < 0x110000; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      std::string s = p.before;
      text::detail::append_utf8(s, cp);
      s += p.after;
      if (text::detail::match_contraction(s, 0) == s.size()) got.push_back(static_cast<std::uint32_t>(cp));
    }
    INFO("(?i) folds at '" << p.before << "?" << p.after << "' (letters " << p.letters << ")");
    CHECK(got == folds(p.letters));
  }
}

TEST_CASE("golden tokenizer: NFC equals HF's normalizer on probes of every code point", "[golden][text][tokenizer]") {
  json const u = json::parse(test::read_file(golden("tokenizer_unicode.json")));
  json const& nfc = u.at("nfc");
  REQUIRE(nfc.at("probe").get<std::string>() == "a{c}\u0301{c}\u0316");
  std::vector<std::string> changed(0x110000);
  std::vector<bool> has(0x110000, false);
  for (auto const& e : nfc.at("changed")) {
    auto const c = e[0].get<std::uint32_t>();
    changed[c] = e[1].get<std::string>();
    has[c] = true;
  }
  text::detail::nfc_scratch scratch;
  std::size_t wrong = 0, n_changed = 0;
  for (char32_t cp = 1; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string probe = "a";
    text::detail::append_utf8(probe, cp);
    probe += "\u0301";
    text::detail::append_utf8(probe, cp);
    probe += "\u0316";
    std::string const got(text::detail::nfc(probe, scratch));
    std::string const& want = has[cp] ? changed[cp] : probe;
    n_changed += has[cp];
    if (got != want && wrong++ < 5)
      UNSCOPED_INFO("U+" << std::hex << static_cast<std::uint32_t>(cp) << std::dec << ": NFC('" << escaped(probe)
                         << "') = '" << escaped(got) << "', reference '" << escaped(want) << "'");
  }
  CHECK(n_changed > 1000);
  for (auto const& e : nfc.at("recompose")) {
    auto const in = e[0].get<std::string>(), want = e[1].get<std::string>();
    std::string const got(text::detail::nfc(in, scratch));
    if (got != want && wrong++ < 10)
      UNSCOPED_INFO("NFC('" << escaped(in) << "') = '" << escaped(got) << "', reference '" << escaped(want) << "'");
  }
  CHECK(wrong == 0);
}

TEST_CASE("golden tokenizer: the tiny tokenizer's ids and decodes equal HF's", "[golden][text][tokenizer]") {
  auto const tok = text::tokenizer::from_tokenizer_json(test::tiny_tokenizer_path());
  std::size_t n = 0;
  for (auto const& line : test::read_lines(golden("tokenizer_synthetic.jsonl"))) {
    json const j = json::parse(line);
    auto const s = j.at("text").get<std::string>();
    INFO("string '" << escaped(s) << "'");
    auto const want = j.at("ids").get<std::vector<text::token_id>>();
    CHECK(join_ids(tok.encode(s)) == join_ids(want));
    CHECK(join_ids(tok.encode(s, false)) == join_ids(j.at("ids_no_special").get<std::vector<text::token_id>>()));
    CHECK(escaped(tok.decode(want)) == escaped(j.at("decode").get<std::string>()));
    CHECK(escaped(tok.decode(want, true)) == escaped(j.at("decode_skip_special").get<std::string>()));
    ++n;
  }
  CHECK(n > 50);
}

TEST_CASE("golden tokenizer: the pre-tokenizer split equals PCRE2 running Qwen2's regex on the corpus",
          "[golden][text][tokenizer]") {
  test::pcre2_splitter const oracle;
  text::detail::nfc_scratch scratch;
  std::size_t wrong = 0, pieces = 0;
  for (auto const& e : corpus()) {
    // The split sees NFC text (special tokens are left in: the regex treats them as text here).
    std::string_view const s = text::detail::nfc(e.text, scratch);
    auto const want = oracle.split(s);
    auto const got = test::tessera_split(s);
    pieces += want.size();
    if (got != want && wrong++ == 0)
      UNSCOPED_INFO("first mismatch (" << e.category << ") on '" << escaped(s) << "'\n  PCRE2:   "
                                       << test::show_pieces(want) << "\n  tessera: " << test::show_pieces(got));
  }
  CHECK(pieces > 100000);
  CHECK(wrong == 0);
}
