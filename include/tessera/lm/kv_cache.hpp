// SPDX-License-Identifier: Apache-2.0
// lm::kv_cache -- the keys and values a decoder has computed for the tokens it has seen,
// preallocated once for a maximum context: per layer, per sequence slot, one row per position,
// in f32 or bf16. The role of transformers' DynamicCache (past_key_values) and of llama.cpp's KV
// cache; decoding step t reads rows [0, t] of its slot instead of recomputing them.
#pragma once

#include <tessera/attn/masked_attention.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace tessera::lm {

/// Shape of a cache: what a decoder's config and the caller's batch and context decide.
struct kv_cache_shape {
  index_t n_layers = 0;
  index_t n_slots = 1;       ///< independent sequences the cache holds at once
  index_t max_context = 0;   ///< positions per slot (prompt + generated tokens)
  index_t n_kv_heads = 0;
  index_t head_dim = 0;
};

/// The KV element type that follows a model's weights, as transformers' cache takes the model's
/// dtype: bf16 weights keep a bf16 cache, f32 weights an f32 one (f16 weights too: tessera runs
/// them with f32 products, and f32 is the closer of its two cache types to an f16 model's cache).
template <class W>
using default_kv_t = std::conditional_t<std::is_same_v<std::remove_cv_t<W>, bf16>, bf16, float>;

/// Keys and values of every layer for n_slots sequences of up to max_context positions.
///
/// Layout, per layer and for K and V separately: [n_slots, max_context, n_kv_heads, head_dim],
/// row-major. Slot s occupies token rows [s * max_context, (s + 1) * max_context) of the
/// [n_slots * max_context, n_kv_heads, head_dim] view that attn::masked_attention reads, and its
/// filled rows are [s * max_context, s * max_context + length(s)). Position p of a sequence is
/// its row p: the rotary position and the cache row coincide (Qwen2's plain 1-D positions).
/// KV = float keeps the keys and values exactly as computed; KV = bf16 halves the memory and
/// the bytes each decode step reads, at bf16 rounding of k and v (the precision a bf16 model's
/// own cache has).
///
/// The cache only stores; lm::qwen2_decoder writes the rows of new tokens and then advances
/// the lengths. A slot is reused with reset(slot); truncate() rolls a sequence back (e.g. to a
/// shared prompt prefix). Move-only; one buffer per K and V allocated at construction, nothing
/// afterwards. The storage lives in `Space` (host memory for the host backends; a device cache
/// needs backend/cuda/buffer.cuh); the lengths are host bookkeeping either way.
template <attn::kv_element KV, class Space = host_space>
class kv_cache {
 public:
  using value_type = KV;
  using space = Space;

  /// Allocates the whole cache (uninitialized) and sets every length to 0. Throws tessera::error
  /// for non-positive sizes or a cache larger than the address space allows.
  explicit kv_cache(kv_cache_shape const& shape) : shape_(shape) {
    TESSERA_CHECK(shape.n_layers >= 1 && shape.n_slots >= 1 && shape.max_context >= 1 && shape.n_kv_heads >= 1 &&
                      shape.head_dim >= 1,
                  "lm::kv_cache: every size must be >= 1, got n_layers ", shape.n_layers, ", n_slots ",
                  shape.n_slots, ", max_context ", shape.max_context, ", n_kv_heads ", shape.n_kv_heads,
                  ", head_dim ", shape.head_dim);
    // Rows per layer must stay addressable by the kernels' index_t / int32 token indices.
    TESSERA_CHECK(shape.n_slots <= std::numeric_limits<std::int32_t>::max() / shape.max_context,
                  "lm::kv_cache: n_slots x max_context = ", shape.n_slots, " x ", shape.max_context,
                  " rows per layer exceed 2^31 - 1");
    index_t const per_layer = layer_elements();
    TESSERA_CHECK(per_layer <= std::numeric_limits<index_t>::max() / shape.n_layers / 2 / static_cast<index_t>(sizeof(KV)),
                  "lm::kv_cache: ", shape.n_layers, " layers of ", per_layer, " elements do not fit in memory");
    keys_ = buffer<KV, Space>(per_layer * shape.n_layers);
    values_ = buffer<KV, Space>(per_layer * shape.n_layers);
    lengths_.assign(static_cast<std::size_t>(shape.n_slots), 0);
  }

  [[nodiscard]] kv_cache_shape const& shape() const noexcept { return shape_; }
  [[nodiscard]] index_t n_layers() const noexcept { return shape_.n_layers; }
  [[nodiscard]] index_t n_slots() const noexcept { return shape_.n_slots; }
  [[nodiscard]] index_t max_context() const noexcept { return shape_.max_context; }
  /// Bytes of keys and values together.
  [[nodiscard]] std::size_t bytes() const noexcept {
    return 2 * static_cast<std::size_t>(layer_elements() * shape_.n_layers) * sizeof(KV);
  }

  /// Positions filled in slot s.
  [[nodiscard]] index_t length(index_t slot) const {
    check_slot(slot, "length");
    return lengths_[static_cast<std::size_t>(slot)];
  }
  /// Empties slot s (its rows are overwritten by the next tokens).
  void reset(index_t slot) {
    check_slot(slot, "reset");
    lengths_[static_cast<std::size_t>(slot)] = 0;
  }
  /// Empties every slot.
  void reset() noexcept {
    for (index_t& l : lengths_) l = 0;
  }
  /// Keeps the first `length` positions of slot s (length <= length(s)).
  void truncate(index_t slot, index_t length) {
    check_slot(slot, "truncate");
    index_t& l = lengths_[static_cast<std::size_t>(slot)];
    TESSERA_CHECK(length >= 0 && length <= l, "lm::kv_cache::truncate: slot ", slot, " holds ", l,
                  " positions; cannot truncate to ", length);
    l = length;
  }
  /// Records that positions [length(s), length) of slot s now hold valid rows (the decoder calls
  /// this after it has written them in every layer). length <= max_context.
  void set_length(index_t slot, index_t length) {
    check_slot(slot, "set_length");
    TESSERA_CHECK(length >= 0 && length <= shape_.max_context, "lm::kv_cache::set_length: slot ", slot,
                  " cannot hold ", length, " positions (max_context ", shape_.max_context, ")");
    lengths_[static_cast<std::size_t>(slot)] = length;
  }

  /// Keys of layer i: [n_slots * max_context, n_kv_heads, head_dim].
  [[nodiscard]] tensor_view<KV, 3, Space> keys(index_t layer) { return layer_view(keys_, layer); }
  [[nodiscard]] tensor_view<KV, 3, Space> values(index_t layer) { return layer_view(values_, layer); }
  [[nodiscard]] tensor_view<KV const, 3, Space> keys(index_t layer) const { return layer_view(keys_, layer); }
  [[nodiscard]] tensor_view<KV const, 3, Space> values(index_t layer) const { return layer_view(values_, layer); }

  /// First row of slot s in the layer views.
  [[nodiscard]] index_t slot_row(index_t slot) const {
    check_slot(slot, "slot_row");
    return slot * shape_.max_context;
  }

 private:
  [[nodiscard]] index_t layer_elements() const noexcept {
    return shape_.n_slots * shape_.max_context * shape_.n_kv_heads * shape_.head_dim;
  }
  void check_slot(index_t slot, char const* what) const {
    TESSERA_CHECK(slot >= 0 && slot < shape_.n_slots, "lm::kv_cache::", what, ": slot ", slot,
                  " is outside [0, ", shape_.n_slots, ")");
  }
  template <class Buf>
  [[nodiscard]] auto layer_view(Buf& buf, index_t layer) const {
    TESSERA_CHECK(layer >= 0 && layer < shape_.n_layers, "lm::kv_cache: layer ", layer, " is outside [0, ",
                  shape_.n_layers, ")");
    using elem = std::remove_pointer_t<decltype(buf.data())>;
    return tensor_view<elem, 3, Space>(buf.data() + layer * layer_elements(),
                                {shape_.n_slots * shape_.max_context, shape_.n_kv_heads, shape_.head_dim});
  }

  kv_cache_shape shape_;
  buffer<KV, Space> keys_, values_;
  std::vector<index_t> lengths_;
};

}  // namespace tessera::lm
