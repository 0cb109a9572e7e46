// SPDX-License-Identifier: Apache-2.0
// Quantized weight matrices: the formats (8-bit and 4-bit, symmetric, one f16 scale per group of
// columns of a row), a view of one matrix (quant::qmatrix) and the scalar quantizer and
// dequantizer every backend agrees with. docs/quantization.md has the layouts and the safetensors
// names (<name>.qweight, <name>.scales).
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace tessera::quant {

/// How the linear layers' weights are stored.
enum class weight_format : std::uint8_t {
  /// Not quantized: the weight type itself (f32, bf16 or f16).
  dense,
  /// 8 bits: w = d * q, q an int8 in [-127, 127], d = max |w| / 127 over the group (llama.cpp's
  /// Q8_0 with group 32). Stored as int8 [rows, cols].
  q8,
  /// 4 bits: w = d * (q - 8), q in [0, 15], d = -m / 8 where m is the group's value of largest
  /// magnitude (so m itself is exact; llama.cpp's Q4_0 with group 32). Stored two per byte,
  /// uint8 [rows, cols / 2]: in each group of 32 columns, byte j holds column j in its low nibble
  /// and column j + 16 in its high nibble.
  q4,
};

[[nodiscard]] constexpr std::string_view name_of(weight_format f) noexcept {
  switch (f) {
    case weight_format::dense: return "dense";
    case weight_format::q8: return "q8";
    case weight_format::q4: return "q4";
  }
  return "?";
}

/// "q8" / "q4" / "dense" (as name_of writes them); std::nullopt for anything else.
[[nodiscard]] constexpr std::optional<weight_format> parse_weight_format(std::string_view s) noexcept {
  for (weight_format f : {weight_format::dense, weight_format::q8, weight_format::q4})
    if (s == name_of(f)) return f;
  return std::nullopt;
}

/// Columns per scale unless a caller says otherwise, and the unit every group size is a multiple of
/// (the kernels read whole groups of 32 columns).
inline constexpr index_t default_group = 32;
inline constexpr index_t group_unit = 32;

/// Bytes one row of `cols` quantized columns takes.
[[nodiscard]] constexpr index_t row_bytes(weight_format f, index_t cols) noexcept {
  return f == weight_format::q4 ? cols / 2 : cols;
}

/// A quantized matrix W [rows, cols] in PyTorch's [out_features, in_features] layout, as a view:
/// whoever builds it (quantize, a checkpoint binder) owns the memory.
///   data:   rows x row_bytes(format, cols) bytes, row r at data + r * row_stride
///   scales: rows x (cols / group) f16, row r at scales + r * scale_stride
struct qmatrix {
  weight_format format = weight_format::dense;
  index_t rows = 0, cols = 0, group = default_group;
  std::uint8_t const* data = nullptr;
  index_t row_stride = 0;  ///< bytes
  f16 const* scales = nullptr;
  index_t scale_stride = 0;  ///< f16 elements

  [[nodiscard]] bool empty() const noexcept { return format == weight_format::dense; }
  [[nodiscard]] index_t groups() const noexcept { return cols / group; }
  [[nodiscard]] std::uint8_t const* row(index_t r) const noexcept { return data + r * row_stride; }
  [[nodiscard]] f16 const* row_scales(index_t r) const noexcept { return scales + r * scale_stride; }
  /// The first `n` rows from row `r0` (a view into the same memory).
  [[nodiscard]] qmatrix row_block(index_t r0, index_t n) const noexcept {
    qmatrix b = *this;
    b.rows = n;
    b.data = row(r0);
    b.scales = row_scales(r0);
    return b;
  }
  /// Bytes read by a product that streams the whole matrix once (weights and scales).
  [[nodiscard]] double bytes() const noexcept {
    return static_cast<double>(rows) * static_cast<double>(row_bytes(format, cols) + groups() * 2);
  }
};

/// Throws tessera::error unless `group` fits `cols` for format `f` (what every loader and the
/// quantizer check): a multiple of group_unit that divides cols.
inline void check_group(weight_format f, index_t cols, index_t group, std::string_view what) {
  TESSERA_CHECK(f != weight_format::dense, what, ": not a quantized format");
  TESSERA_CHECK(group >= group_unit && group % group_unit == 0, what, ": the group size must be a positive multiple of ",
                group_unit, ", got ", group);
  TESSERA_CHECK(cols >= 1 && cols % group == 0, what, ": ", cols, " columns are not a whole number of groups of ",
                group);
}

/// The quantized value of column k of a row (q8: the int8; q4: the nibble minus 8).
[[nodiscard]] inline int value_at(weight_format f, std::uint8_t const* row, index_t k) noexcept {
  if (f == weight_format::q8) return static_cast<std::int8_t>(row[k]);
  index_t const g = k / 32, j = k % 32;
  std::uint8_t const b = row[g * 16 + (j & 15)];
  return static_cast<int>(j < 16 ? (b & 0x0F) : (b >> 4)) - 8;
}

/// Row r of W as floats: out[k] = scale(k / group) * value(k). Exact: an 8-bit integer times an f16
/// has at most 19 significant bits.
inline void dequantize_row(qmatrix const& w, index_t r, float* out) noexcept {
  std::uint8_t const* q = w.row(r);
  f16 const* s = w.row_scales(r);
  for (index_t k = 0; k < w.cols; ++k) out[k] = s[k / w.group].to_float() * static_cast<float>(value_at(w.format, q, k));
}

/// Quantizes one row of `cols` floats into `q` (row_bytes(f, cols) bytes) and `scales`
/// (cols / group f16): per group, the scale is rounded to f16 first and every value is divided by
/// that f16 scale and rounded to nearest (ties to even), then clamped to the format's range.
/// Throws tessera::error for a non-finite weight or a scale beyond f16's range.
inline void quantize_row(weight_format f, float const* w, index_t cols, index_t group, std::uint8_t* q, f16* scales) {
  for (index_t g0 = 0; g0 < cols; g0 += group) {
    float amax = 0.0f, extreme = 0.0f;
    for (index_t k = g0; k < g0 + group; ++k) {
      TESSERA_CHECK(std::isfinite(w[k]), "quant::quantize: weight ", k, " of a row is ", w[k],
                    ": only finite weights can be quantized");
      if (std::fabs(w[k]) > amax) {
        amax = std::fabs(w[k]);
        extreme = w[k];
      }
    }
    float const want = f == weight_format::q8 ? amax / 127.0f : extreme / -8.0f;
    f16 const d = f16::from_float(want);
    TESSERA_CHECK(std::isfinite(d.to_float()), "quant::quantize: a group's largest weight ", extreme,
                  " needs a scale beyond the f16 range");
    scales[g0 / group] = d;
    float const inv = d.to_float() == 0.0f ? 0.0f : 1.0f / d.to_float();
    for (index_t k = g0; k < g0 + group; ++k) {
      float const v = std::nearbyint(w[k] * inv);
      if (f == weight_format::q8) {
        q[k] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::clamp(v, -127.0f, 127.0f)));
      } else {
        auto const u = static_cast<std::uint8_t>(std::clamp(v + 8.0f, 0.0f, 15.0f));
        index_t const g = k / 32, j = k % 32;
        std::uint8_t& b = q[g * 16 + (j & 15)];
        b = j < 16 ? static_cast<std::uint8_t>((b & 0xF0) | u) : static_cast<std::uint8_t>((b & 0x0F) | (u << 4));
      }
    }
  }
}

/// A quantized matrix that owns its bytes (what quantize returns); view() for the kernels.
struct quantized_matrix {
  weight_format format = weight_format::dense;
  index_t rows = 0, cols = 0, group = default_group;
  std::vector<std::uint8_t> data;
  std::vector<f16> scales;

  [[nodiscard]] qmatrix view() const noexcept {
    return {format, rows, cols, group, data.data(), row_bytes(format, cols), scales.data(), cols / group};
  }
};

/// Quantizes W [rows, cols] (f32, bf16 or f16; rows may be strided) to format `f` with one scale per
/// `group` columns (a multiple of 32 dividing cols; cols for one scale per row).
template <weight_type T>
[[nodiscard]] quantized_matrix quantize(tensor_view<T const, 2> w, weight_format f, index_t group = default_group) {
  index_t const rows = w.extent(0), cols = w.extent(1);
  check_group(f, cols, group, "quant::quantize");
  TESSERA_CHECK(w.is_row_contiguous(), "quant::quantize: the last dimension of W must be contiguous");
  quantized_matrix out{f, rows, cols, group, {}, {}};
  index_t const rb = row_bytes(f, cols);
  out.data.assign(static_cast<std::size_t>(rows * rb), 0);
  out.scales.resize(static_cast<std::size_t>(rows * (cols / group)));
  // Rows in parallel (a 7B model's layers quantize in seconds); the first error is rethrown.
  std::exception_ptr failed;
#if defined(_OPENMP)
#pragma omp parallel if (rows * cols > (1 << 20))
#endif
  {
    std::vector<float> row(static_cast<std::size_t>(cols));
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (index_t r = 0; r < rows; ++r) {
      try {
        for (index_t k = 0; k < cols; ++k) row[static_cast<std::size_t>(k)] = to_float(w(r, k));
        quantize_row(f, row.data(), cols, group, out.data.data() + r * rb, out.scales.data() + r * (cols / group));
      } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(tessera_quantize_error)
#endif
        if (!failed) failed = std::current_exception();
      }
    }
  }
  if (failed) std::rethrow_exception(failed);
  return out;
}

}  // namespace tessera::quant
