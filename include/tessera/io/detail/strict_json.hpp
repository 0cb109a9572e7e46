// SPDX-License-Identifier: Apache-2.0
// Strict JSON parsing for untrusted headers and index files: nlohmann::json, plus rejection of
// duplicate object keys (nlohmann silently keeps the last one) and of nesting deeper than a small
// limit, and helpers that describe values and quote names safely inside error messages.
#pragma once

#include <tessera/core/error.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace tessera::io::detail {

/// Deepest nesting of arrays/objects accepted. Safetensors headers nest 3 levels, index files 2;
/// the limit keeps recursive code (dump) far from the stack's end on hostile input.
inline constexpr std::size_t max_json_depth = 64;

/// `s` in single quotes for an error message: at most 96 bytes, control bytes as \xNN, so a
/// hostile name can neither flood a log nor inject terminal escapes.
[[nodiscard]] inline std::string quote_name(std::string_view s) {
  constexpr std::size_t max_shown = 96;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < max_shown; ++i) {
    auto const c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max_shown) out += "...";
  out += "'";
  return out;
}

/// A short description of a JSON value for an error message: scalars verbatim (strings quoted),
/// containers by type name only.
[[nodiscard]] inline std::string describe(nlohmann::json const& v) {
  if (v.is_string()) return quote_name(v.get_ref<std::string const&>());
  if (v.is_number() || v.is_boolean() || v.is_null()) return v.dump();
  return std::string("a JSON ") + v.type_name();
}

/// The value as a non-negative integer, or nothing if it is not one (negative, fractional,
/// beyond 2^64, or no number). nlohmann stores "-0" as a signed integer; it is accepted as 0.
[[nodiscard]] inline std::optional<std::uint64_t> as_uint(nlohmann::json const& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) {
    auto const i = v.get<std::int64_t>();
    if (i >= 0) return static_cast<std::uint64_t>(i);
  }
  return std::nullopt;
}

/// Parses `text` as JSON. Throws tessera::error whose message starts with `label` when the text is
/// not valid JSON (nlohmann's message gives the byte position; NUL bytes are refused up front),
/// when an object repeats a key (at any depth; the message names the key), or when nesting
/// exceeds max_json_depth.
[[nodiscard]] inline nlohmann::json parse_json_strict(std::string_view text, std::string const& label) {
  using nlohmann::json;
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore whatever follows it;
  // JSON allows NUL nowhere outside an escape, so any NUL byte makes the text invalid.
  if (std::size_t const nul = text.find('\0'); nul != std::string_view::npos)
    TESSERA_FAIL(label, ": invalid JSON: NUL byte at offset ", nul);
  // One key set per open container (arrays get an unused empty set, which keeps push/pop simple).
  std::vector<std::unordered_set<std::string>> open;
  json::parser_callback_t const check = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (open.size() >= max_json_depth)
          TESSERA_FAIL(label, ": JSON nests deeper than ", max_json_depth, " levels");
        open.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && !open.back().insert(parsed.get<std::string>()).second)
          TESSERA_FAIL(label, ": duplicate key ", quote_name(parsed.get_ref<std::string const&>()),
                       " in a JSON object (a reader would silently keep only one of them)");
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.data(), text.data() + text.size(), check);
  } catch (json::exception const& e) {
    // nlohmann quotes the last token read, which for an unterminated string is the rest of the text.
    std::string_view what = e.what();
    constexpr std::size_t max_shown = 240;
    TESSERA_FAIL(label, ": invalid JSON: ", what.substr(0, max_shown), what.size() > max_shown ? "..." : "");
  }
}

}  // namespace tessera::io::detail
