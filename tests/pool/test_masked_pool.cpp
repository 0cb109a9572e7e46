// SPDX-License-Identifier: Apache-2.0
// pool::masked_mean / masked_max: hand-worked cases (empty and padding sequences); cpu vs reference
// on ragged batches (awkward dims, strided rows, guards, thread counts); packed == each sequence
// alone; NaN and -inf; argument errors.
#include <tessera/pool/masked_max.hpp>
#include <tessera/pool/masked_mean.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using namespace tessera;

namespace {

enum class op { mean, max };

template <class Backend>
std::vector<float> run_pool(op o, std::vector<float> const& x, index_t dim, seq_offsets const& seqs,
                            std::vector<std::uint8_t> const& masked = {}, index_t x_pad = 0, index_t out_pad = 0,
                            int threads = 2) {
  test::strided_rows xb(seqs.n_tokens(), dim, dim + x_pad, x);
  std::vector<float> const init(static_cast<std::size_t>(seqs.n_seqs() * dim), std::nanf(""));
  test::strided_rows ob(seqs.n_seqs(), dim, dim + out_pad, init);
  exec_ctx<Backend> ctx(threads);
  tensor_view<float const, 2> const xv = xb.view();
  if (o == op::mean) pool::masked_mean<Backend>(xv, seqs, ob.view(), ctx, masked);
  else pool::masked_max<Backend>(xv, seqs, ob.view(), ctx, masked);
  REQUIRE(xb.intact());
  REQUIRE(ob.intact());
  return ob.values();
}

std::vector<std::vector<std::int64_t>> const ragged_sets{{0}, {1}, {7, 0, 129}, {129, 1, 1, 1, 17}, {3, 72, 2}};

}  // namespace

TEST_CASE("masked_mean and masked_max reference: hand-worked case", "[pool][unit]") {
  // Sequences of 2, 0 and 3 tokens, dim 3.
  std::vector<float> const x{1, -2, 4,  3, 6, -4,         // sequence 0
                             0, 1, 2,  3, 4, 5,  6, -5, 8};  // sequence 2
  auto const seqs = seq_offsets::from_lengths({2, 0, 3});
  for (auto* run : {&run_pool<backend::reference>, &run_pool<backend::cpu>}) {
    CHECK((*run)(op::mean, x, 3, seqs, {}, 0, 0, 2) == std::vector<float>{2, 2, 0, 0, 0, 0, 3, 0, 5});
    CHECK((*run)(op::max, x, 3, seqs, {}, 0, 0, 2) == std::vector<float>{3, 6, 4, 0, 0, 0, 6, 4, 8});
    // Sequence 2 flagged as padding: its row is 0.
    CHECK((*run)(op::mean, x, 3, seqs, {0, 0, 1}, 0, 0, 2) == std::vector<float>{2, 2, 0, 0, 0, 0, 0, 0, 0});
    CHECK((*run)(op::max, x, 3, seqs, {1, 0, 0}, 0, 0, 2) == std::vector<float>{0, 0, 0, 0, 0, 0, 6, 4, 8});
  }
}

TEST_CASE("masked_mean and masked_max cpu match the reference on ragged batches", "[pool][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  for (auto const& lens : ragged_sets)
    for (index_t dim : test::awkward_sizes)
      for (int variant = 0; variant < 2; ++variant) {
        auto const seqs = seq_offsets::from_lengths(lens);
        INFO("lengths " << lens.size() << " sequences, first " << lens[0] << ", dim " << dim << ", variant " << variant);
        auto const x = test::random_vector<float>(static_cast<std::size_t>(seqs.n_tokens() * dim), ++s);
        std::vector<std::uint8_t> masked;
        if (variant) {  // every other sequence is padding
          for (std::size_t i = 0; i < lens.size(); ++i) masked.push_back(static_cast<std::uint8_t>(i % 2));
        }
        index_t const pad = variant ? 5 : 0;
        int const threads = variant ? 3 : 1;
        // The mean's f32 sum of <= 129 N(0, 1) terms differs from the f64 one by far less than 1e-5.
        TESSERA_REQUIRE_CLOSE(run_pool<backend::cpu>(op::mean, x, dim, seqs, masked, pad, 2 * pad, threads),
                              run_pool<backend::reference>(op::mean, x, dim, seqs, masked), test::tol<float>::vs_ref);
        CHECK(run_pool<backend::cpu>(op::max, x, dim, seqs, masked, pad, 2 * pad, threads) ==
              run_pool<backend::reference>(op::max, x, dim, seqs, masked));
      }
}

TEST_CASE("masked pooling of a packed batch equals each sequence alone", "[pool][unit]") {
  std::vector<std::int64_t> const lens{7, 0, 129, 1};
  auto const seqs = seq_offsets::from_lengths(lens);
  index_t const dim = 72;
  auto const x = test::random_vector<float>(static_cast<std::size_t>(seqs.n_tokens() * dim), test::seed());
  for (op o : {op::mean, op::max}) {
    auto const packed = run_pool<backend::cpu>(o, x, dim, seqs, {}, 0, 0, 3);
    for (std::size_t i = 0; i < lens.size(); ++i) {
      auto const b = static_cast<std::ptrdiff_t>(seqs.begin(static_cast<std::int64_t>(i)) * dim);
      std::vector<float> const xi(x.begin() + b, x.begin() + b + lens[i] * dim);
      auto const alone = run_pool<backend::cpu>(o, xi, dim, seq_offsets::single(lens[i]), {}, 0, 0, 1);
      CHECK(alone == std::vector<float>(packed.begin() + static_cast<std::ptrdiff_t>(i) * dim,
                                        packed.begin() + static_cast<std::ptrdiff_t>(i + 1) * dim));
    }
  }
}

TEST_CASE("masked_max propagates NaN and keeps -inf", "[pool][unit]") {
  float const nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // dim 17 (a SIMD tail); column 0: NaN in the middle; column 1: all -inf; column 16: NaN first.
  index_t const dim = 17;
  std::vector<float> x(static_cast<std::size_t>(3 * dim), 1.0f);
  x[static_cast<std::size_t>(1 * dim + 0)] = nan;
  for (int t = 0; t < 3; ++t) x[static_cast<std::size_t>(t * dim + 1)] = -inf;
  x[static_cast<std::size_t>(0 * dim + 16)] = nan;
  auto const seqs = seq_offsets::single(3);
  for (auto* run : {&run_pool<backend::reference>, &run_pool<backend::cpu>}) {
    auto const m = (*run)(op::max, x, dim, seqs, {}, 0, 0, 1);
    CHECK(std::isnan(m[0]));
    CHECK(m[1] == -inf);
    CHECK(std::isnan(m[16]));
    for (index_t j = 2; j < 16; ++j) CHECK(m[static_cast<std::size_t>(j)] == 1.0f);
  }
}

TEST_CASE("masked pooling rejects bad arguments", "[pool][unit]") {
  exec_ctx<backend::cpu> ctx(1);
  std::vector<float> x(5 * 4, 1.0f), out(2 * 4, -1.0f);
  auto const seqs = seq_offsets::from_lengths({2, 3});
  tensor_view<float const, 2> const xv(x.data(), {5, 4});
  tensor_view<float, 2> const ov(out.data(), {2, 4});
  std::vector<std::uint8_t> const bad_len{0}, bad_val{0, 2};
  CHECK_THROWS_AS(pool::masked_mean(tensor_view<float const, 2>(x.data(), {4, 4}), seqs, ov, ctx), tessera::error);
  CHECK_THROWS_AS(pool::masked_max(xv, seqs, tensor_view<float, 2>(out.data(), {2, 3}), ctx), tessera::error);
  CHECK_THROWS_AS(pool::masked_mean(xv, seqs, tensor_view<float, 2>(out.data(), {1, 4}), ctx), tessera::error);
  CHECK_THROWS_AS(pool::masked_mean(xv, seqs, ov, ctx, bad_len), tessera::error);
  CHECK_THROWS_AS(pool::masked_max(xv, seqs, ov, ctx, bad_val), tessera::error);
  CHECK_THROWS_AS(pool::masked_mean(tensor_view<float const, 2>(x.data(), {5, 2}, {4, 2}), seqs,
                                    tensor_view<float, 2>(out.data(), {2, 2}), ctx),
                  tessera::error);
  CHECK(out == std::vector<float>(8, -1.0f));
}
