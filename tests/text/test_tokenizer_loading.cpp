// SPDX-License-Identifier: Apache-2.0
// Loading text::tokenizer: the vocab.json + merges.txt + added-token-list path against the
// tokenizer.json path (the tiny tokenizer written out both ways), from_dir's choice of files, and
// one test per malformation: each mutation of a valid file must give a tessera::error whose
// message names the problem.
#include "text/tokenizer_test_support.hpp"

#include <tessera/text/tokenizer.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

using namespace tessera;
using Catch::Matchers::ContainsSubstring;
using nlohmann::json;
namespace fs = std::filesystem;

json const& tiny_json() {
  static json const j = json::parse(test::read_file(test::tiny_tokenizer_path()));
  return j;
}

/// Loads the tiny tokenizer.json after `mutate`, expecting an error containing `text`.
void require_refused(std::function<void(json&)> const& mutate, std::string const& text) {
  json j = tiny_json();
  mutate(j);
  INFO("expected an error containing: " << text);
  REQUIRE_THROWS_AS(text::tokenizer::from_tokenizer_json_text(j.dump()), tessera::error);
  REQUIRE_THROWS_WITH(text::tokenizer::from_tokenizer_json_text(j.dump()), ContainsSubstring(text));
}

json& split_of(json& j) { return j["pre_tokenizer"]["pretokenizers"][0]; }
json& byte_level_of(json& j) { return j["pre_tokenizer"]["pretokenizers"][1]; }

/// The tiny tokenizer as slow-tokenizer files: vocab.json, merges.txt and an added-token list.
void write_slow_files(fs::path const& dir) {
  auto const& j = tiny_json();
  test::write_file(dir / "vocab.json", j["model"]["vocab"].dump());
  std::string merges = "#version: 0.2\n";
  for (auto const& m : j["model"]["merges"]) merges += m[0].get<std::string>() + " " + m[1].get<std::string>() + "\n";
  test::write_file(dir / "merges.txt", merges);
  test::write_file(dir / "added_tokens_tiny.json", j["added_tokens"].dump());
}

std::vector<std::string> const sample_texts{
    "hello world", "the world and <|im_start|>user\nhello<|im_end|>", "a [MASK] b <l> <r> <sw> x",
    "cafe\xCC\x81 \xE2\x84\xAB \xE4\xBD\xA0", "it's   spaces\n\n", "<|im_ <tool>"};

}  // namespace

TEST_CASE("tokenizer loading: vocab.json + merges.txt + added list equals tokenizer.json", "[text][tokenizer][unit]") {
  test::temp_dir tmp;
  write_slow_files(tmp.path());
  auto const a = text::tokenizer::from_tokenizer_json(test::tiny_tokenizer_path());
  auto const b = text::tokenizer::from_vocab_merges(tmp.path() / "vocab.json", tmp.path() / "merges.txt",
                                                    tmp.path() / "added_tokens_tiny.json");
  auto const c = text::tokenizer::from_dir(tmp.path());  // picks the one added_tokens*.json
  REQUIRE(b.vocab_size() == a.vocab_size());
  for (auto const& s : sample_texts) {
    INFO("text '" << test::escaped(s) << "'");
    CHECK(b.encode(s) == a.encode(s));
    CHECK(c.encode(s) == a.encode(s));
    CHECK(b.encode(s, false) == a.encode(s, false));
  }
  // An added-token list passed as a vector.
  std::vector<text::added_token> added(a.added_tokens().begin(), a.added_tokens().end());
  auto const d = text::tokenizer::from_vocab_merges(tmp.path() / "vocab.json", tmp.path() / "merges.txt", added);
  for (auto const& s : sample_texts) CHECK(d.encode(s) == a.encode(s));
  // Without added tokens, "<|im_start|>" is plain text.
  auto const e = text::tokenizer::from_vocab_merges(tmp.path() / "vocab.json", tmp.path() / "merges.txt");
  CHECK(e.vocab_size() == 287);
  CHECK(e.encode("<|im_start|>") == a.encode("<|im_start|>", false));
  // from_dir prefers tokenizer.json when present.
  test::write_file(tmp.path() / "tokenizer.json", test::read_file(test::tiny_tokenizer_path()));
  CHECK(text::tokenizer::from_dir(tmp.path()).encode("hello") == a.encode("hello"));
}

TEST_CASE("tokenizer loading: merges.txt details as HF reads them", "[text][tokenizer][unit]") {
  test::temp_dir tmp;
  write_slow_files(tmp.path());
  auto const base = text::tokenizer::from_dir(tmp.path());
  // CRLF line ends, and a "#version" line anywhere, are accepted like HF (BufRead::lines).
  std::string merges = test::read_file(tmp.path() / "merges.txt");
  std::string crlf;
  for (char ch : merges) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
  crlf.insert(crlf.find("\r\n") + 2, "#version: again\r\n");
  test::write_file(tmp.path() / "merges.txt", crlf);
  auto const t = text::tokenizer::from_dir(tmp.path());
  for (auto const& s : sample_texts) CHECK(t.encode(s) == base.encode(s));

  auto const refused = [&](std::string const& merges_text, std::string const& message) {
    test::write_file(tmp.path() / "merges.txt", merges_text);
    INFO("merges.txt '" << test::escaped(merges_text) << "'");
    REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring(message));
  };
  refused("#version: 0.2\nh e\nl  l\n", "merges.txt line 3: expected two tokens separated by one space");
  refused("#version: 0.2\nh e\n\nl l\n", "merges.txt line 3: expected two tokens");
  refused("h e\nhello\n", "merges.txt line 2: expected two tokens separated by one space, got 'hello'");
  refused("h e\nq\xC3\xA9 x\n", "line 2: merge 'q\xC3\xA9 x' names 'q\xC3\xA9', which is not in the vocabulary");
  refused("h e\nx q\n", "line 2: merge 'x q' makes 'xq', which is not in the vocabulary");
}

TEST_CASE("tokenizer loading: from_dir and file errors", "[text][tokenizer][unit]") {
  test::temp_dir tmp;
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path() / "missing"), ContainsSubstring("is not a directory"));
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring("no tokenizer.json and no vocab.json + merges.txt (missing: both)"));
  write_slow_files(tmp.path());
  fs::remove(tmp.path() / "merges.txt");
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring("missing: merges.txt"));
  write_slow_files(tmp.path());
  test::write_file(tmp.path() / "added_tokens.json", "[]");
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring("has 2 added-token lists"));
  fs::remove(tmp.path() / "added_tokens_tiny.json");
  test::write_file(tmp.path() / "added_tokens.json", R"({"<|endoftext|>": 287})");
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring("has no special flags"));
  test::write_file(tmp.path() / "added_tokens.json", R"([{"id": 287}])");
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring("added_tokens.json[0]: missing \"content\""));
  test::write_file(tmp.path() / "added_tokens.json", R"([{"id": 287, "content": "<x>", "special": "yes"}])");
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring("added_tokens.json[0].special must be true or false"));
  test::write_file(tmp.path() / "added_tokens.json", R"([{"id": 300, "content": "<x>"}])");
  REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()),
                      ContainsSubstring("'<x>' has id 300, but HF tokenizers assigns it id 287"));
  test::write_file(tmp.path() / "added_tokens.json", R"([{"id": 287, "content": "<x>"}])");
  CHECK(text::tokenizer::from_dir(tmp.path()).encode("a<x>") == std::vector<text::token_id>{'a', 287});

  REQUIRE_THROWS_WITH(text::tokenizer::from_tokenizer_json(tmp.path() / "nope.json"), ContainsSubstring("cannot open"));
  // A file beyond the size limit is refused before it is read (sparse: no disk space used).
  auto const big = tmp.path() / "big.json";
  int const fd = ::open(big.c_str(), O_CREAT | O_WRONLY, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(text::detail::max_tokenizer_file_bytes + 1)) == 0);
  ::close(fd);
  REQUIRE_THROWS_WITH(text::tokenizer::from_tokenizer_json(big), ContainsSubstring("more than the 536870912 accepted"));
  // vocab.json problems.
  write_slow_files(tmp.path());
  fs::remove(tmp.path() / "added_tokens.json");
  auto const vocab_refused = [&](std::string const& vocab_text, std::string const& message) {
    test::write_file(tmp.path() / "vocab.json", vocab_text);
    INFO("vocab.json '" << test::escaped(vocab_text, 200) << "'");
    REQUIRE_THROWS_WITH(text::tokenizer::from_dir(tmp.path()), ContainsSubstring(message));
  };
  vocab_refused("[1, 2]", "vocab.json must be a JSON object (token -> id)");
  vocab_refused(R"({"a": 1, "a": 2})", "duplicate key 'a'");
  vocab_refused(R"({"a": 1, "b": 1})", "tokens 'a' and 'b' both have id 1");
  vocab_refused(R"({"a": -1})", "vocab.json['a'] must be a non-negative integer token id, got -1");
  vocab_refused(R"({"a": 1.5})", "got 1.5");
  vocab_refused(R"({"a": "1"})", "got '1'");
  vocab_refused(R"({"a": 16777216})", "is 16777216, beyond the largest token id accepted (16777215)");
  vocab_refused(R"({"a": 1e300})", "must be a non-negative integer token id");
  vocab_refused(R"({"a": 99999999999999999999999})", "must be a non-negative integer token id");
  vocab_refused("{\"a\": 1", "invalid JSON");
  vocab_refused(std::string("{\"a\": 1}\0", 9), "NUL byte");
  vocab_refused(R"({"h": 0, "e": 1})", "no token for byte 0x00");
}

TEST_CASE("tokenizer loading: unsupported or malformed tokenizer.json parts are refused by name", "[text][tokenizer][unit]") {
  // The valid file loads.
  REQUIRE_NOTHROW(text::tokenizer::from_tokenizer_json_text(tiny_json().dump()));
  // Top level.
  require_refused([](json& j) { j = json::array(); }, "tokenizer.json: the top level must be a JSON object");
  require_refused([](json& j) { j["version"] = "2.0"; }, "version '2.0' is not supported");
  require_refused([](json& j) { j["truncation"] = {{"max_length", 8}}; }, "truncation is set");
  require_refused([](json& j) { j["padding"] = {{"length", 8}}; }, "padding is set");
  // Model.
  require_refused([](json& j) { j["model"]["type"] = "Unigram"; }, "tokenizer.json: model type \"Unigram\" is not supported");
  require_refused([](json& j) { j["model"]["type"] = "WordPiece"; }, "model type \"WordPiece\" is not supported");
  require_refused([](json& j) { j["model"].erase("type"); }, "tokenizer.json: model: missing \"type\"");
  require_refused([](json& j) { j.erase("model"); }, "tokenizer.json: missing \"model\"");
  require_refused([](json& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback true is not supported");
  require_refused([](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout 0.1 is not supported");
  require_refused([](json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
                  "model.continuing_subword_prefix '##' is not supported");
  require_refused([](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }, "model.end_of_word_suffix");
  require_refused([](json& j) { j["model"]["ignore_merges"] = true; }, "model.ignore_merges true is not supported");
  require_refused([](json& j) { j["model"]["fuse_unk"] = 3; }, "model.fuse_unk must be true or false");
  require_refused([](json& j) { j["model"].erase("vocab"); }, "tokenizer.json: model: missing \"vocab\"");
  require_refused([](json& j) { j["model"]["vocab"] = json::array(); }, "model.vocab must be a JSON object");
  require_refused([](json& j) { j["model"]["vocab"]["dup"] = 5; }, "tokens ");  // two tokens with id 5
  require_refused([](json& j) { j["model"]["vocab"]["huge"] = 1u << 24; }, "beyond the largest token id accepted");
  require_refused([](json& j) { j["model"].erase("merges"); }, "tokenizer.json: model: missing \"merges\"");
  require_refused([](json& j) { j["model"]["merges"] = "h e"; }, "model.merges must be a JSON array");
  require_refused([](json& j) { j["model"]["merges"][3] = json::array({"x", "zz"}); },
                  "model.merges[3]: merge 'x zz' names 'zz', which is not in the vocabulary");
  require_refused([](json& j) { j["model"]["merges"][3] = json::array({"x", "q"}); },
                  "model.merges[3]: merge 'x q' makes 'xq', which is not in the vocabulary");
  require_refused([](json& j) { j["model"]["merges"][3] = "l l"; },
                  "model.merges[3] is 'l l' but the list began with [\"a\", \"b\"] pairs");
  require_refused([](json& j) { j["model"]["merges"][3] = json::array({"l", "l", "o"}); },
                  "model.merges[3] must be a pair [\"a\", \"b\"] of strings (like the first merge), got an array of 3");
  require_refused([](json& j) { j["model"]["merges"][3] = json::array({"l", 5}); },
                  "model.merges[3] must be a pair [\"a\", \"b\"] of strings or an \"a b\" string, got 5 inside");
  require_refused([](json& j) { j["model"]["merges"][3] = 7; }, "model.merges[3] must be a pair");
  require_refused([](json& j) { j["model"]["merges"][3] = json::object(); }, "model.merges[3] must be a pair");
  require_refused([](json& j) { j["model"]["vocab"]["x"] = json::object(); },
                  "model.vocab['x'] must be a non-negative integer token id, got a JSON object");
  require_refused([](json& j) { j["model"]["vocab"]["x"] = -2; }, "model.vocab['x'] must be a non-negative integer token id, got -2");
  require_refused(
      [](json& j) {
        json legacy = json::array();
        for (auto const& m : j["model"]["merges"]) legacy.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
        legacy[2] = json::array({"l", "o"});
        j["model"]["merges"] = legacy;
      },
      "model.merges[2] is a JSON array but the list began with \"a b\" strings");
  require_refused(
      [](json& j) {
        json legacy = json::array();
        for (auto const& m : j["model"]["merges"]) legacy.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
        legacy[2] = "l o x";
        j["model"]["merges"] = legacy;
      },
      "model.merges[2]: expected two tokens separated by one space, got 'l o x'");
  // Normalizer, pre-tokenizer, decoder, post-processor.
  require_refused([](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "normalizer type 'NFKC' is not supported");
  require_refused([](json& j) { j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}}; },
                  "normalizer type 'Sequence' is not supported");
  require_refused([](json& j) { j["pre_tokenizer"] = nullptr; }, "pre_tokenizer is null");
  require_refused([](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }, "pre_tokenizer type 'Metaspace' is not supported");
  require_refused([](json& j) { j["pre_tokenizer"]["pretokenizers"].erase(1); }, "must list exactly Split and ByteLevel");
  require_refused([](json& j) { split_of(j)["pattern"]["Regex"] = "\\s+|\\w+"; },
                  "pretokenizers[0].pattern.Regex '\\s+|\\w+' is not supported");
  require_refused([](json& j) { split_of(j)["pattern"] = {{"String", " "}}; }, "pattern must be {\"Regex\": ...}");
  require_refused([](json& j) { split_of(j)["behavior"] = "Removed"; }, "behavior 'Removed' is not supported");
  require_refused([](json& j) { split_of(j)["invert"] = true; }, "invert true is not supported");
  require_refused([](json& j) { split_of(j)["type"] = "Whitespace"; }, "pretokenizers[0] type 'Whitespace' is not supported");
  require_refused([](json& j) { byte_level_of(j)["add_prefix_space"] = true; }, "add_prefix_space true is not supported");
  require_refused([](json& j) { byte_level_of(j)["use_regex"] = true; }, "use_regex true is not supported");
  require_refused([](json& j) { byte_level_of(j).erase("use_regex"); }, "use_regex missing (true by default)");
  require_refused([](json& j) { j["decoder"] = nullptr; }, "decoder is null; expected ByteLevel");
  require_refused([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder type 'WordPiece' is not supported");
  require_refused([](json& j) { j["post_processor"] = {{"type", "TemplateProcessing"}}; },
                  "post_processor type 'TemplateProcessing' is not supported");
  // Added tokens.
  require_refused([](json& j) { j["added_tokens"] = json::object(); }, "added_tokens must be a JSON array");
  require_refused([](json& j) { j["added_tokens"][1].erase("lstrip"); }, "added_tokens[1]: missing \"lstrip\"");
  require_refused([](json& j) { j["added_tokens"][1]["special"] = 1; }, "added_tokens[1].special must be true or false");
  require_refused([](json& j) { j["added_tokens"][1]["content"] = ""; }, "added_tokens[1].content is empty");
  require_refused([](json& j) { j["added_tokens"][1]["content"] = 5; }, "added_tokens[1].content must be a string");
  require_refused([](json& j) { j["added_tokens"][1]["id"] = -3; }, "added_tokens[1].id must be a non-negative integer");
  require_refused([](json& j) { j["added_tokens"][2]["id"] = 400; },
                  "'<|im_start|>' has id 400, but HF tokenizers assigns it id 288");
  require_refused([](json& j) { j["added_tokens"][2]["content"] = "<|endoftext|>"; },
                  "'<|endoftext|>': the same content was added before");
  require_refused([](json& j) { j["added_tokens"][0]["id"] = 5; }, "'hello' has id 5, but HF tokenizers assigns it id 260");
  require_refused(
      [](json& j) {
        j["added_tokens"].push_back({{"id", 299}, {"content", " lead"}, {"single_word", false}, {"lstrip", false},
                                     {"rstrip", false}, {"normalized", false}, {"special", false}});
      },
      "added token ' lead' begins with white space while another has rstrip");
  require_refused(
      [](json& j) {
        j["added_tokens"].push_back({{"id", 299}, {"content", "cafe\xCC\x81"}, {"single_word", false}, {"lstrip", false},
                                     {"rstrip", false}, {"normalized", true}, {"special", false}});
      },
      "after NFC it is the same text as added token 'caf\xC3\xA9'");
  // JSON-level damage.
  REQUIRE_THROWS_WITH(text::tokenizer::from_tokenizer_json_text("{\"version\": \"1.0\",}"), ContainsSubstring("invalid JSON"));
  REQUIRE_THROWS_WITH(text::tokenizer::from_tokenizer_json_text(std::string(100, '[') + std::string(100, ']')),
                      ContainsSubstring("nests deeper than"));
  REQUIRE_THROWS_WITH(text::tokenizer::from_tokenizer_json_text(R"({"model": {}, "model": {}})"),
                      ContainsSubstring("duplicate key 'model'"));
  REQUIRE_THROWS_WITH(text::tokenizer::from_tokenizer_json_text(""), ContainsSubstring("invalid JSON"));
}

TEST_CASE("tokenizer loading: mutated tokenizer.json files give errors, never crashes", "[text][tokenizer][unit]") {
  // Byte-level damage to the valid file: every outcome must be a tokenizer or a tessera::error.
  std::string const base = test::read_file(test::tiny_tokenizer_path());
  std::mt19937 rng(20241208u);
  int loaded = 0, refused = 0;
  for (int round = 0; round < 300; ++round) {
    std::string s = base;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
      std::size_t const at = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[at] = static_cast<char>(rng() % 256); break;
        case 1: s.erase(at, 1 + rng() % 8); break;
        default: {
          static constexpr char json_chars[] = "{}[]\",:0-9e \\";
          s.insert(at, 1, json_chars[rng() % (sizeof json_chars - 1)]);
          break;
        }
      }
    }
    try {
      auto const t = text::tokenizer::from_tokenizer_json_text(s);
      (void)t.encode("hello world <|im_start|> caf\xC3\xA9");
      ++loaded;
    } catch (tessera::error const&) {
      ++refused;
    }
  }
  CHECK(loaded + refused == 300);
  CHECK(refused > 100);
}
