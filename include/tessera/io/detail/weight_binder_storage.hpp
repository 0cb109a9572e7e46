// SPDX-License-Identifier: Apache-2.0
// Storage helpers of the weight-name maps (io/weight_binder.hpp): conversion of a checkpoint
// tensor's elements to the requested weight type when the caller asks for a dtype conversion,
// and the label that starts every weight-map message.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace tessera::io::detail {

/// "checkpoint 'path'" for messages.
[[nodiscard]] inline std::string checkpoint_label(checkpoint const& ckpt) {
  return "checkpoint " + quote_tail(ckpt.path().string());
}

/// Converts `t`'s elements (F32, F64, BF16, F16 at any alignment) to T with round-to-nearest-even
/// via f32, as torch's .to() rounds (F64 goes through f32: a double rounding torch avoids, which
/// can differ in the last bit of a bf16/f16 result).
template <weight_type T>
void convert_elements(std::string const& label, tensor_info const& t, std::byte const* p, std::span<T> out) {
  std::size_t const n = out.size();
  auto const load = [&](std::size_t i) -> float {
    switch (t.type) {
      case dtype::f32: return load_unaligned<float>(p, i);
      case dtype::f64: return static_cast<float>(load_unaligned<double>(p, i));
      case dtype::bf16: return bf16::from_bits(load_unaligned<std::uint16_t>(p, i)).to_float();
      case dtype::f16: return f16::from_bits(load_unaligned<std::uint16_t>(p, i)).to_float();
      default: return 0.0f;  // unreachable: the dtype is checked before the first load
    }
  };
  if (t.type == dtype_of_v<T>) {  // same dtype, unaligned in the file: a plain copy
    if (n > 0) std::memcpy(out.data(), p, n * sizeof(T));
    return;
  }
  TESSERA_CHECK(t.type == dtype::f32 || t.type == dtype::f64 || t.type == dtype::bf16 || t.type == dtype::f16, label,
                ": tensor ", quote_name(t.name), " is ", name_of(t.type), "; only F32, F64, BF16 and F16 weights convert");
  for (std::size_t i = 0; i < n; ++i) out[i] = from_float<T>(load(i));
}

}  // namespace tessera::io::detail
