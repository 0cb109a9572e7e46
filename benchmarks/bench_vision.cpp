// SPDX-License-Identifier: Apache-2.0
// bench_vision: the vision encoder's kernels at Qwen2-VL ViT shapes (16 heads x head_dim 80).
//   (a) attn::masked_attention f32 over packs of images (4 x 256, 4 x 1024, 2 x 4096 tokens, and a
//       causal pack), q / k / v as column blocks of a fused qkv [n, 3 * 1280] buffer, GFLOP/s;
//   (c) memory at 16k tokens (4 x 4096): scratch-arena high-water and peak-RSS growth during the
//       call, beyond the q / k / v / out buffers allocated before it.
//   (b) a Qwen2-VL-dims encoder (4 blocks of width 1280, random bf16 weights) over a mixed batch,
//       packed varlen, padded to the largest image, and one image at a time (vision_encoder_case.hpp).
// Cases live in a registry (name + function returning JSON records). Prints a table, writes JSON.
//   bench_vision [--quick] [--threads N] [--json PATH] [--filter TEXT]
#include <tessera/attn/masked_attention.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>

#include "bench_common.hpp"
#include "vision_encoder_case.hpp"

#include <nlohmann/json.hpp>
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace tessera;
using clock_type = std::chrono::steady_clock;

namespace {

// ---- shared helpers: options, timing, machine description ------------------------------------

struct bench_options {
  bool quick = false;
  int threads = 1;
  std::string filter;
};

struct timing {
  double min_s = 0, median_s = 0;
  int reps = 0;
};

/// Runs f once to warm up, then at least `reps` timed calls and at least `min_time` seconds.
timing time_it(std::function<void()> const& f, int reps, double min_time) {
  f();
  std::vector<double> t;
  auto const start = clock_type::now();
  while (static_cast<int>(t.size()) < reps ||
         std::chrono::duration<double>(clock_type::now() - start).count() < min_time) {
    auto const a = clock_type::now();
    f();
    t.push_back(std::chrono::duration<double>(clock_type::now() - a).count());
    if (t.size() >= 1000) break;
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2], static_cast<int>(t.size())};
}

/// A field of /proc/self/status in kB (VmRSS, VmHWM), or -1 when unreadable.
long proc_status_kb(char const* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  std::string const key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + key.size());
  return -1;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0: "5" into clear_refs); false when refused.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(gen);
  return v;
}

// ---- (a) masked attention ----------------------------------------------------------------------

constexpr index_t vit_heads = 16, vit_head_dim = 80, vit_embed = vit_heads * vit_head_dim;

/// Packed self-attention inputs: a fused qkv [n, 3 * E] buffer (as the ViT's qkv projection
/// writes it) with q, k, v as strided views, and a contiguous out.
struct attention_inputs {
  seq_offsets seqs;
  std::vector<float> qkv, out;
  explicit attention_inputs(std::vector<std::int64_t> const& lens)
      : seqs(seq_offsets::from_lengths(lens)),
        qkv(random_values(static_cast<std::size_t>(seqs.n_tokens() * 3 * vit_embed), 11)),
        out(static_cast<std::size_t>(seqs.n_tokens() * vit_embed)) {}
  [[nodiscard]] tensor_view<float const, 3> part(index_t i) const {
    return {qkv.data() + i * vit_embed, {seqs.n_tokens(), vit_heads, vit_head_dim}, {3 * vit_embed, vit_head_dim, 1}};
  }
  [[nodiscard]] tensor_view<float, 3> out_view() { return {out.data(), {seqs.n_tokens(), vit_heads, vit_head_dim}}; }
};

/// FLOPs of attention: 4 * heads * head_dim per visible (query, key) pair (QK^T and PV).
double attention_flops(seq_offsets const& seqs, bool causal) {
  double pairs = 0;
  for (index_t s = 0; s < seqs.n_seqs(); ++s) {
    auto const n = static_cast<double>(seqs.length(s));
    pairs += causal ? n * (n + 1) / 2 : n * n;
  }
  return 4.0 * vit_heads * vit_head_dim * pairs;
}

/// Checks the cpu result once against the reference backend on a subset of the queries: per
/// image, 6 query tokens (all heads) attend to all of the image's keys; causal takes the image's
/// last 6 tokens (the bottom-right-aligned rule then gives them exactly their causal keys),
/// non-causal 6 tokens spread over the image. (The full reference over 4096-token images would
/// take minutes.) Budget: tol vs reference of the tests, |got - want| <= 1e-5 + 1e-5 |want|.
bool check_vs_reference(attention_inputs const& in, bool causal) {
  constexpr index_t per_image = 6;
  std::vector<index_t> tokens;
  std::vector<std::int64_t> q_lens;
  for (index_t s = 0; s < in.seqs.n_seqs(); ++s) {
    index_t const b = in.seqs.begin(s), n = in.seqs.length(s), m = std::min(per_image, n);
    for (index_t i = 0; i < m; ++i) tokens.push_back(causal ? b + n - m + i : b + (n - 1) * i / std::max<index_t>(m - 1, 1));
    q_lens.push_back(m);
  }
  auto const n_sub = static_cast<index_t>(tokens.size());
  std::vector<float> q_sub(static_cast<std::size_t>(n_sub * vit_embed)), want(q_sub.size());
  auto const q = in.part(0);
  for (index_t i = 0; i < n_sub; ++i)
    for (index_t h = 0; h < vit_heads; ++h)
      for (index_t d = 0; d < vit_head_dim; ++d)
        q_sub[static_cast<std::size_t>((i * vit_heads + h) * vit_head_dim + d)] = q(tokens[static_cast<std::size_t>(i)], h, d);
  exec_ctx<backend::reference> ref;
  attn::masked_attention<backend::reference>(tensor_view<float const, 3>(q_sub.data(), {n_sub, vit_heads, vit_head_dim}),
                                             in.part(1), in.part(2), seq_offsets::from_lengths(q_lens), in.seqs,
                                             tensor_view<float, 3>(want.data(), {n_sub, vit_heads, vit_head_dim}), ref,
                                             {causal, 0.0f});
  for (index_t i = 0; i < n_sub; ++i)
    for (index_t c = 0; c < vit_embed; ++c) {
      double const w = want[static_cast<std::size_t>(i * vit_embed + c)];
      double const got = in.out[static_cast<std::size_t>(tokens[static_cast<std::size_t>(i)] * vit_embed + c)];
      if (!(std::fabs(got - w) <= 1e-5 + 1e-5 * std::fabs(w))) {
        std::fprintf(stderr, "check vs reference failed at token %ld, element %ld: got %g want %g\n",
                     static_cast<long>(tokens[static_cast<std::size_t>(i)]), static_cast<long>(c), got, w);
        return false;
      }
    }
  return true;
}

std::string pack_name(std::vector<std::int64_t> const& lens) {
  std::string s = std::to_string(lens.size()) + "x" + std::to_string(lens.front());
  return s;
}

nlohmann::json bench_attention_pack(bench_options const& o, std::vector<std::int64_t> const& lens, bool causal) {
  attention_inputs in(lens);
  exec_ctx<backend::cpu> ctx(o.threads);
  attn::attention_options const opt{causal, 0.0f};
  auto call = [&] { attn::masked_attention<backend::cpu>(in.part(0), in.part(1), in.part(2), in.seqs, in.out_view(), ctx, opt); };
  call();
  bool const checked = check_vs_reference(in, causal);
  double const load_before = bench::load_average();
  timing const t = time_it(call, o.quick ? 2 : 7, o.quick ? 0.02 : 1.0);
  double const flops = attention_flops(in.seqs, causal);
  std::string const name = "attn_f32_h16_d80_" + pack_name(lens) + (causal ? "_causal" : "");
  std::printf("%-34s %8ld %9.3f %9.3f %9.1f %9.1f %6d %6.2f  %s\n", name.c_str(), static_cast<long>(in.seqs.n_tokens()),
              t.min_s * 1e3, t.median_s * 1e3, flops / t.min_s * 1e-9, flops / t.median_s * 1e-9, t.reps, load_before,
              checked ? "ok" : "FAILED");
  return {{"name", name},
          {"kind", "attention"},
          {"tokens", in.seqs.n_tokens()},
          {"images", lens.size()},
          {"tokens_per_image", lens.front()},
          {"heads", vit_heads},
          {"head_dim", vit_head_dim},
          {"causal", causal},
          {"layout", "q/k/v strided views of a fused qkv [n, 3*1280] buffer"},
          {"flops", flops},
          {"min_ms", t.min_s * 1e3},
          {"median_ms", t.median_s * 1e3},
          {"reps", t.reps},
          {"gflops_at_min", flops / t.min_s * 1e-9},
          {"gflops_at_median", flops / t.median_s * 1e-9},
          {"workspace_bytes", ctx.scratch().capacity()},
          {"load_average_1min", load_before},
          {"checked", checked}};
}

std::vector<nlohmann::json> case_attention(bench_options const& o) {
  std::printf("%-34s %8s %9s %9s %9s %9s %6s %6s  %s\n", "case", "tokens", "min ms", "med ms", "GF/s@min", "GF/s@med",
              "reps", "load", "check");
  std::vector<nlohmann::json> r;
  if (o.quick) {
    r.push_back(bench_attention_pack(o, {256, 256}, false));
    r.push_back(bench_attention_pack(o, {256}, true));
    return r;
  }
  r.push_back(bench_attention_pack(o, {256, 256, 256, 256}, false));
  r.push_back(bench_attention_pack(o, {1024, 1024, 1024, 1024}, false));
  r.push_back(bench_attention_pack(o, {4096, 4096}, false));
  r.push_back(bench_attention_pack(o, {1024, 1024, 1024, 1024}, true));
  return r;
}

// ---- (c) memory ----------------------------------------------------------------------------------

std::vector<nlohmann::json> case_attention_memory(bench_options const& o) {
  std::vector<std::int64_t> const lens = o.quick ? std::vector<std::int64_t>{1024, 1024}
                                                 : std::vector<std::int64_t>{4096, 4096, 4096, 4096};
  attention_inputs in(lens);   // q / k / v / out allocated and touched before the measurement
  std::fill(in.out.begin(), in.out.end(), 0.0f);
  bool const reset = reset_peak_rss();
  long const hwm_before = proc_status_kb("VmHWM"), rss_before = proc_status_kb("VmRSS");
  exec_ctx<backend::cpu> ctx(o.threads);   // fresh arena: its capacity is this call's high-water
  attn::masked_attention<backend::cpu>(in.part(0), in.part(1), in.part(2), in.seqs, in.out_view(), ctx);
  long const hwm_after = proc_status_kb("VmHWM");
  double const io_mb = static_cast<double>((in.qkv.size() + in.out.size()) * sizeof(float)) / (1 << 20);
  double const scratch_mb = static_cast<double>(ctx.scratch().capacity()) / (1 << 20);
  double const growth_mb = hwm_before >= 0 && hwm_after >= 0 ? static_cast<double>(hwm_after - hwm_before) / 1024 : -1;
  bool const met = scratch_mb < 64 && growth_mb < 64;
  std::printf("\nmemory, %ld tokens (%s): q/k/v/out %.1f MiB; scratch high-water %.3f MiB; peak RSS growth %.3f MiB "
              "(VmHWM %ld -> %ld kB, VmRSS before %ld kB, peak reset %s); goal < 64 MiB: %s\n",
              static_cast<long>(in.seqs.n_tokens()), pack_name(lens).c_str(), io_mb, scratch_mb, growth_mb, hwm_before,
              hwm_after, rss_before, reset ? "yes" : "no", met ? "met" : "MISSED");
  return {{{"name", "attn_memory_" + pack_name(lens)},
           {"kind", "memory"},
           {"tokens", in.seqs.n_tokens()},
           {"qkv_out_bytes", (in.qkv.size() + in.out.size()) * sizeof(float)},
           {"scratch_high_water_bytes", ctx.scratch().capacity()},
           {"peak_rss_growth_kb", hwm_after - hwm_before},
           {"vmhwm_before_kb", hwm_before},
           {"vmhwm_after_kb", hwm_after},
           {"peak_reset", reset},
           {"goal_mb", 64},
           {"met", met}}};
}

// ---- registry ------------------------------------------------------------------------------------

struct bench_case {
  char const* name;
  char const* what;
  std::function<std::vector<nlohmann::json>(bench_options const&)> run;
};

std::vector<bench_case> const& registry() {
  static std::vector<bench_case> const cases{
      {"attention_memory", "(c) masked attention workspace and peak RSS at 16k tokens", case_attention_memory},
      {"attention", "(a) masked attention f32, 16 heads x 80, packs of images", case_attention},
      {"encoder", "(b) Qwen2-VL-dims encoder: packed vs padded vs one image at a time",
       [](bench_options const& o) {
         nlohmann::json rec = bench::run_encoder_bench(o.quick, o.threads, o.quick ? 0.0 : 2.0);
         // bf16 products: both backends round activations to bf16, so a last-bit difference can
         // flip a rounding (the bf16 budget of the style guide, 1.6e-2 relative).
         rec["checked"] = rec["check"]["max_rel_diff_vs_reference_1_block"].get<double>() <= 1.6e-2 &&
                          rec["check"]["max_diff_padded_keyskip_vs_packed"].get<double>() <=
                              1e-3 * std::max(1.0, rec["check"]["max_abs_output"].get<double>()) &&
                          rec["check"]["max_diff_single_vs_packed"].get<double>() <=
                              1e-3 * std::max(1.0, rec["check"]["max_abs_output"].get<double>());
         return std::vector<nlohmann::json>{rec};
       }},
  };
  return cases;
}

}  // namespace

int main(int argc, char** argv) {
  bench_options o;
  o.threads = backend::default_threads();
  std::string json_path = "bench_vision.json";
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    if (a == "--quick") o.quick = true;
    else if (a == "--threads" && i + 1 < argc) o.threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--filter" && i + 1 < argc) o.filter = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_vision [--quick] [--threads N] [--json PATH] [--filter TEXT]\n");
      return 2;
    }
  }
  std::printf("bench_vision: %d threads, SIMD arch %s (%s, %zu-bit vectors), load average %.2f (1 min, includes this run)%s\n\n", o.threads,
              TESSERA_SIMD_ARCH_NAME, xsimd::default_arch::name(), xsimd::batch<float>::size * 32, bench::load_average(),
              o.quick ? ", quick mode (smoke test: timings are not measurements)" : "");
  nlohmann::json j;
  j["machine"] = {{"threads", o.threads},
                  {"simd_arch", TESSERA_SIMD_ARCH_NAME},
                  {"xsimd_arch", xsimd::default_arch::name()},
                  {"vector_bits", xsimd::batch<float>::size * 32},
                  {"load_average_1min", bench::load_average()},
                  {"quick", o.quick}};
  j["cases"] = nlohmann::json::array();
  bool ok = true;
  for (auto const& c : registry()) {
    if (!o.filter.empty() && std::string(c.name).find(o.filter) == std::string::npos) continue;
    for (auto& rec : c.run(o)) {
      if (rec.contains("checked")) ok = ok && rec["checked"].get<bool>();
      j["cases"].push_back(std::move(rec));
    }
  }
  std::ofstream(json_path) << j.dump(2) << "\n";
  std::printf("\nJSON written to %s\n", json_path.c_str());
  return ok ? 0 : 1;
}
