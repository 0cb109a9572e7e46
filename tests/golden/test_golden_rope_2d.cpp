// SPDX-License-Identifier: Apache-2.0
// posemb::rope_2d and qwen2vl_position_ids against transformers 4.46.3 Qwen2-VL
// (rot_pos_emb, VisionRotaryEmbedding(40), apply_rotary_pos_emb_vision): the `rope2d.*` tensors of
// tests/golden/vision_blocks.safetensors (tools/golden/make_vision_goldens.py; versions, seed and
// settings in tests/golden/vision_manifest.json). Set TESSERA_GOLDEN_VERBOSE=1 for every report.
#include "common/compare.hpp"
#include "common/golden.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/posemb/rope_2d.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must name the repository root (set by tests/CMakeLists.txt)"
#endif

namespace {

using namespace tessera;

using test::golden_file;

golden_file const& blocks() {
  static golden_file const f("vision_blocks.safetensors");
  return f;
}

void require_close(std::string const& what, std::vector<float> const& got, std::vector<float> const& want,
                   test::tolerance t) {
  REQUIRE(got.size() == want.size());
  auto const r = test::compare_scaled(got.data(), want.data(), static_cast<std::int64_t>(got.size()),
                                      static_cast<std::int64_t>(got.size()), t, test::golden_rel_floor);
  if (std::getenv("TESSERA_GOLDEN_VERBOSE")) std::cout << "[golden] " << what << ": " << r.report() << "\n";
  INFO(what << ": " << r.report());
  REQUIRE(r.ok);
}

std::vector<pack::patch_grid> grids_of(std::vector<std::int32_t> const& thw) {
  std::vector<pack::patch_grid> g;
  for (std::size_t i = 0; i + 2 < thw.size(); i += 3) g.push_back({thw[i], thw[i + 1], thw[i + 2]});
  return g;
}

}  // namespace

TEST_CASE("golden: qwen2vl_position_ids and rope_2d_angles match rot_pos_emb", "[golden][posemb][rope_2d]") {
  auto const& g = blocks();
  auto const grids = grids_of(g.get<std::int32_t>("rope2d.grid_thw"));
  REQUIRE(grids.size() == 3);
  auto const want_ids = g.get<std::int32_t>("rope2d.pos_ids");
  index_t const n = posemb::n_grid_tokens(grids);
  REQUIRE(static_cast<index_t>(want_ids.size()) == 2 * n);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(2 * n), -1);
  posemb::qwen2vl_position_ids(grids, tensor_view<std::int32_t, 2>(ids.data(), {n, 2}));
  CHECK(ids == want_ids);

  // rotary_pos_emb = [row * inv_freq | col * inv_freq]: f32 products of the same f32 inv_freq, so
  // equal unless torch's powf and the correctly rounded pow differ by an ulp (then within 1e-7 rel).
  auto const want = g.get<float>("rope2d.freqs");
  REQUIRE(g.shape("rope2d.freqs") == std::vector<index_t>{n, 40});
  std::vector<float> angles(want.size(), -1.0f);
  posemb::rope_2d_angles(tensor_view<std::int32_t const, 2>(want_ids.data(), {n, 2}), 1e4f, 80,
                         tensor_view<float, 2>(angles.data(), {n, 40}));
  require_close("rope2d.freqs", angles, want, test::tolerance{0, 1.2e-7});
}

TEMPLATE_TEST_CASE("golden: rope_2d matches apply_rotary_pos_emb_vision", "[golden][posemb][rope_2d]",
                   backend::reference, backend::cpu) {
  auto const& g = blocks();
  REQUIRE(g.shape("rope2d.x") == std::vector<index_t>{60, 2, 80});
  auto x = g.get<float>("rope2d.x");
  auto const pos = g.get<std::int32_t>("rope2d.pos_ids");
  auto const want = g.get<float>("rope2d.out");
  exec_ctx<TestType> ctx(2);
  posemb::rope_2d<TestType>(tensor_view<float, 3>(x.data(), {60, 2, 80}),
                            tensor_view<std::int32_t const, 2>(pos.data(), {60, 2}), 1e4f, ctx);
  // Same f32 math as HF; cos / sin within an ulp of torch's: far inside the f32 golden budget.
  require_close(std::string(backend::name_v<TestType>) + " rope2d.out", x, want, test::tol<float>::vs_golden);
}
