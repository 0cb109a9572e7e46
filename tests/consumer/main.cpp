// SPDX-License-Identifier: Apache-2.0
// Consumer check: a program outside tessera's tree that uses the public API through
// tessera::tessera and prints OK when every check passes.
#include <tessera/tessera.hpp>

#include <cstdio>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, char const* what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  using namespace tessera;

  // bf16 round trip: 1.5 is exact; 1 + 2^-9 rounds to even (1.0).
  expect(bf16::from_float(1.5f).to_float() == 1.5f, "bf16 keeps 1.5");
  expect(bf16::from_float(1.0f + 1.0f / 512).to_float() == 1.0f, "bf16 rounds ties to even");

  // An owning host buffer and a strided view of every other column.
  host_buffer<float> buf(6, 0.f);
  auto m = buf.view(2, 3);                              // [2, 3]
  m(1, 2) = 7.f;
  expect(buf[5] == 7.f, "view writes through to the buffer");
  tensor_view<float const, 2> cols(buf.data(), {2, 2}, {3, 2});   // columns 0 and 2
  expect(cols(1, 1) == 7.f && !cols.is_contiguous(), "strided view");

  // Packed sequence offsets.
  std::vector<int> lengths{3, 0, 2};
  auto seqs = seq_offsets::from_lengths(std::span<int const>(lengths));
  expect(seqs.n_seqs() == 3 && seqs.n_tokens() == 5, "seq_offsets from lengths");

  // A failed precondition throws tessera::error.
  bool threw = false;
  try {
    TESSERA_CHECK(m.extent(0) == 3, "consumer: expected 3 rows, got ", m.extent(0));
  } catch (error const& e) {
    threw = e.message() == "consumer: expected 3 rows, got 2";
  }
  expect(threw, "TESSERA_CHECK throws tessera::error with the streamed message");

  exec_ctx<backend::cpu> ctx;
  expect(ctx.threads() >= 1, "cpu exec_ctx has threads");

  if (failures != 0) return 1;
  std::printf("OK (tessera %d.%d.%d, SIMD arch %s)\n", TESSERA_VERSION_MAJOR, TESSERA_VERSION_MINOR,
              TESSERA_VERSION_PATCH, TESSERA_SIMD_ARCH_NAME);
  return 0;
}
