// SPDX-License-Identifier: Apache-2.0
// The command-line pieces the text-generating examples (generate, chat) share: number parsing,
// the sampling flags (--greedy, --temperature, --top-k, --top-p, --min-p, --repetition-penalty,
// --seed, --max-new-tokens, --stop) and how they layer over a checkpoint's generation_config.json.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/lm/sampler.hpp>
#include <tessera/model/generation_config.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace examples {

/// Prints "<program>: <why>" and the usage text to stderr, then exits with status 2.
[[noreturn]] void usage(std::string const& why);

/// A non-negative number (an integer for integral T) from a flag's value, else usage().
template <class T>
T parse_number(std::string_view flag, char const* text) {
  char* end = nullptr;
  double const v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v >= 0.0 && v <= 1e15))
    usage("'" + std::string(flag) + "' needs a non-negative number, got '" + text + "'");
  if constexpr (std::is_integral_v<T>) {
    if (v != static_cast<double>(static_cast<long long>(v)))
      usage("'" + std::string(flag) + "' needs an integer, got '" + text + "'");
  }
  return static_cast<T>(v);
}

/// The sampling flags; each set flag overrides one field of generation_config.json.
struct sampling_flags {
  tessera::index_t max_new_tokens = 256;
  bool greedy = false;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<tessera::index_t> top_k;
  std::uint64_t seed = 0;
  std::vector<std::string> stop;

  /// Consumes argv[i] (and its value, advancing i) when it is a sampling flag; false otherwise.
  bool parse(int argc, char** argv, int& i) {
    std::string_view const a = argv[i];
    auto value = [&]() -> char const* {
      if (i + 1 >= argc) usage("missing value after " + std::string(a));
      return argv[++i];
    };
    if (a == "--max-new-tokens") max_new_tokens = parse_number<tessera::index_t>(a, value());
    else if (a == "--greedy") greedy = true;
    else if (a == "--temperature") temperature = parse_number<float>(a, value());
    else if (a == "--top-k") top_k = parse_number<tessera::index_t>(a, value());
    else if (a == "--top-p") top_p = parse_number<float>(a, value());
    else if (a == "--min-p") min_p = parse_number<float>(a, value());
    else if (a == "--repetition-penalty") repetition_penalty = parse_number<float>(a, value());
    else if (a == "--seed") seed = parse_number<std::uint64_t>(a, value());
    else if (a == "--stop") stop.emplace_back(value());
    else return false;
    return true;
  }

  /// generation_config.json's sampling, then the flags; --greedy or --temperature 0 decodes greedily.
  [[nodiscard]] tessera::lm::sampling_config sampling(tessera::model::generation_defaults const& g) const {
    tessera::lm::sampling_config s = g.sampling();
    if (temperature) s.temperature = *temperature, s.do_sample = true;
    if (top_k) s.top_k = *top_k, s.do_sample = true;
    if (top_p) s.top_p = *top_p, s.do_sample = true;
    if (min_p) s.min_p = *min_p, s.do_sample = true;
    if (repetition_penalty) s.repetition_penalty = *repetition_penalty;
    if (greedy || (temperature && *temperature == 0.0f)) s.do_sample = false;  // temperature 0: greedy
    s.seed = seed;
    return s;
  }
};

/// "          [--max-new-tokens N] ..." lines of the usage texts.
inline constexpr char const* sampling_usage =
    "[--max-new-tokens N] [--greedy] [--temperature T] [--top-k K] [--top-p P]\n"
    "                [--min-p P] [--repetition-penalty R] [--seed S] [--stop TEXT]...";

}  // namespace examples
