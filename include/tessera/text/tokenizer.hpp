// SPDX-License-Identifier: Apache-2.0
// text::tokenizer: the Qwen2 / Qwen2.5 byte-level BPE tokenizer (HF Qwen2TokenizerFast, i.e.
// HF tokenizers 0.20.3 with NFC, Qwen2's split regex, ByteLevel and BPE), loaded from a
// tokenizer.json or from vocab.json + merges.txt + added tokens. encode() gives the same ids as
// the reference and decode() the same text, including its replacement of invalid UTF-8; see
// docs/inputs.md "Tokenizer" for the evidence (golden corpus, per-code-point Unicode checks).
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/strict_json.hpp>
#include <tessera/text/detail/added_vocab.hpp>
#include <tessera/text/detail/bpe.hpp>
#include <tessera/text/detail/byte_level.hpp>
#include <tessera/text/detail/pre_tokenizer.hpp>
#include <tessera/text/detail/string_index.hpp>
#include <tessera/text/detail/tokenizer_files.hpp>
#include <tessera/text/detail/tokenizer_json_reader.hpp>
#include <tessera/text/token_id.hpp>
#include <tessera/text/detail/unicode.hpp>
#include <tessera/text/detail/utf8.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tessera::text {

class stream_decoder;

/// Byte-level BPE tokenizer with Qwen2's pre-tokenizer (HF Qwen2TokenizerFast).
///
/// encode(): added tokens are cut out of the raw text first (leftmost-longest, as HF's
/// AddedVocabulary), each remaining piece is NFC-normalized, split by Qwen2's regex, mapped to the
/// byte alphabet and merged by BPE rank. No BOS/EOS is added. decode(): the tokens' bytes,
/// concatenated, read as UTF-8 with every ill-formed subsequence replaced by U+FFFD.
///
/// Thread safety: every member function is const and may be called from several threads at once.
/// Each encode call borrows one of a few workspaces (scratch buffers and a word cache, so repeated
/// words skip the merge loop); a call that finds them all busy uses a temporary one without a
/// cache. Results never depend on the cache. Move-only; a moved-from tokenizer may only be
/// assigned to or destroyed.
class tokenizer {
 public:
  // ---- loading ---------------------------------------------------------------------------------

  /// From an HF tokenizer.json. Supported: model BPE (byte_fallback false, no dropout, no
  /// prefixes/suffixes, ignore_merges false; merges as "a b" strings or ["a", "b"] pairs),
  /// normalizer NFC or null, pre_tokenizer Sequence[Split(Qwen2's regex, Isolated, invert false),
  /// ByteLevel(add_prefix_space false, use_regex false)], decoder ByteLevel, post_processor
  /// ByteLevel or null, no truncation/padding, added tokens with all their flags. Anything else
  /// throws tessera::error naming it; so do malformed files (missing fields, wrong types, ids
  /// >= 2^24, duplicate ids, merges naming unknown tokens, added-token ids other than the ones HF
  /// would assign).
  [[nodiscard]] static tokenizer from_tokenizer_json(std::filesystem::path const& path) {
    return from_tokenizer_json_text(detail::read_tokenizer_file(path), path.string());
  }

  /// From the text of a tokenizer.json; `label` starts every error message.
  [[nodiscard]] static tokenizer from_tokenizer_json_text(std::string_view json, std::string const& label = "tokenizer.json") {
    return tokenizer(detail::parse_tokenizer_json(json, label));
  }

  /// From transformers' slow-tokenizer files: vocab.json (token -> id), merges.txt ("a b" per
  /// line, "#version" lines skipped) and the added tokens in the order they are added (their ids
  /// must be the ones HF assigns: the vocabulary id of a content already in it, else the next id
  /// after the vocabulary). Normalization is NFC, as transformers' Qwen2 converter sets it.
  [[nodiscard]] static tokenizer from_vocab_merges(std::filesystem::path const& vocab_json,
                                                   std::filesystem::path const& merges_txt,
                                                   std::vector<added_token> added = {}) {
    detail::tokenizer_spec spec;
    std::string const vocab_label = vocab_json.string();
    json_to_vocab(detail::read_tokenizer_file(vocab_json), vocab_label, spec);
    detail::parse_merges_txt(detail::read_tokenizer_file(merges_txt), merges_txt.string(), spec);
    spec.added = std::move(added);
    spec.added_label = "added tokens";
    spec.nfc = true;
    return tokenizer(std::move(spec));
  }

  /// As above, the added tokens read from a JSON list of {"id", "content", and optionally
  /// "special", "normalized", "lstrip", "rstrip", "single_word" (false when absent)}, e.g.
  /// added_tokens_qwen2_5.json.
  [[nodiscard]] static tokenizer from_vocab_merges(std::filesystem::path const& vocab_json,
                                                   std::filesystem::path const& merges_txt,
                                                   std::filesystem::path const& added_tokens_json) {
    std::string const label = added_tokens_json.string();
    auto const j = io::detail::parse_json_strict(detail::read_tokenizer_file(added_tokens_json), label);
    if (j.is_object())
      TESSERA_FAIL(label, ": a JSON object (content -> id, transformers' added_tokens.json) has no special flags; "
                          "expected a list of {\"id\", \"content\", \"special\", ...}");
    return from_vocab_merges(vocab_json, merges_txt, detail::parse_added_tokens(j, label, false));
  }

  /// From a directory: tokenizer.json when present; else vocab.json + merges.txt with the added
  /// tokens of the one file named added_tokens*.json (none: no added tokens; several: error).
  [[nodiscard]] static tokenizer from_dir(std::filesystem::path const& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    TESSERA_CHECK(fs::is_directory(dir, ec), "text::tokenizer::from_dir: '", dir.string(), "' is not a directory");
    if (fs::exists(dir / "tokenizer.json", ec)) return from_tokenizer_json(dir / "tokenizer.json");
    bool const have_vocab = fs::exists(dir / "vocab.json", ec), have_merges = fs::exists(dir / "merges.txt", ec);
    TESSERA_CHECK(have_vocab && have_merges, "text::tokenizer::from_dir: '", dir.string(),
                  "' has no tokenizer.json and no vocab.json + merges.txt (missing: ",
                  have_vocab ? "merges.txt" : (have_merges ? "vocab.json" : "both"), ")");
    std::vector<fs::path> lists;
    for (auto const& e : fs::directory_iterator(dir, ec)) {
      auto const name = e.path().filename().string();
      if (name.starts_with("added_tokens") && name.ends_with(".json")) lists.push_back(e.path());
    }
    TESSERA_CHECK(!ec, "text::tokenizer::from_dir: cannot list '", dir.string(), "': ", ec.message());
    std::sort(lists.begin(), lists.end());
    if (lists.empty()) return from_vocab_merges(dir / "vocab.json", dir / "merges.txt");
    TESSERA_CHECK(lists.size() == 1, "text::tokenizer::from_dir: '", dir.string(), "' has ", lists.size(),
                  " added-token lists (", lists[0].filename().string(), ", ", lists[1].filename().string(),
                  "...); keep one, or load with from_vocab_merges");
    return from_vocab_merges(dir / "vocab.json", dir / "merges.txt", lists[0]);
  }

  tokenizer(tokenizer&&) noexcept = default;
  tokenizer& operator=(tokenizer&&) noexcept = default;
  tokenizer(tokenizer const&) = delete;
  tokenizer& operator=(tokenizer const&) = delete;
  ~tokenizer() = default;

  // ---- encoding --------------------------------------------------------------------------------

  /// The token ids of the UTF-8 `text`. With allow_special = false, special added tokens are not
  /// recognized and their text is tokenized like any other (HF's encode_special_tokens = true);
  /// non-special added tokens are always recognized. Throws tessera::error if `text` is not
  /// valid UTF-8 (naming the offset).
  [[nodiscard]] std::vector<token_id> encode(std::string_view text, bool allow_special = true) const {
    std::vector<token_id> out;
    encode_append(text, out, allow_special);
    return out;
  }

  /// Appends the ids of `text` to `out` (reuse one vector to avoid allocations).
  void encode_append(std::string_view text, std::vector<token_id>& out, bool allow_special = true) const {
    if (std::size_t const bad = detail::find_invalid_utf8(text); bad != std::string_view::npos)
      TESSERA_FAIL("text::tokenizer::encode: the text is not valid UTF-8 (byte ", hex_byte(text[bad]),
                   " at offset ", bad, " of ", text.size(), ")");
    auto const lease = pool_ ? pool_->acquire() : detail::workspace_pool<pooled_state>::lease{};
    std::optional<encode_state> local;  // only when every pooled workspace is busy
    encode_state& st = lease.get() ? lease.get()->state : local.emplace();
    auto const plain = [&](std::string_view piece) { encode_normalized(piece, out, allow_special, st); };
    if (raw_matcher_.empty()) {
      plain(text);
      return;
    }
    detail::split_added(text, raw_matcher_, added_, !allow_special, [&](std::string_view piece, std::int64_t tok) {
      if (tok >= 0) out.push_back(added_[static_cast<std::size_t>(tok)].id);
      else plain(piece);
    });
  }

  // ---- decoding --------------------------------------------------------------------------------

  /// The text of `ids`: their bytes concatenated and read as UTF-8, each maximal ill-formed
  /// subsequence replaced by U+FFFD (HF's ByteLevel decoder + String::from_utf8_lossy). With
  /// skip_special, special added tokens are left out. Throws on an id that is not a token.
  [[nodiscard]] std::string decode(std::span<token_id const> ids, bool skip_special = false) const {
    std::string bytes;
    for (token_id id : ids) {
      check_id(id, "decode");
      if (skip_special && kind_[static_cast<std::size_t>(id)] == kind_special) continue;
      bytes.append(bytes_of(id));
    }
    if (detail::find_invalid_utf8(bytes) == std::string_view::npos) return bytes;
    std::string out;
    detail::append_utf8_lossy(out, bytes, true);
    return out;
  }

  /// A decoder for ids that arrive one at a time (generation); see stream_decoder.
  [[nodiscard]] stream_decoder stream(bool skip_special = false) const;

  // ---- vocabulary ------------------------------------------------------------------------------

  /// One past the largest token id (the rows an embedding table needs). Ids below it that no
  /// token has are rejected like any other unknown id.
  [[nodiscard]] std::size_t vocab_size() const noexcept { return kind_.size(); }

  /// Whether some token has this id (a model's embedding table may have more rows than the
  /// tokenizer has tokens: Qwen2.5's 151,936 rows against 151,665 tokens).
  [[nodiscard]] bool contains(token_id id) const noexcept {
    return id >= 0 && static_cast<std::size_t>(id) < kind_.size() && kind_[static_cast<std::size_t>(id)] != kind_none;
  }

  /// The id of a token given by its vocabulary string (byte-level form, e.g. "Ġthe") or by an
  /// added token's content; throws tessera::error if there is none.
  [[nodiscard]] token_id token_to_id(std::string_view token) const {
    auto const id = find_token(token);
    TESSERA_CHECK(id.has_value(), "text::tokenizer::token_to_id: no token ", io::detail::quote_name(token));
    return *id;
  }

  /// As token_to_id, but nothing when the token does not exist.
  [[nodiscard]] std::optional<token_id> find_token(std::string_view token) const noexcept {
    auto const id = index_.find(token, [this](std::uint32_t i) { return string_of(i); });
    if (id == detail::string_index::not_found) return std::nullopt;
    return static_cast<token_id>(id);
  }

  /// The string of a token: its vocabulary string (byte-level form) or an added token's content.
  /// Throws tessera::error on an unknown id.
  [[nodiscard]] std::string_view id_to_token(token_id id) const {
    check_id(id, "id_to_token");
    return string_of(static_cast<std::uint32_t>(id));
  }

  /// The bytes a token stands for in decoded text (for a byte-level token, the bytes of its
  /// characters; for an added token whose content is not in the byte alphabet, its UTF-8).
  [[nodiscard]] std::string_view token_bytes(token_id id) const {
    check_id(id, "token_bytes");
    return bytes_of(id);
  }

  /// The id of the special added token with this content (e.g. "<|im_start|>"); throws
  /// tessera::error naming the content if no special token has it.
  [[nodiscard]] token_id special_token_id(std::string_view content) const {
    auto const it = added_by_content_.find(std::string(content));
    TESSERA_CHECK(it != added_by_content_.end() && added_[it->second].special,
                  "text::tokenizer::special_token_id: no special token ", io::detail::quote_name(content),
                  it != added_by_content_.end() ? " (it is an added token, but not special)" : "");
    return added_[it->second].id;
  }

  /// True for the ids of special added tokens (throws on an unknown id).
  [[nodiscard]] bool is_special(token_id id) const {
    check_id(id, "is_special");
    return kind_[static_cast<std::size_t>(id)] == kind_special;
  }

  /// The added tokens, in the order they were added.
  [[nodiscard]] std::span<added_token const> added_tokens() const noexcept { return added_; }

  /// Whether encode() NFC-normalizes the text between added tokens.
  [[nodiscard]] bool normalizes_nfc() const noexcept { return nfc_; }

  // ---- building blocks, exposed for tests and tools ----------------------------------------------

  /// The BPE ids of one pre-tokenized word (raw bytes, before the byte-level mapping), appended to
  /// `out`, without the word cache.
  void encode_word(std::string_view word, std::vector<token_id>& out) const {
    encode_state st;
    bpe_word(word, out, st);
  }

 private:
  friend class stream_decoder;
  static constexpr std::uint8_t kind_none = 0, kind_model = 1, kind_added = 2, kind_special = 3;

  /// What one encode call works in: buffers reused across its words (and across calls, when it
  /// comes from the pool) and, from the pool only, the word cache.
  struct encode_state {
    detail::word_cache* cache = nullptr;
    detail::nfc_scratch nfc;
    detail::bpe_scratch bpe;
    std::vector<std::uint32_t> word_ids;
  };
  struct pooled_state {
    detail::word_cache words;
    encode_state state;
    pooled_state() { state.cache = &words; }
  };

  explicit tokenizer(detail::tokenizer_spec spec) : pool_(std::make_unique<detail::workspace_pool<pooled_state>>()) {
    build(spec);
  }

  /// "0xAB" for an error message.
  static std::string hex_byte(char c) {
    static constexpr char digits[] = "0123456789ABCDEF";
    auto const b = static_cast<unsigned char>(c);
    return {'0', 'x', digits[b >> 4], digits[b & 15]};
  }

  static void json_to_vocab(std::string const& text, std::string const& label, detail::tokenizer_spec& spec) {
    detail::parse_vocab_json(text, label, spec);
  }

  // ---- tables --------------------------------------------------------------------------------

  [[nodiscard]] std::string_view string_of(std::uint32_t id) const noexcept {
    return std::string_view(strings_).substr(string_offsets_[id], string_offsets_[id + 1] - string_offsets_[id]);
  }
  [[nodiscard]] std::string_view bytes_of(token_id id) const noexcept {
    auto const k = static_cast<std::size_t>(id);
    return std::string_view(bytes_).substr(byte_offsets_[k], byte_offsets_[k + 1] - byte_offsets_[k]);
  }
  void check_id(token_id id, char const* what) const {
    TESSERA_CHECK(id >= 0 && static_cast<std::size_t>(id) < kind_.size() && kind_[static_cast<std::size_t>(id)] != kind_none,
                  "text::tokenizer::", what, ": ", id, " is not a token id (vocab_size ", kind_.size(), ")");
  }

  /// Builds every table from the parsed files, validating what the parsers could not.
  void build(detail::tokenizer_spec& spec) {
    using detail::quote_name;
    // Id range and duplicate ids of the model vocabulary.
    std::int64_t n_ids = 0;
    for (auto const& [s, id] : spec.vocab) n_ids = std::max<std::int64_t>(n_ids, std::int64_t{id} + 1);
    for (auto const& a : spec.added) {
      TESSERA_CHECK(a.id >= 0 && a.id < detail::max_vocab_size, spec.added_label, ": token ", quote_name(a.content),
                    " has id ", a.id, ", outside [0, ", detail::max_vocab_size, ")");
      n_ids = std::max<std::int64_t>(n_ids, std::int64_t{a.id} + 1);
    }
    auto const n = static_cast<std::size_t>(n_ids);
    std::vector<std::uint32_t> owner(n, detail::string_index::not_found);  // vocab entry of each id
    for (std::size_t k = 0; k < spec.vocab.size(); ++k) {
      auto const id = static_cast<std::size_t>(spec.vocab[k].second);
      if (owner[id] != detail::string_index::not_found)
        TESSERA_FAIL(spec.vocab_label, ": tokens ", quote_name(spec.vocab[owner[id]].first), " and ",
                     quote_name(spec.vocab[k].first), " both have id ", id);
      owner[id] = static_cast<std::uint32_t>(k);
    }
    // Strings of the model tokens, by id; the index is built over them.
    kind_.assign(n, kind_none);
    std::vector<std::string_view> str(n);
    for (std::size_t id = 0; id < n; ++id)
      if (owner[id] != detail::string_index::not_found) {
        str[id] = spec.vocab[owner[id]].first;
        kind_[id] = kind_model;
      }
    auto const lookup = [&](std::string_view s) -> std::uint32_t {
      return index_.find(s, [&](std::uint32_t id) { return str[id]; });
    };
    index_.reserve(spec.vocab.size() + spec.added.size());
    for (std::size_t id = 0; id < n; ++id) {
      if (kind_[id] != kind_model) continue;
      if (lookup(str[id]) != detail::string_index::not_found)  // the streaming reader keeps duplicates
        TESSERA_FAIL(spec.vocab_label, ": duplicate key ", quote_name(str[id]), " (the token is listed twice)");
      index_.insert(static_cast<std::uint32_t>(id), [&](std::uint32_t i) { return str[i]; });
    }

    // The 256 byte symbols every word starts from.
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      detail::append_utf8(ch, detail::byte_to_char[static_cast<std::size_t>(b)]);
      auto const id = lookup(ch);
      TESSERA_CHECK(id != detail::string_index::not_found, spec.vocab_label, ": no token for byte ",
                    hex_byte(static_cast<char>(b)), " (", quote_name(ch), "); byte-level BPE needs all 256 byte symbols");
      byte_ids_[static_cast<std::size_t>(b)] = id;
    }

    // Merges: both parts and their concatenation must be tokens (HF: MergeTokenOutOfVocabulary).
    pairs_ = detail::pair_table(spec.merges.size());
    std::string merged;
    for (std::size_t k = 0; k < spec.merges.size(); ++k) {
      auto const& [a, b] = spec.merges[k];
      auto const ia = lookup(a), ib = lookup(b);
      if (ia == detail::string_index::not_found || ib == detail::string_index::not_found)
        TESSERA_FAIL(detail::merge_location(spec, k), ": merge ", quote_name(a + " " + b), " names ",
                     quote_name(ia == detail::string_index::not_found ? a : b), ", which is not in the vocabulary");
      merged = a;
      merged += b;
      auto const im = lookup(merged);
      if (im == detail::string_index::not_found)
        TESSERA_FAIL(detail::merge_location(spec, k), ": merge ", quote_name(a + " " + b), " makes ", quote_name(merged),
                     ", which is not in the vocabulary");
      pairs_.insert(ia, ib, {static_cast<std::uint32_t>(k), im});
    }
    // Added tokens, with the ids HF's AddedVocabulary::add_tokens assigns, checked one by one.
    std::int64_t const model_len = static_cast<std::int64_t>(spec.vocab.size());
    std::int64_t max_added = -1;
    added_ = std::move(spec.added);
    std::vector<std::pair<std::string, std::uint32_t>> raw_patterns, norm_patterns;
    bool any_rstrip = false;
    std::string const* space_first = nullptr;
    detail::nfc_scratch scratch;
    for (std::size_t k = 0; k < added_.size(); ++k) {
      added_token const& a = added_[k];
      std::string const at = spec.added_label + "[" + std::to_string(k) + "] " + quote_name(a.content);
      TESSERA_CHECK(!a.content.empty(), at, ": empty content");
      TESSERA_CHECK(detail::find_invalid_utf8(a.content) == std::string_view::npos, at, ": content is not valid UTF-8");
      TESSERA_CHECK(added_by_content_.find(a.content) == added_by_content_.end(), at,
                    ": the same content was added before");
      std::int64_t expected = 0;
      if (auto const m = lookup(a.content); m != detail::string_index::not_found && kind_[m] == kind_model)
        expected = m;
      else if (max_added < 0) expected = model_len;
      else expected = max_added >= model_len || model_len == 0 ? max_added + 1 : model_len;
      TESSERA_CHECK(a.id == expected, at, " has id ", a.id, ", but HF tokenizers assigns it id ", expected,
                    " (the vocabulary id of the same string, else the id after the vocabulary and the added tokens before it)");
      auto const id = static_cast<std::size_t>(a.id);
      TESSERA_CHECK(kind_[id] == kind_none || str[id] == a.content, at, ": id ", a.id,
                    " is already the id of vocabulary token ", quote_name(str[id]));
      max_added = std::max<std::int64_t>(max_added, a.id);
      if (kind_[id] == kind_none) {
        str[id] = a.content;
        index_.insert(static_cast<std::uint32_t>(id), [&](std::uint32_t i) { return str[i]; });
      }
      kind_[id] = a.special ? kind_special : kind_added;
      added_by_content_.emplace(a.content, static_cast<std::uint32_t>(k));
      any_rstrip = any_rstrip || a.rstrip;
      if (space_first == nullptr && detail::is_white_space(detail::first_char(a.content))) space_first = &a.content;
      if (!a.normalized) {
        raw_patterns.emplace_back(a.content, static_cast<std::uint32_t>(k));
      } else {
        std::string pattern(spec.nfc ? detail::nfc(a.content, scratch) : std::string_view(a.content));
        for (auto const& [p, other] : norm_patterns)
          TESSERA_CHECK(p != pattern, at, ": after NFC it is the same text as added token ",
                        quote_name(added_[other].content));
        norm_patterns.emplace_back(std::move(pattern), static_cast<std::uint32_t>(k));
      }
    }
    // HF lets an rstrip token's trailing white space overlap a following match that begins with
    // white space and then emits overlapping pieces (text twice); such sets are refused.
    TESSERA_CHECK(!(any_rstrip && space_first != nullptr), spec.added_label, ": added token ", quote_name(*space_first),
                  " begins with white space while another has rstrip; HF tokenizers then duplicates text, "
                  "which is not supported");
    raw_matcher_ = detail::added_matcher(raw_patterns);
    normalized_matcher_ = detail::added_matcher(norm_patterns);
    nfc_ = spec.nfc;

    // Flat string and byte tables by id.
    string_offsets_.assign(n + 1, 0);
    byte_offsets_.assign(n + 1, 0);
    std::size_t total = 0;
    for (std::size_t id = 0; id < n; ++id) total += str[id].size();
    TESSERA_CHECK(total < 0xFFFFFFFFu, spec.vocab_label, ": the token strings add up to ", total, " bytes (limit 4 GiB)");
    strings_.reserve(total);
    bytes_.reserve(total);
    for (std::size_t id = 0; id < n; ++id) {
      strings_.append(str[id]);
      string_offsets_[id + 1] = static_cast<std::uint32_t>(strings_.size());
      append_token_bytes(str[id], bytes_);
      byte_offsets_[id + 1] = static_cast<std::uint32_t>(bytes_.size());
    }
    // The index keyed strings in `str`, which views spec; it reads strings_ from now on (same ids).
  }

  /// HF ByteLevel decoder for one token: the bytes of its characters when all of them are in the
  /// byte alphabet, else the token's own UTF-8 (e.g. an added token containing a space).
  static void append_token_bytes(std::string_view token, std::string& out) {
    std::size_t const start = out.size();
    for (std::size_t i = 0; i < token.size();) {
      auto const ch = detail::decode_utf8(token, i);
      std::int16_t const b = ch.cp < detail::byte_alphabet_end ? detail::char_to_byte[ch.cp] : std::int16_t{-1};
      if (b < 0) {
        out.resize(start);
        out.append(token);
        return;
      }
      out += static_cast<char>(b);
      i += ch.len;
    }
  }

  // ---- encoding --------------------------------------------------------------------------------

  /// A piece between raw-matched added tokens: NFC, then the normalized added tokens, then words.
  void encode_normalized(std::string_view piece, std::vector<token_id>& out, bool allow_special, encode_state& st) const {
    std::string_view const text = nfc_ ? detail::nfc(piece, st.nfc) : piece;
    if (normalized_matcher_.empty()) {
      encode_words(text, out, st);
      return;
    }
    detail::split_added(text, normalized_matcher_, added_, !allow_special, [&](std::string_view p, std::int64_t tok) {
      if (tok >= 0) out.push_back(added_[static_cast<std::size_t>(tok)].id);
      else encode_words(p, out, st);
    });
  }

  void encode_words(std::string_view text, std::vector<token_id>& out, encode_state& st) const {
    detail::split_qwen2(text, [&](std::string_view word) { bpe_word(word, out, st); });
  }

  /// BPE of one word (raw bytes): byte symbols, then merges by rank (through the word cache).
  void bpe_word(std::string_view word, std::vector<token_id>& out, encode_state& st) const {
    if (word.size() == 1) {
      out.push_back(static_cast<token_id>(byte_ids_[static_cast<unsigned char>(word[0])]));
      return;
    }
    detail::word_cache* cache = st.cache;
    std::array<std::uint32_t, detail::word_cache::max_word_tokens> hit;
    if (cache != nullptr) {
      if (std::size_t const k = cache->find(word, hit.data()); k > 0) {
        out.insert(out.end(), hit.begin(), hit.begin() + static_cast<std::ptrdiff_t>(k));
        return;
      }
    }
    auto& ids = st.word_ids;
    ids.resize(word.size());
    for (std::size_t k = 0; k < word.size(); ++k) ids[k] = byte_ids_[static_cast<unsigned char>(word[k])];
    std::size_t const m = detail::bpe_merge(pairs_, ids.data(), ids.size(), st.bpe);
    out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(m));
    if (cache != nullptr) cache->insert(word, ids.data(), m);
  }

  // Id-indexed tables (size vocab_size, offsets vocab_size + 1).
  std::vector<std::uint8_t> kind_;
  std::string strings_;
  std::vector<std::uint32_t> string_offsets_;
  std::string bytes_;
  std::vector<std::uint32_t> byte_offsets_;
  detail::string_index index_;  // every token string -> id
  // Model.
  detail::pair_table pairs_;
  std::array<std::uint32_t, 256> byte_ids_{};
  bool nfc_ = false;
  // Added tokens.
  std::vector<added_token> added_;
  std::unordered_map<std::string, std::uint32_t> added_by_content_;
  detail::added_matcher raw_matcher_, normalized_matcher_;
  std::unique_ptr<detail::workspace_pool<pooled_state>> pool_;
};

/// Decodes ids one at a time: push(id) returns the text completed by that id, holding back the
/// bytes of a character that is not complete yet, so a UTF-8 character is never split across
/// two returns; finish() returns what is left (an incomplete character becomes U+FFFD). The
/// concatenation of all returns equals tokenizer::decode of all the ids. Keeps a reference to the
/// tokenizer, which must outlive it.
class stream_decoder {
 public:
  explicit stream_decoder(tokenizer const& tok, bool skip_special = false) : tok_(&tok), skip_special_(skip_special) {}

  /// The text completed by `id` (often empty while a multi-byte character is being assembled).
  /// Throws tessera::error on an unknown id, leaving the decoder unchanged.
  [[nodiscard]] std::string push(token_id id) {
    tok_->check_id(id, "stream_decoder::push");
    std::string out;
    if (skip_special_ && tok_->kind_[static_cast<std::size_t>(id)] == tokenizer::kind_special) return out;
    pending_.append(tok_->bytes_of(id));
    std::size_t const used = detail::append_utf8_lossy(out, pending_, false);
    pending_.erase(0, used);
    return out;
  }

  /// Flushes the bytes held back (one U+FFFD for an incomplete character) and resets.
  [[nodiscard]] std::string finish() {
    std::string out;
    detail::append_utf8_lossy(out, pending_, true);
    pending_.clear();
    return out;
  }

 private:
  tokenizer const* tok_;
  bool skip_special_;
  std::string pending_;  // at most 3 bytes: a proper prefix of a UTF-8 character
};

inline stream_decoder tokenizer::stream(bool skip_special) const { return stream_decoder(*this, skip_special); }

}  // namespace tessera::text
