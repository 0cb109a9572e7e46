// SPDX-License-Identifier: Apache-2.0
// exec_ctx<Backend>: what a kernel needs besides its operands -- the number of threads and a
// scratch arena. The arena grows only when a request exceeds its high-water mark, so a model that
// runs the same shapes again allocates nothing after its first call (reserve() makes even the
// first call allocation-free); allocations() lets tests check that.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/scratch_arena.hpp>
#include <tessera/core/error.hpp>

#include <type_traits>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tessera::backend {

/// Number of threads OpenMP would use by default (1 without OpenMP).
[[nodiscard]] inline int default_threads() noexcept {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Execution context of the host backends (reference, cpu). The reference backend ignores the
/// thread count: it is single-threaded by design.
template <tag Backend>
class exec_ctx {
  static_assert(std::is_same_v<space_t<Backend>, host_space>,
                "exec_ctx: the CUDA context is declared in tessera/backend/cuda/exec_ctx.cuh");

 public:
  /// threads = 0 takes OpenMP's default (OMP_NUM_THREADS or the core count).
  explicit exec_ctx(int threads = 0) : threads_(threads > 0 ? threads : default_threads()) {
    TESSERA_CHECK(threads >= 0, "exec_ctx: thread count must be >= 0, got ", threads);
  }
  [[nodiscard]] int threads() const noexcept { return threads_; }
  void set_threads(int n) {
    TESSERA_CHECK(n >= 1, "exec_ctx::set_threads: need at least 1 thread, got ", n);
    threads_ = n;
  }
  [[nodiscard]] scratch_arena& scratch() noexcept { return scratch_; }

 private:
  int threads_;
  scratch_arena scratch_;
};

/// The threads a host kernel runs on: one for the reference backend (single-threaded by design),
/// the context's count for the others.
template <tag Backend>
[[nodiscard]] int host_threads(exec_ctx<Backend> const& ctx) noexcept {
  if constexpr (std::is_same_v<Backend, reference>)
    return 1;
  else
    return ctx.threads();
}

}  // namespace tessera::backend

namespace tessera {
using backend::exec_ctx;
}
