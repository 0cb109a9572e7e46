// SPDX-License-Identifier: Apache-2.0
// pack::pack_plan -- Patch n' Pack (NaViT, Dehghani et al. 2023; spec section 6.1): where every
// kept patch of every image goes in one packed token buffer, and the sequences attention and
// pooling see. Two modes:
//   - varlen (Qwen2-VL / POINTS1.5, spec 2.6): images back to back in input order, no padding;
//     seqs() is HF's cu_seqlens = cumsum(grid_h * grid_w) with a leading 0;
//   - fixed_rows (NaViT): greedy first-fit of images (input order) into rows of row_len slots with
//     an optional cap on images per row; each row's tail is padding.
// The plan is built once per batch and read by every layer (attention seqs, position embeddings,
// pooling); gather_patches moves the per-image patch rows into the packed buffer.
#pragma once

#include <tessera/backend/cpu/parallel.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pack/detail/first_fit.hpp>
#include <tessera/pack/patchify.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

namespace tessera::pack {

enum class pack_mode {
  varlen,      ///< one row, no padding (Qwen2-VL / POINTS1.5 + flash-attn varlen)
  fixed_rows,  ///< rows of row_len slots, first-fit, padded tails (NaViT)
};

struct pack_options {
  pack_mode mode = pack_mode::varlen;
  index_t row_len = 0;             ///< fixed_rows: slots per row (> 0); varlen: must stay 0
  index_t max_images_per_row = 0;  ///< fixed_rows: cap on images per row (0 = none); varlen: must stay 0
  /// Refuses plans with more slots than this (the plan holds ~24 bytes per slot and the packed
  /// buffer n_slots x n_features floats): a guard against absurd row lengths, not a model limit.
  index_t max_slots = index_t{1} << 24;
};

/// Which patches of each image are kept (token dropping). per_image empty = every patch of every
/// image, in the layout's token order. Otherwise one entry per image: the indices (into the image's
/// patch rows, token order) of its kept patches, non-empty, in range, without duplicates; they are
/// packed in the order given (token_drop's policies return them sorted; an explicit list, e.g.
/// vit-pytorch's topk order, is kept as is).
struct keep_sets {
  std::vector<std::vector<std::int32_t>> per_image;
};

/// The layout of a packed batch. Slots are the rows of the packed buffer: row r of the batch owns
/// slots [r * row_len, (r + 1) * row_len). Within a row the images follow in input order, then one
/// padding run (fixed_rows only). Copyable; every accessor is O(1) or a view.
class pack_plan {
 public:
  /// Builds the plan for images with patch grids `grids` (t must be 1: still images).
  ///   opt:   mode, row length, cap per row (see pack_options);
  ///   keep:  kept patches per image (nullptr or empty per_image = all);
  ///   order, merge: the token order of each image's patch rows (as patchify's patch_layout):
  ///          they fix the (row, col) of source patch k; merge_window_major needs grid sides that
  ///          are multiples of merge.
  /// First-fit (fixed_rows): image i goes to the lowest-numbered row that still has n_kept(i) free
  /// slots and fewer than max_images_per_row images, else to a new row. Unlike vit-pytorch's
  /// group_images_by_max_seq_len (next-fit: only the last group is ever considered), earlier rows
  /// stay open, so a short image can fill a gap left before a long one.
  /// Cost O(n_images log n_images + n_slots + total kept indices log). Throws tessera::error for
  /// grids with t != 1 or non-positive sides, more than 2^31 - 1 patches in an image or slots in
  /// the batch, more slots than opt.max_slots, row_len <= 0 in fixed_rows (or != 0 in varlen), a
  /// negative cap, an image with more kept tokens than row_len, and keep sets that do not match
  /// the images (count, empty set, index out of range, duplicate index).
  [[nodiscard]] static pack_plan make(std::span<patch_grid const> grids, pack_options const& opt = {},
                                      keep_sets const* keep = nullptr, token_order order = token_order::row_major,
                                      index_t merge = 1);

  [[nodiscard]] pack_mode mode() const noexcept { return mode_; }
  [[nodiscard]] index_t n_images() const noexcept { return static_cast<index_t>(grids_.size()); }
  /// Rows of the batch (varlen: 1, or 0 for no images).
  [[nodiscard]] index_t n_rows() const noexcept { return n_rows_; }
  /// Slots per row (varlen: n_slots()).
  [[nodiscard]] index_t row_len() const noexcept { return row_len_; }
  /// Packed buffer rows, padding included: n_rows() * row_len().
  [[nodiscard]] index_t n_slots() const noexcept { return static_cast<index_t>(image_id_.size()); }
  /// Slots holding a kept patch.
  [[nodiscard]] index_t n_real_tokens() const noexcept { return n_real_; }
  /// n_real_tokens() / n_slots(); 1 for an empty plan (nothing wasted).
  [[nodiscard]] double efficiency() const noexcept {
    return n_slots() == 0 ? 1.0 : static_cast<double>(n_real_) / static_cast<double>(n_slots());
  }

  /// Sequences over all slots in slot order: per row, one per image (in row order) then one per
  /// padding run. varlen: exactly HF's cu_seqlens. Feed to attn::masked_attention.
  [[nodiscard]] seq_offsets const& seqs() const noexcept { return seqs_; }
  /// One byte per sequence, 1 = padding run (attn::masked_attention's masked_seqs, pooling's skip list).
  [[nodiscard]] std::span<std::uint8_t const> padding_seqs() const noexcept { return padding_; }
  /// Sequence of image i in seqs().
  [[nodiscard]] std::int64_t seq_of_image(index_t i) const { return seq_of_image_[checked_image(i)]; }
  /// seq_of_image for every image, in image order ([n_images]).
  [[nodiscard]] std::span<std::int64_t const> image_seqs() const noexcept { return seq_of_image_; }
  /// Image of sequence s, -1 for a padding run.
  [[nodiscard]] std::int64_t image_of_seq(index_t s) const {
    TESSERA_CHECK(s >= 0 && s < seqs_.n_seqs(), "pack_plan::image_of_seq: sequence ", s, " out of range [0, ",
                  seqs_.n_seqs(), ")");
    return image_of_seq_[static_cast<std::size_t>(s)];
  }

  /// image_of_seq for every sequence ([n_seqs], -1 = padding run).
  [[nodiscard]] std::span<std::int64_t const> seq_images() const noexcept { return image_of_seq_; }

  [[nodiscard]] index_t row_of_image(index_t i) const { return row_of_image_[checked_image(i)]; }
  /// First slot of image i; its kept patches occupy [slot_begin(i), slot_begin(i) + n_kept(i)).
  [[nodiscard]] index_t slot_begin(index_t i) const { return slot_begin_[checked_image(i)]; }
  [[nodiscard]] index_t n_kept(index_t i) const { return n_kept_[checked_image(i)]; }
  [[nodiscard]] patch_grid grid(index_t i) const { return grids_[checked_image(i)]; }

  /// For pooling with one probe per image of a row (vit-pytorch NaViT): the images of each row in
  /// slot order, as CSR: images of row r = row_images()[row_image_offsets().begin(r) .. end(r)).
  /// row_images() is also the image of each non-padding sequence of seqs(), in sequence order.
  [[nodiscard]] std::span<std::int32_t const> row_images() const noexcept { return row_images_; }
  [[nodiscard]] seq_offsets const& row_image_offsets() const noexcept { return row_image_offsets_; }
  /// Images in row r (slot order).
  [[nodiscard]] std::span<std::int32_t const> images_of_row(index_t r) const {
    TESSERA_CHECK(r >= 0 && r < n_rows_, "pack_plan::images_of_row: row ", r, " out of range [0, ", n_rows_, ")");
    auto const b = static_cast<std::size_t>(row_image_offsets_.begin(r));
    return std::span<std::int32_t const>(row_images_).subspan(b, static_cast<std::size_t>(row_image_offsets_.length(r)));
  }
  /// Largest number of images in one row (the probe count of a padded [n_rows, max, d] pooling).
  [[nodiscard]] index_t max_images_in_row() const noexcept { return row_image_offsets_.max_length(); }

  /// Per slot: image index, -1 for padding.
  [[nodiscard]] std::span<std::int32_t const> image_id() const noexcept { return image_id_; }
  /// Per slot: index of the patch in its image's patch rows (token order), -1 for padding.
  [[nodiscard]] std::span<std::int32_t const> source_patch() const noexcept { return source_patch_; }
  /// [n_slots, 2] (row, col) patch coordinates of each slot's source patch (dropped tokens do not
  /// shift them); (0, 0) for padding.
  [[nodiscard]] tensor_view<std::int32_t const, 2> coords() const {
    return {coords_.data(), {n_slots(), 2}};
  }
  /// [n_slots, 2] (row / grid_h, col / grid_w) in [0, 1), float division; (0, 0) for padding.
  [[nodiscard]] tensor_view<float const, 2> frac_coords() const { return {frac_.data(), {n_slots(), 2}}; }

 private:
  [[nodiscard]] std::size_t checked_image(index_t i) const {
    TESSERA_CHECK(i >= 0 && i < n_images(), "pack_plan: image ", i, " out of range [0, ", n_images(), ")");
    return static_cast<std::size_t>(i);
  }

  pack_mode mode_ = pack_mode::varlen;
  index_t n_rows_ = 0;
  index_t row_len_ = 0;
  index_t n_real_ = 0;
  std::vector<patch_grid> grids_;
  std::vector<index_t> row_of_image_, slot_begin_, n_kept_;
  std::vector<std::int64_t> seq_of_image_, image_of_seq_;
  std::vector<std::uint8_t> padding_;
  seq_offsets seqs_ = seq_offsets::from_lengths(std::vector<std::int32_t>{});
  std::vector<std::int32_t> row_images_;
  seq_offsets row_image_offsets_ = seq_offsets::from_lengths(std::vector<std::int32_t>{});
  std::vector<std::int32_t> image_id_, source_patch_, coords_;
  std::vector<float> frac_;
};

inline pack_plan pack_plan::make(std::span<patch_grid const> grids, pack_options const& opt, keep_sets const* keep,
                                 token_order order, index_t merge) {
  constexpr index_t int32_max = std::numeric_limits<std::int32_t>::max();
  bool const window_major = order == token_order::merge_window_major;
  bool const fixed = opt.mode == pack_mode::fixed_rows;
  TESSERA_CHECK(opt.mode == pack_mode::varlen || fixed, "pack_plan::make: unknown pack_mode ",
                static_cast<int>(opt.mode));
  TESSERA_CHECK(order == token_order::row_major || window_major, "pack_plan::make: unknown token_order ",
                static_cast<int>(order));
  TESSERA_CHECK(merge >= 1 && merge <= 64, "pack_plan::make: merge must be in [1, 64], got ", merge);
  TESSERA_CHECK(opt.max_slots >= 0 && opt.max_slots <= int32_max, "pack_plan::make: max_slots must be in [0, 2^31 - 1], got ",
                opt.max_slots);
  if (fixed) {
    TESSERA_CHECK(opt.row_len > 0 && opt.row_len <= int32_max, "pack_plan::make: fixed_rows needs row_len in [1, 2^31 - 1], got ",
                  opt.row_len);
    TESSERA_CHECK(opt.max_images_per_row >= 0, "pack_plan::make: max_images_per_row must be >= 0 (0 = no cap), got ",
                  opt.max_images_per_row);
  } else {
    TESSERA_CHECK(opt.row_len == 0 && opt.max_images_per_row == 0, "pack_plan::make: row_len (", opt.row_len,
                  ") and max_images_per_row (", opt.max_images_per_row, ") apply to pack_mode::fixed_rows only");
  }
  auto const n_images = static_cast<index_t>(grids.size());
  TESSERA_CHECK(n_images <= int32_max, "pack_plan::make: ", n_images, " images do not fit int32 image ids");

  bool const has_keep = keep != nullptr && !keep->per_image.empty();
  if (has_keep)
    TESSERA_CHECK(static_cast<index_t>(keep->per_image.size()) == n_images, "pack_plan::make: keep_sets has ",
                  keep->per_image.size(), " entries for ", n_images, " images");

  pack_plan plan;
  plan.mode_ = opt.mode;
  plan.grids_.assign(grids.begin(), grids.end());
  plan.n_kept_.resize(static_cast<std::size_t>(n_images));
  std::vector<std::int32_t> sorted;  // scratch for the duplicate check
  for (index_t i = 0; i < n_images; ++i) {
    patch_grid const& g = grids[static_cast<std::size_t>(i)];
    TESSERA_CHECK(g.t == 1 && g.h > 0 && g.w > 0, "pack_plan::make: image ", i, " has grid (t, h, w) = (", g.t, ", ", g.h,
                  ", ", g.w, "); need t = 1 and positive h, w");
    TESSERA_CHECK(g.h <= int32_max && g.w <= int32_max && g.h * g.w <= int32_max, "pack_plan::make: image ", i,
                  " has a grid of ", g.h, " x ", g.w, " patches, more than 2^31 - 1");
    if (window_major)
      TESSERA_CHECK(g.h % merge == 0 && g.w % merge == 0, "pack_plan::make: image ", i, " has a grid of ", g.h, " x ", g.w,
                    "; merge_window_major needs sides that are multiples of merge = ", merge);
    index_t const n = g.h * g.w;
    index_t kept = n;
    if (has_keep) {
      auto const& ks = keep->per_image[static_cast<std::size_t>(i)];
      TESSERA_CHECK(!ks.empty(), "pack_plan::make: keep set of image ", i, " is empty (keep at least one patch)");
      sorted.assign(ks.begin(), ks.end());
      std::sort(sorted.begin(), sorted.end());
      TESSERA_CHECK(sorted.front() >= 0 && sorted.back() < n, "pack_plan::make: keep set of image ", i,
                    " has index ", sorted.front() < 0 ? sorted.front() : sorted.back(), " outside [0, ", n, ")");
      auto const dup = std::adjacent_find(sorted.begin(), sorted.end());
      TESSERA_CHECK(dup == sorted.end(), "pack_plan::make: keep set of image ", i, " lists patch ",
                    dup == sorted.end() ? 0 : *dup, " twice");
      kept = static_cast<index_t>(ks.size());
    }
    if (fixed)
      TESSERA_CHECK(kept <= opt.row_len, "pack_plan::make: image ", i, " (grid ", g.h, " x ", g.w, ") has ", kept,
                    " kept tokens, more than row_len = ", opt.row_len);
    plan.n_kept_[static_cast<std::size_t>(i)] = kept;
    plan.n_real_ += kept;
    TESSERA_CHECK(plan.n_real_ <= int32_max, "pack_plan::make: more than 2^31 - 1 tokens in the batch (at image ", i, ")");
  }

  // Rows and slots.
  plan.row_of_image_.assign(static_cast<std::size_t>(n_images), 0);
  plan.slot_begin_.assign(static_cast<std::size_t>(n_images), 0);
  std::vector<index_t> row_fill;  // slots used per row
  if (!fixed) {
    plan.row_len_ = plan.n_real_;
    plan.n_rows_ = n_images > 0 ? 1 : 0;
    index_t pos = 0;
    for (index_t i = 0; i < n_images; ++i) {
      plan.slot_begin_[static_cast<std::size_t>(i)] = pos;
      pos += plan.n_kept_[static_cast<std::size_t>(i)];
    }
    if (n_images > 0) row_fill.push_back(pos);
  } else {
    plan.row_len_ = opt.row_len;
    index_t const cap = opt.max_images_per_row > 0 ? opt.max_images_per_row : std::numeric_limits<index_t>::max();
    std::vector<index_t> row_count;
    if (n_images > 0) {
      detail::first_fit_tree tree(n_images, opt.row_len);  // at most one row per image
      for (index_t i = 0; i < n_images; ++i) {
        index_t const kept = plan.n_kept_[static_cast<std::size_t>(i)];
        index_t const r = tree.find(kept);  // never -1: a fresh row holds row_len >= kept
        TESSERA_DEBUG_ASSERT(r >= 0, "first-fit found no row");
        if (r >= static_cast<index_t>(row_fill.size())) {
          row_fill.resize(static_cast<std::size_t>(r) + 1, 0);
          row_count.resize(static_cast<std::size_t>(r) + 1, 0);
        }
        auto const ru = static_cast<std::size_t>(r);
        plan.row_of_image_[static_cast<std::size_t>(i)] = r;
        plan.slot_begin_[static_cast<std::size_t>(i)] = r * opt.row_len + row_fill[ru];
        row_fill[ru] += kept;
        row_count[ru] += 1;
        tree.set(r, row_count[ru] >= cap ? -1 : opt.row_len - row_fill[ru]);
      }
    }
    plan.n_rows_ = static_cast<index_t>(row_fill.size());
    TESSERA_CHECK(plan.n_rows_ <= int32_max / opt.row_len, "pack_plan::make: ", plan.n_rows_, " rows of ", opt.row_len,
                  " slots exceed 2^31 - 1 slots");
  }
  index_t const n_slots = plan.n_rows_ * plan.row_len_;
  TESSERA_CHECK(n_slots <= opt.max_slots, "pack_plan::make: the plan needs ", n_slots, " slots (", plan.n_rows_,
                " rows of ", plan.row_len_, "), more than pack_options::max_slots = ", opt.max_slots);

  // Images of each row, in slot order: a counting sort by row, stable in input order (first-fit
  // appends, so input order within a row is slot order).
  std::vector<std::int64_t> per_row(static_cast<std::size_t>(plan.n_rows_), 0);
  for (index_t i = 0; i < n_images; ++i) ++per_row[static_cast<std::size_t>(plan.row_of_image_[static_cast<std::size_t>(i)])];
  plan.row_image_offsets_ = seq_offsets::from_lengths(per_row);
  plan.row_images_.resize(static_cast<std::size_t>(n_images));
  {
    std::vector<std::int64_t> next(plan.row_image_offsets_.offsets().begin(), plan.row_image_offsets_.offsets().end() - 1);
    for (index_t i = 0; i < n_images; ++i) {
      auto const r = static_cast<std::size_t>(plan.row_of_image_[static_cast<std::size_t>(i)]);
      plan.row_images_[static_cast<std::size_t>(next[r]++)] = static_cast<std::int32_t>(i);
    }
  }

  // Sequences: per row its images, then the padding tail.
  std::vector<std::int64_t> lengths;
  lengths.reserve(static_cast<std::size_t>(n_images + plan.n_rows_));
  plan.seq_of_image_.assign(static_cast<std::size_t>(n_images), -1);
  for (index_t r = 0; r < plan.n_rows_; ++r) {
    for (std::int32_t const i : plan.images_of_row(r)) {
      plan.seq_of_image_[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(lengths.size());
      plan.image_of_seq_.push_back(i);
      plan.padding_.push_back(0);
      lengths.push_back(plan.n_kept_[static_cast<std::size_t>(i)]);
    }
    index_t const tail = plan.row_len_ - row_fill[static_cast<std::size_t>(r)];
    if (tail > 0) {
      plan.image_of_seq_.push_back(-1);
      plan.padding_.push_back(1);
      lengths.push_back(tail);
    }
  }
  plan.seqs_ = seq_offsets::from_lengths(lengths);

  // Per-slot tables; padding slots keep these initial values.
  auto const ns = static_cast<std::size_t>(n_slots);
  plan.image_id_.assign(ns, -1);
  plan.source_patch_.assign(ns, -1);
  plan.coords_.assign(2 * ns, 0);
  plan.frac_.assign(2 * ns, 0.0f);
  for (index_t i = 0; i < n_images; ++i) {
    auto const iu = static_cast<std::size_t>(i);
    patch_grid const& g = plan.grids_[iu];
    index_t const kept = plan.n_kept_[iu], begin = plan.slot_begin_[iu];
    auto const fh = static_cast<float>(g.h), fw = static_cast<float>(g.w);
    for (index_t k = 0; k < kept; ++k) {
      index_t const src = has_keep ? keep->per_image[iu][static_cast<std::size_t>(k)] : k;
      detail::token_position const p = detail::position_of(src, g.w, merge, window_major);
      auto const s = static_cast<std::size_t>(begin + k);
      plan.image_id_[s] = static_cast<std::int32_t>(i);
      plan.source_patch_[s] = static_cast<std::int32_t>(src);
      plan.coords_[2 * s] = static_cast<std::int32_t>(p.row);
      plan.coords_[2 * s + 1] = static_cast<std::int32_t>(p.col);
      plan.frac_[2 * s] = static_cast<float>(p.row) / fh;
      plan.frac_[2 * s + 1] = static_cast<float>(p.col) / fw;
    }
  }
  return plan;
}

/// Gathers per-image patch rows into the packed buffer: packed[s] = per_image_patches[image_id[s]]
/// row source_patch[s], zero for padding slots.
///   per_image_patches: one view per image, [grid(i).n_patches(), n_features] (patchify's output,
///                      in the token order the plan was made with); rows may be strided, last dim
///                      contiguous.
///   packed:            [n_slots, n_features], rows may be strided, last dim contiguous; must not
///                      overlap the inputs.
/// Pure data movement (bit-exact, deterministic); slots are split over `threads` OpenMP threads
/// (0 = OpenMP's default).
inline void gather_patches(pack_plan const& plan, std::span<tensor_view<float const, 2> const> per_image_patches,
                           tensor_view<float, 2> packed, int threads = 0) {
  TESSERA_CHECK(static_cast<index_t>(per_image_patches.size()) == plan.n_images(), "pack::gather_patches: ",
                per_image_patches.size(), " patch arrays for ", plan.n_images(), " images");
  index_t const n_features = packed.extent(1);
  TESSERA_CHECK(packed.extent(0) == plan.n_slots(), "pack::gather_patches: packed has ", packed.extent(0),
                " rows, the plan has ", plan.n_slots(), " slots");
  TESSERA_CHECK(packed.is_row_contiguous(), "pack::gather_patches: the last dimension of packed must be contiguous");
  for (index_t i = 0; i < plan.n_images(); ++i) {
    auto const& v = per_image_patches[static_cast<std::size_t>(i)];
    TESSERA_CHECK(v.extent(0) == plan.grid(i).n_patches() && v.extent(1) == n_features, "pack::gather_patches: image ", i,
                  " patches must be [", plan.grid(i).n_patches(), ", ", n_features, "], got [", v.extent(0), ", ",
                  v.extent(1), "]");
    TESSERA_CHECK(v.is_row_contiguous(), "pack::gather_patches: the last dimension of image ", i,
                  "'s patches must be contiguous");
  }
  auto const bytes = static_cast<std::size_t>(n_features) * sizeof(float);
  std::span<std::int32_t const> const ids = plan.image_id(), src = plan.source_patch();
  backend::cpu_detail::parallel_region(threads > 0 ? threads : backend::default_threads(), [&](int t, int nt) {
    auto const part = backend::cpu_detail::split(plan.n_slots(), t, nt);
    for (index_t s = part.begin; s < part.end; ++s) {
      float* out = packed.row(s);  // [n_features]
      std::int32_t const img = ids[static_cast<std::size_t>(s)];
      if (img < 0) {
        if (bytes > 0) std::memset(out, 0, bytes);
      } else if (bytes > 0) {
        std::memcpy(out, per_image_patches[static_cast<std::size_t>(img)].row(src[static_cast<std::size_t>(s)]), bytes);
      }
    }
  });
}

}  // namespace tessera::pack
