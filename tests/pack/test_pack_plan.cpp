// SPDX-License-Identifier: Apache-2.0
// pack::pack_plan and pack::gather_patches: hand-worked plans (image ids, coordinates, sequences
// written out by hand), first-fit against a naive sequential first-fit, the cap, padding,
// efficiency, varlen == HF cu_seqlens, keep sets, and argument checks.
#include <tessera/core/error.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/core/random.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <vector>

namespace {

using namespace tessera;
using pack::patch_grid;
using Catch::Matchers::ContainsSubstring;

template <class T>
std::vector<T> to_vec(std::span<T const> s) {
  return {s.begin(), s.end()};
}
std::vector<std::int32_t> offsets_of(seq_offsets const& s) { return to_vec(s.offsets()); }

std::vector<std::int32_t> coords_of(pack::pack_plan const& p) {
  auto const c = p.coords();
  return {c.data(), c.data() + 2 * p.n_slots()};
}

pack::pack_options fixed(index_t row_len, index_t cap = 0) {
  return {pack::pack_mode::fixed_rows, row_len, cap};
}

/// Five images for the hand-worked first-fit case (sizes 6, 6, 3, 4, 1 tokens).
std::vector<patch_grid> const five = {{1, 2, 3}, {1, 3, 2}, {1, 1, 3}, {1, 2, 2}, {1, 1, 1}};

}  // namespace

TEST_CASE("pack_plan fixed_rows: a hand-worked first-fit plan", "[pack][unit]") {
  // row_len 11. img0 (6) -> row 0 [6 used]; img1 (6) does not fit row 0 (5 free) -> row 1 [6];
  // img2 (3) -> row 0 [9] (first-fit; next-fit would have put it in row 1); img3 (4): row 0 has
  // 2 free, row 1 has 5 -> row 1 [10]; img4 (1) -> row 0 [10]. Each row has one padding slot.
  auto const plan = pack::pack_plan::make(five, fixed(11));
  CHECK(plan.n_images() == 5);
  CHECK(plan.n_rows() == 2);
  CHECK(plan.row_len() == 11);
  CHECK(plan.n_slots() == 22);
  CHECK(plan.n_real_tokens() == 20);
  CHECK(plan.efficiency() == 20.0 / 22.0);

  std::vector<std::int32_t> const want_ids = {0, 0, 0, 0, 0, 0, 2, 2, 2, 4, -1,   // row 0
                                              1, 1, 1, 1, 1, 1, 3, 3, 3, 3, -1};  // row 1
  CHECK(to_vec(plan.image_id()) == want_ids);
  std::vector<std::int32_t> const want_src = {0, 1, 2, 3, 4, 5, 0, 1, 2, 0, -1, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, -1};
  CHECK(to_vec(plan.source_patch()) == want_src);
  std::vector<std::int32_t> const want_coords = {
      0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2,  // img0, 2 x 3
      0, 0, 0, 1, 0, 2,                    // img2, 1 x 3
      0, 0,                                // img4, 1 x 1
      0, 0,                                // padding
      0, 0, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1,  // img1, 3 x 2
      0, 0, 0, 1, 1, 0, 1, 1,              // img3, 2 x 2
      0, 0};                               // padding
  CHECK(coords_of(plan) == want_coords);

  CHECK(offsets_of(plan.seqs()) == std::vector<std::int32_t>{0, 6, 9, 10, 11, 17, 21, 22});
  CHECK(to_vec(plan.padding_seqs()) == std::vector<std::uint8_t>{0, 0, 0, 1, 0, 0, 1});
  std::vector<std::int64_t> const seq_of_image = {0, 4, 1, 5, 2};
  std::vector<std::int64_t> const image_of_seq = {0, 2, 4, -1, 1, 3, -1};
  std::vector<index_t> const row_of = {0, 1, 0, 1, 0}, begin = {0, 11, 6, 17, 9}, kept = {6, 6, 3, 4, 1};
  for (index_t i = 0; i < 5; ++i) {
    CHECK(plan.seq_of_image(i) == seq_of_image[static_cast<std::size_t>(i)]);
    CHECK(plan.row_of_image(i) == row_of[static_cast<std::size_t>(i)]);
    CHECK(plan.slot_begin(i) == begin[static_cast<std::size_t>(i)]);
    CHECK(plan.n_kept(i) == kept[static_cast<std::size_t>(i)]);
    CHECK(plan.grid(i) == five[static_cast<std::size_t>(i)]);
  }
  for (index_t s = 0; s < 7; ++s) CHECK(plan.image_of_seq(s) == image_of_seq[static_cast<std::size_t>(s)]);
  CHECK(to_vec(plan.image_seqs()) == seq_of_image);
  CHECK(to_vec(plan.seq_images()) == image_of_seq);
  CHECK(to_vec(plan.row_images()) == std::vector<std::int32_t>{0, 2, 4, 1, 3});
  CHECK(offsets_of(plan.row_image_offsets()) == std::vector<std::int32_t>{0, 3, 5});
  CHECK(to_vec(plan.images_of_row(1)) == std::vector<std::int32_t>{1, 3});
  CHECK(plan.max_images_in_row() == 3);

  // Fractional coordinates: row / grid_h, col / grid_w in float.
  auto const f = plan.frac_coords();
  CHECK(f(3, 0) == 0.5f);         // img0 token 3 = (1, 0) of 2 x 3
  CHECK(f(5, 1) == 2.0f / 3.0f);  // img0 token 5 = (1, 2)
  CHECK(f(8, 1) == 2.0f / 3.0f);  // img2 token 2 = (0, 2) of 1 x 3
  CHECK(f(15, 0) == 2.0f / 3.0f);  // img1 token 4 = (2, 0) of 3 x 2
  CHECK(f(10, 0) == 0.0f);         // padding
  CHECK(f(10, 1) == 0.0f);
}

TEST_CASE("pack_plan fixed_rows: the cap on images per row", "[pack][unit]") {
  // Cap 2: img0 -> row 0; img1 -> row 1; img2 -> row 0 (now full by count: closed); img3 -> row 1
  // (closed); img4 -> a new row 2 although rows 0 and 1 have free slots.
  auto const plan = pack::pack_plan::make(five, fixed(11, 2));
  CHECK(plan.n_rows() == 3);
  CHECK(plan.n_slots() == 33);
  CHECK(plan.efficiency() == 20.0 / 33.0);
  CHECK(offsets_of(plan.seqs()) == std::vector<std::int32_t>{0, 6, 9, 11, 17, 21, 22, 23, 33});
  CHECK(to_vec(plan.padding_seqs()) == std::vector<std::uint8_t>{0, 0, 1, 0, 0, 1, 0, 1});
  CHECK(to_vec(plan.row_images()) == std::vector<std::int32_t>{0, 2, 1, 3, 4});
  CHECK(plan.slot_begin(4) == 22);
  CHECK(plan.max_images_in_row() == 2);

  // Cap 1: one image per row.
  auto const one = pack::pack_plan::make(five, fixed(6, 1));
  CHECK(one.n_rows() == 5);
  CHECK(to_vec(one.row_images()) == std::vector<std::int32_t>{0, 1, 2, 3, 4});
}

TEST_CASE("pack_plan fixed_rows: exact fits leave no padding sequence", "[pack][unit]") {
  std::vector<patch_grid> const g = {{1, 2, 2}, {1, 2, 2}, {1, 1, 4}};
  auto const plan = pack::pack_plan::make(g, fixed(8));
  CHECK(plan.n_rows() == 2);
  CHECK(offsets_of(plan.seqs()) == std::vector<std::int32_t>{0, 4, 8, 12, 16});
  CHECK(to_vec(plan.padding_seqs()) == std::vector<std::uint8_t>{0, 0, 0, 1});
  CHECK(plan.image_of_seq(3) == -1);
}

TEST_CASE("pack_plan fixed_rows: first-fit equals a naive sequential first-fit", "[pack][unit]") {
  tessera::rng r(20240607);
  for (int trial = 0; trial < 200; ++trial) {
    auto const n = static_cast<index_t>(1 + r.uniform_below(40));
    std::vector<patch_grid> g;
    index_t longest = 1;
    for (index_t i = 0; i < n; ++i) {
      patch_grid const gi{1, static_cast<index_t>(1 + r.uniform_below(6)), static_cast<index_t>(1 + r.uniform_below(6))};
      longest = std::max(longest, gi.n_patches());
      g.push_back(gi);
    }
    index_t const row_len = longest + static_cast<index_t>(r.uniform_below(40));
    index_t const cap = static_cast<index_t>(r.uniform_below(4));  // 0 = none
    auto const plan = pack::pack_plan::make(g, fixed(row_len, cap));

    // The rule written as plainly as possible: scan the open rows from the first.
    std::vector<index_t> fill, count, want_row(static_cast<std::size_t>(n)), want_begin(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      index_t const len = g[static_cast<std::size_t>(i)].n_patches();
      std::size_t r_i = 0;
      while (r_i < fill.size() && !(fill[r_i] + len <= row_len && (cap == 0 || count[r_i] < cap))) ++r_i;
      if (r_i == fill.size()) {
        fill.push_back(0);
        count.push_back(0);
      }
      want_row[static_cast<std::size_t>(i)] = static_cast<index_t>(r_i);
      want_begin[static_cast<std::size_t>(i)] = static_cast<index_t>(r_i) * row_len + fill[r_i];
      fill[r_i] += len;
      count[r_i] += 1;
    }
    INFO("trial " << trial << ", " << n << " images, row_len " << row_len << ", cap " << cap);
    REQUIRE(plan.n_rows() == static_cast<index_t>(fill.size()));
    index_t real = 0;
    for (index_t i = 0; i < n; ++i) {
      REQUIRE(plan.row_of_image(i) == want_row[static_cast<std::size_t>(i)]);
      REQUIRE(plan.slot_begin(i) == want_begin[static_cast<std::size_t>(i)]);
      real += g[static_cast<std::size_t>(i)].n_patches();
    }
    // Sequences tile the slots; padding runs are exactly the row tails.
    auto const& s = plan.seqs();
    REQUIRE(s.n_tokens() == plan.n_slots());
    index_t pad = 0;
    for (index_t q = 0; q < s.n_seqs(); ++q) {
      bool const is_pad = plan.padding_seqs()[static_cast<std::size_t>(q)] == 1;
      REQUIRE(is_pad == (plan.image_of_seq(q) < 0));
      for (index_t slot = s.begin(q); slot < s.end(q); ++slot)
        REQUIRE(plan.image_id()[static_cast<std::size_t>(slot)] == (is_pad ? -1 : plan.image_of_seq(q)));
      if (is_pad) pad += s.length(q);
    }
    REQUIRE(plan.n_real_tokens() == real);
    REQUIRE(pad == plan.n_slots() - real);
    REQUIRE(plan.efficiency() == static_cast<double>(real) / static_cast<double>(plan.n_slots()));
  }
}

TEST_CASE("pack_plan varlen: one row, no padding, seqs == HF cu_seqlens", "[pack][unit]") {
  // HF Qwen2-VL: cu_seqlens = cumsum(repeat_interleave(h * w, t)) with a leading 0.
  std::vector<patch_grid> const g = {{1, 4, 6}, {1, 2, 2}, {1, 8, 4}};
  auto const plan = pack::pack_plan::make(g);
  CHECK(offsets_of(plan.seqs()) == std::vector<std::int32_t>{0, 24, 28, 60});
  CHECK(plan.n_rows() == 1);
  CHECK(plan.row_len() == 60);
  CHECK(plan.n_slots() == 60);
  CHECK(plan.efficiency() == 1.0);
  CHECK(to_vec(plan.padding_seqs()) == std::vector<std::uint8_t>{0, 0, 0});
  for (index_t i = 0; i < 3; ++i) {
    CHECK(plan.seq_of_image(i) == i);
    CHECK(plan.image_of_seq(i) == i);
  }

  tessera::rng r(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<patch_grid> gs;
    std::vector<std::int32_t> cu = {0};
    for (int i = 0; i < 1 + trial; ++i) {
      patch_grid const gi{1, 2 * static_cast<index_t>(1 + r.uniform_below(20)), 2 * static_cast<index_t>(1 + r.uniform_below(20))};
      gs.push_back(gi);
      cu.push_back(cu.back() + static_cast<std::int32_t>(gi.h * gi.w));
    }
    CHECK(offsets_of(pack::pack_plan::make(gs, {}, nullptr, pack::token_order::merge_window_major, 2).seqs()) == cu);
  }

  auto const empty = pack::pack_plan::make(std::span<patch_grid const>{});
  CHECK(empty.n_rows() == 0);
  CHECK(empty.n_slots() == 0);
  CHECK(empty.seqs().n_seqs() == 0);
  CHECK(empty.efficiency() == 1.0);
}

TEST_CASE("pack_plan: merge-window-major token order coordinates", "[pack][unit]") {
  // Qwen2-VL order for a 2 x 4 grid with 2 x 2 windows: window (0, 0) then window (0, 1), each
  // row-major inside.
  std::vector<patch_grid> const g = {{1, 2, 4}};
  auto const plan = pack::pack_plan::make(g, {}, nullptr, pack::token_order::merge_window_major, 2);
  CHECK(coords_of(plan) == std::vector<std::int32_t>{0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3});
  CHECK(plan.frac_coords()(5, 1) == 0.75f);
}

TEST_CASE("pack_plan: keep sets change n_kept and the patches, not their coordinates", "[pack][unit]") {
  std::vector<patch_grid> const g = {{1, 2, 3}, {1, 1, 2}};
  pack::keep_sets keep;
  keep.per_image = {{5, 0, 3}, {1}};  // explicit order kept as given (vit-pytorch topk order)
  auto const plan = pack::pack_plan::make(g, {}, &keep);
  CHECK(plan.n_kept(0) == 3);
  CHECK(plan.n_kept(1) == 1);
  CHECK(offsets_of(plan.seqs()) == std::vector<std::int32_t>{0, 3, 4});
  CHECK(to_vec(plan.source_patch()) == std::vector<std::int32_t>{5, 0, 3, 1});
  CHECK(coords_of(plan) == std::vector<std::int32_t>{1, 2, 0, 0, 1, 0, 0, 1});
  CHECK(plan.frac_coords()(0, 0) == 0.5f);
  CHECK(plan.frac_coords()(0, 1) == 2.0f / 3.0f);

  // In fixed rows the kept count decides the fit: 6 patches kept down to 2 fit beside 4.
  std::vector<patch_grid> const g2 = {{1, 2, 2}, {1, 2, 3}};
  pack::keep_sets k2;
  k2.per_image = {{0, 1, 2, 3}, {1, 4}};
  auto const rows = pack::pack_plan::make(g2, fixed(6), &k2);
  CHECK(rows.n_rows() == 1);
  CHECK(rows.efficiency() == 1.0);
  CHECK(coords_of(rows) == std::vector<std::int32_t>{0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1});

  // An empty per_image means "all kept".
  pack::keep_sets none;
  CHECK(pack::pack_plan::make(g2, fixed(6), &none).n_rows() == 2);
}

TEST_CASE("gather_patches copies each slot's source row and zeroes padding", "[pack][unit]") {
  std::vector<patch_grid> const g = {{1, 2, 3}, {1, 3, 2}, {1, 1, 3}};
  index_t const nf = 5;
  std::vector<std::vector<float>> storage;
  std::vector<tensor_view<float const, 2>> views;
  for (std::size_t i = 0; i < g.size(); ++i) {
    std::vector<float> v(static_cast<std::size_t>(g[i].n_patches() * nf));
    for (std::size_t j = 0; j < v.size(); ++j) v[j] = static_cast<float>(1000 * (i + 1) + j);
    storage.push_back(std::move(v));
  }
  for (std::size_t i = 0; i < g.size(); ++i) views.emplace_back(storage[i].data(), std::array<index_t, 2>{g[i].n_patches(), nf});
  pack::keep_sets keep;
  keep.per_image = {{4, 1}, {0, 1, 2, 3, 4, 5}, {2, 0}};
  auto const plan = pack::pack_plan::make(g, fixed(7), &keep);
  REQUIRE(plan.n_rows() == 2);  // row 0: img0 (2) + img2 (2) + 3 padding; row 1: img1 (6) + 1 padding

  for (int threads : {1, 3}) {
    // Strided packed buffer (row stride nf + 2) with guard values around it.
    index_t const stride = nf + 2;
    std::vector<float> buf(static_cast<std::size_t>(plan.n_slots() * stride + 4), -7.0f);
    tensor_view<float, 2> packed(buf.data() + 2, {plan.n_slots(), nf}, {stride, 1});
    pack::gather_patches(plan, views, packed, threads);
    for (index_t s = 0; s < plan.n_slots(); ++s) {
      std::int32_t const img = plan.image_id()[static_cast<std::size_t>(s)];
      for (index_t f = 0; f < nf; ++f) {
        float const want = img < 0 ? 0.0f
                                   : storage[static_cast<std::size_t>(img)][static_cast<std::size_t>(
                                         plan.source_patch()[static_cast<std::size_t>(s)] * nf + f)];
        REQUIRE(packed(s, f) == want);
      }
    }
    // Hand check of two slots: slot 1 = img0 patch 1, slot 2 = img2 patch 2.
    CHECK(packed(1, 0) == 1000.0f + 1 * 5);
    CHECK(packed(2, 4) == 3000.0f + 2 * 5 + 4);
    CHECK(packed(5, 3) == 0.0f);
    // Guards: before, between rows and after.
    CHECK(buf[0] == -7.0f);
    CHECK(buf[1] == -7.0f);
    for (index_t s = 0; s < plan.n_slots(); ++s) {
      CHECK(buf[static_cast<std::size_t>(2 + s * stride + nf)] == -7.0f);
      CHECK(buf[static_cast<std::size_t>(2 + s * stride + nf + 1)] == -7.0f);
    }
  }

  // Argument checks.
  std::vector<float> out(static_cast<std::size_t>(plan.n_slots() * nf));
  tensor_view<float, 2> packed(out.data(), {plan.n_slots(), nf});
  CHECK_THROWS_WITH(pack::gather_patches(plan, std::span(views).first(2), packed),
                    ContainsSubstring("2 patch arrays for 3 images"));
  tensor_view<float, 2> short_packed(out.data(), {plan.n_slots() - 1, nf});
  CHECK_THROWS_WITH(pack::gather_patches(plan, views, short_packed), ContainsSubstring("slots"));
  auto bad = views;
  bad[1] = tensor_view<float const, 2>(storage[1].data(), {5, nf});
  CHECK_THROWS_WITH(pack::gather_patches(plan, bad, packed), ContainsSubstring("image 1 patches must be [6, 5]"));
}

TEST_CASE("pack_plan rejects absurd input with a clear error", "[pack][unit]") {
  using pack::pack_plan;
  auto const make = [](std::vector<patch_grid> const& g, pack::pack_options const& o = {},
                       pack::keep_sets const* k = nullptr) { return pack_plan::make(g, o, k); };
  CHECK_THROWS_WITH(make({{1, 2, 2}, {2, 2, 2}}), ContainsSubstring("image 1 has grid (t, h, w) = (2, 2, 2)"));
  CHECK_THROWS_WITH(make({{1, 0, 2}}), ContainsSubstring("image 0 has grid"));
  CHECK_THROWS_WITH(make({{1, 3, -1}}), ContainsSubstring("positive h, w"));
  CHECK_THROWS_WITH(make({{1, 65536, 65536}}), ContainsSubstring("more than 2^31 - 1"));
  CHECK_THROWS_WITH(make({{1, 32768, 32768}, {1, 32768, 32768}, {1, 32768, 32768}}),
                    ContainsSubstring("more than 2^31 - 1 tokens"));
  CHECK_THROWS_WITH(make({{1, 2, 2}}, fixed(0)), ContainsSubstring("row_len in [1, 2^31 - 1], got 0"));
  CHECK_THROWS_WITH(make({{1, 2, 2}}, fixed(-3)), ContainsSubstring("got -3"));
  CHECK_THROWS_WITH(make({{1, 2, 2}}, fixed(8, -1)), ContainsSubstring("max_images_per_row must be >= 0"));
  CHECK_THROWS_WITH(make({{1, 2, 2}}, {pack::pack_mode::varlen, 16, 0}), ContainsSubstring("fixed_rows only"));
  CHECK_THROWS_WITH(make({{1, 2, 2}, {1, 3, 3}}, fixed(8)),
                    ContainsSubstring("image 1 (grid 3 x 3) has 9 kept tokens, more than row_len = 8"));
  CHECK_THROWS_WITH(make({{1, 2, 2}}, {pack::pack_mode::fixed_rows, 1 << 25, 0}),
                    ContainsSubstring("more than pack_options::max_slots"));
  CHECK_THROWS_WITH(make({{1, 2, 2}}, {pack::pack_mode::fixed_rows, 1 << 30, 0, index_t{1} << 31}),
                    ContainsSubstring("max_slots must be in"));
  CHECK_THROWS_WITH(pack_plan::make(std::vector<patch_grid>{{1, 2, 3}}, {}, nullptr,
                                    pack::token_order::merge_window_major, 2),
                    ContainsSubstring("multiples of merge = 2"));
  CHECK_THROWS_WITH(pack_plan::make(std::vector<patch_grid>{{1, 2, 2}}, {}, nullptr, pack::token_order::row_major, 0),
                    ContainsSubstring("merge must be in [1, 64]"));

  pack::keep_sets k;
  k.per_image = {{0, 1}};
  CHECK_THROWS_WITH(make({{1, 2, 2}, {1, 2, 2}}, {}, &k), ContainsSubstring("keep_sets has 1 entries for 2 images"));
  k.per_image = {{0, 4}};
  CHECK_THROWS_WITH(make({{1, 2, 2}}, {}, &k), ContainsSubstring("index 4 outside [0, 4)"));
  k.per_image = {{-1, 2}};
  CHECK_THROWS_WITH(make({{1, 2, 2}}, {}, &k), ContainsSubstring("index -1 outside"));
  k.per_image = {{3, 1, 3}};
  CHECK_THROWS_WITH(make({{1, 2, 2}}, {}, &k), ContainsSubstring("lists patch 3 twice"));
  k.per_image = {{}};
  CHECK_THROWS_WITH(make({{1, 2, 2}}, {}, &k), ContainsSubstring("keep set of image 0 is empty"));

  auto const plan = make({{1, 2, 2}});
  CHECK_THROWS_WITH(plan.n_kept(1), ContainsSubstring("image 1 out of range"));
  CHECK_THROWS_WITH(plan.image_of_seq(-1), ContainsSubstring("sequence -1 out of range"));
  CHECK_THROWS_WITH(plan.images_of_row(1), ContainsSubstring("row 1 out of range"));
}
