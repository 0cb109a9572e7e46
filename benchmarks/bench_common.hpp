// SPDX-License-Identifier: Apache-2.0
// What the benchmarks share: a timing loop (warm-up, then min and median of repeated calls), a
// helper that runs a function on every OpenMP thread, and the roofs cases are compared with in the
// same run: the peak f32 FMA rate (compute-bound GEMMs, prefill) and the DRAM read bandwidth
// (bandwidth-bound GEMVs, decode steps).
#pragma once

#include <tessera/backend/cpu/gemm.hpp>  // TESSERA_HAVE_AVX512_BF16_DOT
#include <tessera/core/buffer.hpp>
#include <tessera/quant/format.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tessera::bench {

/// A benchmark's name for a weight format: "bf16" for dense (bf16) weights, else the format's name.
inline std::string weights_name(quant::weight_format f) {
  return f == quant::weight_format::dense ? "bf16" : std::string(quant::name_of(f));
}

/// The format a --weights / --lm-head value names: bf16 (dense), q8 or q4; nothing otherwise.
inline std::optional<quant::weight_format> parse_weights(std::string const& w) {
  if (w == "bf16") return quant::weight_format::dense;
  if (w == "dense") return std::nullopt;
  return quant::parse_weight_format(w);
}

using clock_type = std::chrono::steady_clock;

struct timing {
  double min_s = 0, median_s = 0;
  int reps = 0;
};

/// The 1-minute load average (/proc/loadavg), -1 where it cannot be read: recorded with each run.
inline double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

/// Runs f once to warm up, then `reps` timed calls (at least min_time seconds in total).
inline timing time_it(std::function<void(int)> const& f, int reps, double min_time) {
  f(0);
  std::vector<double> t;
  auto const start = clock_type::now();
  for (int i = 1; static_cast<int>(t.size()) < reps || std::chrono::duration<double>(clock_type::now() - start).count() < min_time; ++i) {
    auto const a = clock_type::now();
    f(i);
    t.push_back(std::chrono::duration<double>(clock_type::now() - a).count());
    if (t.size() > 2000) break;
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2], static_cast<int>(t.size())};
}

template <class F>
void on_threads(int threads, F&& f) {
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  f(omp_get_thread_num());
#else
  (void)threads;
  f(0);
#endif
}

// ---- roofs ----------------------------------------------------------------------------------------

// The probes run 24 independent accumulator chains written in inline asm, so that neither the
// compiler's register allocation nor its optimizer can change what is measured. Inputs are zero
// (no denormal assists); only the instruction's issue rate counts.
#define TESSERA_R1(op, reg, a) op " %%" reg "30, %%" reg "31, %%" reg #a "\n\t"
#define TESSERA_BLOCK(op, reg)                                                                            \
  TESSERA_R1(op, reg, 0) TESSERA_R1(op, reg, 1) TESSERA_R1(op, reg, 2) TESSERA_R1(op, reg, 3)             \
  TESSERA_R1(op, reg, 4) TESSERA_R1(op, reg, 5) TESSERA_R1(op, reg, 6) TESSERA_R1(op, reg, 7)             \
  TESSERA_R1(op, reg, 8) TESSERA_R1(op, reg, 9) TESSERA_R1(op, reg, 10) TESSERA_R1(op, reg, 11)           \
  TESSERA_R1(op, reg, 12) TESSERA_R1(op, reg, 13) TESSERA_R1(op, reg, 14) TESSERA_R1(op, reg, 15)         \
  TESSERA_R1(op, reg, 16) TESSERA_R1(op, reg, 17) TESSERA_R1(op, reg, 18) TESSERA_R1(op, reg, 19)         \
  TESSERA_R1(op, reg, 20) TESSERA_R1(op, reg, 21) TESSERA_R1(op, reg, 22) TESSERA_R1(op, reg, 23)
#define TESSERA_CLOBBER_ALL                                                                                 \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
      "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",    \
      "xmm30", "xmm31"

/// Issues per second of a 24-chain block of `op` over `iters` iterations on every thread.
template <class Block>
inline double probe_rate(int threads, long iters, Block block) {
  auto run = [&](int) { on_threads(threads, [&](int) { block(iters); }); };
  auto const tm = time_it(run, 5, 0.3);
  return 24.0 * static_cast<double>(iters) * threads / tm.min_s;
}

/// Peak rate (GFLOP/s) of the AVX-512 bf16 dot instruction (64 flops each), 0 without it.
inline double probe_bf16_dot_gflops(int threads, long iters) {
#if TESSERA_HAVE_AVX512_BF16_DOT
  return 64.0 * 1e-9 * probe_rate(threads, iters, [](long n) {
    asm volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31" ::: TESSERA_CLOBBER_ALL);
    for (long i = 0; i < n; ++i) asm volatile(TESSERA_BLOCK("vdpbf16ps", "zmm")::: TESSERA_CLOBBER_ALL);
  });
#else
  (void)threads;
  (void)iters;
  return 0.0;
#endif
}

/// NMSE = sum (a - b)^2 / sum b^2 of n values (the benchmarks' check of a fast path against a
/// reference run).
inline double nmse(float const* a, float const* b, std::size_t n) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double const e = static_cast<double>(a[i]) - b[i];
    num += e * e;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

/// Peak f32 FMA rate (GFLOP/s) with the widest vectors of the build, all threads.
inline double probe_fma_gflops(int threads, long iters) {
#if defined(__AVX512F__)
  return 32.0 * 1e-9 * probe_rate(threads, iters, [](long n) {
    asm volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31" ::: TESSERA_CLOBBER_ALL);
    for (long i = 0; i < n; ++i) asm volatile(TESSERA_BLOCK("vfmadd231ps", "zmm")::: TESSERA_CLOBBER_ALL);
  });
#elif defined(__AVX2__) && defined(__FMA__)
  return 16.0 * 1e-9 * probe_rate(threads, iters, [](long n) {  // 16 ymm registers: 14 chains + 2 inputs
    asm volatile("vxorps %%ymm14, %%ymm14, %%ymm14\n\tvxorps %%ymm15, %%ymm15, %%ymm15" ::: "xmm14", "xmm15");
    for (long i = 0; i < n; ++i)
      asm volatile(
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm12\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm13\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
          "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t" ::
              : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                "xmm12", "xmm13");
  });
#else
  // No FMA instruction in this build: measure the multiply-add of the widest xsimd batch.
  using B = xsimd::batch<float>;
  std::vector<float> sink(static_cast<std::size_t>(threads) * 64);
  auto run = [&](int) {
    on_threads(threads, [&](int t) {
      B acc[8];
      for (int j = 0; j < 8; ++j) acc[j] = B(static_cast<float>(j));
      B const a(0.0f), b(0.0f);
      for (long i = 0; i < iters; ++i)
        for (int j = 0; j < 8; ++j) {
          acc[j] = xsimd::fma(acc[j], a, b);
          asm volatile("" : "+x"(acc[j].data));
        }
      sink[static_cast<std::size_t>(t) * 64] = acc[0].get(0);
    });
  };
  auto const tm = time_it(run, 5, 0.3);
  return 2.0 * B::size * 8.0 * static_cast<double>(iters) * threads / tm.min_s * 1e-9;
#endif
}

/// DRAM read bandwidth: every thread sums its contiguous part of a buffer far larger than the LLC.
inline double probe_dram_gbps(int threads, std::size_t bytes) {
  using B = xsimd::batch<float>;
  std::size_t const n = bytes / sizeof(float) / (B::size * 4) * (B::size * 4);
  host_buffer<float> buf(static_cast<index_t>(n));
  on_threads(threads, [&](int t) {  // first touch by the thread that reads it
    std::size_t const b = n * t / threads, e = n * (t + 1) / threads;
    for (std::size_t i = b; i < e; ++i) buf[static_cast<index_t>(i)] = 1.0f;
  });
  std::vector<float> sink(static_cast<std::size_t>(threads) * 64);
  // Each thread reads its part as 4 independent sequential streams (one per quarter), as a
  // streaming kernel over several rows does: one stream per core leaves DRAM bandwidth unused
  // (too few misses in flight), which would make the roof, and the targets against it, too low.
  auto run = [&](int) {
    on_threads(threads, [&](int t) {
      std::size_t const part = n / threads / (4 * B::size) * B::size;   // floats per stream
      float const* base = buf.data() + n * t / threads;
      float const* s0p = base;
      float const* s1p = base + part;
      float const* s2p = base + 2 * part;
      float const* s3p = base + 3 * part;
      B s0(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
      for (std::size_t i = 0; i < part; i += B::size) {
        s0 += B::load_unaligned(s0p + i);
        s1 += B::load_unaligned(s1p + i);
        s2 += B::load_unaligned(s2p + i);
        s3 += B::load_unaligned(s3p + i);
      }
      sink[static_cast<std::size_t>(t) * 64] = (s0 + s1 + s2 + s3).get(0);
    });
  };
  auto const tm = time_it(run, 5, 0.5);
  std::size_t const read = n / threads / (4 * B::size) * B::size * 4 * static_cast<std::size_t>(threads);
  return static_cast<double>(read * sizeof(float)) / tm.min_s * 1e-9;
}

inline std::size_t llc_bytes() {
  long const l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return l3 > 0 ? static_cast<std::size_t>(l3) : std::size_t{64} << 20;
}

}  // namespace tessera::bench
