// SPDX-License-Identifier: Apache-2.0
// 16-bit floating-point storage types (bf16, f16) with round-to-nearest-even conversion from
// float, bit-exact with PyTorch's `tensor.to(torch.bfloat16 / torch.float16)` for every non-NaN
// input, and the dtype enum shared by the safetensors reader and the weight-dtype policies.
#pragma once

#include <tessera/core/config.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tessera {

/// Brain float16 storage: the high 16 bits of an IEEE float32. Arithmetic is done in float.
struct bf16 {
  std::uint16_t bits = 0;

  /// float -> bf16, round to nearest, ties to even (PyTorch c10::BFloat16 semantics).
  /// NaN becomes the canonical quiet NaN 0x7FC0 (PyTorch's scalar path; its vectorized path
  /// writes 0xFFFF, also a NaN: NaN payloads are not part of the contract).
  [[nodiscard]] static constexpr bf16 from_float(float f) noexcept {
    std::uint32_t const u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bf16{0x7FC0};
    std::uint32_t const bias = ((u >> 16) & 1u) + 0x7FFFu;  // ties go to the even result
    return bf16{static_cast<std::uint16_t>((u + bias) >> 16)};
  }
  [[nodiscard]] static constexpr bf16 from_bits(std::uint16_t b) noexcept { return bf16{b}; }
  /// bf16 -> float is exact (a shift).
  [[nodiscard]] constexpr float to_float() const noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
  }
  constexpr explicit operator float() const noexcept { return to_float(); }
  friend constexpr bool operator==(bf16, bf16) = default;
};

/// IEEE 754 binary16 storage. Arithmetic is done in float.
struct f16 {
  std::uint16_t bits = 0;

  /// float -> f16, round to nearest, ties to even; overflow to +-inf, gradual underflow to
  /// subnormals (same results as F16C's vcvtps2ph and PyTorch's c10::Half for non-NaN inputs).
  /// NaN stays a quiet NaN with the sign and top payload bits kept (as vcvtps2ph does).
  [[nodiscard]] static constexpr f16 from_float(float f) noexcept {
    std::uint32_t const u = std::bit_cast<std::uint32_t>(f);
    auto const sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    std::uint32_t const a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return f16{static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu))};
    if (a >= 0x477FF000u) return f16{static_cast<std::uint16_t>(sign | 0x7C00u)};  // >= 65520: inf
    if (a < 0x38800000u) {                      // below 2^-14: an f16 subnormal or zero
      if (a <= 0x33000000u) return f16{sign};   // <= 2^-25 rounds to zero (2^-25 is a tie to even 0)
      std::uint32_t const mant = (a & 0x7FFFFFu) | 0x800000u;
      std::uint32_t const shift = 126u - (a >> 23);  // value / 2^-24 = mant >> shift; shift in [14, 24]
      std::uint32_t q = mant >> shift;
      std::uint32_t const rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
      if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal: fine
      return f16{static_cast<std::uint16_t>(sign | q)};
    }
    std::uint32_t r = (((a >> 23) - 112u) << 10) | ((a & 0x7FFFFFu) >> 13);
    std::uint32_t const rem = a & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // carry may bump the exponent: fine
    return f16{static_cast<std::uint16_t>(sign | r)};
  }
  [[nodiscard]] static constexpr f16 from_bits(std::uint16_t b) noexcept { return f16{b}; }
  /// f16 -> float is exact, subnormals included.
  [[nodiscard]] constexpr float to_float() const noexcept {
    std::uint32_t const sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
    std::uint32_t e = (bits >> 10) & 0x1Fu, m = bits & 0x3FFu;
    if (e == 0x1Fu) return std::bit_cast<float>(sign | 0x7F800000u | (m << 13));
    if (e == 0) {
      if (m == 0) return std::bit_cast<float>(sign);
      e = 1;
      while (!(m & 0x400u)) { m <<= 1; --e; }   // normalize the subnormal
      m &= 0x3FFu;
    }
    return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
  }
  constexpr explicit operator float() const noexcept { return to_float(); }
  friend constexpr bool operator==(f16, f16) = default;
};

static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2);

/// Converts any supported element type to float (identity for float).
template <class T>
[[nodiscard]] constexpr float to_float(T v) noexcept {
  if constexpr (std::is_same_v<std::remove_cv_t<T>, float>) return v;
  else return v.to_float();
}

/// Converts a float to T with round-to-nearest-even (identity for float).
template <class T>
[[nodiscard]] constexpr T from_float(float v) noexcept {
  if constexpr (std::is_same_v<T, float>) return v;
  else return T::from_float(v);
}

/// Element types of tensors on disk (the safetensors set) and in memory.
enum class dtype : std::uint8_t { f64, f32, f16, bf16, i64, i32, i16, i8, u8, boolean };

[[nodiscard]] constexpr std::size_t size_of(dtype d) noexcept {
  switch (d) {
    case dtype::f64: case dtype::i64: return 8;
    case dtype::f32: case dtype::i32: return 4;
    case dtype::f16: case dtype::bf16: case dtype::i16: return 2;
    case dtype::i8: case dtype::u8: case dtype::boolean: return 1;
  }
  return 0;
}

/// The safetensors spelling ("F32", "BF16", ...).
[[nodiscard]] constexpr std::string_view name_of(dtype d) noexcept {
  switch (d) {
    case dtype::f64: return "F64";   case dtype::f32: return "F32";
    case dtype::f16: return "F16";   case dtype::bf16: return "BF16";
    case dtype::i64: return "I64";   case dtype::i32: return "I32";
    case dtype::i16: return "I16";   case dtype::i8: return "I8";
    case dtype::u8: return "U8";     case dtype::boolean: return "BOOL";
  }
  return "?";
}

template <class T> struct dtype_of;   // dtype_of<T>::value; no entry = not a tensor element type
template <> struct dtype_of<double> { static constexpr dtype value = dtype::f64; };
template <> struct dtype_of<float> { static constexpr dtype value = dtype::f32; };
template <> struct dtype_of<f16> { static constexpr dtype value = dtype::f16; };
template <> struct dtype_of<bf16> { static constexpr dtype value = dtype::bf16; };
template <> struct dtype_of<std::int64_t> { static constexpr dtype value = dtype::i64; };
template <> struct dtype_of<std::int32_t> { static constexpr dtype value = dtype::i32; };
template <> struct dtype_of<std::int16_t> { static constexpr dtype value = dtype::i16; };
template <> struct dtype_of<std::int8_t> { static constexpr dtype value = dtype::i8; };
template <> struct dtype_of<std::uint8_t> { static constexpr dtype value = dtype::u8; };
template <> struct dtype_of<bool> { static constexpr dtype value = dtype::boolean; };
template <class T> inline constexpr dtype dtype_of_v = dtype_of<std::remove_cv_t<T>>::value;

/// Floating-point element types the nn kernels accept for weights.
template <class T>
concept weight_type = std::is_same_v<std::remove_cv_t<T>, float> || std::is_same_v<std::remove_cv_t<T>, bf16> ||
                      std::is_same_v<std::remove_cv_t<T>, f16>;

}  // namespace tessera
