// SPDX-License-Identifier: Apache-2.0
// io::config_object -- typed, range-checked access to the fields of a config.json object (Hugging Face
// PretrainedConfig dumps). Every failure is a tessera::error naming the file, the dotted field
// path ("llm_config.num_kv_heads") and what was wrong; absent fields take the caller's default,
// as a transformers config class would.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/detail/strict_json.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace tessera::io {


/// Largest config.json accepted, in bytes. Real configs are a few kB; the cap keeps a wrong path
/// (a checkpoint shard passed as the config) from being read into memory whole.
inline constexpr std::size_t max_config_bytes = std::size_t{16} << 20;

/// `s` quoted for a message like quote_name, but keeping the end of long strings (for file
/// paths the file name matters more than the directories).
[[nodiscard]] inline std::string quote_tail(std::string_view s) {
  constexpr std::size_t max_shown = 96;
  if (s.size() <= max_shown) return detail::quote_name(s);
  return "'..." + detail::quote_name(s.substr(s.size() - max_shown)).substr(1);
}

/// One JSON object of a config file, with the file's name and the object's path inside it.
class config_object {
 public:
  /// `obj` must outlive this reader. `source` names the file in messages, `path` is the dotted
  /// prefix of this object ("" for the root, "llm_config." for a nested one).
  config_object(nlohmann::json const& obj, std::string source, std::string path)
      : obj_(obj), source_(std::move(source)), path_(std::move(path)) {}

  [[nodiscard]] std::string const& source() const noexcept { return source_; }
  [[nodiscard]] std::string const& path() const noexcept { return path_; }
  [[nodiscard]] nlohmann::json const& json() const noexcept { return obj_; }

  /// "config 'file': field 'llm_config.key'" — the start of every message about `key`.
  [[nodiscard]] std::string where(std::string_view key) const {
    return "config " + quote_tail(source_) + ": field " + detail::quote_name(path_ + std::string(key));
  }

  /// Throws tessera::error: "<where(key)>: <parts...>".
  template <class... Parts>
  [[noreturn]] void fail(std::string_view key, Parts const&... parts) const {
    TESSERA_FAIL(where(key), ": ", parts...);
  }

  /// The value at `key`, or nullptr when the key is absent.
  [[nodiscard]] nlohmann::json const* find(std::string_view key) const {
    auto const it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }
  /// The value at `key`, or nullptr when the key is absent or null (for Optional[...] fields).
  [[nodiscard]] nlohmann::json const* find_non_null(std::string_view key) const {
    nlohmann::json const* v = find(key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }

  /// An integer field in [lo, hi]; `fallback` when absent. A fractional number (896.0), a
  /// string, a bool or null is an error: the reference modules would fail on it too.
  [[nodiscard]] index_t integer(std::string_view key, index_t fallback, index_t lo, index_t hi) const {
    nlohmann::json const* v = find(key);
    if (v == nullptr) return fallback;
    return integer_value(key, *v, lo, hi);
  }
  /// The checks of integer() on a value already found (e.g. an element of a list).
  [[nodiscard]] index_t integer_value(std::string_view key, nlohmann::json const& v, index_t lo, index_t hi) const {
    if (!v.is_number_integer()) fail(key, "must be an integer, got ", detail::describe(v));
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
      fail(key, "is ", v.dump(), ", outside the supported range [", lo, ", ", hi, "]");
    auto const i = v.get<std::int64_t>();
    if (i < lo || i > hi) fail(key, "is ", i, ", outside the supported range [", lo, ", ", hi, "]");
    return i;
  }

  /// A finite number (integer or fractional JSON) with lo < x <= hi (`lo_open`) or lo <= x <= hi.
  [[nodiscard]] double number(std::string_view key, double fallback, double lo, double hi, bool lo_open) const {
    nlohmann::json const* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) fail(key, "must be a number, got ", detail::describe(*v));
    double const x = v->get<double>();
    bool const above = lo_open ? x > lo : x >= lo;
    if (!std::isfinite(x) || !above || x > hi)
      fail(key, "is ", v->dump(), "; it must be finite and in ", lo_open ? "(" : "[", lo, ", ", hi, "]");
    return x;
  }

  /// A JSON bool (no 0/1, no strings); `fallback` when absent.
  [[nodiscard]] bool boolean(std::string_view key, bool fallback) const {
    nlohmann::json const* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(key, "must be true or false, got ", detail::describe(*v));
    return v->get<bool>();
  }

  /// A string field; `fallback` when absent.
  [[nodiscard]] std::string string(std::string_view key, std::string fallback) const {
    nlohmann::json const* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_string()) fail(key, "must be a string, got ", detail::describe(*v));
    return v->get<std::string>();
  }

  /// A nested object; error if absent or not an object.
  [[nodiscard]] config_object object(std::string_view key) const {
    nlohmann::json const* v = find(key);
    if (v == nullptr) fail(key, "is missing; it must be a JSON object");
    if (!v->is_object()) fail(key, "must be a JSON object, got ", detail::describe(*v));
    return config_object(*v, source_, path_ + std::string(key) + ".");
  }

  /// A token id list field (int, list of ints, or null/absent -> empty), each in [0, 2^31).
  [[nodiscard]] std::vector<std::int64_t> token_ids(std::string_view key, std::vector<std::int64_t> fallback) const {
    nlohmann::json const* v = find(key);
    if (v == nullptr) return fallback;
    std::vector<std::int64_t> out;
    if (v->is_null()) return out;
    if (v->is_array()) {
      if (v->size() > max_token_ids) fail(key, "lists ", v->size(), " token ids; at most ", max_token_ids, " are accepted");
      for (nlohmann::json const& e : *v) out.push_back(integer_value(key, e, 0, max_token_id));
      return out;
    }
    out.push_back(integer_value(key, *v, 0, max_token_id));
    return out;
  }

  /// Whether `key` holds a string array that contains `name` (e.g. "architectures").
  [[nodiscard]] bool list_contains(std::string_view key, std::string_view name) const {
    nlohmann::json const* v = find_non_null(key);
    if (v == nullptr || !v->is_array()) return false;
    for (nlohmann::json const& e : *v)
      if (e.is_string() && e.get_ref<std::string const&>() == name) return true;
    return false;
  }

  /// The "architectures" list as text for a message ("['A', 'B']"), checked to be strings.
  [[nodiscard]] std::vector<std::string> string_list(std::string_view key) const {
    std::vector<std::string> out;
    nlohmann::json const* v = find_non_null(key);
    if (v == nullptr) return out;
    if (!v->is_array()) fail(key, "must be a list of strings, got ", detail::describe(*v));
    for (nlohmann::json const& e : *v) {
      if (!e.is_string()) fail(key, "must be a list of strings; it holds ", detail::describe(e));
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  static constexpr std::size_t max_token_ids = 1024;
  static constexpr std::int64_t max_token_id = (std::int64_t{1} << 31) - 1;

 private:
  nlohmann::json const& obj_;
  std::string source_;
  std::string path_;
};

/// "['a', 'b']" for a message.
[[nodiscard]] inline std::string list_text(std::vector<std::string> const& names) {
  std::string s = "[";
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + detail::quote_name(names[i]);
  return s + "]";
}

/// Parses a whole config text strictly (duplicate keys, depth, NUL bytes and size are refused)
/// and requires a JSON object at the root.
[[nodiscard]] inline nlohmann::json parse_config_root(std::string_view text, std::string const& source) {
  std::string const label = "config " + quote_tail(source);
  TESSERA_CHECK(text.size() <= max_config_bytes, label, ": ", text.size(), " bytes is more than the ",
                max_config_bytes, "-byte limit for a config file");
  nlohmann::json root = detail::parse_json_strict(text, label);
  TESSERA_CHECK(root.is_object(), label, ": must be a JSON object, got ", detail::describe(root));
  return root;
}

/// The text of a config file: `path` itself, or `path`/config.json for a directory.
/// Returns {text, the file actually read}.
[[nodiscard]] inline std::pair<std::string, std::string> read_config_text(std::filesystem::path const& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path const file = fs::is_directory(path, ec) ? path / "config.json" : path;
  std::string const name = file.string();
  TESSERA_CHECK(fs::is_regular_file(file, ec), "config ", quote_tail(name), ": no such file");
  auto const size = fs::file_size(file, ec);
  TESSERA_CHECK(!ec, "config ", quote_tail(name), ": cannot read its size (", ec.message(), ")");
  TESSERA_CHECK(size <= max_config_bytes, "config ", quote_tail(name), ": ", size, " bytes is more than the ",
                max_config_bytes, "-byte limit for a config file");
  std::ifstream in(file, std::ios::binary);
  TESSERA_CHECK(in.good(), "config ", quote_tail(name), ": cannot open it");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TESSERA_CHECK(!in.bad(), "config ", quote_tail(name), ": read error");
  return {std::move(text), name};
}

// ---- helpers shared by the model families' config readers (model/<family>/config.hpp) ----

/// Sanity bounds on config sizes. They are far above every released model (Qwen2.5-72B:
/// d_model 8192, d_ff 29568, 80 layers, vocab 152064) and keep derived products far from
/// overflow; a value outside them is refused as corrupt rather than allocated.
struct config_limits {
  static constexpr index_t max_d_model = index_t{1} << 17;
  static constexpr index_t max_d_ff = index_t{1} << 20;
  static constexpr index_t max_layers = 1024;
  static constexpr index_t max_heads = 1024;
  static constexpr index_t max_vocab = index_t{1} << 24;
  static constexpr index_t max_positions = index_t{1} << 26;
  static constexpr index_t max_patch = 1024;         ///< patch_size
  static constexpr index_t max_small_factor = 64;    ///< in_channels, temporal_patch_size, spatial_merge_size
  static constexpr double max_rope_theta = 1e15;
};


/// The checkpoint dtype a torch_dtype string names ("float32", "float16", "bfloat16").
[[nodiscard]] inline std::optional<dtype> torch_dtype_field(config_object const& c) {
  nlohmann::json const* v = c.find_non_null("torch_dtype");
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) c.fail("torch_dtype", "must be a string such as \"bfloat16\", got ", detail::describe(*v));
  std::string const& s = v->get_ref<std::string const&>();
  if (s == "float32") return dtype::f32;
  if (s == "float16") return dtype::f16;
  if (s == "bfloat16") return dtype::bf16;
  c.fail("torch_dtype", detail::describe(*v), " is not a dtype tessera loads (float32, float16, bfloat16)");
}

/// Refuses a model_type other than `want` (absent is accepted).
inline void check_model_type(config_object const& c, std::string_view want, std::string_view what) {
  nlohmann::json const* v = c.find("model_type");
  if (v == nullptr) return;
  if (!v->is_string()) c.fail("model_type", "must be a string, got ", detail::describe(*v));
  if (v->get_ref<std::string const&>() != want)
    c.fail("model_type", detail::describe(*v), " is not supported here; ", what, " needs model_type '", want, "'");
}

/// Refuses an architectures list that does not name `want` (absent, null or empty is accepted).
inline void check_architectures(config_object const& c, std::string_view want) {
  std::vector<std::string> const archs = c.string_list("architectures");
  if (archs.empty() || c.list_contains("architectures", want)) return;
  c.fail("architectures", list_text(archs), " is not supported here; expected '", want, "'");
}

/// A divisibility requirement between two already-read fields.
inline void check_divides(config_object const& c, std::string_view key, index_t divisor, std::string_view of_key,
                          index_t of, std::string_view why) {
  if (of % divisor != 0) c.fail(key, divisor, " does not divide ", of_key, " ", of, " (", why, ")");
}


}  // namespace tessera::io
