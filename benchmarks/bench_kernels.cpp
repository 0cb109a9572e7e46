// SPDX-License-Identifier: Apache-2.0
// bench_kernels: nn::linear GEMM / GEMV throughput at the shapes of the Qwen2-VL ViT and the
// Qwen2.5 decoder, against roofs measured in the same run (peak FMA and bf16-dot rates, DRAM read
// bandwidth) and against Eigen's GEMM. Prints a table and writes JSON (--json PATH).
//   bench_kernels [--quick] [--threads N] [--json PATH] [--filter TEXT]
// --filter keeps the cases whose description or shape contains TEXT (e.g. "decode", "K5120").
#include <tessera/tessera.hpp>
#include <tessera/nn/linear.hpp>

#include "bench_common.hpp"

#include <Eigen/Core>
#include <xsimd/xsimd.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace tessera;
using bench::llc_bytes;
using bench::probe_fma_gflops;
using bench::probe_bf16_dot_gflops;
using bench::probe_rate;
using bench::on_threads;
using bench::probe_dram_gbps;
using bench::time_it;
using bench::timing;

namespace {

// ---- roofs ----------------------------------------------------------------------------------------


// ---- GEMM cases --------------------------------------------------------------------------------

struct shape {
  index_t m, k, n;
  char const* what;
};

/// Checks 64 sampled outputs against a double-precision dot product with the same product
/// semantics (x rounded to bf16 for bf16 products).
template <class W>
bool spot_check(std::vector<float> const& x, W const* w, std::vector<float> const& y, shape s, bool bf16_products,
                double rel = 1e-5) {
  std::mt19937 gen(7);
  for (int t = 0; t < 64; ++t) {
    index_t const i = std::uniform_int_distribution<index_t>(0, s.m - 1)(gen);
    index_t const j = std::uniform_int_distribution<index_t>(0, s.n - 1)(gen);
    double acc = 0, mag = 0;
    for (index_t k = 0; k < s.k; ++k) {
      float const xv = bf16_products ? bf16::from_float(x[i * s.k + k]).to_float() : x[i * s.k + k];
      double const p = static_cast<double>(xv) * to_float(w[j * s.k + k]);
      acc += p;
      mag += std::fabs(p);
    }
    double const err = std::fabs(y[i * s.n + j] - acc);
    if (err > rel * mag + 1e-6) {
      std::fprintf(stderr, "spot check failed at (%ld, %ld): got %g want %g\n", static_cast<long>(i), static_cast<long>(j),
                   static_cast<double>(y[i * s.n + j]), acc);
      return false;
    }
  }
  return true;
}

struct case_result {
  std::string name, impl, weights;
  shape s;
  timing t;
  double gflops = 0, gbps = 0;
  bool checked = false;
};

/// Times nn::linear on the cpu backend. With `rotate` (the GEMV cases) the weights rotate through
/// copies as large in total as the DRAM probe's buffer, so that DRAM, not the LLC, serves them.
template <class W>
case_result bench_linear(shape s, int threads, bool rotate, bool quick, std::size_t llc,
                         backend::cpu_detail::bf16_gemm_kernel kernel = backend::cpu_detail::bf16_gemm_kernel::automatic) {
  std::size_t const w_bytes = static_cast<std::size_t>(s.n * s.k) * sizeof(W);
  // The same footprint as the DRAM probe (at least 1 GiB and 2 x LLC), so both see the same cache.
  std::size_t const footprint = std::max<std::size_t>(std::size_t{1} << 30, 2 * llc);
  std::size_t copies = rotate ? std::max<std::size_t>(1, (footprint + w_bytes - 1) / w_bytes) : 1;
  if (quick) copies = std::min<std::size_t>(copies, 2);
  std::mt19937 gen(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(s.m * s.k));
  for (auto& v : x) v = nd(gen);
  std::vector<host_buffer<W>> ws;
  for (std::size_t c = 0; c < copies; ++c) {
    ws.emplace_back(s.n * s.k);
    for (index_t i = 0; i < s.n * s.k; ++i) ws.back()[i] = from_float<W>(nd(gen) * 0.03f);
  }
  std::vector<float> y(static_cast<std::size_t>(s.m * s.n));
  exec_ctx<backend::cpu> ctx(threads);
  auto call = [&](int i) {
    W const* w = ws[static_cast<std::size_t>(i) % copies].data();
    if (kernel == backend::cpu_detail::bf16_gemm_kernel::automatic) {
      nn::linear(tensor_view<float const, 2>(x.data(), {s.m, s.k}), tensor_view<W const, 2>(w, {s.n, s.k}),
                 tensor_view<float, 2>(y.data(), {s.m, s.n}), ctx);
    } else {  // the engine under nn::linear, with an explicit choice of bf16 kernel
      backend::cpu_detail::gemm_args<W, float> const g{s.m, s.n, s.k, x.data(), s.k, w, s.k, nullptr, y.data(), s.n};
      backend::cpu_detail::gemm<backend::cpu::arch>(g, true, ctx, kernel);
    }
  };
  case_result r;
  r.s = s;
  r.impl = "tessera";
  r.weights = std::is_same_v<W, float> ? "f32" : "bf16";
  if (kernel == backend::cpu_detail::bf16_gemm_kernel::dot) r.impl = "tessera-dot";
  call(0);
  r.checked = spot_check(x, ws[0].data(), y, s, nn::default_precision_v<W> == nn::product_precision::bf16);
  r.t = time_it(call, quick ? 3 : 10, quick ? 0.05 : 0.5);
  r.gflops = 2.0 * s.m * s.n * s.k / r.t.min_s * 1e-9;
  r.gbps = static_cast<double>(w_bytes + x.size() * 4 + y.size() * 4) / r.t.min_s * 1e-9;
  return r;
}

/// Times nn::linear with quantized weights (format f, groups of 32) on the cpu backend, the weights
/// rotating through copies as in bench_linear; gbps counts the bytes of the quantized weights and
/// their scales. Checked against a double-precision product with the dequantized weights.
case_result bench_qlinear(shape s, quant::weight_format f, int threads, bool rotate, bool quick, std::size_t llc,
                          backend::cpu_detail::quant_gemv_kernel kernel = backend::cpu_detail::quant_gemv_kernel::automatic) {
  std::mt19937 gen(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(s.m * s.k)), w(static_cast<std::size_t>(s.n * s.k));
  for (auto& v : x) v = nd(gen);
  double const w_bytes = static_cast<double>(s.n) * static_cast<double>(quant::row_bytes(f, s.k) + s.k / 32 * 2);
  std::size_t const footprint = std::max<std::size_t>(std::size_t{1} << 30, 2 * llc);
  std::size_t copies = rotate ? std::max<std::size_t>(1, static_cast<std::size_t>(footprint / w_bytes) + 1) : 1;
  if (quick) copies = std::min<std::size_t>(copies, 2);
  std::vector<quant::quantized_matrix> ws;
  for (std::size_t c = 0; c < copies; ++c) {
    if (c < 2) {  // two distinct draws; further copies repeat them at other addresses
      for (auto& v : w) v = nd(gen) * 0.03f;
      ws.push_back(quant::quantize(tensor_view<float const, 2>(w.data(), {s.n, s.k}), f));
    } else {
      ws.push_back(ws[c % 2]);
    }
  }
  std::vector<float> y(static_cast<std::size_t>(s.m * s.n));
  exec_ctx<backend::cpu> ctx(threads);
  tensor_view<float const, 1> const none(nullptr, {0});
  bool const bf16_products = s.m > 1;  // prefill as the bf16 decoder runs it; decode in f32
  auto call = [&](int i) {
    backend::cpu_detail::qgemm_args<float> const g{s.m, x.data(), s.k, ws[static_cast<std::size_t>(i) % copies].view(),
                                                   nullptr, y.data(), s.n};
    backend::cpu_detail::qgemm<backend::cpu::arch>(g, bf16_products, ctx, kernel);  // nn::linear's engine
  };
  case_result r;
  r.s = s;
  r.impl = kernel == backend::cpu_detail::quant_gemv_kernel::f32 ? "tessera-f32x" : "tessera";
  r.weights = std::string(quant::name_of(f));
  call(0);
  std::vector<float> deq(static_cast<std::size_t>(s.n * s.k));
  for (index_t j = 0; j < s.n; ++j) quant::dequantize_row(ws[0].view(), j, deq.data() + j * s.k);
  // the prefill path rounds the dequantized weights to bf16: compare against those
  if (bf16_products)
    for (auto& v : deq) v = bf16::from_float(v).to_float();
  // Decode quantizes x where the build has the integer kernels (8-bit weights: int16 per row, 4-bit:
  // int8 per group of 32): looser checks.
  bool const integer = s.m <= 4 && kernel != backend::cpu_detail::quant_gemv_kernel::f32 &&
                       (f == quant::weight_format::q8 ? TESSERA_HAVE_Q8_INT_GEMV : TESSERA_HAVE_Q4_INT_GEMV);
  r.checked = spot_check(x, deq.data(), y, s, bf16_products,
                         !integer ? 1e-5 : f == quant::weight_format::q8 ? 1e-4 : 2e-2);
  r.t = time_it(call, quick ? 3 : 10, quick ? 0.05 : 0.5);
  r.gflops = 2.0 * s.m * s.n * s.k / r.t.min_s * 1e-9;
  r.gbps = (w_bytes + static_cast<double>(x.size() * 4 + y.size() * 4)) / r.t.min_s * 1e-9;
  return r;
}

case_result bench_eigen(shape s, int threads, bool quick) {
  using rm = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  rm x = rm::Random(s.m, s.k), w = rm::Random(s.n, s.k) * 0.03f, y(s.m, s.n);
  Eigen::setNbThreads(threads);
  auto call = [&](int) { y.noalias() = x * w.transpose(); };
  case_result r;
  r.s = s;
  r.impl = "eigen";
  r.weights = "f32";
  call(0);
  std::vector<float> xv(x.data(), x.data() + x.size()), yv(y.data(), y.data() + y.size());
  r.checked = spot_check(xv, w.data(), yv, s, false);
  r.t = time_it(call, quick ? 3 : 10, quick ? 0.05 : 0.5);
  r.gflops = 2.0 * s.m * s.n * s.k / r.t.min_s * 1e-9;
  r.gbps = static_cast<double>((s.n * s.k + s.m * s.k + s.m * s.n) * 4) / r.t.min_s * 1e-9;
  return r;
}

std::string shape_name(shape s) {
  return "M" + std::to_string(s.m) + "_K" + std::to_string(s.k) + "_N" + std::to_string(s.n);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int threads = backend::default_threads();
  std::string json_path = "bench_kernels.json";
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_kernels [--quick] [--threads N] [--json PATH] [--filter TEXT]\n");
      return 2;
    }
  }
  std::size_t const llc = llc_bytes();
  std::printf("bench_kernels: %d threads, SIMD arch %s (%s, %zu-bit vectors), bf16 dot %s, LLC %zu MiB%s\n", threads,
              TESSERA_SIMD_ARCH_NAME, xsimd::default_arch::name(), xsimd::batch<float>::size * 32,
              TESSERA_HAVE_AVX512_BF16_DOT ? "yes" : "no", llc >> 20, quick ? ", quick mode" : "");

  double const fma_peak = probe_fma_gflops(threads, quick ? 2'000'000 : 20'000'000);
  double const dot_peak = probe_bf16_dot_gflops(threads, quick ? 2'000'000 : 20'000'000);
  double const dram = probe_dram_gbps(threads, quick ? (std::size_t{256} << 20) : std::max<std::size_t>(std::size_t{1} << 30, 2 * llc));
  std::printf("roofs: f32 FMA peak %.1f GFLOP/s, bf16 dot peak %.1f GFLOP/s, DRAM read %.1f GB/s\n\n", fma_peak, dot_peak,
              dram);

  std::vector<shape> const gemm_shapes{{1024, 1280, 3840, "ViT qkv"},
                                       {1024, 1280, 5120, "ViT fc1"},
                                       {1024, 5120, 1280, "ViT fc2"},
                                       {512, 896, 4864, "Qwen2.5-0.5B prefill up/gate"}};
  std::vector<shape> const gemv_shapes{{1, 896, 4864, "Qwen2.5-0.5B decode up/gate"}, {1, 4864, 896, "Qwen2.5-0.5B decode down"}};

  auto selected = [&](shape s) {
    return filter.empty() || std::string(s.what).find(filter) != std::string::npos ||
           shape_name(s).find(filter) != std::string::npos;
  };
  std::vector<case_result> results;
  for (auto s : gemm_shapes) {
    if (!selected(s)) continue;
    results.push_back(bench_eigen(s, threads, quick));
    results.push_back(bench_linear<float>(s, threads, false, quick, llc));
    results.push_back(bench_linear<bf16>(s, threads, false, quick, llc));
    if (TESSERA_HAVE_AVX512_BF16_DOT)
      results.push_back(bench_linear<bf16>(s, threads, false, quick, llc, backend::cpu_detail::bf16_gemm_kernel::dot));
    if (s.m == 512)  // the decoder's prefill: quantized weights against bf16
      for (auto f : {quant::weight_format::q8, quant::weight_format::q4})
        results.push_back(bench_qlinear(s, f, threads, false, quick, llc));
  }
  for (auto s : gemv_shapes) {
    if (!selected(s)) continue;
    results.push_back(bench_eigen(s, threads, quick));
    results.push_back(bench_linear<float>(s, threads, true, quick, llc));
    results.push_back(bench_linear<bf16>(s, threads, true, quick, llc));
    for (auto f : {quant::weight_format::q8, quant::weight_format::q4})
      results.push_back(bench_qlinear(s, f, threads, true, quick, llc));
    for (auto f : {quant::weight_format::q8, quant::weight_format::q4})  // the f32 kernels the integer ones replace
      if (!quick && (f == quant::weight_format::q8 ? TESSERA_HAVE_Q8_INT_GEMV : TESSERA_HAVE_Q4_INT_GEMV))
        results.push_back(bench_qlinear(s, f, threads, true, quick, llc, backend::cpu_detail::quant_gemv_kernel::f32));
  }

  auto find = [&](shape s, std::string const& impl, std::string const& w) -> case_result const* {
    for (auto const& r : results)
      if (r.s.m == s.m && r.s.k == s.k && r.s.n == s.n && r.impl == impl && r.weights == w) return &r;
    return nullptr;   // filtered out
  };

  std::printf("%-30s %-22s %-8s %-5s %9s %9s %9s %9s %8s %s\n", "case", "shape", "impl", "W", "min ms", "med ms",
              "GFLOP/s", "GB/s", "%roof", "check");
  nlohmann::json j;
  j["machine"] = {{"threads", threads},
                  {"simd_arch", TESSERA_SIMD_ARCH_NAME},
                  {"xsimd_arch", xsimd::default_arch::name()},
                  {"vector_bits", xsimd::batch<float>::size * 32},
                  {"bf16_dot", TESSERA_HAVE_AVX512_BF16_DOT == 1},
                  {"llc_bytes", llc},
                  {"quick", quick}};
  j["roofs"] = {{"fma_peak_gflops", fma_peak}, {"bf16_dot_peak_gflops", dot_peak}, {"dram_read_gbps", dram}};
  bool all_checked = true;
  // Which roof a GEMM row runs against: the bf16 dot peak where it runs vdpbf16ps (tessera-dot;
  // tessera with bf16 or quantized weights where the automatic choice is the dot kernel).
  auto dot_kernel = [&](case_result const& r) {
    return r.impl == "tessera-dot" || (r.impl == "tessera" && r.weights != "f32" && TESSERA_HAVE_AVX512_BF16_DOT &&
                                       backend::cpu_detail::bf16_dot_preferred());
  };
  for (auto const& r : results) {
    bool const gemv = r.s.m == 1;
    double const roof = gemv ? dram : (dot_kernel(r) ? dot_peak : fma_peak);
    double const roof_pct = 100.0 * (gemv ? r.gbps : r.gflops) / roof;
    std::printf("%-30s %-22s %-8s %-5s %9.3f %9.3f %9.1f %9.1f %7.1f%% %s\n", r.s.what, shape_name(r.s).c_str(),
                r.impl.c_str(), r.weights.c_str(), r.t.min_s * 1e3, r.t.median_s * 1e3, r.gflops, r.gbps, roof_pct,
                r.checked ? "ok" : "FAILED");
    all_checked = all_checked && r.checked;
    j["cases"].push_back({{"name", std::string(r.s.what)},
                          {"shape", shape_name(r.s)},
                          {"m", r.s.m}, {"k", r.s.k}, {"n", r.s.n},
                          {"impl", r.impl},
                          {"weights", r.weights},
                          {"min_ms", r.t.min_s * 1e3},
                          {"median_ms", r.t.median_s * 1e3},
                          {"reps", r.t.reps},
                          {"gflops", r.gflops},
                          {"gbps", r.gbps},
                          {"pct_of_roof", roof_pct},
                          {"roof", gemv ? "dram_read_gbps" : (dot_kernel(r) ? "bf16_dot_peak_gflops" : "fma_peak_gflops")},
                          {"checked", r.checked}});
  }

  // The targets of the foundation issue, as ratios measured in this run.
  std::printf("\ntargets (ratios from this run):\n");
  if (quick)
    std::printf("  (--quick is a smoke test: short probes, GEMV weights stay in cache; these ratios are not measurements)\n");
  nlohmann::json targets = nlohmann::json::array();
  auto target = [&](std::string const& what, double value, double goal) {
    bool const met = value >= goal;
    std::printf("  %-58s %7.3f  (goal >= %.2f)  %s\n", what.c_str(), value, goal, met ? "met" : "MISSED");
    targets.push_back({{"target", what}, {"value", value}, {"goal", goal}, {"met", met}});
  };
  for (std::size_t i = 0; i < 3; ++i) {
    auto s = gemm_shapes[i];
    auto const* f = find(s, "tessera", "f32");
    auto const* e = find(s, "eigen", "f32");
    auto const* b = find(s, "tessera", "bf16");
    if (!f || !e || !b) continue;
    target(shape_name(s) + " f32 GEMM / FMA peak", f->gflops / fma_peak, 0.75);
    target(shape_name(s) + " f32 GEMM / Eigen", f->gflops / e->gflops, 1.0);
    target(shape_name(s) + " bf16-weight GEMM / f32 GEMM", b->gflops / f->gflops, 1.6);
  }
  for (auto s : gemv_shapes) {
    auto const* b = find(s, "tessera", "bf16");
    if (!b) continue;
    target(shape_name(s) + " bf16 GEMV / DRAM bandwidth", b->gbps / dram, 0.75);
    for (char const* f : {"q8", "q4"})
      if (auto const* q = find(s, "tessera", f)) target(shape_name(s) + " " + f + " GEMV / DRAM bandwidth", q->gbps / dram, 0.85);
  }
  for (auto s : gemm_shapes)
    if (auto const* b = find(s, "tessera", "bf16"))
      for (char const* f : {"q8", "q4"})
        if (auto const* q = find(s, "tessera", f)) target(shape_name(s) + " " + f + " GEMM / bf16 GEMM", q->gflops / b->gflops, 0.9);
  j["targets"] = targets;
  std::ofstream(json_path) << j.dump(2) << "\n";
  std::printf("\nJSON written to %s\n", json_path.c_str());
  return all_checked ? 0 : 1;
}
