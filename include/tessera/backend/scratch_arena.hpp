// SPDX-License-Identifier: Apache-2.0
// basic_scratch_arena<Resource>: the bump allocator behind every exec_ctx's scratch memory, for
// any memory resource (host: aligned operator new; CUDA: cudaMallocAsync on the context's
// stream, in backend/cuda/exec_ctx.cuh). It grows only when a request exceeds its high-water
// mark, so a model that runs the same shapes again allocates nothing after its first call.
#pragma once

#include <tessera/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace tessera::backend {

/// A memory resource provides `alignment`, `name`, `void* allocate(bytes) noexcept` (nullptr on
/// failure) and `void deallocate(void*, bytes) noexcept`.
template <class R>
concept memory_resource = requires(R r, void* p, std::size_t n) {
  { R::alignment } -> std::convertible_to<std::size_t>;
  { R::name } -> std::convertible_to<char const*>;
  { r.allocate(n) } -> std::same_as<void*>;
  r.deallocate(p, n);
};

/// Host memory, 64-byte aligned (a cache line, an AVX-512 register).
struct host_memory {
  static constexpr std::size_t alignment = 64;
  static constexpr char const* name = "host";
  [[nodiscard]] void* allocate(std::size_t bytes) const noexcept {
    return ::operator new(bytes, std::align_val_t{alignment}, std::nothrow);
  }
  void deallocate(void* p, std::size_t) const noexcept { ::operator delete(p, std::align_val_t{alignment}); }
};

/// Bump allocator over blocks of a memory resource. Pointers stay valid until the frame that
/// handed them out ends. A nested frame gives its memory back when it ends (the next allocation
/// of the enclosing frame reuses it), so a loop of nested frames -- an encoder's blocks inside
/// its forward -- needs the largest iteration's memory, not their sum. After an outermost frame
/// that needed several blocks they are merged into one.
template <memory_resource Resource>
class basic_scratch_arena {
 public:
  static constexpr std::size_t alignment = Resource::alignment;

  class frame {
   public:
    explicit frame(basic_scratch_arena& a) noexcept : arena_(&a), blocks_(a.blocks_.size()), used_(a.used_) {
      ++a.depth_;
    }
    frame(frame const&) = delete;
    frame& operator=(frame const&) = delete;
    ~frame() { arena_->end_frame(blocks_, used_); }
    /// n elements of T, aligned to the resource's alignment, uninitialized.
    template <class T>
    [[nodiscard]] T* alloc(std::size_t n) {
      return static_cast<T*>(arena_->bump(n * sizeof(T)));
    }

   private:
    basic_scratch_arena* arena_;
    std::size_t blocks_;  // the arena's blocks and the last one's fill when the frame opened
    std::size_t used_;
  };

  explicit basic_scratch_arena(Resource resource = {}) noexcept : resource_(std::move(resource)) {}
  basic_scratch_arena(basic_scratch_arena const&) = delete;
  basic_scratch_arena& operator=(basic_scratch_arena const&) = delete;
  basic_scratch_arena(basic_scratch_arena&& o) noexcept
      : resource_(std::move(o.resource_)), blocks_(std::exchange(o.blocks_, {})), used_(std::exchange(o.used_, 0)),
        allocations_(o.allocations_), depth_(o.depth_) {}
  basic_scratch_arena& operator=(basic_scratch_arena&& o) noexcept {
    if (this != &o) {
      free_all();
      resource_ = std::move(o.resource_);
      blocks_ = std::exchange(o.blocks_, {});
      used_ = std::exchange(o.used_, 0);
      allocations_ = o.allocations_;
      depth_ = o.depth_;
    }
    return *this;
  }
  ~basic_scratch_arena() { free_all(); }

  /// Ensures one block of at least `bytes`, so that requests up to that size never allocate.
  void reserve(std::size_t bytes) {
    TESSERA_CHECK(depth_ == 0, "scratch arena: cannot grow while a frame is open");
    if (capacity() >= bytes && blocks_.size() <= 1) return;
    std::size_t const total = std::max(bytes, capacity());
    free_all();
    add_block(total);
  }
  [[nodiscard]] frame open() noexcept { return frame(*this); }
  [[nodiscard]] std::size_t capacity() const noexcept {
    std::size_t c = 0;
    for (auto const& b : blocks_) c += b.size;
    return c;
  }
  /// How many blocks this arena has allocated so far (steady state: no change between calls).
  [[nodiscard]] std::size_t allocations() const noexcept { return allocations_; }
  [[nodiscard]] Resource const& resource() const noexcept { return resource_; }

 private:
  struct block {
    std::byte* data = nullptr;
    std::size_t size = 0;
  };

  /// Adds a block of at least `bytes`; false when the memory is not there. (After free_all()
  /// the vector keeps its capacity, so end_frame's merge does not allocate host memory here.)
  [[nodiscard]] bool try_add_block(std::size_t bytes) {
    bytes = (bytes + alignment - 1) / alignment * alignment;
    void* p = resource_.allocate(bytes);
    if (!p) return false;
    blocks_.push_back(block{static_cast<std::byte*>(p), bytes});
    ++allocations_;
    used_ = 0;
    return true;
  }
  void add_block(std::size_t bytes) {
    TESSERA_CHECK(try_add_block(bytes), "scratch arena: cannot allocate ", bytes, " bytes of ", Resource::name,
                  " memory");
  }
  void* bump(std::size_t bytes) {
    TESSERA_CHECK(depth_ > 0, "scratch arena: alloc outside a frame");
    bytes = (bytes + alignment - 1) / alignment * alignment;
    if (blocks_.empty() || used_ + bytes > blocks_.back().size) add_block(std::max(bytes, capacity()));
    void* p = blocks_.back().data + used_;
    used_ += bytes;
    return p;
  }
  void free_all() noexcept {
    for (auto const& b : blocks_) resource_.deallocate(b.data, b.size);
    blocks_.clear();
    used_ = 0;
  }
  /// Ends a frame opened when the arena had `blocks` blocks, the last filled to `used`. A nested
  /// frame rewinds to that point; a block added since holds only this frame's (now dead)
  /// allocations, so the enclosing frame continues at its start.
  void end_frame(std::size_t blocks, std::size_t used) noexcept {
    if (--depth_ > 0) {
      used_ = blocks_.size() == blocks ? used : 0;
      return;
    }
    if (blocks_.size() > 1) {   // merge: the next frame of the same size fits in one block
      std::size_t const total = capacity();
      free_all();
      (void)try_add_block(total);   // out of memory here: the next request allocates again
    }
    used_ = 0;
  }

  Resource resource_;
  std::vector<block> blocks_;
  std::size_t used_ = 0;
  std::size_t allocations_ = 0;
  int depth_ = 0;
};

/// The host backends' arena.
using scratch_arena = basic_scratch_arena<host_memory>;

}  // namespace tessera::backend
