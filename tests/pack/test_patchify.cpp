// SPDX-License-Identifier: Apache-2.0
// pack::patchify and pack::patch_coords against independent straightforward loops:
//   - Qwen2-VL: numpy's reshape / transpose / reshape of Qwen2VLImageProcessor._preprocess (spec
//     section 1.5) emulated index by index on the temporally tiled [T, C, H, W] array;
//   - NaViT: einops 'c (h p1) (w p2) -> (h w) (p1 p2 c)' (vit-pytorch na_vit, big_vision naflex).
// Plus the closed form of spec section 1.5, coordinates, strided outputs with guard elements, and
// argument checks.
#include "common/compare.hpp"

#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pack/patchify.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using namespace tessera;
using Catch::Matchers::ContainsSubstring;

/// A [C, H, W] image whose every value is distinct (so any misplaced value is caught).
std::vector<float> distinct_image(index_t c, index_t h, index_t w) {
  std::vector<float> v(static_cast<std::size_t>(c * h * w));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) + 0.25f;
  return v;
}

/// numpy, literally: patches = tile(image[None], (T, 1, 1, 1)) (shape [T, C, H, W]), then
/// reshape(gt, T, C, gh/m, m, p, gw/m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
/// .reshape(gt * gh * gw, C * T * p * p). The output is walked in row-major order of the transposed
/// axes; each element's source is found by un-flattening the original 9-D index.
std::vector<float> numpy_patchify(std::vector<float> const& img, index_t C, index_t H, index_t W, index_t p, index_t T,
                                  index_t m) {
  index_t const gh = H / p, gw = W / p;
  std::array<index_t, 9> const shape = {1, T, C, gh / m, m, p, gw / m, m, p};
  std::array<int, 9> const perm = {0, 3, 6, 4, 7, 2, 1, 5, 8};
  std::array<index_t, 9> tshape{};
  for (int i = 0; i < 9; ++i) tshape[static_cast<std::size_t>(i)] = shape[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])];
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(gh * gw * C * T * p * p));
  std::array<index_t, 9> ti{};  // index in the transposed array
  index_t const total = gh * gw * C * T * p * p;
  for (index_t n = 0; n < total; ++n) {
    index_t r = n;
    for (int i = 8; i >= 0; --i) {
      ti[static_cast<std::size_t>(i)] = r % tshape[static_cast<std::size_t>(i)];
      r /= tshape[static_cast<std::size_t>(i)];
    }
    std::array<index_t, 9> oi{};  // index in the reshaped (untransposed) array
    for (int i = 0; i < 9; ++i) oi[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] = ti[static_cast<std::size_t>(i)];
    index_t flat = 0;  // flat index into [1, T, C, gh/m, m, p, gw/m, m, p] == [T, C, H, W]
    for (int i = 0; i < 9; ++i) flat = flat * shape[static_cast<std::size_t>(i)] + oi[static_cast<std::size_t>(i)];
    index_t const t = flat / (C * H * W), chw = flat % (C * H * W);
    (void)t;  // every frame is the same image
    out.push_back(img[static_cast<std::size_t>(chw)]);
  }
  return out;
}

/// einops 'c (h p1) (w p2) -> (h w) (p1 p2 c)'.
std::vector<float> einops_patchify(std::vector<float> const& img, index_t C, index_t H, index_t W, index_t p) {
  std::vector<float> out;
  for (index_t gy = 0; gy < H / p; ++gy)
    for (index_t gx = 0; gx < W / p; ++gx)
      for (index_t p1 = 0; p1 < p; ++p1)
        for (index_t p2 = 0; p2 < p; ++p2)
          for (index_t c = 0; c < C; ++c) out.push_back(img[static_cast<std::size_t>((c * H + gy * p + p1) * W + gx * p + p2)]);
  return out;
}

std::vector<float> run_patchify(std::vector<float> const& img, index_t C, index_t H, index_t W,
                                pack::patch_layout const& layout, int threads = 0) {
  pack::patches const p = pack::patchify(tensor_view<float const, 3>(img.data(), {C, H, W}), layout, threads);
  return std::vector<float>(p.values.data(), p.values.data() + p.n_patches() * p.n_features);
}

}  // namespace

TEST_CASE("patchify (Qwen2-VL layout) equals numpy's reshape/transpose of the processor", "[pack][patchify][unit]") {
  struct shape {
    index_t C, H, W, p, T, m;
  };
  for (auto const& s : {shape{3, 28, 28, 14, 2, 2}, shape{3, 56, 84, 14, 2, 2}, shape{3, 28, 140, 14, 2, 2},
                        shape{3, 12, 8, 2, 2, 2}, shape{2, 12, 18, 3, 3, 2}, shape{1, 8, 8, 2, 1, 4},
                        shape{3, 6, 9, 3, 2, 1}}) {
    INFO("C " << s.C << " H " << s.H << " W " << s.W << " p " << s.p << " T " << s.T << " m " << s.m);
    auto const img = distinct_image(s.C, s.H, s.W);
    pack::patch_layout const layout{s.p, s.T, s.m, pack::token_order::merge_window_major, pack::feature_order::c_t_py_px};
    auto const want = numpy_patchify(img, s.C, s.H, s.W, s.p, s.T, s.m);
    for (int threads : {1, 3}) {
      auto const got = run_patchify(img, s.C, s.H, s.W, layout, threads);
      REQUIRE(got == want);
    }
  }
  CHECK(pack::qwen2vl_layout.n_features() == 1176);
  CHECK(pack::qwen2vl_layout.side_multiple() == 28);
}

TEST_CASE("patchify follows the closed form of spec section 1.5", "[pack][patchify][unit]") {
  index_t const H = 56, W = 112, gh = 4, gw = 8;
  auto const img = distinct_image(3, H, W);
  auto const got = run_patchify(img, 3, H, W, pack::qwen2vl_layout);
  REQUIRE(static_cast<index_t>(got.size()) == gh * gw * 1176);
  for (index_t bh = 0; bh < gh / 2; ++bh)
    for (index_t bw = 0; bw < gw / 2; ++bw)
      for (index_t mh = 0; mh < 2; ++mh)
        for (index_t mw = 0; mw < 2; ++mw)
          for (index_t c = 0; c < 3; ++c)
            for (index_t t = 0; t < 2; ++t)
              for (index_t py = 0; py < 14; ++py)
                for (index_t px = 0; px < 14; ++px) {
                  index_t const k = ((bh * (gw / 2) + bw) * 2 + mh) * 2 + mw;
                  index_t const f = ((c * 2 + t) * 14 + py) * 14 + px;
                  index_t const y = (2 * bh + mh) * 14 + py, x = (2 * bw + mw) * 14 + px;
                  REQUIRE(got[static_cast<std::size_t>(k * 1176 + f)] == img[static_cast<std::size_t>((c * H + y) * W + x)]);
                }
}

TEST_CASE("patchify (NaViT layout) equals einops' row-major (p1 p2 c) patches", "[pack][patchify][unit]") {
  for (index_t p : {1, 2, 7, 16}) {
    index_t const H = 3 * p, W = 5 * p;
    auto const img = distinct_image(3, H, W);
    CHECK(run_patchify(img, 3, H, W, pack::navit_layout(p)) == einops_patchify(img, 3, H, W, p));
  }
}

TEST_CASE("patch_coords gives each token's (row, col) in the token order", "[pack][patchify][unit]") {
  pack::patch_grid const g{1, 4, 6};
  std::vector<std::int32_t> w(48), r(48);
  pack::patch_coords(pack::qwen2vl_layout, g, tensor_view<std::int32_t, 2>(w.data(), {24, 2}));
  pack::patch_coords(pack::navit_layout(14), g, tensor_view<std::int32_t, 2>(r.data(), {24, 2}));
  // Window-major: 2 x 2 windows row-major, patches inside a window row-major.
  std::vector<std::int32_t> const first = {0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3};
  CHECK(std::vector<std::int32_t>(w.begin(), w.begin() + 16) == first);
  CHECK(w[2 * 12] == 2);  // token 12 opens the second row of windows: (2, 0)
  CHECK(w[2 * 12 + 1] == 0);
  for (index_t k = 0; k < 24; ++k) {
    CHECK(r[static_cast<std::size_t>(2 * k)] == k / 6);
    CHECK(r[static_cast<std::size_t>(2 * k + 1)] == k % 6);
  }
  // Every grid position appears exactly once in both orders.
  for (auto const* v : {&w, &r}) {
    std::vector<int> seen(24, 0);
    for (index_t k = 0; k < 24; ++k) ++seen[static_cast<std::size_t>((*v)[static_cast<std::size_t>(2 * k)] * 6 + (*v)[static_cast<std::size_t>(2 * k + 1)])];
    CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  }
  // The coordinates name the patch whose pixels the token holds.
  index_t const H = 56, W = 84;
  auto const img = distinct_image(3, H, W);
  pack::patches const p = pack::patchify(tensor_view<float const, 3>(img.data(), {3, H, W}));
  for (index_t k = 0; k < p.n_patches(); ++k) {
    index_t const row = p.coordinates()(k, 0), col = p.coordinates()(k, 1);
    CHECK(p.rows()(k, 0) == img[static_cast<std::size_t>((row * 14) * W + col * 14)]);  // c 0, t 0, py 0, px 0
  }
}

TEST_CASE("patchify writes strided output rows and nothing else", "[pack][patchify][unit]") {
  index_t const H = 28, W = 56, n = 8, f = 1176, stride = 1200;
  auto const img = distinct_image(3, H, W);
  auto const want = run_patchify(img, 3, H, W, pack::qwen2vl_layout);
  test::guarded<float> out(n * stride, -1.0f);
  pack::patchify(tensor_view<float const, 3>(img.data(), {3, H, W}), pack::qwen2vl_layout,
                 tensor_view<float, 2>(out.data(), {n, f}, {stride, 1}));
  CHECK(out.intact());
  for (index_t k = 0; k < n; ++k) {
    CHECK(std::memcmp(out.data() + k * stride, want.data() + k * f, static_cast<std::size_t>(f) * sizeof(float)) == 0);
    for (index_t j = f; j < stride; ++j) CHECK(out.data()[k * stride + j] == -1.0f);
  }
  // A channels-last source view (strides [1, W * 3, 3]) gives the same patches.
  std::vector<float> hwc(static_cast<std::size_t>(3 * H * W));
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < H; ++y)
      for (index_t x = 0; x < W; ++x)
        hwc[static_cast<std::size_t>((y * W + x) * 3 + c)] = img[static_cast<std::size_t>((c * H + y) * W + x)];
  pack::patches const q = pack::patchify(tensor_view<float const, 3>(hwc.data(), {3, H, W}, {1, W * 3, 3}));
  CHECK(std::memcmp(q.values.data(), want.data(), want.size() * sizeof(float)) == 0);
}

TEST_CASE("patchify checks the layout and the shapes", "[pack][patchify][unit]") {
  auto const img = distinct_image(3, 28, 42);
  tensor_view<float const, 3> const v(img.data(), {3, 28, 42});
  REQUIRE_THROWS_WITH(pack::patchify(v), ContainsSubstring("multiples of patch * merge = 28"));
  REQUIRE_THROWS_WITH(pack::grid_for(pack::patch_layout{0, 2, 2}, 28, 28), ContainsSubstring(">= 1"));
  REQUIRE_THROWS_AS(pack::grid_for(pack::qwen2vl_layout, 0, 28), tessera::error);
  CHECK(pack::grid_for(pack::navit_layout(14), 28, 42) == pack::patch_grid{1, 2, 3});
  std::vector<float> out(6 * 1176);
  tensor_view<float const, 3> const ok(img.data(), {3, 28, 28});
  REQUIRE_THROWS_WITH(pack::patchify(ok, pack::qwen2vl_layout, tensor_view<float, 2>(out.data(), {3, 1176})),
                      ContainsSubstring("out must be [4, 1176]"));
  REQUIRE_THROWS_WITH(pack::patchify(ok, pack::qwen2vl_layout, tensor_view<float, 2>(out.data(), {4, 1176}, {1176, 2})),
                      ContainsSubstring("contiguous"));
  std::vector<std::int32_t> coords(8);
  REQUIRE_THROWS_AS(pack::patch_coords(pack::qwen2vl_layout, {1, 2, 3}, tensor_view<std::int32_t, 2>(coords.data(), {4, 2})),
                    tessera::error);  // grid w = 3 is not a multiple of merge 2
  REQUIRE_THROWS_AS(pack::patch_coords(pack::qwen2vl_layout, {2, 2, 2}, tensor_view<std::int32_t, 2>(coords.data(), {4, 2})),
                    tessera::error);  // t must be 1
}
