// SPDX-License-Identifier: Apache-2.0
// attn::plan_cache_pass, attn::kv_append and attn::range_plan: hand-worked plans, keys and values
// land in their rows (bf16 rounded to nearest even), the cpu backend equals the reference, the
// plan-based attention equals the explicit-range attention, and bad input is refused.
#include <tessera/attn/cache_pass.hpp>
#include <tessera/attn/masked_attention.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cstdint>
#include <vector>

using namespace tessera;
using Catch::Matchers::ContainsSubstring;

TEST_CASE("plan_cache_pass: positions, cache rows and ranges of a packed pass (hand-worked)", "[attn][cache][unit]") {
  // Two sequences: 2 new tokens after 3 cached ones in the slot starting at row 8; 3 new tokens
  // in an empty slot starting at row 0.
  auto const seqs = seq_offsets::from_lengths({2, 3});
  std::vector<index_t> const first{8, 0}, past{3, 0};
  std::vector<std::int32_t> pos(5);
  std::vector<index_t> rows(5);
  std::vector<attn::seq_range> ranges(2);
  exec_ctx<backend::reference> ctx;
  attn::plan_cache_pass<backend::reference>(seqs, first, past, tensor_view<std::int32_t, 1>(pos.data(), {5}),
                                            tensor_view<index_t, 1>(rows.data(), {5}), ranges, ctx);
  REQUIRE(pos == std::vector<std::int32_t>{3, 4, 0, 1, 2});
  REQUIRE(rows == std::vector<index_t>{11, 12, 0, 1, 2});
  REQUIRE((ranges[0].q_begin == 0 && ranges[0].q_end == 2 && ranges[0].kv_begin == 8 && ranges[0].kv_end == 13));
  REQUIRE((ranges[1].q_begin == 2 && ranges[1].q_end == 5 && ranges[1].kv_begin == 0 && ranges[1].kv_end == 3));
  REQUIRE_THROWS_WITH(attn::plan_cache_pass<backend::reference>(seqs, std::vector<index_t>{8}, past,
                                                                tensor_view<std::int32_t, 1>(pos.data(), {5}),
                                                                tensor_view<index_t, 1>(rows.data(), {5}), ranges, ctx),
                      ContainsSubstring("2 sequences but 1 first rows"));
}

TEMPLATE_TEST_CASE("kv_append: keys and values land in their rows, converted like torch", "[attn][cache][unit]", float,
                   bf16) {
  index_t const n = 3, g = 2, hd = 5, cache_rows = 7;
  // k, v as strided views into one [n, 2 * g * hd] buffer (a fused projection's columns).
  std::vector<float> kv(static_cast<std::size_t>(n * 2 * g * hd));
  for (std::size_t i = 0; i < kv.size(); ++i) kv[i] = 1.0f + static_cast<float>(i) * 0.001953125f + 1e-4f;
  tensor_view<float const, 3> const k(kv.data(), {n, g, hd}, {2 * g * hd, hd, 1});
  tensor_view<float const, 3> const v(kv.data() + g * hd, {n, g, hd}, {2 * g * hd, hd, 1});
  std::vector<index_t> const rows{6, 0, 3};
  std::vector<TestType> keys_r(static_cast<std::size_t>(cache_rows * g * hd), from_float<TestType>(-9.0f));
  std::vector<TestType> vals_r = keys_r, keys_c = keys_r, vals_c = keys_r;
  exec_ctx<backend::reference> ref;
  exec_ctx<backend::cpu> cpu(2);
  tensor_view<index_t const, 1> const rv(rows.data(), {n});
  attn::kv_append<backend::reference, TestType>(k, v, rv, tensor_view<TestType, 3>(keys_r.data(), {cache_rows, g, hd}),
                                                tensor_view<TestType, 3>(vals_r.data(), {cache_rows, g, hd}), ref);
  attn::kv_append<backend::cpu, TestType>(k, v, rv, tensor_view<TestType, 3>(keys_c.data(), {cache_rows, g, hd}),
                                          tensor_view<TestType, 3>(vals_c.data(), {cache_rows, g, hd}), cpu);
  for (std::size_t i = 0; i < keys_r.size(); ++i) {
    REQUIRE(to_float(keys_r[i]) == to_float(keys_c[i]));
    REQUIRE(to_float(vals_r[i]) == to_float(vals_c[i]));
  }
  for (index_t t = 0; t < n; ++t)
    for (index_t h = 0; h < g; ++h)
      for (index_t j = 0; j < hd; ++j) {
        std::size_t const at = static_cast<std::size_t>((rows[static_cast<std::size_t>(t)] * g + h) * hd + j);
        REQUIRE(to_float(keys_r[at]) == to_float(from_float<TestType>(k(t, h, j))));
        REQUIRE(to_float(vals_r[at]) == to_float(from_float<TestType>(v(t, h, j))));
      }
  REQUIRE(to_float(keys_r[static_cast<std::size_t>(1 * g * hd)]) == -9.0f);  // row 1 untouched
  std::vector<index_t> const outside{0, 7, 1};
  REQUIRE_THROWS_WITH((attn::kv_append<backend::cpu, TestType>(k, v, tensor_view<index_t const, 1>(outside.data(), {n}),
                                                               tensor_view<TestType, 3>(keys_c.data(), {cache_rows, g, hd}),
                                                               tensor_view<TestType, 3>(vals_c.data(), {cache_rows, g, hd}),
                                                               cpu)),
                      ContainsSubstring("token 1 goes to row 7"));
}

TEST_CASE("range_plan: attention over a plan equals the explicit ranges; bad plans are refused", "[attn][cache][unit]") {
  index_t const n_q = 6, n_kv = 10, h = 4, g = 2, hd = 16;
  std::vector<float> q(static_cast<std::size_t>(n_q * h * hd)), kv(static_cast<std::size_t>(n_kv * g * hd));
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>((i * 29) % 17) / 17.0f - 0.5f;
  for (std::size_t i = 0; i < kv.size(); ++i) kv[i] = static_cast<float>((i * 31) % 19) / 19.0f - 0.5f;
  std::vector<attn::seq_range> const ranges{{0, 2, 5, 10}, {2, 6, 0, 4}};
  tensor_view<float const, 3> const qv(q.data(), {n_q, h, hd}), kvv(kv.data(), {n_kv, g, hd});
  std::vector<float> a(q.size()), b(q.size());
  exec_ctx<backend::cpu> ctx(2);
  attn::attention_options const causal{.causal = true, .scale = 0.0f};
  attn::masked_attention<backend::cpu>(qv, kvv, kvv, std::span<attn::seq_range const>(ranges),
                                       tensor_view<float, 3>(a.data(), {n_q, h, hd}), ctx, causal);
  attn::range_plan const plan(ranges, n_q, n_kv);
  attn::masked_attention<backend::cpu, float>(qv, kvv, kvv, plan, tensor_view<float, 3>(b.data(), {n_q, h, hd}), ctx,
                                              causal);
  REQUIRE(a == b);
  std::vector<attn::seq_range> const reversed{{2, 6, 0, 4}, {0, 2, 5, 10}};
  REQUIRE_THROWS_WITH(attn::range_plan(reversed, n_q, n_kv), ContainsSubstring("must be in order and disjoint"));
  std::vector<attn::seq_range> const outside{{0, 2, 5, 11}};
  REQUIRE_THROWS_WITH(attn::range_plan(outside, n_q, n_kv), ContainsSubstring("outside k's [0, 10)"));
  attn::range_plan const small(ranges, n_q, n_kv - 1 + 1);
  REQUIRE_THROWS_WITH((attn::masked_attention<backend::cpu, float>(
                          tensor_view<float const, 3>(q.data(), {n_q - 1, h, hd}), kvv, kvv, small,
                          tensor_view<float, 3>(b.data(), {n_q - 1, h, hd}), ctx, causal)),
                      ContainsSubstring("the plan is for 6 queries"));
}

TEST_CASE("plan_ranges: the seq_offsets form planned once equals the per-call form, padding included",
          "[attn][cache][unit]") {
  index_t const h = 2, hd = 8;
  auto const seqs = seq_offsets::from_lengths({3, 0, 4, 2});
  std::vector<std::uint8_t> const padding{0, 0, 0, 1};  // the last segment is padding: zeros
  index_t const n = seqs.n_tokens();
  std::vector<float> qkv(static_cast<std::size_t>(n * h * hd));
  for (std::size_t i = 0; i < qkv.size(); ++i) qkv[i] = static_cast<float>((i * 13) % 11) / 11.0f - 0.5f;
  tensor_view<float const, 3> const t(qkv.data(), {n, h, hd});
  std::vector<float> a(qkv.size(), 7.0f), b(qkv.size(), 7.0f);
  exec_ctx<backend::cpu> ctx(2);
  attn::masked_attention<backend::cpu>(t, t, t, seqs, tensor_view<float, 3>(a.data(), {n, h, hd}), ctx, {}, {}, padding);
  std::vector<attn::seq_range> storage(4);
  attn::range_plan const plan = attn::plan_ranges(seqs, seqs, padding, storage);
  attn::masked_attention<backend::cpu, float>(t, t, t, plan, tensor_view<float, 3>(b.data(), {n, h, hd}), ctx);
  REQUIRE(a == b);
  for (index_t i = 7 * h * hd; i < n * h * hd; ++i) REQUIRE(b[static_cast<std::size_t>(i)] == 0.0f);  // padding rows
  REQUIRE_THROWS_WITH(attn::plan_ranges(seqs, seqs, std::vector<std::uint8_t>{0, 1}, storage),
                      ContainsSubstring("one entry per sequence (4)"));
}
