// SPDX-License-Identifier: Apache-2.0
// Core types: tensor_view (strides, contiguity, const conversion, bounds checks), buffer
// (alignment, ownership, views, absurd sizes), seq_offsets (validation), error messages, and the
// scratch arena of exec_ctx.
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

using namespace tessera;
using Catch::Matchers::ContainsSubstring;

TEST_CASE("tensor_view computes row-major strides and indexes like PyTorch", "[core][unit]") {
  std::vector<float> data(24);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  tensor_view<float, 3> v(data.data(), {2, 3, 4});
  CHECK(v.stride(0) == 12);
  CHECK(v.stride(1) == 4);
  CHECK(v.stride(2) == 1);
  CHECK(v.size() == 24);
  CHECK(v.is_contiguous());
  CHECK(v(1, 2, 3) == 23.0f);     // torch.arange(24).view(2, 3, 4)[1, 2, 3] == 23
  CHECK(v(0, 1, 2) == 6.0f);
  CHECK(*v.row(1) == 12.0f);

  tensor_view<float, 2> cols(data.data(), {3, 4}, {8, 2});   // every other column of rows 8 apart
  CHECK_FALSE(cols.is_contiguous());
  CHECK_FALSE(cols.is_row_contiguous());
  CHECK(cols(2, 3) == 22.0f);
  tensor_view<float, 2> padded(data.data(), {3, 5}, {8, 1});
  CHECK_FALSE(padded.is_contiguous());
  CHECK(padded.is_row_contiguous());

  tensor_view<float const, 3> c = v;   // non-const converts to const
  CHECK(c(1, 0, 0) == 12.0f);
  auto s = v.slice_rows(1, 2);
  CHECK(s.extent(0) == 1);
  CHECK(s(0, 0, 0) == 12.0f);
  REQUIRE_THROWS_WITH(v.slice_rows(1, 3), ContainsSubstring("slice_rows"));
}

TEST_CASE("tensor_view refuses negative extents and checks bounds in debug builds", "[core][unit]") {
  float x[4] = {};
  REQUIRE_THROWS_AS((tensor_view<float, 2>(x, {2, -1})), tessera::error);
  REQUIRE_THROWS_AS((tensor_view<float, 2>(x, {2, 2}, {-1, 1})), tessera::error);
  tensor_view<float, 2> v(x, {2, 2});
  // The tests build with TESSERA_DEBUG=1, so an out-of-range index is an error, not a stray read.
  REQUIRE_THROWS_WITH(v(2, 0), ContainsSubstring("out of [0, 2)"));
  REQUIRE_THROWS_AS(v(0, -1), tessera::error);
  REQUIRE_THROWS_AS(v.row(5), tessera::error);
}

TEST_CASE("buffer is 64-byte aligned, move-only, and hands out checked views", "[core][unit]") {
  host_buffer<float> b(100, 2.5f);
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
  CHECK(b.size() == 100);
  CHECK(b[99] == 2.5f);
  host_buffer<bf16> h(3);
  CHECK(reinterpret_cast<std::uintptr_t>(h.data()) % 64 == 0);
  auto v = b.view(10, 10);
  v(9, 9) = 7.0f;
  CHECK(b[99] == 7.0f);
  REQUIRE_THROWS_WITH(b.view(10, 11), ContainsSubstring("does not fit"));

  float* const p = b.data();
  host_buffer<float> moved(std::move(b));
  CHECK(moved.data() == p);
  CHECK(b.data() == nullptr);   // NOLINT(bugprone-use-after-move): the moved-from state is defined
  CHECK(b.empty());
  host_buffer<float> other(5);
  other = std::move(moved);
  CHECK(other.data() == p);
  static_assert(!std::is_copy_constructible_v<host_buffer<float>>);

  host_buffer<float> empty(0);
  CHECK(empty.data() == nullptr);
  CHECK(empty.view(0, 7).size() == 0);
}

TEST_CASE("buffer refuses absurd sizes with tessera::error instead of crashing", "[core][unit]") {
  REQUIRE_THROWS_WITH(host_buffer<float>(-1), ContainsSubstring("non-negative"));
  REQUIRE_THROWS_WITH(host_buffer<float>(std::numeric_limits<index_t>::max()), ContainsSubstring("overflow"));
  // 2^60 floats pass the overflow check but no machine has the memory: the allocation fails cleanly.
  REQUIRE_THROWS_WITH(host_buffer<float>(index_t{1} << 60), ContainsSubstring("cannot allocate"));
}

TEST_CASE("seq_offsets builds cu_seqlens from lengths and validates them", "[core][unit]") {
  auto s = seq_offsets::from_lengths({3, 0, 5, 1});
  CHECK(s.n_seqs() == 4);
  CHECK(s.n_tokens() == 9);
  CHECK(s.begin(2) == 3);
  CHECK(s.end(2) == 8);
  CHECK(s.length(1) == 0);
  CHECK(s.max_length() == 5);
  CHECK(std::vector<std::int32_t>(s.offsets().begin(), s.offsets().end()) == std::vector<std::int32_t>{0, 3, 3, 8, 9});

  auto none = seq_offsets::from_lengths(std::vector<int>{});
  CHECK(none.n_seqs() == 0);
  CHECK(none.n_tokens() == 0);
  CHECK(seq_offsets::single(7).n_tokens() == 7);

  REQUIRE_THROWS_WITH(seq_offsets::from_lengths({2, -1}), ContainsSubstring("sequence 1 has negative length"));
  REQUIRE_THROWS_WITH(seq_offsets::from_lengths({std::int64_t{1} << 31}), ContainsSubstring("int32"));

  std::vector<std::int32_t> cu{0, 4, 4, 10};
  auto c = seq_offsets::from_cu_seqlens(cu);
  CHECK(c.n_seqs() == 3);
  CHECK(c.length(2) == 6);
  std::vector<std::int32_t> bad_start{1, 4}, decreasing{0, 5, 3}, empty;
  REQUIRE_THROWS_WITH(seq_offsets::from_cu_seqlens(bad_start), ContainsSubstring("first entry must be 0"));
  REQUIRE_THROWS_WITH(seq_offsets::from_cu_seqlens(decreasing), ContainsSubstring("entry 2 (3) is smaller"));
  REQUIRE_THROWS_AS(seq_offsets::from_cu_seqlens(empty), tessera::error);
}

TEST_CASE("TESSERA_CHECK throws tessera::error with the parts and the source location", "[core][unit]") {
  int const got = 3;
  try {
    TESSERA_CHECK(got == 4, "block::op: expected 4 heads, got ", got);
    FAIL("TESSERA_CHECK did not throw");
  } catch (tessera::error const& e) {
    CHECK(e.message() == "block::op: expected 4 heads, got 3");
    CHECK_THAT(std::string(e.what()), ContainsSubstring("test_core_types.cpp:"));
    CHECK(e.where().line() > 0);
  }
  CHECK_NOTHROW([] { TESSERA_CHECK(1 + 1 == 2, "never"); }());
  static_assert(std::is_base_of_v<std::runtime_error, tessera::error>);
}

TEST_CASE("scratch arena reaches a steady state and keeps pointers valid within a frame", "[core][unit]") {
  exec_ctx<backend::cpu> ctx(1);
  auto& a = ctx.scratch();
  {
    auto f = a.open();
    float* p = f.alloc<float>(1000);
    p[999] = 1.0f;
    double* q = f.alloc<double>(100000);   // forces a second block; p stays valid
    q[0] = 2.0;
    CHECK(p[999] == 1.0f);
    CHECK(reinterpret_cast<std::uintptr_t>(q) % 64 == 0);
  }
  // Two blocks during the frame, and one merged block when it ended.
  auto const after_first = a.allocations();
  CHECK(after_first == 3);
  for (int i = 0; i < 3; ++i) {   // the same requests now fit in the merged block
    auto f = a.open();
    (void)f.alloc<float>(1000);
    (void)f.alloc<double>(100000);
  }
  CHECK(a.allocations() == after_first);   // steady state: no allocation at all
  exec_ctx<backend::cpu> reserved(1);
  reserved.scratch().reserve(1 << 20);
  auto const n = reserved.scratch().allocations();
  {
    auto f = reserved.scratch().open();
    (void)f.alloc<float>(1000);
  }
  CHECK(reserved.scratch().allocations() == n);
  REQUIRE_THROWS_WITH(exec_ctx<backend::cpu>(-1), ContainsSubstring("thread count"));
}

TEST_CASE("scratch arena: a nested frame gives its memory back to the enclosing frame", "[core][unit]") {
  exec_ctx<backend::cpu> ctx(1);
  auto& a = ctx.scratch();
  constexpr std::size_t big = 1 << 20;  // floats per inner iteration
  for (int round = 0; round < 2; ++round) {
    auto outer = a.open();
    float* keep = outer.alloc<float>(16);
    keep[15] = 3.0f;
    float* first = nullptr;
    for (int i = 0; i < 8; ++i) {  // eight layers of a forward: each reuses the same memory
      auto inner = a.open();
      float* p = inner.alloc<float>(big);
      p[big - 1] = static_cast<float>(i);
      if (i == 0) first = p;
      if (round == 1 || i > 0) CHECK(p == first);
    }
    float* after = outer.alloc<float>(16);  // the enclosing frame continues in the freed memory
    CHECK(keep[15] == 3.0f);
    CHECK(after != keep);
  }
  // One layer's memory (plus the outer frame's), never eight: at most 2 x (big + 64 floats).
  CHECK(a.capacity() <= 2 * (big + 64) * sizeof(float));
  auto const n = a.allocations();
  {
    auto outer = a.open();
    for (int i = 0; i < 8; ++i) {
      auto inner = a.open();
      (void)inner.alloc<float>(big);
    }
  }
  CHECK(a.allocations() == n);  // steady state
}
