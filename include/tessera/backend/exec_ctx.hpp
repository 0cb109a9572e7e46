// SPDX-License-Identifier: Apache-2.0
// exec_ctx<Backend>: what a kernel needs besides its operands -- the number of threads and a
// scratch arena. The arena grows only when a request exceeds its high-water mark, so a model that
// runs the same shapes again allocates nothing after its first call (reserve() makes even the
// first call allocation-free); allocations() lets tests check that.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <new>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tessera::backend {

/// Bump allocator over 64-byte aligned blocks. Pointers stay valid until the frame that handed
/// them out ends; after a frame that needed several blocks they are merged into one.
class scratch_arena {
 public:
  static constexpr std::size_t alignment = 64;

  class frame {
   public:
    explicit frame(scratch_arena& a) noexcept : arena_(&a) { ++a.depth_; }
    frame(frame const&) = delete;
    frame& operator=(frame const&) = delete;
    ~frame() { arena_->end_frame(); }
    /// n elements of T, 64-byte aligned, uninitialized.
    template <class T>
    [[nodiscard]] T* alloc(std::size_t n) {
      return static_cast<T*>(arena_->bump(n * sizeof(T)));
    }

   private:
    scratch_arena* arena_;
  };

  scratch_arena() = default;
  scratch_arena(scratch_arena const&) = delete;
  scratch_arena& operator=(scratch_arena const&) = delete;
  scratch_arena(scratch_arena&&) noexcept = default;
  scratch_arena& operator=(scratch_arena&&) noexcept = default;

  /// Ensures one block of at least `bytes`, so that requests up to that size never allocate.
  void reserve(std::size_t bytes) {
    TESSERA_CHECK(depth_ == 0, "scratch_arena::reserve: cannot grow while a frame is open");
    if (capacity() >= bytes && blocks_.size() <= 1) return;
    blocks_.clear();
    add_block(std::max(bytes, capacity()));
  }
  [[nodiscard]] frame open() noexcept { return frame(*this); }
  [[nodiscard]] std::size_t capacity() const noexcept {
    std::size_t c = 0;
    for (auto const& b : blocks_) c += b.size;
    return c;
  }
  /// How many blocks this arena has allocated so far (steady state: no change between calls).
  [[nodiscard]] std::size_t allocations() const noexcept { return allocations_; }

 private:
  struct deleter {
    void operator()(std::byte* p) const noexcept { ::operator delete(p, std::align_val_t{alignment}); }
  };
  struct block {
    std::unique_ptr<std::byte, deleter> data;
    std::size_t size = 0;
  };

  /// Adds a block of at least `bytes`; false when the memory is not there. (After blocks_.clear()
  /// the vector keeps its capacity, so end_frame's merge cannot throw here.)
  [[nodiscard]] bool try_add_block(std::size_t bytes) {
    bytes = (bytes + alignment - 1) / alignment * alignment;
    auto* p = static_cast<std::byte*>(::operator new(bytes, std::align_val_t{alignment}, std::nothrow));
    if (!p) return false;
    blocks_.push_back(block{std::unique_ptr<std::byte, deleter>(p), bytes});
    ++allocations_;
    used_ = 0;
    return true;
  }
  void add_block(std::size_t bytes) {
    TESSERA_CHECK(try_add_block(bytes), "scratch_arena: cannot allocate ", bytes, " bytes of scratch");
  }
  void* bump(std::size_t bytes) {
    TESSERA_CHECK(depth_ > 0, "scratch_arena: alloc outside a frame");
    bytes = (bytes + alignment - 1) / alignment * alignment;
    if (blocks_.empty() || used_ + bytes > blocks_.back().size) {
      add_block(std::max(bytes, capacity()));
    }
    void* p = blocks_.back().data.get() + used_;
    used_ += bytes;
    return p;
  }
  void end_frame() noexcept {
    if (--depth_ > 0) return;
    if (blocks_.size() > 1) {       // merge: the next frame of the same size fits in one block
      std::size_t const total = capacity();
      blocks_.clear();
      (void)try_add_block(total);   // out of memory here: the next request allocates again
    }
    used_ = 0;
  }

  std::vector<block> blocks_;
  std::size_t used_ = 0;
  std::size_t allocations_ = 0;
  int depth_ = 0;
};

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

}  // namespace tessera::backend

namespace tessera {
using backend::exec_ctx;
}
