// SPDX-License-Identifier: Apache-2.0
// lm::sampler against Hugging Face transformers 4.46.3 generate() (tools/golden/
// make_sampler_goldens.py; versions, configs and the processors HF built are in
// tests/golden/sampler_manifest.json). For every case sampler::process must remove exactly the
// tokens HF removed (-inf) and leave the others at HF's values, and greedy picks must be HF's.
//
// Values: tol<float>::vs_golden as the budget, and additionally bit equality: the surviving values
// are the logits after the repetition penalty and the temperature, single IEEE multiplications and
// divisions that torch performs the same way (the manifest records the check).
// Masks: identical, except in cases where top-p's cut falls inside a group of equal scores
// (`tie_split`) with more than 16 tokens: torch.sort is unstable there, so only the number of
// removed tokens per group is HF's contract; tessera removes the group's lowest ids first (a stable
// sort's order, which is also torch's for up to 16 tokens: those cases compare exactly).
// TESSERA_GOLDEN_VERBOSE=1 prints one line per case.
#include "common/compare.hpp"
#include "common/golden.hpp"

#include <tessera/lm/sampler.hpp>

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace tessera;

nlohmann::json const& manifest() {
  static nlohmann::json const m = [] {
    std::ifstream in(std::string(TESSERA_SOURCE_DIR) + "/tests/golden/sampler_manifest.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return m;
}

test::golden_file const& goldens() {
  static test::golden_file const f("sampler_goldens.safetensors");
  return f;
}

lm::sampling_config config_of(nlohmann::json const& c) {
  lm::sampling_config cfg;
  cfg.do_sample = c.at("do_sample").get<bool>();
  cfg.temperature = static_cast<float>(c.at("temperature").get<double>());
  cfg.top_k = c.at("top_k").get<std::int64_t>();
  cfg.top_p = static_cast<float>(c.at("top_p").get<double>());
  cfg.min_p = static_cast<float>(c.at("min_p").get<double>());
  cfg.repetition_penalty = static_cast<float>(c.at("repetition_penalty").get<double>());
  cfg.seed = 7;
  return cfg;
}

bool removed(float v) { return std::isinf(v) && v < 0; }

struct case_result {
  std::int64_t mask_diff = 0;  // tokens removed by one side only
  double max_abs = 0;          // over the tokens both keep
  std::int64_t not_bitwise = 0;
  std::int64_t kept = 0;
};

}  // namespace

TEST_CASE("golden: sampler::process matches HF generate()'s processed scores", "[golden][text]") {
  auto const& cases = manifest().at("cases");
  REQUIRE(manifest().at("versions").at("transformers").get<std::string>() == "4.46.3");
  REQUIRE(cases.size() >= 20);
  std::int64_t n_checked = 0, n_exact_masks = 0, n_tie_split = 0;
  double worst_abs = 0;
  for (auto const& [name, info] : cases.items()) {
    INFO("case " << name);
    auto const vocab = info.at("vocab").get<std::int64_t>();
    auto const cfg = config_of(info.at("config"));
    bool const tie_split = info.at("tie_split").get<bool>();
    auto const logits = goldens().get<float>(name + ".logits");
    auto const history = goldens().get<std::int32_t>(name + ".history");
    auto const want = goldens().get<float>(name + ".scores");
    REQUIRE(static_cast<std::int64_t>(logits.size()) == vocab);
    REQUIRE(want.size() == logits.size());

    lm::sampler s(cfg, vocab);
    std::vector<float> got = logits;
    s.process(got, history);

    case_result r;
    std::vector<float> got_kept, want_kept;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (removed(got[i]) != removed(want[i])) {
        ++r.mask_diff;
        continue;
      }
      if (removed(got[i])) continue;
      ++r.kept;
      got_kept.push_back(got[i]);
      want_kept.push_back(want[i]);
      r.max_abs = std::max(r.max_abs, std::fabs(static_cast<double>(got[i]) - want[i]));
      if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i])) ++r.not_bitwise;
    }
    auto const cmp = test::compare(got_kept, want_kept, test::tol<float>::vs_golden);
    if (test::golden_verbose())
      std::cout << "[golden] sampler " << name << ": kept " << r.kept << "/" << vocab << ", mask differences "
                << r.mask_diff << (tie_split ? " (tie_split)" : "") << ", max abs " << r.max_abs
                << ", not bit-equal " << r.not_bitwise << "\n";
    INFO(cmp.report());
    REQUIRE(cmp.ok);
    CHECK(r.not_bitwise == 0);
    worst_abs = std::max(worst_abs, r.max_abs);
    ++n_checked;

    if (!tie_split || vocab <= 16) {
      REQUIRE(r.mask_diff == 0);
      ++n_exact_masks;
    } else {
      // Equal scores before the filtering warpers form the groups: the same sampler without top-k,
      // top-p and min-p gives those scores (top-k and min-p never split a group).
      ++n_tie_split;
      lm::sampling_config plain = cfg;
      plain.top_k = 0;
      plain.top_p = 1.0f;
      plain.min_p = 0.0f;
      std::vector<float> pre = logits;
      lm::sampler(plain, vocab).process(pre, history);
      std::map<float, std::vector<std::size_t>> groups;
      for (std::size_t i = 0; i < pre.size(); ++i)
        if (!removed(pre[i])) groups[pre[i]].push_back(i);
      for (auto const& [value, ids] : groups) {
        INFO("group of score " << value << " (" << ids.size() << " tokens)");
        std::size_t n_got = 0, n_want = 0;
        for (std::size_t const i : ids) {
          n_got += removed(got[i]) ? 1 : 0;
          n_want += removed(want[i]) ? 1 : 0;
        }
        REQUIRE(n_got == n_want);
        for (std::size_t j = 0; j < ids.size(); ++j)  // tessera's rule: the lowest ids go first
          REQUIRE(removed(got[ids[j]]) == (j < n_got));
      }
    }

    if (!cfg.do_sample) {
      std::vector<float> again = logits;
      auto const want_token = goldens().get<std::int32_t>(name + ".greedy");
      REQUIRE(want_token.size() == 1);
      CHECK(s.sample(again, history) == want_token[0]);
    } else if (!tie_split || vocab <= 16) {
      // A draw lands on a token HF keeps too (with a split group, HF keeps other members of it).
      std::vector<float> again = logits;
      text::token_id const t = s.sample(again, history);
      CHECK(!removed(want[static_cast<std::size_t>(t)]));
    }
  }
  if (test::golden_verbose())
    std::cout << "[golden] sampler: " << n_checked << " cases, " << n_exact_masks << " with identical masks, "
              << n_tie_split << " tie_split cases compared per group, max abs error " << worst_abs << "\n";
}

