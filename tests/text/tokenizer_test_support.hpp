// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the tokenizer tests: paths of the test data, temporary directories, the
// PCRE2 oracle of Qwen2's split regex, decoding of the golden files' packed ids, and printing of
// strings and id sequences for failure messages.
#pragma once

#include "common/temp_dir.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <tessera/text/tokenizer.hpp>

#include <catch2/catch_test_macros.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must name the repository root (set by tests/CMakeLists.txt)"
#endif

namespace tessera::test {

namespace fs = std::filesystem;

/// The committed tiny tokenizer (its own small vocabulary; no shared data needed).
inline fs::path tiny_tokenizer_path() { return fs::path(TESSERA_SOURCE_DIR) / "tests/text/data/tiny_tokenizer.json"; }

/// The shared Qwen2 tokenizer files (never copied into the repository).
inline fs::path qwen2_tokenizer_dir() { return fs::path(TESSERA_SOURCE_DIR) / "../shared/data/qwen2-tokenizer"; }

inline bool have_qwen2_tokenizer() {
  std::error_code ec;
  return fs::exists(qwen2_tokenizer_dir() / "vocab.json", ec) && fs::exists(qwen2_tokenizer_dir() / "merges.txt", ec);
}

inline std::string read_file(fs::path const& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// `s` for a message: printable ASCII as is, everything else as \xNN (truncated to `max` bytes).
inline std::string escaped(std::string_view s, std::size_t max = 400) {
  std::string out;
  char buf[8];
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto const c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  if (s.size() > max) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

inline std::string join_ids(std::vector<std::int32_t> const& ids, std::size_t from = 0, std::size_t count = 40) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = from; i < ids.size() && i < from + count; ++i) os << (i > from ? " " : "") << ids[i];
  if (from + count < ids.size()) os << " ...";
  os << "] (" << ids.size() << " ids)";
  return os.str();
}

/// Inverse of the golden generator's pack_ids: base64 (RFC 4648) of LEB128 unsigned varints.
inline std::vector<std::int32_t> unpack_ids(std::string_view b64) {
  auto const value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<unsigned char> bytes;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') break;
    int const v = value(c);
    if (v < 0) throw std::runtime_error("bad base64 in a golden file");
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<unsigned char>((acc >> bits) & 0xFFu));
    }
  }
  std::vector<std::int32_t> ids;
  std::uint32_t v = 0;
  int shift = 0;
  for (unsigned char b : bytes) {
    v |= static_cast<std::uint32_t>(b & 0x7Fu) << shift;
    if (b & 0x80u) {
      shift += 7;
    } else {
      ids.push_back(static_cast<std::int32_t>(v));
      v = 0;
      shift = 0;
    }
  }
  return ids;
}

/// The lines of a JSON-lines file (empty lines skipped).
inline std::vector<std::string> read_lines(fs::path const& p) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(p));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

// ------------------------------------------------------------------------------------------------
// PCRE2 oracle of the split
// ------------------------------------------------------------------------------------------------

/// Qwen2's split regex for PCRE2. The only change: \s and \S are spelled as the White_Space
/// class [\t-\r\x{85}\p{Z}] (which is Oniguruma's \s), because PCRE2's \s also matches U+180E
/// MONGOLIAN VOWEL SEPARATOR (measured: the one code point where PCRE2 10.42 and Oniguruma 6.9.8
/// differ). \p{L}, \p{N} and (?i) are PCRE2's own (Unicode 14.0 tables, like Oniguruma 6.9.8's).
inline constexpr char pcre2_qwen2_pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\t-\r\x{85}\p{Z}\p{L}\p{N}]+[\r\n]*)"
    R"(|[\t-\r\x{85}\p{Z}]*[\r\n]+|[\t-\r\x{85}\p{Z}]+(?![^\t-\r\x{85}\p{Z}])|[\t-\r\x{85}\p{Z}]+)";

/// Splits text like HF's Split(behavior Isolated): every match is a piece, and so is any text
/// between matches (which this pattern never leaves). Uses PCRE2's JIT when available.
class pcre2_splitter {
 public:
  pcre2_splitter() {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_qwen2_pattern), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (code_ == nullptr) throw std::runtime_error("pcre2_compile failed on the Qwen2 pattern");
    (void)pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
    data_ = pcre2_match_data_create_from_pattern(code_, nullptr);
  }
  pcre2_splitter(pcre2_splitter const&) = delete;
  pcre2_splitter& operator=(pcre2_splitter const&) = delete;
  ~pcre2_splitter() {
    pcre2_match_data_free(data_);
    pcre2_code_free(code_);
  }

  [[nodiscard]] std::vector<std::string_view> split(std::string_view text) const {
    std::vector<std::string_view> pieces;
    auto const* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t at = 0;
    while (at < text.size()) {
      int const rc = pcre2_match(code_, subject, text.size(), at, PCRE2_NO_UTF_CHECK, data_, nullptr);
      if (rc < 0) {
        pieces.push_back(text.substr(at));
        break;
      }
      PCRE2_SIZE const* ov = pcre2_get_ovector_pointer(data_);
      if (ov[0] > at) pieces.push_back(text.substr(at, ov[0] - at));
      if (ov[1] == ov[0]) throw std::runtime_error("empty match of the Qwen2 pattern");
      pieces.push_back(text.substr(ov[0], ov[1] - ov[0]));
      at = ov[1];
    }
    return pieces;
  }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_data* data_ = nullptr;
};

/// The pieces of tessera's scanner.
inline std::vector<std::string_view> tessera_split(std::string_view text) {
  std::vector<std::string_view> pieces;
  text::detail::split_qwen2(text, [&](std::string_view p) { pieces.push_back(p); });
  return pieces;
}

/// Pieces for a failure message.
inline std::string show_pieces(std::vector<std::string_view> const& pieces, std::size_t max = 30) {
  std::string out;
  for (std::size_t i = 0; i < pieces.size() && i < max; ++i) out += (i ? " | " : "") + escaped(pieces[i], 60);
  if (pieces.size() > max) out += " | ... (" + std::to_string(pieces.size()) + " pieces)";
  return out;
}

}  // namespace tessera::test
