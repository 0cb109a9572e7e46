// SPDX-License-Identifier: Apache-2.0
// Streaming reader for tokenizer.json and vocab.json: a SAX handler for nlohmann::json that puts
// the vocabulary (token -> id) and the merges straight into a tokenizer_spec and builds an ordinary
// JSON tree of everything else, with the checks of io::detail::parse_json_strict (NUL bytes,
// duplicate keys, nesting depth). A Qwen2 tokenizer.json (11 MB, 151k tokens and merges) then never
// exists as a JSON tree: about 3x faster and a fraction of the memory.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/strict_json.hpp>
#include <tessera/text/detail/added_vocab.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tessera::text::detail {

/// Token ids must be below this (2^24; the largest real vocabularies have ~2^18 entries), so that
/// a corrupt id cannot make the id-indexed tables huge.
inline constexpr std::int64_t max_vocab_size = std::int64_t{1} << 24;

/// What a tokenizer is built from, before the id tables exist.
struct tokenizer_spec {
  std::vector<std::pair<std::string, std::int32_t>> vocab;  ///< model vocabulary
  std::vector<std::pair<std::string, std::string>> merges;  ///< in rank order
  std::vector<std::uint32_t> merge_where;                   ///< line (merges.txt) or index (JSON) of each merge
  std::string vocab_label;                                  ///< for messages, e.g. "vocab.json"
  std::string merges_label;                                 ///< e.g. "merges.txt" or "tokenizer.json: model.merges"
  bool merges_by_line = false;                              ///< merge_where counts lines (1-based) instead of indices
  bool vocab_streamed = false;                              ///< vocab was read by the streaming reader
  bool merges_streamed = false;                             ///< merges were read by the streaming reader
  std::vector<added_token> added;                           ///< in the order HF adds them
  std::string added_label;                                  ///< e.g. "tokenizer.json: added_tokens"
  bool nfc = false;                                         ///< NFC normalizer present
};

/// One legacy merge "a b": exactly one space (HF splits on ' ' and wants two parts). Returns
/// false when the text does not have that shape.
[[nodiscard]] inline bool split_merge(std::string_view line, std::pair<std::string, std::string>& out) {
  std::size_t const sp = line.find(' ');
  if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos) return false;
  out.first.assign(line.substr(0, sp));
  out.second.assign(line.substr(sp + 1));
  return true;
}

/// The SAX handler (nlohmann's json_sax interface). `vocab_only`: the whole document is a
/// vocabulary object (vocab.json); otherwise it is a tokenizer.json whose model.vocab and
/// model.merges are streamed when they have the expected container types (if not, they stay in
/// the tree and the validation after parsing reports them).
class tokenizer_json_reader {
 public:
  using json = nlohmann::json;

  tokenizer_json_reader(std::string label, tokenizer_spec& spec, bool vocab_only)
      : label_(std::move(label)), spec_(spec), vocab_only_(vocab_only) {}

  /// Parses `text`; returns the tree of what was not streamed. Throws tessera::error naming
  /// the label on any syntax error, duplicate key, excessive nesting or bad streamed entry.
  json read(std::string_view text) {
    if (std::size_t const nul = text.find('\0'); nul != std::string_view::npos)
      TESSERA_FAIL(label_, ": invalid JSON: NUL byte at offset ", nul);
    if (vocab_only_) {
      spec_.vocab_label = label_;
      spec_.vocab_streamed = true;
    }
    (void)json::sax_parse(text.data(), text.data() + text.size(), this);
    if (vocab_only_ && !saw_vocab_) TESSERA_FAIL(label_, " must be a JSON object (token -> id), got ", io::detail::describe(root_));
    return std::move(root_);
  }

  // ---- nlohmann SAX interface ------------------------------------------------------------------

  bool null() { return value(json(nullptr)); }
  bool boolean(bool b) { return value(json(b)); }
  bool number_integer(json::number_integer_t i) {
    if (mode_ == mode::vocab) return vocab_id(i >= 0 ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(i)) : std::nullopt, json(i));
    return value(json(i));
  }
  bool number_unsigned(json::number_unsigned_t u) {
    if (mode_ == mode::vocab) return vocab_id(u, json(u));
    return value(json(u));
  }
  bool number_float(json::number_float_t f, std::string const&) {
    if (mode_ == mode::vocab) return vocab_id(std::nullopt, json(f));
    return value(json(f));
  }
  bool string(std::string& s) {
    switch (mode_) {
      case mode::vocab:
        return vocab_id(std::nullopt, json(s));
      case mode::merges: {
        if (merge_form_ == form::pairs)
          TESSERA_FAIL(merge_at(), " is ", io::detail::describe(json(s)),
                       " but the list began with [\"a\", \"b\"] pairs (a list must not mix the forms)");
        merge_form_ = form::legacy;
        if (!std::string_view(s).starts_with("#version")) {  // HF filters these in the legacy form too
          std::pair<std::string, std::string> m;
          if (!split_merge(s, m))
            TESSERA_FAIL(merge_at(), ": expected two tokens separated by one space, got ", io::detail::quote_name(s));
          push_merge(std::move(m));
        }
        ++merge_index_;
        return true;
      }
      case mode::merge_pair:
        if (pair_count_ < 2) (pair_count_ == 0 ? pair_.first : pair_.second) = std::move(s);
        ++pair_count_;
        return true;
      case mode::tree:
        break;
    }
    return value(json(std::move(s)));
  }
  bool binary(json::binary_t&) { TESSERA_FAIL(label_, ": invalid JSON: binary value"); }

  bool start_object(std::size_t) {
    if (mode_ != mode::tree) bad_nested("a JSON object");
    if (vocab_only_ && stack_.empty()) {  // vocab.json: the top-level object is the vocabulary
      enter_vocab();
      return true;
    }
    if (at_model_member("vocab")) {
      place(json::object());  // an empty object stands for the streamed vocabulary in the tree
      spec_.vocab_label = label_ + ": model.vocab";
      spec_.vocab_streamed = true;
      enter_vocab();
      return true;
    }
    open(json::object());
    return true;
  }
  bool key(std::string& k) {
    if (mode_ == mode::vocab) {
      pending_key_ = std::move(k);
      return true;
    }
    if (!keys_.back().insert(k).second)
      TESSERA_FAIL(label_, ": duplicate key ", io::detail::quote_name(k),
                   " in a JSON object (a reader would silently keep only one of them)");
    member_key_ = std::move(k);
    slot_ = &(*stack_.back())[member_key_];
    return true;
  }
  bool end_object() {
    if (mode_ == mode::vocab) {
      mode_ = mode::tree;
      saw_vocab_ = true;
      return true;
    }
    close();
    return true;
  }
  bool start_array(std::size_t) {
    if (mode_ == mode::merges) {
      if (merge_form_ == form::legacy)
        TESSERA_FAIL(merge_at(), " is a JSON array but the list began with \"a b\" strings (a list must not mix the forms)");
      merge_form_ = form::pairs;
      mode_ = mode::merge_pair;
      pair_count_ = 0;
      return true;
    }
    if (mode_ != mode::tree) bad_nested("a JSON array");
    if (vocab_only_ && stack_.empty()) TESSERA_FAIL(label_, " must be a JSON object (token -> id), got a JSON array");
    if (at_model_member("merges")) {
      place(json::array());
      spec_.merges_label = label_ + ": model.merges";
      spec_.merges_by_line = false;
      spec_.merges_streamed = true;
      mode_ = mode::merges;
      merge_form_ = form::unknown;
      merge_index_ = 0;
      return true;
    }
    open(json::array());
    return true;
  }
  bool end_array() {
    if (mode_ == mode::merge_pair) {
      if (pair_count_ != 2)
        TESSERA_FAIL(merge_at(), " must be a pair [\"a\", \"b\"] of strings (like the first merge), got an array of ",
                     pair_count_, " strings");
      push_merge(std::move(pair_));
      pair_ = {};
      ++merge_index_;
      mode_ = mode::merges;
      return true;
    }
    if (mode_ == mode::merges) {
      mode_ = mode::tree;
      return true;
    }
    close();
    return true;
  }
  bool parse_error(std::size_t, std::string const&, nlohmann::detail::exception const& e) {
    std::string_view const what = e.what();
    constexpr std::size_t max_shown = 240;
    TESSERA_FAIL(label_, ": invalid JSON: ", what.substr(0, max_shown), what.size() > max_shown ? "..." : "");
  }

 private:
  enum class mode : std::uint8_t { tree, vocab, merges, merge_pair };
  enum class form : std::uint8_t { unknown, legacy, pairs };

  [[nodiscard]] std::string merge_at() const { return label_ + ": model.merges[" + std::to_string(merge_index_) + "]"; }

  /// True when the value about to start is root["model"][name].
  [[nodiscard]] bool at_model_member(char const* name) const {
    return !vocab_only_ && stack_.size() == 2 && stack_[1]->is_object() && open_keys_.size() == 2 &&
           open_keys_[1] == "model" && member_key_ == name && stack_.back()->is_object();
  }

  void enter_vocab() {
    mode_ = mode::vocab;
    if (spec_.vocab.empty()) spec_.vocab.reserve(1 << 16);
  }

  bool vocab_id(std::optional<std::uint64_t> id, json const& v) {
    if (!id || *id >= static_cast<std::uint64_t>(max_vocab_size)) {
      std::string const where = spec_.vocab_label + "[" + io::detail::quote_name(pending_key_) + "]";
      if (id) TESSERA_FAIL(where, " is ", *id, ", beyond the largest token id accepted (", max_vocab_size - 1, ")");
      TESSERA_FAIL(where, " must be a non-negative integer token id, got ", io::detail::describe(v));
    }
    spec_.vocab.emplace_back(std::move(pending_key_), static_cast<std::int32_t>(*id));
    return true;
  }

  /// A container where the streamed parts allow none.
  [[noreturn]] void bad_nested(char const* what) {
    if (mode_ == mode::vocab)
      TESSERA_FAIL(spec_.vocab_label, "[", io::detail::quote_name(pending_key_),
                   "] must be a non-negative integer token id, got ", what);
    TESSERA_FAIL(merge_at(), " must be a pair [\"a\", \"b\"] of strings or an \"a b\" string, got ", what,
                 mode_ == mode::merge_pair ? " inside" : "");
  }

  void push_merge(std::pair<std::string, std::string> m) {
    spec_.merges.push_back(std::move(m));
    spec_.merge_where.push_back(merge_index_);
  }

  /// Stores a scalar (or empty container) where the parser is: root, array element or member.
  json* place(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    if (stack_.back()->is_array()) {
      stack_.back()->push_back(std::move(v));
      return &stack_.back()->back();
    }
    *slot_ = std::move(v);
    return slot_;
  }
  bool value(json v) {
    if (mode_ == mode::merges || mode_ == mode::merge_pair)
      TESSERA_FAIL(merge_at(), " must be a pair [\"a\", \"b\"] of strings or an \"a b\" string, got ",
                   io::detail::describe(v), mode_ == mode::merge_pair ? " inside" : "");
    place(std::move(v));
    return true;
  }
  void open(json container) {
    if (stack_.size() >= io::detail::max_json_depth)
      TESSERA_FAIL(label_, ": JSON nests deeper than ", io::detail::max_json_depth, " levels");
    bool const member = !stack_.empty() && stack_.back()->is_object();
    open_keys_.push_back(member ? member_key_ : std::string());
    stack_.push_back(place(std::move(container)));
    keys_.emplace_back();
  }
  void close() {
    stack_.pop_back();
    keys_.pop_back();
    open_keys_.pop_back();
  }

  std::string label_;
  tokenizer_spec& spec_;
  bool vocab_only_;
  bool saw_vocab_ = false;
  mode mode_ = mode::tree;
  // Tree building.
  json root_;
  std::vector<json*> stack_;                          // open containers
  std::vector<std::string> open_keys_;                // member key under which each was opened ("" otherwise)
  std::vector<std::unordered_set<std::string>> keys_;  // keys seen in each open container
  std::string member_key_;
  json* slot_ = nullptr;
  // Streaming.
  std::string pending_key_;
  form merge_form_ = form::unknown;
  std::uint32_t merge_index_ = 0;
  std::pair<std::string, std::string> pair_;
  std::uint32_t pair_count_ = 0;
};

}  // namespace tessera::text::detail
