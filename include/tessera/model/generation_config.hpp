// SPDX-License-Identifier: Apache-2.0
// model::generation_defaults -- what a checkpoint's generation_config.json (transformers
// GenerationConfig.save_pretrained) says about decoding: sampling switches and values, stop
// token ids, length. Qwen2.5-Instruct's, for example: do_sample true, temperature 0.7, top_p 0.8,
// top_k 20, repetition_penalty 1.05, eos_token_id [151645, 151643].
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/lm/sampler.hpp>
#include <tessera/text/token_id.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::model {

/// The decoding fields of a generation_config.json; absent (or null) fields stay empty, so a
/// caller can layer its own choices over them.
struct generation_defaults {
  std::optional<bool> do_sample;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<std::int64_t> top_k, max_new_tokens;
  std::vector<text::token_id> eos_token_ids;  ///< eos_token_id: an int or a list

  /// The sampling transformers' generate() runs with this file: its fields, and GenerationConfig's
  /// defaults for the absent ones (do_sample false, temperature 1, top_k 50, top_p 1, min_p off,
  /// repetition_penalty 1). Note top_k: absent means HF's 50, not off.
  [[nodiscard]] lm::sampling_config sampling(std::uint64_t seed = 0) const {
    lm::sampling_config s;
    s.do_sample = do_sample.value_or(false);
    s.temperature = temperature.value_or(1.0f);
    s.top_k = top_k.value_or(50);
    s.top_p = top_p.value_or(1.0f);
    s.min_p = min_p.value_or(0.0f);
    s.repetition_penalty = repetition_penalty.value_or(1.0f);
    s.seed = seed;
    return s;
  }
};

/// Parses the text of a generation_config.json. Unknown fields are ignored (the file holds many
/// that concern other decoding modes); the fields read must have the JSON type transformers
/// writes and a value the sampler accepts (temperature > 0, top_p in (0, 1], min_p in [0, 1],
/// repetition_penalty > 0, top_k >= 0, max_new_tokens >= 1), else tessera::error names the field.
[[nodiscard]] inline generation_defaults parse_generation_config(std::string_view json, std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  io::config_object const c(root, src, "");
  generation_defaults g;
  constexpr double big = 1e30;
  auto num = [&](char const* key, double lo, double hi, bool lo_open) -> std::optional<float> {
    if (!c.find_non_null(key)) return std::nullopt;
    return static_cast<float>(c.number(key, 0.0, lo, hi, lo_open));
  };
  if (c.find_non_null("do_sample")) g.do_sample = c.boolean("do_sample", false);
  g.temperature = num("temperature", 0.0, big, true);
  g.top_p = num("top_p", 0.0, 1.0, true);
  g.min_p = num("min_p", 0.0, 1.0, false);
  g.repetition_penalty = num("repetition_penalty", 0.0, big, true);
  if (c.find_non_null("top_k")) g.top_k = c.integer("top_k", 0, 0, std::int64_t{1} << 31);
  if (c.find_non_null("max_new_tokens")) g.max_new_tokens = c.integer("max_new_tokens", 1, 1, std::int64_t{1} << 31);
  for (std::int64_t id : c.token_ids("eos_token_id", {})) g.eos_token_ids.push_back(static_cast<text::token_id>(id));
  return g;
}

/// Reads `path`: a generation_config.json, or a model directory holding one. A directory
/// without the file gives empty defaults (transformers' GenerationConfig defaults then apply,
/// i.e. the sampling_config defaults); a missing file given by name is an error.
[[nodiscard]] inline generation_defaults read_generation_config(std::filesystem::path const& path) {
  std::error_code ec;
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path, ec)) {
    file = path / "generation_config.json";
    if (!std::filesystem::exists(file, ec)) return {};
  }
  auto const [text, name] = io::read_config_text(file);
  return parse_generation_config(text, name);
}

}  // namespace tessera::model
