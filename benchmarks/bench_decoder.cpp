// SPDX-License-Identifier: Apache-2.0
// bench_decoder: lm::qwen2_decoder with random weights at the real Qwen2.5-0.5B and Qwen2.5-1.5B
// shapes (and Qwen2.5-7B, POINTS1.5-7B's LLM, when --filter names it), built in memory (no
// download), with bf16 weights and with 8-bit and 4-bit linear layers (--weights): prefill
// tokens/s for a 512-token prompt, decode tokens/s at context 128 and 2048 (one token per step,
// greedy pick included), against the decode roofline of this machine measured in the same run
// (weight bytes actually read per token / DRAM read bandwidth). Headline tokens/s are medians
// (the fastest run is reported beside them). Prints a table and writes JSON (--json PATH);
// scripts/bench_decoder.sh runs the same shapes in PyTorch next to it.
//   bench_decoder [--quick] [--threads N] [--json PATH] [--filter TEXT] [--kv f32|bf16] [--steps N]
//                 [--weights bf16,q8,q4] [--lm-head q8|q4] [--model DIR]
// --quick: a tiny model, short runs (the CI smoke test; its numbers are not measurements).
// --lm-head: quantize the LM head too, in this format (default: bf16).
// --model DIR: a Qwen2 checkpoint directory instead of the random shapes (bf16 weights are
//   mmapped, others converted; --weights q8 / q4 quantize on load), e.g. the random checkpoint
//   tools/bench/random_qwen2_checkpoint.py writes, which llama.cpp can convert too.
#include <tessera/tessera.hpp>

#include "bench_common.hpp"
#include "common/random_decoder.hpp"

#include <nlohmann/json.hpp>

#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

using namespace tessera;

namespace {

struct model_shape {
  std::string name;
  lm::decoder_config config;
  std::filesystem::path dir;  ///< a checkpoint directory, or empty: random weights
};

/// Qwen2.5-0.5B and -1.5B as their config.json files give them (spec section 4.4).
std::vector<model_shape> model_shapes(bool quick) {
  if (quick) return {{"tiny", test::qwen2_config_of(1000, 128, 2, 2, 1, 256, true), {}}};
  return {{"Qwen2.5-0.5B", test::qwen2_config_of(151936, 896, 24, 14, 2, 4864, true), {}},
          {"Qwen2.5-1.5B", test::qwen2_config_of(151936, 1536, 28, 12, 2, 8960, true), {}},
          {"Qwen2.5-7B", test::qwen2_config_of(152064, 3584, 28, 28, 4, 18944, false), {}}};
}

struct options {
  bool quick = false;
  int threads = backend::default_threads();
  std::string json_path = "bench_decoder.json";
  std::string filter;
  bool bf16_cache = true;
  int steps = 32;
  std::vector<quant::weight_format> formats{quant::weight_format::dense, quant::weight_format::q8,
                                            quant::weight_format::q4};
  quant::weight_format lm_head = quant::weight_format::dense;
  std::filesystem::path model_dir;
};

std::vector<text::token_id> prompt_ids(index_t n, index_t vocab) {
  std::vector<text::token_id> ids(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    ids[static_cast<std::size_t>(i)] = static_cast<text::token_id>(test::hash64(99, static_cast<std::uint64_t>(i)) %
                                                                   static_cast<std::uint64_t>(vocab));
  return ids;
}

template <class KV>
void fill_random(lm::kv_cache<KV>& cache, std::uint64_t seed) {
  for (index_t l = 0; l < cache.n_layers(); ++l)
    for (auto v : {cache.keys(l), cache.values(l)}) {
      auto const r = test::random_buffer<KV>(v.size(), seed + static_cast<std::uint64_t>(l), 1.0f);
      std::copy_n(r.data(), v.size(), v.data());
    }
}

/// One model: the correctness check, prefill 512, decode at the given contexts.
template <class KV>
nlohmann::json bench_model(model_shape const& m, quant::weight_format format, options const& o,
                           std::function<double()> const& probe_dram, double fma_gflops) {
  lm::decoder_config const& c = m.config;
  bool const big = c.d_model >= 3584;  // the 7B shape
  auto const t0 = bench::clock_type::now();
  // Quantized formats draw each layer's bf16 weights, quantize them and drop them (the 7B shape's
  // 15 GB of bf16 never exist at once); the same seed draws the same weights in every format.
  std::optional<test::random_decoder<bf16>> rd;
  if (m.dir.empty()) rd.emplace(test::make_random_decoder<bf16>(c, 2024, 0.02f, false, format));
  // The decoder on `Backend` with these options, over the random weights or the checkpoint.
  auto const make = [&]<class Backend>(lm::decoder_options opt) {
    opt.quantize.lm_head = o.lm_head;
    if (rd) return lm::qwen2_decoder<Backend, bf16>(c, rd->hf, opt);
    opt.quantize.format = format;
    return model::load_qwen2_decoder<Backend, bf16>(m.dir, io::dtype_policy::convert, opt).decoder;
  };
  auto const dec = make.template operator()<backend::cpu>({});
  double const build_s = std::chrono::duration<double>(bench::clock_type::now() - t0).count();
  exec_ctx<backend::cpu> ctx(o.threads);
  index_t const vocab = c.vocab_size;
  std::string const wname = bench::weights_name(format);
  std::printf("%s, %s linear layers, LM head %s: d_model %ld, %ld layers, %ld/%ld heads of %ld, d_ff %ld, vocab %ld: "
              "%.2f GB of weights read per token (%s in %.1f s)\n",
              m.name.c_str(), wname.c_str(), bench::weights_name(o.lm_head).c_str(), static_cast<long>(c.d_model), static_cast<long>(c.n_layers),
              static_cast<long>(c.n_heads), static_cast<long>(c.n_kv_heads), static_cast<long>(c.head_dim),
              static_cast<long>(c.d_ff), static_cast<long>(vocab), static_cast<double>(dec.decode_weight_bytes()) * 1e-9,
              m.dir.empty() ? "built" : "loaded", build_s);

  nlohmann::json j;
  j["model"] = m.name;
  j["weights"] = wname;
  j["lm_head"] = bench::weights_name(o.lm_head);
  if (!m.dir.empty()) j["checkpoint"] = m.dir.string();
  j["config"] = {{"d_model", c.d_model}, {"n_layers", c.n_layers}, {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads},
                 {"head_dim", c.head_dim}, {"d_ff", c.d_ff}, {"vocab", vocab}, {"tied", c.tie_word_embeddings}};
  j["weight_bytes_per_token"] = dec.decode_weight_bytes();

  // Check once: a 4-token prompt's last-token logits, cpu against the reference backend: with f32
  // products and an f32 cache (the same arithmetic: NMSE ~1e-12), and as timed, with bf16 products
  // and the benchmark's cache. Rounding to bf16 (of activations before a product, of k / v in a
  // bf16 cache) turns a last-bit difference upstream into a 2^-9 relative step now and then; over
  // 24 / 28 random layers that leaves an NMSE of 4.8e-5 (0.5B) and 1.1e-4 (1.5B) on the
  // development machine, so the budget is 1e-3 (tol<bf16>'s 1e-4, widened for that reason).
  if (!big) {  // (the 7B shape: the reference backend's 7.6 G multiply-adds per token take minutes)
    auto const ids = prompt_ids(4, vocab);
    std::vector<index_t> const slot{0};
    auto check = [&]<class CacheT>(nn::product_precision p, CacheT) {
      lm::decoder_options const opt{p};
      auto const fast = make.template operator()<backend::cpu>(opt);
      auto const ref = make.template operator()<backend::reference>(opt);
      exec_ctx<backend::reference> rctx;
      std::vector<float> a(static_cast<std::size_t>(vocab)), b(a.size());
      lm::kv_cache<CacheT> ca(dec.cache_shape(1, 8)), cb(dec.cache_shape(1, 8));
      fast.run(ids, seq_offsets::single(4), slot, ca, tensor_view<float, 2>(a.data(), {1, vocab}), ctx);
      ref.run(ids, seq_offsets::single(4), slot, cb, tensor_view<float, 2>(b.data(), {1, vocab}), rctx);
      return bench::nmse(a.data(), b.data(), a.size());
    };
    // A 4-token prompt takes the decode kernels, which with quantized weights quantize x as well
    // (backend/cpu/qgemm.hpp): int16 per row for q8 (measured 4e-8 at 0.5B), int8 per group of 32
    // for q4 (6.5e-4 at 0.5B, against the format's own 0.1 in the golden tests): budgets 1e-6 and
    // 3e-3 there instead of 1e-8.
    double const budget32 = format == quant::weight_format::dense ? 1e-8 : format == quant::weight_format::q8 ? 1e-6 : 3e-3;
    double const e32 = check(nn::product_precision::f32, 0.0f), e16 = check(nn::product_precision::bf16, KV{});
    bool const ok = e32 <= budget32 && e16 <= 1e-3 + budget32;
    j["check_nmse_vs_reference"] = {{"f32_products_f32_cache", e32}, {"bf16_products", e16}};
    j["checked"] = ok;
    std::printf("  check: last-token logits of a 4-token prompt, cpu vs reference NMSE %.1e (f32 products and cache, "
                "<= %.0e), %.1e (bf16 products, <= %.1e): %s\n", e32, budget32, e16, 1e-3 + budget32, ok ? "ok" : "FAILED");
  }

  // Prefill: a 512-token prompt into an empty cache, logits of its last token.
  index_t const n_prefill = o.quick ? 64 : 512;
  {
    auto const ids = prompt_ids(n_prefill, vocab);
    lm::kv_cache<KV> cache(dec.cache_shape(1, n_prefill));
    std::vector<float> logits(static_cast<std::size_t>(vocab));
    std::vector<index_t> const slot{0};
    auto const t = bench::time_it(
        [&](int) {
          cache.reset(0);
          dec.run(ids, seq_offsets::single(n_prefill), slot, cache, tensor_view<float, 2>(logits.data(), {1, vocab}), ctx);
        },
        o.quick ? 2 : (big ? 1 : 3), o.quick || big ? 0.0 : 2.0);
    double const tps = static_cast<double>(n_prefill) / t.median_s, tps_best = static_cast<double>(n_prefill) / t.min_s;
    // Matmul flops of the prompt (the LM head once, for the last token) + causal attention.
    double const per_tok = 2.0 * static_cast<double>(c.n_layers) *
                           static_cast<double>(c.d_model * (2 * c.q_dim() + 2 * c.kv_dim() + 3 * c.d_ff));
    double const attn = 2.0 * 2.0 * c.n_layers * c.q_dim() * (n_prefill * (n_prefill + 1) / 2.0);
    double const gflops = (per_tok * n_prefill + 2.0 * vocab * c.d_model + attn) / t.median_s * 1e-9;
    // The compute roofline: these flops at the FMA peak measured in this run.
    double const roof_tps = tps * fma_gflops / gflops;
    std::printf("  prefill %ld tokens: %.3f s median, %.3f s min (%d runs): %.1f tokens/s (median; best %.1f), %.1f "
                "GFLOP/s = %.0f%% of the FMA peak (roofline %.1f tokens/s)\n",
                static_cast<long>(n_prefill), t.median_s, t.min_s, t.reps, tps, tps_best, gflops,
                100.0 * gflops / fma_gflops, roof_tps);
    j["prefill"] = {{"tokens", n_prefill}, {"min_s", t.min_s}, {"median_s", t.median_s}, {"reps", t.reps},
                    {"tokens_per_s", tps}, {"best_tokens_per_s", tps_best}, {"gflops", gflops},
                    {"fraction_of_fma_peak", gflops / fma_gflops}, {"roofline_tokens_per_s", roof_tps}};
  }

  // Decode: one token per step at a fixed context; each step = forward + LM head + greedy pick.
  std::vector<index_t> const contexts = o.quick ? std::vector<index_t>{16} : std::vector<index_t>{128, 2048};
  for (index_t ctx_len : contexts) {
    lm::kv_cache<KV> cache(dec.cache_shape(1, ctx_len));
    std::vector<index_t> const slot{0};
    std::vector<float> logits(static_cast<std::size_t>(vocab));
    tensor_view<float, 2> const out(logits.data(), {1, vocab});
    std::string how;
    if (ctx_len <= 512) {  // a real prompt: the cache holds what the model computed
      auto const ids = prompt_ids(ctx_len - 1, vocab);
      dec.run(ids, seq_offsets::single(ctx_len - 1), slot, cache, out, ctx);
      how = "prefilled by the model";
    } else {  // decode time does not depend on the cached values: random ones stand in for a long prefill
      fill_random(cache, 7);
      cache.set_length(0, ctx_len - 1);
      how = "random keys / values";
    }
    text::token_id next = 1;
    // The VM's memory bandwidth drifts by tens of percent over minutes: the roof is probed right
    // before and right after the steps, and the higher of the two counts.
    double const dram_before = probe_dram();
    auto const t = bench::time_it(
        [&](int) {
          cache.truncate(0, ctx_len - 1);
          dec.run(std::span(&next, 1), seq_offsets::single(1), slot, cache, out, ctx);
          next = static_cast<text::token_id>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        },
        o.steps, o.quick ? 0.0 : 2.0);
    double const dram_after = probe_dram(), dram_gbps = std::max(dram_before, dram_after);
    double const kv_bytes = 2.0 * c.n_layers * ctx_len * c.kv_dim() * sizeof(KV);
    double const w_bytes = static_cast<double>(dec.decode_weight_bytes());
    double const roof_w = dram_gbps * 1e9 / w_bytes, roof_wkv = dram_gbps * 1e9 / (w_bytes + kv_bytes);
    double const tps = 1.0 / t.median_s, tps_best = 1.0 / t.min_s;
    std::printf("  decode at context %ld (%s): %.2f ms median, %.2f ms min (%d steps): %.1f tokens/s (median; best "
                "%.1f); DRAM %.1f / %.1f GB/s before / after: roofline %.1f tokens/s (weights) / %.1f (weights + KV): "
                "%.0f%% / %.0f%%\n",
                static_cast<long>(ctx_len), how.c_str(), t.median_s * 1e3, t.min_s * 1e3, t.reps, tps, tps_best,
                dram_before, dram_after, roof_w, roof_wkv, 100.0 * tps / roof_w, 100.0 * tps / roof_wkv);
    j["decode"].push_back({{"context", ctx_len}, {"cache", how}, {"min_ms", t.min_s * 1e3},
                           {"median_ms", t.median_s * 1e3}, {"steps", t.reps}, {"tokens_per_s", tps},
                           {"best_tokens_per_s", tps_best}, {"kv_bytes_per_token", kv_bytes},
                           {"dram_read_gbps_before", dram_before}, {"dram_read_gbps_after", dram_after},
                           {"roofline_weights_tokens_per_s", roof_w}, {"roofline_weights_kv_tokens_per_s", roof_wkv},
                           {"fraction_of_roofline_weights", tps / roof_w},
                           {"fraction_of_roofline_weights_kv", tps / roof_wkv}});
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    if (a == "--quick") o.quick = true;
    else if (a == "--threads" && i + 1 < argc) o.threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) o.json_path = argv[++i];
    else if (a == "--filter" && i + 1 < argc) o.filter = argv[++i];
    else if (a == "--steps" && i + 1 < argc) o.steps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--kv" && i + 1 < argc) o.bf16_cache = std::string(argv[++i]) != "f32";
    else if (a == "--model" && i + 1 < argc) o.model_dir = argv[++i];
    else if (a == "--lm-head" && i + 1 < argc) {
      std::string const w = argv[++i];
      auto const f = bench::parse_weights(w);
      if (!f) {
        std::fprintf(stderr, "bench_decoder: --lm-head takes bf16, q8 or q4; got '%s'\n", w.c_str());
        return 2;
      }
      o.lm_head = *f;
    }
    else if (a == "--weights" && i + 1 < argc) {
      o.formats.clear();
      std::string const list = argv[++i];
      for (std::size_t p = 0; p <= list.size();) {
        std::size_t const e = std::min(list.find(',', p), list.size());
        std::string const w = list.substr(p, e - p);
        auto const f = bench::parse_weights(w);
        if (!f) {
          std::fprintf(stderr, "bench_decoder: --weights takes a comma-separated list of bf16, q8, q4; got '%s'\n",
                       w.c_str());
          return 2;
        }
        o.formats.push_back(*f);
        p = e + 1;
      }
    } else {
      std::fprintf(stderr, "usage: bench_decoder [--quick] [--threads N] [--json PATH] [--filter TEXT] [--kv f32|bf16] "
                           "[--steps N] [--weights bf16,q8,q4] [--lm-head q8|q4] [--model DIR]\n");
      return 2;
    }
  }
  if (o.quick) o.steps = std::min(o.steps, 4);
  std::size_t const llc = bench::llc_bytes();
  std::printf("bench_decoder: %d threads, SIMD arch %s (%s, %zu-bit vectors), KV cache %s%s\n", o.threads,
              TESSERA_SIMD_ARCH_NAME, xsimd::default_arch::name(), xsimd::batch<float>::size * 32,
              o.bf16_cache ? "bf16" : "f32", o.quick ? ", quick mode (not a measurement)" : "");
  double const fma = bench::probe_fma_gflops(o.threads, o.quick ? 2'000'000 : 20'000'000);
  std::size_t const probe_bytes = o.quick ? (std::size_t{64} << 20) : std::max<std::size_t>(std::size_t{1} << 30, 2 * llc);
  auto const probe_dram = [&] { return bench::probe_dram_gbps(o.threads, probe_bytes); };
  double const dram = probe_dram();
  std::printf("roofs (same run): f32 FMA peak %.1f GFLOP/s, DRAM read bandwidth %.1f GB/s (probed again around each "
              "decode case)\n\n", fma, dram);

  nlohmann::json j;
  j["machine"] = {{"threads", o.threads}, {"simd_arch", TESSERA_SIMD_ARCH_NAME},
                  {"xsimd_arch", xsimd::default_arch::name()}, {"vector_bits", xsimd::batch<float>::size * 32},
                  {"llc_bytes", llc}, {"quick", o.quick}};
  j["kv_cache"] = o.bf16_cache ? "bf16" : "f32";
  j["dram_read_gbps"] = dram;
  j["fma_peak_gflops"] = fma;
  bool ok = true;
  std::vector<model_shape> shapes = model_shapes(o.quick);
  if (!o.model_dir.empty()) {
    try {
      shapes = {{o.model_dir.filename().string(), model::read_qwen2_config(o.model_dir).decoder, o.model_dir}};
    } catch (tessera::error const& e) {
      std::fprintf(stderr, "bench_decoder: %s\n", e.what());
      return 1;
    }
  }
  for (model_shape const& m : shapes) {
    // The 7B shape runs only when asked for by name (--filter 7B): minutes per format.
    if (m.dir.empty() && (o.filter.empty() ? m.name == "Qwen2.5-7B" : m.name.find(o.filter) == std::string::npos))
      continue;
    for (quant::weight_format f : o.formats) {
      nlohmann::json r = o.bf16_cache ? bench_model<bf16>(m, f, o, probe_dram, fma)
                                      : bench_model<float>(m, f, o, probe_dram, fma);
      ok = ok && (!r.contains("checked") || r["checked"].get<bool>());
      j["models"].push_back(r);
      std::printf("\n");
    }
  }
  // The decoder issue's targets, from this run (absolute tokens/s depend on the machine; the
  // roofline fractions do not).
  if (!o.quick && j.contains("models")) {
    nlohmann::json targets = nlohmann::json::array();
    std::printf("targets:\n");
    auto target = [&](std::string const& what, double value, double goal) {
      bool const met = value >= goal;
      std::printf("  %-62s %8.3f  (goal >= %g)  %s\n", what.c_str(), value, goal, met ? "met" : "MISSED");
      targets.push_back({{"target", what}, {"value", value}, {"goal", goal}, {"met", met}});
    };
    auto find = [&](std::string const& name, std::string const& w) -> nlohmann::json const* {
      for (auto const& r : j["models"])
        if (r["model"] == name && r["weights"] == w) return &r;
      return nullptr;
    };
    for (auto const& r : j["models"]) {
      std::string const name = r["model"], w = r["weights"];
      double const d128 = r["decode"][0]["tokens_per_s"].get<double>();
      std::string const what = name + " " + w;
      target(what + " decode (context 128) / weight-bandwidth roofline", r["decode"][0]["fraction_of_roofline_weights"], 0.85);
      if (name == "Qwen2.5-0.5B" && w == "bf16") target(what + " prefill 512, tokens/s", r["prefill"]["tokens_per_s"], 800);
      if (name == "Qwen2.5-1.5B" && w == "bf16") target(what + " decode (context 128), tokens/s", d128, 15);
      auto const* b = find(name, "bf16");
      if (w != "bf16" && b && r.contains("prefill") && b->contains("prefill"))
        target(what + " prefill / bf16 prefill", r["prefill"]["tokens_per_s"].get<double>() /
                                                     (*b)["prefill"]["tokens_per_s"].get<double>(), 0.9);
    }
    j["targets"] = targets;
  }
  std::ofstream(o.json_path) << j.dump(2) << "\n";
  std::printf("JSON written to %s\n", o.json_path.c_str());
  return ok ? 0 : 1;
}
