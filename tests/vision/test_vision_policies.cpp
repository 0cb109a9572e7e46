// SPDX-License-Identifier: Apache-2.0
// vision::vision_encoder with the policies tests/vision/test_vision_encoder.cpp does not use:
// policy::rms_norm, policy::no_position, policy::max_pooling and policy::map_head_pooling.
// For each: the cpu backend against the reference backend on a small random encoder, and a check
// that does not go through the policy and shows that the policy is really applied:
//   - rms_norm: a depth-0 encoder (patch linear + one norm) equals RMSNorm computed by hand in
//     double; the layer_norm policy on the same weights does not (and the full encoders differ);
//   - no_position: a depth-0 encoder adds nothing to the patch embedding; permuting the patches of
//     one image permutes its tokens the same way and changes nothing else (a real position policy
//     on the same weights is shown to break this, so the check can fail);
//   - max_pooling: each pooled row equals the column-wise max of its image's output tokens,
//     computed here from the tokens (exactly: a max does not round);
//   - map_head_pooling: each pooled row equals pool::map_head run on that image's tokens alone.
#include "common/random_encoder.hpp"
#include "common/compare.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/model/navit/classifier.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pool/attention_pool.hpp>
#include <tessera/vision/policies.hpp>
#include <tessera/vision/pool_policies.hpp>
#include <tessera/vision/position_policies.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace tessera;
using test::tol;
namespace pol = vision::policy;

/// Random owned weights of a small encoder without biases in its norms (so that both the
/// layer_norm and the rms_norm policy accept them): NaViT style with a bias on every linear layer.
template <class T>
struct policy_weights : test::random_weights<T> {
  policy_weights(vision::vision_encoder_config const& c, std::uint64_t seed)
      : test::random_weights<T>(c, /*navit_style=*/true, seed, /*all_biases=*/true) {}
};

/// Owned MAP-head parameters (timm AttentionPoolLatent layout), random.
template <class T>
struct map_params {
  std::vector<T> probe, q_w, q_b, kv_w, kv_b, proj_w, proj_b, norm_w, norm_b, fc1_w, fc1_b, fc2_w, fc2_b;
  index_t d = 0, d_ff = 0;
  map_params(index_t d_, index_t d_ff_, std::uint64_t s) : d(d_), d_ff(d_ff_) {
    auto const r = [&](index_t n, float sd) { return test::random_vector<T>(static_cast<std::size_t>(n), ++s, sd); };
    float const sd = 1.0f / std::sqrt(static_cast<float>(d));
    probe = r(d, 1.0f);
    q_w = r(d * d, sd);
    q_b = r(d, 0.1f);
    kv_w = r(2 * d * d, sd);
    kv_b = r(2 * d, 0.1f);
    proj_w = r(d * d, sd);
    proj_b = r(d, 0.1f);
    norm_w = r(d, 1.0f);
    norm_b = r(d, 0.1f);
    fc1_w = r(d_ff * d, sd);
    fc1_b = r(d_ff, 0.1f);
    fc2_w = r(d * d_ff, 1.0f / std::sqrt(static_cast<float>(d_ff)));
    fc2_b = r(d, 0.1f);
  }
  [[nodiscard]] pool::map_head_weights<T> weights() const {
    auto const v1 = [](std::vector<T> const& v) { return tensor_view<T const, 1>(v.data(), {static_cast<index_t>(v.size())}); };
    auto const v2 = [](std::vector<T> const& v, index_t rows) {
      return tensor_view<T const, 2>(v.data(), {rows, static_cast<index_t>(v.size()) / rows});
    };
    return {v1(probe), v2(q_w, d),       v1(q_b),   v2(kv_w, 2 * d), v1(kv_b), v2(proj_w, d), v1(proj_b),
            v1(norm_w), v1(norm_b),      v2(fc1_w, d_ff), v1(fc1_b), v2(fc2_w, d), v1(fc2_b)};
  }
};

using test::small_config;

using test::grids;
using test::image_patches;

using test::pack_rows;

struct encoded {
  std::vector<float> tokens, pooled;
};

/// Runs an encoder over `plan` with the packed patches.
template <class Enc, class Backend>
encoded encode_all(Enc const& enc, pack::pack_plan const& plan, std::vector<float> const& packed, exec_ctx<Backend>& ctx) {
  index_t const n = plan.n_slots(), d = enc.d_model(), f = enc.config().patch_dim;
  encoded e;
  e.tokens.assign(static_cast<std::size_t>(n * d), -7.0f);
  tensor_view<float, 2> pooled_view;
  if constexpr (Enc::pooling_type::pools) {
    e.pooled.assign(static_cast<std::size_t>(plan.n_images() * d), -7.0f);
    pooled_view = tensor_view<float, 2>(e.pooled.data(), {plan.n_images(), d});
  }
  enc.forward(tensor_view<float const, 2>(packed.data(), {n, f}), vision::batch_of(plan),
              tensor_view<float, 2>(e.tokens.data(), {n, d}), ctx, pooled_view);
  return e;
}

/// The rows of image i's real tokens (its kept slots), [n_kept(i) * d].
std::vector<float> image_tokens(pack::pack_plan const& plan, std::vector<float> const& tokens, index_t i, index_t d) {
  auto const b = tokens.begin() + static_cast<std::ptrdiff_t>(plan.slot_begin(i) * d);
  return {b, b + static_cast<std::ptrdiff_t>(plan.n_kept(i) * d)};
}

/// Real (non-padding) slots only: padding rows of the tokens are unspecified.
std::vector<float> real_tokens(pack::pack_plan const& plan, std::vector<float> const& tokens, index_t d) {
  std::vector<float> out;
  for (index_t i = 0; i < plan.n_images(); ++i) {
    auto const t = image_tokens(plan, tokens, i, d);
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

template <class Backend, class T, class Norm, class Pool, class Pos = pol::no_position>
using encoder = vision::vision_encoder<Backend, T, Pos, Norm, pol::gelu, Pool>;

// A fixed-rows plan with padding, images out of input order in the segments.
pack::pack_plan padded_plan() { return model::navit_plan(grids, 40, 3); }

/// cpu vs reference over two blocks (different summation orders): the plain vs_ref budgets. With
/// bf16 weights both backends round activations to bf16 before each product, so a last-bit
/// difference upstream can flip a rounding: the bf16 budget. Measured on the dev machine: f32
/// max abs 9.5e-7 (7 % of the budget), bf16 max abs 1.3e-3 (14 %).
template <class T>
test::tolerance encoder_vs_ref() {
  return std::is_same_v<T, bf16> ? tol<bf16>::vs_ref : tol<float>::vs_ref;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// cpu vs reference
// ------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("vision_encoder (rms_norm, no_position, max_pooling): cpu matches the reference",
                   "[vision][unit]", float, bf16) {
  auto const c = small_config();
  policy_weights<TestType> const rw(c, test::seed(21));
  INFO("seed " << test::seed(21));
  pack::pack_plan const plan = padded_plan();
  auto const packed = pack_rows(plan, image_patches(c.patch_dim, 31), c.patch_dim);
  exec_ctx<backend::reference> rctx;
  exec_ctx<backend::cpu> cctx;
  auto const want = encode_all(encoder<backend::reference, TestType, pol::rms_norm, pol::max_pooling>(c, rw.w), plan, packed, rctx);
  auto const got = encode_all(encoder<backend::cpu, TestType, pol::rms_norm, pol::max_pooling>(c, rw.w), plan, packed, cctx);
  index_t const d = c.block.d_model;
  TESSERA_REQUIRE_CLOSE(real_tokens(plan, got.tokens, d), real_tokens(plan, want.tokens, d), encoder_vs_ref<TestType>());
  TESSERA_REQUIRE_CLOSE(got.pooled, want.pooled, encoder_vs_ref<TestType>());
  for (float v : got.tokens) REQUIRE(std::isfinite(v));
}

TEMPLATE_TEST_CASE("vision_encoder (layer_norm, no_position, map_head_pooling): cpu matches the reference",
                   "[vision][unit]", float, bf16) {
  auto const c = small_config();
  policy_weights<TestType> const rw(c, test::seed(22));
  map_params<TestType> const mp(c.block.d_model, 48, test::seed(23));
  INFO("seeds " << test::seed(22) << ", " << test::seed(23));
  pol::map_head_pooling<TestType> const pool{mp.weights(), pool::map_head_options{.n_heads = 4}};
  pack::pack_plan const plan = padded_plan();
  auto const packed = pack_rows(plan, image_patches(c.patch_dim, 32), c.patch_dim);
  exec_ctx<backend::reference> rctx;
  exec_ctx<backend::cpu> cctx;
  using ref_enc = encoder<backend::reference, TestType, pol::layer_norm, pol::map_head_pooling<TestType>>;
  using cpu_enc = encoder<backend::cpu, TestType, pol::layer_norm, pol::map_head_pooling<TestType>>;
  auto const want = encode_all(ref_enc(c, rw.w, {}, {}, {}, pool), plan, packed, rctx);
  auto const got = encode_all(cpu_enc(c, rw.w, {}, {}, {}, pool), plan, packed, cctx);
  index_t const d = c.block.d_model;
  TESSERA_REQUIRE_CLOSE(real_tokens(plan, got.tokens, d), real_tokens(plan, want.tokens, d), encoder_vs_ref<TestType>());
  TESSERA_REQUIRE_CLOSE(got.pooled, want.pooled, encoder_vs_ref<TestType>());
}

// ------------------------------------------------------------------------------------------------
// rms_norm and no_position are applied
// ------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("vision_encoder: the rms_norm policy computes RMSNorm, no_position adds nothing",
                   "[vision][unit]", backend::reference, backend::cpu) {
  // Depth 0, no patch_norm_in, no final norm: tokens = RMSNorm(W x + b) * g, computed here in double.
  auto c = small_config(0);
  policy_weights<float> rw(c, test::seed(24));
  INFO("seed " << test::seed(24));
  rw.w.patch_norm_in.reset();
  rw.w.final_norm.reset();
  pack::pack_plan const plan = pack::pack_plan::make(grids);
  auto const packed = pack_rows(plan, image_patches(c.patch_dim, 33), c.patch_dim);
  index_t const n = plan.n_slots(), d = c.block.d_model, f = c.patch_dim;
  float const eps = 1e-6f;
  auto const& W = rw.w.patch_embed.weight;
  auto const& B = *rw.w.patch_embed.bias;
  auto const& G = rw.w.patch_norm_out->weight;
  std::vector<float> want(static_cast<std::size_t>(n * d)), want_ln(want.size());
  for (index_t t = 0; t < n; ++t) {
    std::vector<double> z(static_cast<std::size_t>(d));
    double ss = 0, sum = 0;
    for (index_t o = 0; o < d; ++o) {
      double acc = B(o);
      for (index_t k = 0; k < f; ++k) acc += double(W(o, k)) * packed[static_cast<std::size_t>(t * f + k)];
      z[static_cast<std::size_t>(o)] = acc;
      ss += acc * acc;
      sum += acc;
    }
    double const inv_rms = 1.0 / std::sqrt(ss / double(d) + double(eps));
    double const mean = sum / double(d);
    double var = 0;
    for (double v : z) var += (v - mean) * (v - mean);
    double const inv_std = 1.0 / std::sqrt(var / double(d) + double(eps));
    for (index_t o = 0; o < d; ++o) {
      want[static_cast<std::size_t>(t * d + o)] = static_cast<float>(z[static_cast<std::size_t>(o)] * inv_rms * G(o));
      want_ln[static_cast<std::size_t>(t * d + o)] =
          static_cast<float>((z[static_cast<std::size_t>(o)] - mean) * inv_std * G(o));
    }
  }
  exec_ctx<TestType> ctx;
  auto const rms = encode_all(encoder<TestType, float, pol::rms_norm, pol::no_pooling>(c, rw.w, {}, pol::rms_norm{eps}), plan,
                       packed, ctx);
  TESSERA_REQUIRE_CLOSE(rms.tokens, want, tol<float>::vs_ref);
  // The layer_norm policy on the same weights computes LayerNorm (the hand formula above), which is
  // far from RMSNorm here: the rows of W x + b do not have zero mean.
  auto const ln = encode_all(encoder<TestType, float, pol::layer_norm, pol::no_pooling>(c, rw.w, {}, pol::layer_norm{eps}), plan,
                      packed, ctx);
  TESSERA_REQUIRE_CLOSE(ln.tokens, want_ln, tol<float>::vs_ref);
  auto const cross = test::compare(ln.tokens, want, tol<float>::vs_ref);
  INFO("layer_norm policy vs hand RMSNorm: " << cross.report());
  CHECK_FALSE(cross.ok);
  CHECK(cross.max_abs > 1e-2);
}

TEMPLATE_TEST_CASE("vision_encoder: rms_norm and layer_norm policies give different tokens on the same weights",
                   "[vision][unit]", backend::reference, backend::cpu) {
  auto const c = small_config();
  policy_weights<float> const rw(c, test::seed(25));
  INFO("seed " << test::seed(25));
  pack::pack_plan const plan = padded_plan();
  auto const packed = pack_rows(plan, image_patches(c.patch_dim, 34), c.patch_dim);
  exec_ctx<TestType> ctx;
  index_t const d = c.block.d_model;
  auto const rms = encode_all(encoder<TestType, float, pol::rms_norm, pol::max_pooling>(c, rw.w), plan, packed, ctx);
  auto const ln = encode_all(encoder<TestType, float, pol::layer_norm, pol::max_pooling>(c, rw.w), plan, packed, ctx);
  auto const r = test::compare(real_tokens(plan, rms.tokens, d), real_tokens(plan, ln.tokens, d), tol<float>::vs_golden);
  INFO("rms_norm vs layer_norm tokens: " << r.report());
  CHECK_FALSE(r.ok);
  CHECK(r.max_abs > 1e-2);
}

TEST_CASE("vision_encoder: no_position is equivariant to permuting one image's patches", "[vision][unit]") {
  auto const c = small_config();
  policy_weights<float> const rw(c, test::seed(26));
  INFO("seed " << test::seed(26));
  index_t const d = c.block.d_model, f = c.patch_dim;
  auto const per_image = image_patches(f, 35);
  index_t const img = 1;  // the 6 x 4 image
  index_t const np = grids[static_cast<std::size_t>(img)].n_patches();
  std::vector<index_t> perm(static_cast<std::size_t>(np));
  std::iota(perm.begin(), perm.end(), index_t{0});
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(test::seed(27)));
  auto permuted = per_image;  // new patch p = old patch perm[p]
  for (index_t p = 0; p < np; ++p)
    std::copy_n(per_image[img].begin() + perm[p] * f, f, permuted[img].begin() + p * f);

  /// max |tokens(permuted)[p] - tokens(original)[perm[p]]| and the other images' / pooled changes,
  /// as comparison results against the vs_ref budget.
  auto const check = [&](auto const& enc, pack::pack_plan const& plan) {
    exec_ctx<backend::cpu> ctx;
    auto const a = encode_all(enc, plan, pack_rows(plan, per_image, f), ctx);
    auto const b = encode_all(enc, plan, pack_rows(plan, permuted, f), ctx);
    std::vector<float> want, got;
    for (index_t i = 0; i < plan.n_images(); ++i) {
      for (index_t p = 0; p < plan.n_kept(i); ++p) {
        index_t const s = plan.slot_begin(i) + p;
        REQUIRE(plan.source_patch()[static_cast<std::size_t>(s)] == p);  // no token drop: slot order = patch order
        index_t const src = plan.slot_begin(i) + (i == img ? perm[p] : p);
        for (index_t k = 0; k < d; ++k) {
          got.push_back(b.tokens[static_cast<std::size_t>(s * d + k)]);
          want.push_back(a.tokens[static_cast<std::size_t>(src * d + k)]);
        }
      }
    }
    return std::pair{test::compare(got, want, tol<float>::vs_ref), test::compare(b.pooled, a.pooled, tol<float>::vs_ref)};
  };
  for (pack::pack_plan const& plan : {pack::pack_plan::make(grids), padded_plan()}) {
    INFO("plan: " << plan.n_rows() << " rows of " << plan.row_len() << " slots");
    auto const [tokens, pooled] = check(encoder<backend::cpu, float, pol::layer_norm, pol::max_pooling>(c, rw.w), plan);
    INFO("no_position tokens: " << tokens.report());
    INFO("no_position pooled: " << pooled.report());
    CHECK(tokens.ok);
    CHECK(pooled.ok);
    // The same check with a position policy that does something must fail, so it can catch a
    // no_position that is not one.
    auto const [pt, pp] =
        check(encoder<backend::cpu, float, pol::layer_norm, pol::max_pooling, pol::factorized_sinusoidal>(c, rw.w), plan);
    INFO("factorized_sinusoidal tokens: " << pt.report());
    CHECK_FALSE(pt.ok);
    auto const [rt, rp] = check(encoder<backend::cpu, float, pol::layer_norm, pol::max_pooling, pol::rope_2d>(c, rw.w), plan);
    INFO("rope_2d tokens: " << rt.report());
    CHECK_FALSE(rt.ok);
  }
}

// ------------------------------------------------------------------------------------------------
// Pooling policies are applied
// ------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("vision_encoder: max_pooling is the per-image max of the output tokens", "[vision][unit]",
                   backend::reference, backend::cpu) {
  auto const c = small_config();
  policy_weights<float> const rw(c, test::seed(28));
  INFO("seed " << test::seed(28));
  index_t const d = c.block.d_model;
  exec_ctx<TestType> ctx;
  for (pack::pack_plan const& plan : {pack::pack_plan::make(grids), padded_plan(), model::navit_plan(grids, 64, 2)}) {
    INFO("plan: " << plan.n_rows() << " rows of " << plan.row_len() << " slots");
    auto const packed = pack_rows(plan, image_patches(c.patch_dim, 36), c.patch_dim);
    auto const e = encode_all(encoder<TestType, float, pol::rms_norm, pol::max_pooling>(c, rw.w), plan, packed, ctx);
    std::vector<float> want(static_cast<std::size_t>(plan.n_images() * d));
    for (index_t i = 0; i < plan.n_images(); ++i)
      for (index_t k = 0; k < d; ++k) {
        float m = -INFINITY;
        for (index_t s = plan.slot_begin(i); s < plan.slot_begin(i) + plan.n_kept(i); ++s)
          m = std::max(m, e.tokens[static_cast<std::size_t>(s * d + k)]);
        want[static_cast<std::size_t>(i * d + k)] = m;
      }
    TESSERA_REQUIRE_CLOSE(e.pooled, want, (test::tolerance{0, 0}));  // a max does not round
    // And it is not the mean (the mean_pooling policy on the same encoder).
    auto const mean = encode_all(encoder<TestType, float, pol::rms_norm, pol::mean_pooling>(c, rw.w), plan, packed, ctx);
    CHECK_FALSE(test::compare(mean.pooled, want, tol<float>::vs_ref).ok);
  }
}

TEMPLATE_TEST_CASE("vision_encoder: map_head_pooling is pool::map_head on each image's tokens alone", "[vision][unit]",
                   backend::reference, backend::cpu) {
  auto const c = small_config();
  policy_weights<float> const rw(c, test::seed(29));
  map_params<float> const mp(c.block.d_model, 48, test::seed(30));
  INFO("seeds " << test::seed(29) << ", " << test::seed(30));
  pool::map_head_options const opt{.n_heads = 4};
  pol::map_head_pooling<float> const pool{mp.weights(), opt};
  index_t const d = c.block.d_model;
  exec_ctx<TestType> ctx;
  exec_ctx<backend::reference> rctx;
  for (pack::pack_plan const& plan : {pack::pack_plan::make(grids), padded_plan(), model::navit_plan(grids, 64, 2)}) {
    INFO("plan: " << plan.n_rows() << " rows of " << plan.row_len() << " slots");
    auto const packed = pack_rows(plan, image_patches(c.patch_dim, 37), c.patch_dim);
    auto const e = encode_all(encoder<TestType, float, pol::layer_norm, pol::map_head_pooling<float>>(c, rw.w, {}, {}, {}, pool),
                       plan, packed, ctx);
    for (index_t i = 0; i < plan.n_images(); ++i) {
      INFO("image " << i);
      auto const x = image_tokens(plan, e.tokens, i, d);
      seq_offsets const one = seq_offsets::single(plan.n_kept(i));
      std::vector<float> want(static_cast<std::size_t>(d));
      pool::map_head<backend::reference>(tensor_view<float const, 2>(x.data(), {plan.n_kept(i), d}), one, mp.weights(), opt,
                                         tensor_view<float, 2>(want.data(), {1, d}), rctx);
      std::vector<float> const got(e.pooled.begin() + i * d, e.pooled.begin() + (i + 1) * d);
      TESSERA_REQUIRE_CLOSE(got, want, tol<float>::vs_ref);
    }
  }
}
