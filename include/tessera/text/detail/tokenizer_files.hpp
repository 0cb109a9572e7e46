// SPDX-License-Identifier: Apache-2.0
// Reading and validating tokenizer files into a tokenizer_spec: HF tokenizers' tokenizer.json
// (format "1.0", as tokenizers 0.20.3 writes it for Qwen2), and the vocab.json + merges.txt pair
// of transformers' slow tokenizers with a JSON list of added tokens. Everything the tokenizer
// does not implement exactly is refused with an error naming it; nothing is guessed.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/posix_file.hpp>
#include <tessera/io/detail/strict_json.hpp>
#include <tessera/text/detail/added_vocab.hpp>
#include <tessera/text/detail/pre_tokenizer.hpp>
#include <tessera/text/detail/tokenizer_json_reader.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::text::detail {

/// Largest tokenizer file read, in bytes (real ones are at most a few tens of MB).
inline constexpr std::uint64_t max_tokenizer_file_bytes = std::uint64_t{512} << 20;

/// "<label> line N" or "<label>[N]" for the merge at position k of spec.merges.
[[nodiscard]] inline std::string merge_location(tokenizer_spec const& spec, std::size_t k) {
  return spec.merges_by_line ? spec.merges_label + " line " + std::to_string(spec.merge_where[k])
                             : spec.merges_label + "[" + std::to_string(spec.merge_where[k]) + "]";
}

/// The whole file as text, mapped and copied. Throws naming the file when it cannot be read or
/// is larger than max_tokenizer_file_bytes.
[[nodiscard]] inline std::string read_tokenizer_file(std::filesystem::path const& path) {
  io::detail::mapped_file const f(path);
  auto const bytes = f.bytes();
  TESSERA_CHECK(bytes.size() <= max_tokenizer_file_bytes, "text::tokenizer: '", path.string(), "' has ", bytes.size(),
                " bytes, more than the ", max_tokenizer_file_bytes, " accepted for a tokenizer file");
  return {reinterpret_cast<char const*>(bytes.data()), bytes.size()};
}

// ------------------------------------------------------------------------------------------------
// JSON field helpers: every failure names the file, the field and what was found.
// ------------------------------------------------------------------------------------------------

using nlohmann::json;
using io::detail::describe;
using io::detail::quote_name;

/// obj[key], which must exist (obj is an object).
[[nodiscard]] inline json const& require_field(json const& obj, char const* key, std::string const& where) {
  auto const it = obj.find(key);
  if (it == obj.end()) TESSERA_FAIL(where, ": missing \"", key, "\"");
  return *it;
}

/// obj[key] or nullptr when absent (obj is an object).
[[nodiscard]] inline json const* find_field(json const& obj, char const* key) {
  auto const it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

inline void require_object(json const& v, std::string const& where) {
  if (!v.is_object()) TESSERA_FAIL(where, " must be a JSON object, got ", describe(v));
}

[[nodiscard]] inline std::string const& require_string(json const& v, std::string const& where) {
  if (!v.is_string()) TESSERA_FAIL(where, " must be a string, got ", describe(v));
  return v.get_ref<std::string const&>();
}

[[nodiscard]] inline bool require_bool(json const& v, std::string const& where) {
  if (!v.is_boolean()) TESSERA_FAIL(where, " must be true or false, got ", describe(v));
  return v.get<bool>();
}

/// A token id: an integer in [0, max_vocab_size).
[[nodiscard]] inline std::int32_t require_id(json const& v, std::string const& where) {
  auto const u = io::detail::as_uint(v);
  if (!u) TESSERA_FAIL(where, " must be a non-negative integer token id, got ", describe(v));
  if (*u >= static_cast<std::uint64_t>(max_vocab_size))
    TESSERA_FAIL(where, " is ", *u, ", beyond the largest token id accepted (", max_vocab_size - 1, ")");
  return static_cast<std::int32_t>(*u);
}

/// The "type" string of a component object.
[[nodiscard]] inline std::string const& component_type(json const& v, std::string const& where) {
  require_object(v, where);
  return require_string(require_field(v, "type", where), where + ".type");
}

// ------------------------------------------------------------------------------------------------
// Vocabulary, merges, added tokens
// ------------------------------------------------------------------------------------------------

/// The model vocabulary: a JSON object token -> id (duplicate keys are refused by the strict
/// parser, duplicate ids by the tokenizer builder).
inline void parse_vocab(json const& v, std::string const& where, tokenizer_spec& spec) {
  if (!v.is_object()) TESSERA_FAIL(where, " must be a JSON object (token -> id), got ", describe(v));
  TESSERA_CHECK(v.size() < static_cast<std::size_t>(max_vocab_size), where, " has ", v.size(), " tokens, more than the ",
                max_vocab_size, " accepted");
  spec.vocab.reserve(v.size());
  for (auto const& [token, id] : v.items()) {
    auto const u = io::detail::as_uint(id);
    if (!u || *u >= static_cast<std::uint64_t>(max_vocab_size))
      (void)require_id(id, where + "[" + quote_name(token) + "]");  // throws with the details
    spec.vocab.emplace_back(token, static_cast<std::int32_t>(*u));
  }
  spec.vocab_label = where;
}

/// vocab.json: streamed into spec.vocab.
inline void parse_vocab_json(std::string_view text, std::string const& label, tokenizer_spec& spec) {
  (void)tokenizer_json_reader(label, spec, true).read(text);
}

/// merges.txt: one "a b" merge per line in rank order; lines starting with "#version" are skipped
/// (anywhere, as HF does); "\n" and "\r\n" line ends (Rust's BufRead::lines).
inline void parse_merges_txt(std::string_view text, std::string const& label, tokenizer_spec& spec) {
  spec.merges_label = label;
  spec.merges_by_line = true;
  std::uint32_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    std::size_t next = end == std::string_view::npos ? text.size() : end + 1;
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r' && end < text.size()) line.remove_suffix(1);
    pos = next;
    ++line_no;
    if (line.starts_with("#version")) continue;
    std::pair<std::string, std::string> m;
    if (!split_merge(line, m))
      TESSERA_FAIL(label, " line ", line_no, ": expected two tokens separated by one space, got ", quote_name(line));
    spec.merges.push_back(std::move(m));
    spec.merge_where.push_back(line_no);
  }
}

/// tokenizer.json model.merges: all "a b" strings (legacy) or all ["a", "b"] pairs.
inline void parse_merges_json(json const& v, std::string const& where, tokenizer_spec& spec) {
  if (!v.is_array()) TESSERA_FAIL(where, " must be a JSON array, got ", describe(v));
  spec.merges_label = where;
  spec.merges_by_line = false;
  bool const legacy = !v.empty() && v.front().is_string();
  spec.merges.reserve(v.size());
  spec.merge_where.reserve(v.size());
  for (std::size_t k = 0; k < v.size(); ++k) {
    json const& m = v[k];
    auto const at = [&] { return where + "[" + std::to_string(k) + "]"; };
    std::pair<std::string, std::string> pair;
    if (legacy) {
      if (!m.is_string())
        TESSERA_FAIL(at(), " is ", describe(m), " but the list began with \"a b\" strings (a list must not mix the forms)");
      std::string const& s = m.get_ref<std::string const&>();
      if (std::string_view(s).starts_with("#version")) continue;  // HF filters these in the legacy form too
      if (!split_merge(s, pair)) TESSERA_FAIL(at(), ": expected two tokens separated by one space, got ", quote_name(s));
    } else {
      if (!m.is_array() || m.size() != 2 || !m[0].is_string() || !m[1].is_string())
        TESSERA_FAIL(at(), " must be a pair [\"a\", \"b\"] of strings (like the first merge), got ", describe(m));
      pair = {m[0].get<std::string>(), m[1].get<std::string>()};
    }
    spec.merges.push_back(std::move(pair));
    spec.merge_where.push_back(static_cast<std::uint32_t>(k));
  }
}

/// A JSON list of added tokens: objects with "id" and "content"; the flags "special",
/// "normalized", "lstrip", "rstrip", "single_word" are required when `flags_required`
/// (tokenizer.json, where HF requires them), else optional and false by default.
[[nodiscard]] inline std::vector<added_token> parse_added_tokens(json const& v, std::string const& where,
                                                                 bool flags_required) {
  if (!v.is_array()) TESSERA_FAIL(where, " must be a JSON array of added tokens, got ", describe(v));
  std::vector<added_token> out;
  out.reserve(v.size());
  for (std::size_t k = 0; k < v.size(); ++k) {
    std::string const at = where + "[" + std::to_string(k) + "]";
    json const& t = v[k];
    require_object(t, at);
    added_token a;
    a.id = require_id(require_field(t, "id", at), at + ".id");
    a.content = require_string(require_field(t, "content", at), at + ".content");
    if (a.content.empty()) TESSERA_FAIL(at, ".content is empty (an added token must match some text)");
    auto const flag = [&](char const* name, bool& value) {
      json const* f = find_field(t, name);
      if (f == nullptr) {
        if (flags_required) TESSERA_FAIL(at, ": missing \"", name, "\"");
        return;
      }
      value = require_bool(*f, at + "." + name);
    };
    flag("special", a.special);
    flag("normalized", a.normalized);
    flag("lstrip", a.lstrip);
    flag("rstrip", a.rstrip);
    flag("single_word", a.single_word);
    out.push_back(std::move(a));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// tokenizer.json
// ------------------------------------------------------------------------------------------------

/// Checks pre_tokenizer = Sequence[Split(Qwen2 regex, Isolated, invert false),
/// ByteLevel(add_prefix_space false, use_regex false)].
inline void check_pre_tokenizer(json const& v, std::string const& label) {
  std::string const where = label + ": pre_tokenizer";
  if (v.is_null())
    TESSERA_FAIL(where, " is null; expected Qwen2's Sequence [Split (its regex, Isolated), ByteLevel (use_regex false)]");
  std::string const& type = component_type(v, where);
  if (type != "Sequence")
    TESSERA_FAIL(where, " type ", quote_name(type),
                 " is not supported (expected Qwen2's Sequence [Split (its regex, Isolated), ByteLevel])");
  json const& list = require_field(v, "pretokenizers", where);
  if (!list.is_array() || list.size() != 2)
    TESSERA_FAIL(where, ".pretokenizers must list exactly Split and ByteLevel, got ", describe(list),
                 list.is_array() ? " of " + std::to_string(list.size()) + " entries" : std::string());
  std::string const sw = where + ".pretokenizers[0]";
  if (std::string const& t = component_type(list[0], sw); t != "Split")
    TESSERA_FAIL(sw, " type ", quote_name(t), " is not supported (expected Split with Qwen2's regex)");
  json const& pattern = require_field(list[0], "pattern", sw);
  require_object(pattern, sw + ".pattern");
  json const* regex = find_field(pattern, "Regex");
  if (regex == nullptr)
    TESSERA_FAIL(sw, ".pattern must be {\"Regex\": ...} with Qwen2's split regex, got ", pattern.dump().substr(0, 200));
  if (require_string(*regex, sw + ".pattern.Regex") != qwen2_split_pattern)
    TESSERA_FAIL(sw, ".pattern.Regex ", quote_name(regex->get_ref<std::string const&>()),
                 " is not supported: only Qwen2's split regex is implemented (", quote_name(qwen2_split_pattern), ")");
  if (std::string const& b = require_string(require_field(list[0], "behavior", sw), sw + ".behavior"); b != "Isolated")
    TESSERA_FAIL(sw, ".behavior ", quote_name(b), " is not supported (expected \"Isolated\")");
  if (require_bool(require_field(list[0], "invert", sw), sw + ".invert"))
    TESSERA_FAIL(sw, ".invert true is not supported");
  std::string const bw = where + ".pretokenizers[1]";
  if (std::string const& t = component_type(list[1], bw); t != "ByteLevel")
    TESSERA_FAIL(bw, " type ", quote_name(t), " is not supported (expected ByteLevel)");
  if (require_bool(require_field(list[1], "add_prefix_space", bw), bw + ".add_prefix_space"))
    TESSERA_FAIL(bw, ".add_prefix_space true is not supported");
  // HF's default for a missing use_regex is true (the GPT-2 regex would split a second time).
  json const* use_regex = find_field(list[1], "use_regex");
  if (use_regex == nullptr || require_bool(*use_regex, bw + ".use_regex"))
    TESSERA_FAIL(bw, ".use_regex ", use_regex ? "true" : "missing (true by default)",
                 " is not supported (the Split regex must be the only split)");
  if (json const* trim = find_field(list[1], "trim_offsets")) (void)require_bool(*trim, bw + ".trim_offsets");
}

/// Checks model = BPE without dropout, prefixes, byte fallback or ignore_merges, and reads its
/// vocabulary and merges.
inline void parse_bpe_model(json const& v, std::string const& label, tokenizer_spec& spec) {
  std::string const where = label + ": model";
  if (v.is_null()) TESSERA_FAIL(where, " is null");
  std::string const& type = component_type(v, where);
  if (type != "BPE") TESSERA_FAIL(label, ": model type \"", type, "\" is not supported (only byte-level BPE)");
  if (json const* d = find_field(v, "dropout"); d && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
    TESSERA_FAIL(where, ".dropout ", describe(*d), " is not supported (BPE dropout is random; expected null)");
  if (json const* u = find_field(v, "unk_token"); u && !u->is_null()) (void)require_string(*u, where + ".unk_token");
  for (char const* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (json const* a = find_field(v, affix); a && !a->is_null() && require_string(*a, where + "." + affix) != "")
      TESSERA_FAIL(where, ".", affix, " ", describe(*a), " is not supported (expected null)");
  if (json const* f = find_field(v, "fuse_unk"); f && !f->is_null()) (void)require_bool(*f, where + ".fuse_unk");
  if (json const* b = find_field(v, "byte_fallback"); b && !b->is_null() && require_bool(*b, where + ".byte_fallback"))
    TESSERA_FAIL(where, ".byte_fallback true is not supported (byte-level BPE needs no fallback)");
  if (json const* m = find_field(v, "ignore_merges"); m && !m->is_null() && require_bool(*m, where + ".ignore_merges"))
    TESSERA_FAIL(where, ".ignore_merges true is not supported");
  // Streamed by the reader when they have the right container types; else validated here.
  json const& vocab = require_field(v, "vocab", where);
  if (!spec.vocab_streamed) parse_vocab(vocab, where + ".vocab", spec);
  json const& merges = require_field(v, "merges", where);
  if (!spec.merges_streamed) parse_merges_json(merges, where + ".merges", spec);
}

/// Parses and validates the text of a tokenizer.json. `label` starts every error message.
[[nodiscard]] inline tokenizer_spec parse_tokenizer_json(std::string_view text, std::string const& label) {
  tokenizer_spec spec;
  json const j = tokenizer_json_reader(label, spec, false).read(text);
  if (!j.is_object()) TESSERA_FAIL(label, ": the top level must be a JSON object, got ", describe(j));
  if (json const* ver = find_field(j, "version"); ver && require_string(*ver, label + ": version") != "1.0")
    TESSERA_FAIL(label, ": version ", describe(*ver), " is not supported (expected \"1.0\")");
  for (char const* off : {"truncation", "padding"})
    if (json const* t = find_field(j, off); t && !t->is_null())
      TESSERA_FAIL(label, ": ", off, " is set; it is not supported (encode() returns every token; expected null)");
  if (json const* n = find_field(j, "normalizer"); n && !n->is_null()) {
    std::string const& type = component_type(*n, label + ": normalizer");
    if (type != "NFC") TESSERA_FAIL(label, ": normalizer type ", quote_name(type), " is not supported (only NFC or null)");
    spec.nfc = true;
  }
  check_pre_tokenizer(require_field(j, "pre_tokenizer", label), label);
  if (json const* p = find_field(j, "post_processor"); p && !p->is_null()) {
    std::string const& type = component_type(*p, label + ": post_processor");
    if (type != "ByteLevel")
      TESSERA_FAIL(label, ": post_processor type ", quote_name(type),
                   " is not supported (only ByteLevel, which changes offsets only, or null)");
  }
  json const& dec = require_field(j, "decoder", label);
  if (dec.is_null()) TESSERA_FAIL(label, ": decoder is null; expected ByteLevel");
  if (std::string const& type = component_type(dec, label + ": decoder"); type != "ByteLevel")
    TESSERA_FAIL(label, ": decoder type ", quote_name(type), " is not supported (only ByteLevel)");
  parse_bpe_model(require_field(j, "model", label), label, spec);
  spec.added_label = label + ": added_tokens";
  if (json const* a = find_field(j, "added_tokens"); a && !a->is_null())
    spec.added = parse_added_tokens(*a, spec.added_label, true);
  return spec;
}

}  // namespace tessera::text::detail
