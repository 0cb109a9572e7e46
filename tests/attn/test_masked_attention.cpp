// SPDX-License-Identifier: Apache-2.0
// attn::masked_attention: reference on hand-worked cases (full, causal, default scale); cpu vs
// reference over head dims (generic and compile-time paths), GQA ratios, causal, q_len != kv_len
// (decode), ragged length sets; strided q / k / v views of a fused qkv buffer and a strided out;
// packed == each sequence alone; masked (padding) sequences; rows without keys; lse; guards;
// determinism across thread counts; the exp2 polynomial against std::exp2; argument errors.
#include <tessera/attn/masked_attention.hpp>

#include "common/compare.hpp"
#include "common/temp_dir.hpp"

#include <catch2/catch_test_macros.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace tessera;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();

/// Dense q / k / v of one attention problem (contiguous [n, heads, head_dim]).
struct problem {
  index_t n_heads, n_kv_heads, head_dim;
  seq_offsets q_seqs, kv_seqs;
  std::vector<float> q, k, v;

  problem(std::vector<std::int64_t> const& q_lens, std::vector<std::int64_t> const& kv_lens, index_t heads,
          index_t kv_heads, index_t hd, std::uint64_t seed, float stddev = 1.0f)
      : n_heads(heads), n_kv_heads(kv_heads), head_dim(hd), q_seqs(seq_offsets::from_lengths(q_lens)),
        kv_seqs(seq_offsets::from_lengths(kv_lens)),
        q(test::random_vector(static_cast<std::size_t>(q_seqs.n_tokens() * heads * hd), seed, stddev)),
        k(test::random_vector(static_cast<std::size_t>(kv_seqs.n_tokens() * kv_heads * hd), seed + 1, stddev)),
        v(test::random_vector(static_cast<std::size_t>(kv_seqs.n_tokens() * kv_heads * hd), seed + 2)) {}

  [[nodiscard]] tensor_view<float const, 3> qv() const { return {q.data(), {q_seqs.n_tokens(), n_heads, head_dim}}; }
  [[nodiscard]] tensor_view<float const, 3> kv() const {
    return {k.data(), {kv_seqs.n_tokens(), n_kv_heads, head_dim}};
  }
  [[nodiscard]] tensor_view<float const, 3> vv() const {
    return {v.data(), {kv_seqs.n_tokens(), n_kv_heads, head_dim}};
  }
};

struct result {
  std::vector<float> out, lse;
};

/// Runs masked_attention on `Backend` into guarded out / lse buffers pre-filled with NaN (so a
/// row the kernel forgets fails the comparison) and checks the guards.
template <class Backend>
result run(problem const& p, attn::attention_options const& opt = {}, std::vector<std::uint8_t> const& masked = {},
           int threads = 0) {
  exec_ctx<Backend> ctx(threads);
  index_t const n_q = p.q_seqs.n_tokens();
  float const nan = std::numeric_limits<float>::quiet_NaN();
  test::guarded<float> out(n_q * p.n_heads * p.head_dim, nan), lse(p.n_heads * n_q, nan);
  attn::masked_attention<Backend>(p.qv(), p.kv(), p.vv(), p.q_seqs, p.kv_seqs,
                                  tensor_view<float, 3>(out.data(), {n_q, p.n_heads, p.head_dim}), ctx, opt,
                                  tensor_view<float, 2>(lse.data(), {p.n_heads, n_q}), masked);
  REQUIRE(out.intact());
  REQUIRE(lse.intact());
  return {out.values(), lse.values()};
}

bool all_finite(std::vector<float> const& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

/// cpu against the reference for one problem: out and lse within tol<float>::vs_ref, out finite.
void check_cpu_vs_ref(problem const& p, attn::attention_options const& opt, std::vector<std::uint8_t> const& masked = {}) {
  INFO("heads " << p.n_heads << "/" << p.n_kv_heads << " head_dim " << p.head_dim << " causal " << opt.causal
                << " q tokens " << p.q_seqs.n_tokens() << " kv tokens " << p.kv_seqs.n_tokens()
                << " seed " << test::seed());
  auto const want = run<backend::reference>(p, opt, masked);
  auto const got = run<backend::cpu>(p, opt, masked);
  REQUIRE(all_finite(got.out));
  TESSERA_REQUIRE_CLOSE(got.out, want.out, test::tol<float>::vs_ref);
  TESSERA_REQUIRE_CLOSE(got.lse, want.lse, test::tol<float>::vs_ref);
}

}  // namespace

TEST_CASE("masked_attention reference matches hand-worked cases", "[attn][unit]") {
  // One sequence of 2 tokens, 1 head, head_dim 2, scale 1:
  //   q0 = (ln 3, 0), q1 = (0, 0); k0 = (1, 0), k1 = (0, 1); v0 = (4, 0), v1 = (0, 8).
  //   Row 0: scores (ln 3, 0) -> softmax (3/4, 1/4) -> out (3, 2), lse ln(3 + 1) = ln 4.
  //   Row 1: scores (0, 0) -> (1/2, 1/2) -> out (2, 4), lse ln 2.
  //   Causal: row 0 sees k0 only -> out v0 = (4, 0), lse ln 3; row 1 unchanged.
  float const ln3 = std::log(3.0f);
  std::vector<float> const q{ln3, 0, 0, 0}, k{1, 0, 0, 1}, v{4, 0, 0, 8};
  auto const seqs = seq_offsets::single(2);
  tensor_view<float const, 3> const qv(q.data(), {2, 1, 2}), kv(k.data(), {2, 1, 2}), vv(v.data(), {2, 1, 2});
  std::vector<float> out(4), lse(2);
  tensor_view<float, 3> const ov(out.data(), {2, 1, 2});
  tensor_view<float, 2> const lv(lse.data(), {1, 2});
  test::tolerance const t{1e-6, 1e-6};

  auto check_both = [&](attn::attention_options const& opt, std::vector<float> const& want_out,
                        std::vector<float> const& want_lse) {
    exec_ctx<backend::reference> ref;
    attn::masked_attention<backend::reference>(qv, kv, vv, seqs, ov, ref, opt, lv);
    TESSERA_REQUIRE_CLOSE(out, want_out, t);
    TESSERA_REQUIRE_CLOSE(lse, want_lse, t);
    exec_ctx<backend::cpu> cpu;
    attn::masked_attention<backend::cpu>(qv, kv, vv, seqs, ov, cpu, opt, lv);
    TESSERA_REQUIRE_CLOSE(out, want_out, t);
    TESSERA_REQUIRE_CLOSE(lse, want_lse, t);
  };
  check_both({false, 1.0f}, {3, 2, 2, 4}, {std::log(4.0f), std::log(2.0f)});
  check_both({true, 1.0f}, {4, 0, 2, 4}, {ln3, std::log(2.0f)});

  // Default scale 1 / sqrt(head_dim) = 1/2 with head_dim 4: q0 = (2 ln 3, 0, 0, 0) gives the same
  // scores (ln 3, 0) against k0 = e0, k1 = e1.
  std::vector<float> const q4{2 * ln3, 0, 0, 0, 0, 0, 0, 0}, k4{1, 0, 0, 0, 0, 1, 0, 0}, v4{4, 0, 0, 0, 0, 8, 0, 0};
  std::vector<float> out4(8);
  exec_ctx<backend::reference> ref;
  attn::masked_attention<backend::reference>(tensor_view<float const, 3>(q4.data(), {2, 1, 4}),
                                             tensor_view<float const, 3>(k4.data(), {2, 1, 4}),
                                             tensor_view<float const, 3>(v4.data(), {2, 1, 4}), seqs,
                                             tensor_view<float, 3>(out4.data(), {2, 1, 4}), ref);
  TESSERA_REQUIRE_CLOSE(out4, (std::vector<float>{3, 2, 0, 0, 2, 4, 0, 0}), t);
}

TEST_CASE("masked_attention cpu matches the reference over head dims, GQA and causal", "[attn][unit]") {
  // head_dim 64 / 72 / 80 / 128 take the compile-time paths, the others the runtime one; the
  // length sets rotate so that every combination sees ragged, empty and single-token sequences.
  std::vector<std::vector<std::int64_t>> const length_sets{
      {7, 0, 129}, {1}, {0}, {40, 1, 3, 17}, {33, 65}, {97, 2}, {0, 5, 0}};
  std::vector<index_t> const head_dims{1, 7, 16, 64, 72, 80, 128};
  std::vector<std::pair<index_t, index_t>> const heads{{2, 2}, {4, 2}, {8, 2}, {6, 2}};
  std::size_t pick = 0;
  for (index_t hd : head_dims)
    for (auto [h, kvh] : heads)
      for (bool causal : {false, true}) {
        auto const& lens = length_sets[pick++ % length_sets.size()];
        problem const p(lens, lens, h, kvh, hd, test::seed() + pick);
        check_cpu_vs_ref(p, {causal, 0.0f});
      }
}

TEST_CASE("masked_attention cpu: one long sequence and many short ones, scale 1 (NaViT)", "[attn][unit]") {
  // Scale 1 on N(0, 1) inputs of head_dim 64: scores with a standard deviation of 8, so the
  // softmax is sharp and the running-max rescaling is exercised across key tiles.
  std::vector<std::int64_t> const lens{300, 1, 2, 3, 5, 8, 13, 0, 21};
  problem const p(lens, lens, 2, 1, 64, test::seed() + 100);
  check_cpu_vs_ref(p, {false, 1.0f});
  check_cpu_vs_ref(p, {true, 1.0f});
}

TEST_CASE("masked_attention cpu: wide GQA groups split across tiles", "[attn][unit]") {
  // 40 query heads per kv head: more heads than rows in a tile, so a group spans two tiles.
  std::vector<std::int64_t> const lens{5, 3, 0, 36};
  problem const p(lens, lens, 80, 2, 16, test::seed() + 200);
  check_cpu_vs_ref(p, {false, 0.0f});
  check_cpu_vs_ref(p, {true, 0.0f});
}

TEST_CASE("masked_attention cpu: work items of many query tiles sharing packed K / V", "[attn][unit]") {
  // 16 heads x 300 tokens = 160 query tiles (AVX-512): one thread takes chunks of 16 tiles, two
  // threads chunks of 10, so the packed key tiles are reused across tiles with different causal
  // key ranges. Both match the reference and each other bitwise.
  problem const p({300, 20}, {300, 20}, 16, 16, 8, test::seed() + 250);
  for (bool causal : {false, true}) {
    auto const want = run<backend::reference>(p, {causal, 0.0f});
    auto const one = run<backend::cpu>(p, {causal, 0.0f}, {}, 1);
    auto const two = run<backend::cpu>(p, {causal, 0.0f}, {}, 2);
    INFO("causal " << causal);
    TESSERA_REQUIRE_CLOSE(one.out, want.out, test::tol<float>::vs_ref);
    TESSERA_REQUIRE_CLOSE(one.lse, want.lse, test::tol<float>::vs_ref);
    REQUIRE(two.out == one.out);
    REQUIRE(two.lse == one.lse);
  }
}

TEST_CASE("masked_attention: q_len != kv_len (decode), causal rows without keys", "[attn][unit]") {
  SECTION("one query over 100 keys, causal: it sees every key") {
    problem const p({1}, {100}, 4, 2, 64, test::seed() + 300);
    check_cpu_vs_ref(p, {true, 0.0f});
    auto const causal = run<backend::cpu>(p, {true, 0.0f});
    auto const full = run<backend::cpu>(p, {false, 0.0f});
    TESSERA_REQUIRE_CLOSE(causal.out, full.out, test::tol<float>::vs_ref);
  }
  SECTION("several decode sequences, one with an empty cache") {
    problem const p({1, 1, 1, 3}, {100, 37, 0, 9}, 14, 2, 64, test::seed() + 301);
    check_cpu_vs_ref(p, {true, 0.0f});
    check_cpu_vs_ref(p, {false, 0.0f});
  }
  SECTION("more queries than keys, causal: the first q_len - kv_len rows see nothing") {
    problem const p({10}, {4}, 2, 2, 16, test::seed() + 302);
    check_cpu_vs_ref(p, {true, 0.0f});
    for (auto const& r : {run<backend::reference>(p, {true, 0.0f}), run<backend::cpu>(p, {true, 0.0f})}) {
      for (index_t t = 0; t < 10; ++t)
        for (index_t h = 0; h < 2; ++h) {
          bool const blind = t < 6;
          REQUIRE((r.lse[static_cast<std::size_t>(h * 10 + t)] == -inf) == blind);
          for (index_t d = 0; d < 16; ++d)
            if (blind) REQUIRE(r.out[static_cast<std::size_t>((t * 2 + h) * 16 + d)] == 0.0f);
        }
    }
  }
}

TEST_CASE("masked_attention cpu: decode steps of Qwen2.5's GQA groups, 8-row tiles bitwise equal to the wide ones",
          "[attn][unit]") {
  // One query per sequence over caches that end inside, at and past the 96-key tiles, f32 and
  // bf16 K / V. Where group x queries <= 8 the cpu backend takes tiles of one AVX2-width vector;
  // they must give bitwise the wide tiles' result (the same sums in the same order) and match the
  // reference. Groups 9 and 4 x 3 queries take the wide tiles (the last check is then trivially
  // equal, the reference check is not).
  struct gqa {
    index_t heads, kv_heads, head_dim;
    std::vector<std::int64_t> q_lens;
  };
  std::vector<gqa> const cases{{14, 2, 64, {1, 1, 1, 1}},   // Qwen2.5-0.5B
                               {12, 2, 128, {1, 1, 1, 1}},  // 1.5B
                               {28, 4, 128, {1, 1, 1, 1}},  // 7B
                               {16, 2, 128, {1, 1, 1, 1}},  // 3B: group 8 fills the tile
                               {8, 2, 64, {2, 1, 2, 1}},    // group 4, two queries a sequence (8 rows)
                               {9, 1, 64, {1, 1, 1, 1}},    // group 9: wide tiles
                               {8, 2, 72, {3, 1, 3, 2}}};   // 12 rows: wide tiles
  std::vector<std::int64_t> const kv_lens{5, 96, 97, 300};
  for (auto const& c : cases)
    for (bool causal : {true, false}) {
      problem const p(c.q_lens, kv_lens, c.heads, c.kv_heads, c.head_dim, test::seed() + 350 + c.heads + c.head_dim);
      check_cpu_vs_ref(p, {causal, 0.0f});
      // The same problem straight through the wide tiles, with f32 and with bf16 K / V.
      index_t const n_q = p.q_seqs.n_tokens(), n_kv = p.kv_seqs.n_tokens();
      std::vector<attn::seq_range> ranges;
      for (index_t s = 0; s < p.q_seqs.n_seqs(); ++s)
        ranges.push_back({p.q_seqs.begin(s), p.q_seqs.end(s), p.kv_seqs.begin(s), p.kv_seqs.end(s)});
      attn::detail::attention_params const params{1.0f / std::sqrt(static_cast<float>(c.head_dim)), causal};
      std::vector<bf16> kb(p.k.size()), vb(p.v.size());
      for (std::size_t i = 0; i < kb.size(); ++i) kb[i] = bf16::from_float(p.k[i]);
      for (std::size_t i = 0; i < vb.size(); ++i) vb[i] = bf16::from_float(p.v[i]);
      tensor_view<bf16 const, 3> const kbv(kb.data(), {n_kv, c.kv_heads, c.head_dim}), vbv(vb.data(), {n_kv, c.kv_heads, c.head_dim});
      for (int threads : {1, 2}) {
        exec_ctx<backend::cpu> ctx(threads);
        auto const both = [&](auto kview, auto vview) {
          std::array<std::vector<float>, 2> outs, lses;
          for (int wide = 0; wide < 2; ++wide) {
            outs[wide].assign(static_cast<std::size_t>(n_q * c.heads * c.head_dim), -1.0f);
            lses[wide].assign(static_cast<std::size_t>(c.heads * n_q), -1.0f);
            tensor_view<float, 3> const out(outs[wide].data(), {n_q, c.heads, c.head_dim});
            tensor_view<float, 2> const lse(lses[wide].data(), {c.heads, n_q});
            if (wide)
              attn::detail::masked_attention_impl<backend::cpu>::wide_tiles::run(p.qv(), kview, vview, ranges, out, lse,
                                                                                 params, ctx);
            else
              attn::detail::masked_attention_impl<backend::cpu>::run(p.qv(), kview, vview, ranges, out, lse, params, ctx);
          }
          INFO("heads " << c.heads << "/" << c.kv_heads << " head_dim " << c.head_dim << " causal " << causal
                        << " threads " << threads);
          REQUIRE(outs[0] == outs[1]);
          REQUIRE(lses[0] == lses[1]);
        };
        both(p.kv(), p.vv());
        both(kbv, vbv);
      }
    }
}

TEST_CASE("masked_attention: rows without keys give out = 0 and lse = -inf", "[attn][unit]") {
  // kv_seqs has an empty second sequence and k / v have no rows at all in the last case.
  problem const p({3, 4}, {5, 0}, 2, 1, 8, test::seed() + 400);
  for (auto const& r : {run<backend::reference>(p), run<backend::cpu>(p)}) {
    for (index_t t = 3; t < 7; ++t)
      for (index_t h = 0; h < 2; ++h) {
        REQUIRE(r.lse[static_cast<std::size_t>(h * 7 + t)] == -inf);
        for (index_t d = 0; d < 8; ++d) REQUIRE(r.out[static_cast<std::size_t>((t * 2 + h) * 8 + d)] == 0.0f);
      }
    REQUIRE(std::isfinite(r.lse[0]));
  }
  problem const none({2}, {0}, 1, 1, 4, test::seed() + 401);
  for (auto const& r : {run<backend::reference>(none), run<backend::cpu>(none)}) {
    REQUIRE(r.out == std::vector<float>(8, 0.0f));
    REQUIRE(r.lse == std::vector<float>(2, -inf));
  }
}

TEST_CASE("masked_attention: masked (padding) sequences output zeros, the rest is unchanged", "[attn][unit]") {
  std::vector<std::int64_t> const lens{5, 7, 3, 40};
  problem const p(lens, lens, 4, 4, 72, test::seed() + 500);
  std::vector<std::uint8_t> const masked{0, 1, 0, 1};
  check_cpu_vs_ref(p, {false, 0.0f}, masked);
  auto const with = run<backend::cpu>(p, {}, masked);
  auto const without = run<backend::cpu>(p, {});
  for (index_t t = 0; t < p.q_seqs.n_tokens(); ++t) {
    bool const pad = (t >= 5 && t < 12) || t >= 15;
    for (index_t h = 0; h < 4; ++h) {
      auto const lse_i = static_cast<std::size_t>(h * p.q_seqs.n_tokens() + t);
      REQUIRE(with.lse[lse_i] == (pad ? -inf : without.lse[lse_i]));
      for (index_t d = 0; d < 72; ++d) {
        auto const i = static_cast<std::size_t>((t * 4 + h) * 72 + d);
        REQUIRE(with.out[i] == (pad ? 0.0f : without.out[i]));
      }
    }
  }
}

TEST_CASE("masked_attention cpu: packed result equals each sequence alone, bitwise", "[attn][unit]") {
  // Work items never span sequences and start their query tiles at each sequence's first token,
  // so packing changes no arithmetic.
  std::vector<std::int64_t> const lens{70, 1, 0, 33, 129};
  for (bool causal : {false, true}) {
    problem const p(lens, lens, 6, 3, 80, test::seed() + 600);
    auto const packed = run<backend::cpu>(p, {causal, 0.0f});
    for (index_t s = 0; s < p.q_seqs.n_seqs(); ++s) {
      index_t const b = p.q_seqs.begin(s), n = p.q_seqs.length(s);
      if (n == 0) continue;
      problem alone({n}, {n}, 6, 3, 80, 0);
      alone.q.assign(p.q.begin() + b * 6 * 80, p.q.begin() + (b + n) * 6 * 80);
      alone.k.assign(p.k.begin() + b * 3 * 80, p.k.begin() + (b + n) * 3 * 80);
      alone.v.assign(p.v.begin() + b * 3 * 80, p.v.begin() + (b + n) * 3 * 80);
      auto const one = run<backend::cpu>(alone, {causal, 0.0f});
      INFO("sequence " << s << " causal " << causal);
      REQUIRE(std::equal(one.out.begin(), one.out.end(), packed.out.begin() + b * 6 * 80));
      for (index_t h = 0; h < 6; ++h)
        for (index_t t = 0; t < n; ++t)
          REQUIRE(one.lse[static_cast<std::size_t>(h * n + t)] ==
                  packed.lse[static_cast<std::size_t>(h * p.q_seqs.n_tokens() + b + t)]);
    }
  }
}

TEST_CASE("masked_attention: strided q / k / v from a fused qkv buffer and a strided out", "[attn][unit]") {
  // qkv: [n, 3 * E] with E = n_heads * head_dim; q, k, v are its column blocks (token stride 3E).
  // out: [n, n_heads, head_dim] with a token stride of E + 5 and a sentinel in the gaps.
  index_t const n_heads = 4, hd = 80, e = n_heads * hd;
  std::vector<std::int64_t> const lens{17, 0, 64, 1};
  auto const seqs = seq_offsets::from_lengths(lens);
  index_t const n = seqs.n_tokens();
  auto const qkv = test::random_vector(static_cast<std::size_t>(n * 3 * e), test::seed() + 700);
  problem dense(lens, lens, n_heads, n_heads, hd, 0);
  for (index_t t = 0; t < n; ++t)
    for (index_t c = 0; c < e; ++c) {
      auto const i = static_cast<std::size_t>(t * e + c);
      dense.q[i] = qkv[static_cast<std::size_t>(t * 3 * e + c)];
      dense.k[i] = qkv[static_cast<std::size_t>(t * 3 * e + e + c)];
      dense.v[i] = qkv[static_cast<std::size_t>(t * 3 * e + 2 * e + c)];
    }
  auto fused = [&](index_t col) {
    return tensor_view<float const, 3>(qkv.data() + col, {n, n_heads, hd}, {3 * e, hd, 1});
  };
  for (bool causal : {false, true}) {
    auto const want = run<backend::cpu>(dense, {causal, 0.0f});
    auto const want_ref = run<backend::reference>(dense, {causal, 0.0f});
    TESSERA_REQUIRE_CLOSE(want.out, want_ref.out, test::tol<float>::vs_ref);
    index_t const os = e + 5;
    float const gap = -777.25f;
    test::guarded<float> out_buf((n - 1) * os + e, gap);
    tensor_view<float, 3> const out(out_buf.data(), {n, n_heads, hd}, {os, hd, 1});
    exec_ctx<backend::cpu> ctx;
    attn::masked_attention<backend::cpu>(fused(0), fused(e), fused(2 * e), seqs, out, ctx, {causal, 0.0f});
    REQUIRE(out_buf.intact());
    for (index_t t = 0; t < n; ++t) {
      for (index_t c = 0; c < e; ++c)
        REQUIRE(out_buf.data()[t * os + c] == want.out[static_cast<std::size_t>(t * e + c)]);
      if (t + 1 < n)
        for (index_t c = e; c < os; ++c) REQUIRE(out_buf.data()[t * os + c] == gap);
    }
  }
}

TEST_CASE("masked_attention cpu is bitwise identical for any thread count and reuses its scratch",
          "[attn][unit]") {
  std::vector<std::int64_t> const lens{200, 3, 50, 1, 77};
  problem const p(lens, lens, 4, 2, 64, test::seed() + 800);
  for (bool causal : {false, true}) {
    auto const one = run<backend::cpu>(p, {causal, 0.0f}, {}, 1);
    for (int threads : {2, 3, 5}) {
      auto const many = run<backend::cpu>(p, {causal, 0.0f}, {}, threads);
      INFO("threads " << threads);
      REQUIRE(many.out == one.out);
      REQUIRE(many.lse == one.lse);
    }
  }
  // A second call of the same shape allocates no new scratch block.
  exec_ctx<backend::cpu> ctx(2);
  std::vector<float> out(p.q.size());
  tensor_view<float, 3> const ov(out.data(), {p.q_seqs.n_tokens(), 4, 64});
  attn::masked_attention<backend::cpu>(p.qv(), p.kv(), p.vv(), p.q_seqs, ov, ctx);
  auto const blocks = ctx.scratch().allocations();
  attn::masked_attention<backend::cpu>(p.qv(), p.kv(), p.vv(), p.q_seqs, ov, ctx);
  REQUIRE(ctx.scratch().allocations() == blocks);
}

TEST_CASE("masked_attention cpu exp2 polynomial against std::exp2", "[attn][unit]") {
  using A = backend::cpu::arch;
  using B = backend::cpu_detail::fbatch<A>;
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    float const x = -126.0f * static_cast<float>(i) / 200000.0f;
    float const got = attn::detail::exp2_nonpositive<A>(B(x)).get(0);
    double const want = std::exp2(static_cast<double>(x));
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  INFO("max relative error " << worst);
  REQUIRE(worst < 2e-7);  // measured 7.7e-8 (AVX-512, AVX2), 9.6e-8 (SSE2, no FMA)
  REQUIRE(attn::detail::exp2_nonpositive<A>(B(-inf)).get(0) == 0.0f);
  REQUIRE(attn::detail::exp2_nonpositive<A>(B(-1000.0f)).get(0) == 0.0f);
  REQUIRE(attn::detail::exp2_nonpositive<A>(B(0.0f)).get(0) == 1.0f);
  REQUIRE(attn::detail::exp2_nonpositive<A>(B(-3.0f)).get(0) == 0.125f);
}

TEST_CASE("masked_attention rejects invalid arguments", "[attn][unit]") {
  std::vector<float> q(4 * 2 * 8), k(4 * 1 * 8), v(4 * 1 * 8), out(4 * 2 * 8), lse(2 * 4);
  auto const seqs = seq_offsets::from_lengths({3, 1});
  tensor_view<float const, 3> const qv(q.data(), {4, 2, 8}), kv(k.data(), {4, 1, 8}), vv(v.data(), {4, 1, 8});
  tensor_view<float, 3> const ov(out.data(), {4, 2, 8});
  exec_ctx<backend::cpu> ctx;
  auto call = [&](auto qq, auto kk, auto vvv, seq_offsets const& qs, seq_offsets const& ks, auto oo,
                  attn::attention_options opt = {}, tensor_view<float, 2> l = {},
                  std::vector<std::uint8_t> const& m = {}) {
    attn::masked_attention<backend::cpu>(qq, kk, vvv, qs, ks, oo, ctx, opt, l, m);
  };
  REQUIRE_NOTHROW(call(qv, kv, vv, seqs, seqs, ov));
  REQUIRE_TESSERA_ERROR(call(qv, tensor_view<float const, 3>(k.data(), {4, 1, 7}), vv, seqs, seqs, ov), "head_dim");
  REQUIRE_TESSERA_ERROR(call(qv, kv, tensor_view<float const, 3>(v.data(), {2, 2, 8}), seqs, seqs, ov),
                        "same shape");
  REQUIRE_TESSERA_ERROR(call(tensor_view<float const, 3>(q.data(), {4, 3, 8}), tensor_view<float const, 3>(k.data(), {4, 2, 4}),
                             tensor_view<float const, 3>(v.data(), {4, 2, 4}), seqs, seqs, ov),
                        "head_dim");
  std::vector<float> k2(4 * 3 * 8), v2(4 * 3 * 8);
  REQUIRE_TESSERA_ERROR(call(qv, tensor_view<float const, 3>(k2.data(), {4, 3, 8}),
                             tensor_view<float const, 3>(v2.data(), {4, 3, 8}), seqs, seqs, ov),
                        "multiple of n_kv_heads");
  REQUIRE_TESSERA_ERROR(call(qv, tensor_view<float const, 3>(k.data(), {4, 0, 8}),
                             tensor_view<float const, 3>(v.data(), {4, 0, 8}), seqs, seqs, ov),
                        "at least one");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seq_offsets::from_lengths({4}), ov), "sequences");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seq_offsets::from_lengths({3, 2}), seqs, ov), "q_seqs covers");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seq_offsets::from_lengths({3, 2}), ov), "kv_seqs covers");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, tensor_view<float, 3>(out.data(), {4, 1, 8})), "out must be");
  REQUIRE_TESSERA_ERROR(call(tensor_view<float const, 3>(q.data(), {4, 2, 8}, {16, 8, 2}), kv, vv, seqs, seqs, ov),
                        "contiguous");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, ov, {}, tensor_view<float, 2>(lse.data(), {4, 2})), "lse must be");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, ov, {}, {}, {0}), "masked_seqs");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, ov, {}, {}, {0, 2}), "0 or 1");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, ov, {false, inf}), "scale must be finite");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, ov, {false, std::numeric_limits<float>::quiet_NaN()}),
                        "scale must be finite");
  // out aliasing q (in place) or overlapping itself; lse overlapping out.
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, tensor_view<float, 3>(q.data(), {4, 2, 8})), "overlaps q");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, tensor_view<float, 3>(out.data(), {4, 2, 8}, {8, 8, 1})),
                        "elements of out overlap");
  REQUIRE_TESSERA_ERROR(call(qv, kv, vv, seqs, seqs, ov, {}, tensor_view<float, 2>(out.data(), {2, 4})),
                        "lse overlaps");
  // The reference backend runs the same checks.
  exec_ctx<backend::reference> ref;
  REQUIRE_TESSERA_ERROR(attn::masked_attention<backend::reference>(qv, kv, vv, seqs, seq_offsets::from_lengths({4}),
                                                                   tensor_view<float, 3>(out.data(), {4, 2, 8}), ref),
                        "sequences");
}

// ------------------------------------------------------------------------------------------------
// Explicit ranges (the KV-cache form) and bf16 keys / values.
// ------------------------------------------------------------------------------------------------

namespace {

/// A cache-like problem: n_slots slots of `slot_len` rows; sequence s has q_lens[s] queries that
/// see the first kv_lens[s] rows of slot slots[s] (causal, bottom-right). Slots are scattered and
/// their unused rows hold NaN, so reading outside a range poisons the output.
struct ranged_problem {
  index_t n_heads, n_kv_heads, head_dim, n_q = 0;
  std::vector<attn::seq_range> ranges;
  std::vector<float> q, k, v;
  ranged_problem(std::vector<index_t> const& q_lens, std::vector<index_t> const& kv_lens,
                 std::vector<index_t> const& slots, index_t n_slots, index_t slot_len, index_t heads, index_t kv_heads,
                 index_t hd, std::uint64_t seed)
      : n_heads(heads), n_kv_heads(kv_heads), head_dim(hd) {
    for (index_t l : q_lens) n_q += l;
    q = test::random_vector(static_cast<std::size_t>(n_q * heads * hd), seed);
    std::size_t const kv_elems = static_cast<std::size_t>(n_slots * slot_len * kv_heads * hd);
    k.assign(kv_elems, std::numeric_limits<float>::quiet_NaN());
    v.assign(kv_elems, std::numeric_limits<float>::quiet_NaN());
    auto const kr = test::random_vector(kv_elems, seed + 1), vr = test::random_vector(kv_elems, seed + 2);
    index_t q0 = 0;
    for (std::size_t s = 0; s < q_lens.size(); ++s) {
      index_t const row0 = slots[s] * slot_len;
      ranges.push_back({q0, q0 + q_lens[s], row0, row0 + kv_lens[s]});
      q0 += q_lens[s];
      std::size_t const b = static_cast<std::size_t>(row0 * kv_heads * hd), e = b + static_cast<std::size_t>(kv_lens[s] * kv_heads * hd);
      std::copy(kr.begin() + static_cast<std::ptrdiff_t>(b), kr.begin() + static_cast<std::ptrdiff_t>(e), k.begin() + static_cast<std::ptrdiff_t>(b));
      std::copy(vr.begin() + static_cast<std::ptrdiff_t>(b), vr.begin() + static_cast<std::ptrdiff_t>(e), v.begin() + static_cast<std::ptrdiff_t>(b));
    }
  }
  [[nodiscard]] index_t n_kv() const { return static_cast<index_t>(k.size()) / (n_kv_heads * head_dim); }
};

template <class Backend, class KV>
std::vector<float> run_ranged(ranged_problem const& p, std::vector<KV> const& k, std::vector<KV> const& v,
                              bool causal) {
  exec_ctx<Backend> ctx;
  std::vector<float> out(static_cast<std::size_t>(p.n_q * p.n_heads * p.head_dim), 0.0f);
  attn::masked_attention<Backend>(tensor_view<float const, 3>(p.q.data(), {p.n_q, p.n_heads, p.head_dim}),
                                  tensor_view<KV const, 3>(k.data(), {p.n_kv(), p.n_kv_heads, p.head_dim}),
                                  tensor_view<KV const, 3>(v.data(), {p.n_kv(), p.n_kv_heads, p.head_dim}),
                                  std::span<attn::seq_range const>(p.ranges),
                                  tensor_view<float, 3>(out.data(), {p.n_q, p.n_heads, p.head_dim}), ctx,
                                  attn::attention_options{.causal = causal});
  return out;
}

std::vector<bf16> to_bf16(std::vector<float> const& x) {
  std::vector<bf16> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = bf16::from_float(x[i]);
  return r;
}

}  // namespace

TEST_CASE("masked_attention over explicit ranges: scattered cache slots, decode and prefill rows", "[attn][unit]") {
  // Slots 3, 0, 5 of 6; sequence 1 is a decode step (1 query over 57 cached keys), sequence 2 a
  // prefill continuing a cached prefix (9 queries, 20 keys), sequence 0 a fresh prompt.
  for (index_t hd : {64, 72, 128, 24}) {
    INFO("head_dim " << hd);
    ranged_problem const p({17, 1, 9}, {17, 57, 20}, {3, 0, 5}, 6, 64, 14, 2, hd, test::seed(900 + hd));
    auto const want = run_ranged<backend::reference>(p, p.k, p.v, true);
    auto const got = run_ranged<backend::cpu>(p, p.k, p.v, true);
    auto const cmp = test::compare(got, want, test::tol<float>::vs_ref);
    INFO(cmp.report());
    REQUIRE(cmp.ok);
    // bf16 keys / values: cpu against the reference on the same bf16 values (f32 arithmetic).
    auto const kb = to_bf16(p.k), vb = to_bf16(p.v);
    auto const want_b = run_ranged<backend::reference>(p, kb, vb, true);
    auto const got_b = run_ranged<backend::cpu>(p, kb, vb, true);
    auto const cmp_b = test::compare(got_b, want_b, test::tol<float>::vs_ref);
    INFO("bf16 k / v: " << cmp_b.report());
    REQUIRE(cmp_b.ok);
  }
}

TEST_CASE("masked_attention over explicit ranges equals the seq_offsets form on contiguous ranges", "[attn][unit]") {
  problem const p({5, 0, 33, 1}, {5, 4, 40, 9}, 4, 2, 64, test::seed(950));
  std::vector<attn::seq_range> ranges;
  for (index_t s = 0; s < p.q_seqs.n_seqs(); ++s)
    ranges.push_back({p.q_seqs.begin(s), p.q_seqs.end(s), p.kv_seqs.begin(s), p.kv_seqs.end(s)});
  for (bool causal : {false, true}) {
    auto const want = run<backend::cpu>(p, attn::attention_options{.causal = causal});
    exec_ctx<backend::cpu> ctx;
    std::vector<float> got(p.q.size());
    attn::masked_attention<backend::cpu>(p.qv(), p.kv(), p.vv(), std::span<attn::seq_range const>(ranges),
                                         tensor_view<float, 3>(got.data(), p.qv().extents()), ctx,
                                         attn::attention_options{.causal = causal});
    REQUIRE(got == want.out);  // the same kernels on the same ranges: bitwise
  }
}

TEST_CASE("masked_attention over explicit ranges rejects ranges outside q / k and overlapping queries",
          "[attn][unit]") {
  ranged_problem const p({4, 4}, {4, 4}, {0, 1}, 2, 8, 2, 1, 16, test::seed(970));
  exec_ctx<backend::cpu> ctx;
  std::vector<float> out(static_cast<std::size_t>(p.n_q * p.n_heads * p.head_dim));
  auto call = [&](std::vector<attn::seq_range> const& r) {
    attn::masked_attention<backend::cpu>(tensor_view<float const, 3>(p.q.data(), {p.n_q, p.n_heads, p.head_dim}),
                                         tensor_view<float const, 3>(p.k.data(), {p.n_kv(), p.n_kv_heads, p.head_dim}),
                                         tensor_view<float const, 3>(p.v.data(), {p.n_kv(), p.n_kv_heads, p.head_dim}),
                                         std::span<attn::seq_range const>(r),
                                         tensor_view<float, 3>(out.data(), {p.n_q, p.n_heads, p.head_dim}), ctx);
  };
  REQUIRE_NOTHROW(call(p.ranges));
  REQUIRE_THROWS_AS(call({{0, 9, 0, 4}}), tessera::error);            // queries past q
  REQUIRE_THROWS_AS(call({{0, 4, 12, 17}}), tessera::error);          // keys past k
  REQUIRE_THROWS_AS(call({{0, 4, 3, 2}}), tessera::error);            // reversed
  REQUIRE_THROWS_AS(call({{0, 5, 0, 4}, {4, 8, 8, 12}}), tessera::error);  // overlapping queries
  REQUIRE_NOTHROW(call({{4, 8, 8, 12}, {0, 4, 8, 12}}));               // shared keys, any order
}
