// SPDX-License-Identifier: Apache-2.0
// nn::gather_rows, nn::scatter_rows and nn::embedding: hand-worked cases, the cpu backend equals
// the reference bit for bit (data movement), f32 / bf16 / f16 sources widen exactly, strided
// rows, and bad indices are refused before anything is written.
#include "common/compare.hpp"

#include <tessera/nn/embedding.hpp>
#include <tessera/nn/gather.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cstdint>
#include <vector>

using namespace tessera;
using Catch::Matchers::ContainsSubstring;

TEST_CASE("gather_rows / scatter_rows: hand-worked (reference)", "[nn][gather][unit]") {
  std::vector<float> const src{0, 1, 10, 11, 20, 21};  // [3, 2]
  std::vector<std::int64_t> const idx{2, 0, 2};
  std::vector<float> out(6, -1.0f);
  exec_ctx<backend::reference> ctx;
  nn::gather_rows<backend::reference>(tensor_view<float const, 2>(src.data(), {3, 2}), std::span<std::int64_t const>(idx),
                                      tensor_view<float, 2>(out.data(), {3, 2}), ctx);
  REQUIRE(out == std::vector<float>{20, 21, 0, 1, 20, 21});
  std::vector<float> dst(8, -1.0f);  // [4, 2]
  std::vector<std::int32_t> const to{3, 1};
  nn::scatter_rows<backend::reference>(tensor_view<float const, 2>(src.data(), {2, 2}), std::span<std::int32_t const>(to),
                                       tensor_view<float, 2>(dst.data(), {4, 2}), ctx);
  REQUIRE(dst == std::vector<float>{-1, -1, 10, 11, -1, -1, 0, 1});
}

TEMPLATE_TEST_CASE("embedding: cpu equals the reference exactly, rows widen exactly, strided out", "[nn][gather][unit]",
                   float, bf16, f16) {
  index_t const vocab = 129, d = 72, n = 17;
  std::vector<TestType> table(static_cast<std::size_t>(vocab * d));
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = from_float<TestType>(static_cast<float>(i % 251) * 0.37f - 40.0f);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (index_t t = 0; t < n; ++t) ids[static_cast<std::size_t>(t)] = static_cast<std::int32_t>((t * 53 + 7) % vocab);
  index_t const stride = d + 5;  // strided output rows
  test::guarded<float> got(n * stride, -7.0f), want(n * stride, -7.0f);
  exec_ctx<backend::cpu> cpu(2);
  exec_ctx<backend::reference> ref;
  tensor_view<TestType const, 2> const tv(table.data(), {vocab, d});
  nn::embedding<backend::cpu>(tv, ids, tensor_view<float, 2>(got.data(), {n, d}, {stride, 1}), cpu);
  nn::embedding<backend::reference>(tv, ids, tensor_view<float, 2>(want.data(), {n, d}, {stride, 1}), ref);
  REQUIRE(got.intact());
  REQUIRE(got.values() == want.values());
  for (index_t t = 0; t < n; ++t)
    for (index_t j = 0; j < d; ++j)
      REQUIRE(got.data()[t * stride + j] == to_float(table[static_cast<std::size_t>(ids[static_cast<std::size_t>(t)] * d + j)]));
  for (index_t t = 0; t < n; ++t) REQUIRE(got.data()[t * stride + d] == -7.0f);  // the gaps stay untouched
}

TEST_CASE("gather / scatter / embedding: bad indices and shapes are refused before writing", "[nn][gather][unit]") {
  std::vector<float> const src(12, 1.0f);  // [6, 2]
  std::vector<float> out(4, -3.0f);
  exec_ctx<backend::cpu> ctx;
  std::vector<std::int32_t> const bad{1, 6};
  REQUIRE_THROWS_WITH(nn::embedding<backend::cpu>(tensor_view<float const, 2>(src.data(), {6, 2}), bad,
                                                  tensor_view<float, 2>(out.data(), {2, 2}), ctx),
                      ContainsSubstring("token 1 has id 6, outside the vocabulary [0, 6)"));
  REQUIRE(out == std::vector<float>(4, -3.0f));
  std::vector<std::int64_t> const neg{-1};
  REQUIRE_THROWS_WITH(nn::scatter_rows<backend::cpu>(tensor_view<float const, 2>(src.data(), {1, 2}),
                                                     std::span<std::int64_t const>(neg),
                                                     tensor_view<float, 2>(out.data(), {2, 2}), ctx),
                      ContainsSubstring("index 0 is -1"));
  std::vector<std::int64_t> const one{0};
  REQUIRE_THROWS_WITH(nn::gather_rows<backend::cpu>(tensor_view<float const, 2>(src.data(), {6, 2}),
                                                    std::span<std::int64_t const>(one),
                                                    tensor_view<float, 2>(out.data(), {2, 2}), ctx),
                      ContainsSubstring("out must be [1, 2]"));
}
