// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the safetensors header parser (length field, JSON header, dtype/shape/offset
// validation) on arbitrary bytes, then every tensor the parser accepted is read back.
#include <tessera/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::span<std::byte const> const file(reinterpret_cast<std::byte const*>(data), size);
  try {
    tessera::io::detail::parsed_header const h = tessera::io::detail::parse_safetensors(file, "fuzz");
    // Whatever was accepted must lie inside the input: touch the first and last byte of each tensor.
    volatile std::uint8_t sink = 0;
    for (auto const& t : h.tensors) {
      if (t.n_bytes() == 0) continue;
      std::size_t const b = h.data_offset + t.begin, e = h.data_offset + t.end;
      if (b >= e || e > size) __builtin_trap();
      sink = static_cast<std::uint8_t>(sink ^ data[b] ^ data[e - 1]);
    }
  } catch (tessera::error const&) {
    // Rejected with a message: the expected outcome for malformed input.
  }
  return 0;
}
