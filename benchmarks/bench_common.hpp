// SPDX-License-Identifier: Apache-2.0
// What the benchmarks share: a timing loop (warm-up, then min and median of repeated calls), a
// helper that runs a function on every OpenMP thread, and the DRAM read-bandwidth probe that
// bandwidth-bound cases (GEMV, decoder steps) are compared with in the same run.
#pragma once

#include <tessera/core/buffer.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <unistd.h>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tessera::bench {

using clock_type = std::chrono::steady_clock;

struct timing {
  double min_s = 0, median_s = 0;
  int reps = 0;
};

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
