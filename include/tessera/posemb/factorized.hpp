// SPDX-License-Identifier: Apache-2.0
// posemb::factorized_learned / factorized_sinusoidal -- NaViT's factorized 2-D position embedding
// (Dehghani et al., "Patch n' Pack", 2023, section 3.1; spec 6.3): x += phi_y(row) (op) phi_x(col),
// with absolute (patch index) or fractional (row / grid_h in [0, 1)) coordinates, learned tables or
// sinusoids, combined by sum (the paper's choice), concatenation or product. vit-pytorch's NaViT
// (`patches + pos_embed_height[h] + pos_embed_width[w]`) is factorized_learned with absolute
// coordinates and combine_mode::sum.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/posemb/rope_1d.hpp>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace tessera::posemb {

/// How a token's coordinates are given. The coordinate view's element type selects the mode:
/// int32 coordinates are absolute, float coordinates fractional (coord_mode_of_v).
enum class coord_mode {
  absolute,    ///< (row, col) patch indices, int32 >= 0 (pack::patch_coords, pack_plan::coords)
  fractional,  ///< (row / grid_h, col / grid_w) in [0, 1], f32 (pack_plan::frac_coords)
};

/// How phi_y(row) and phi_x(col) are combined into the d_model-wide embedding.
enum class combine_mode {
  sum,      ///< x += phi_y + phi_x, evaluated (x + phi_y) + phi_x as vit-pytorch; phi width d_model
  concat,   ///< x[:, :d/2] += phi_y, x[:, d/2:] += phi_x; phi width d_model / 2 (d_model even)
  product,  ///< x += phi_y * phi_x (element-wise); phi width d_model
};

template <class Coord>
inline constexpr coord_mode coord_mode_of_v =
    std::is_same_v<std::remove_cv_t<Coord>, float> ? coord_mode::fractional : coord_mode::absolute;

/// Parameters of the sinusoidal phi (standard transformer encoding, Vaswani et al. 2017):
///   phi(p)[2i] = sin(p * w_i), phi(p)[2i + 1] = cos(p * w_i), w_i = 1 / base^(2i / d_phi)
/// with the f32 angle p * w_i (w_i computed as rope_1d's inv_freq). Absolute: p = float(index).
/// Fractional: p = r * fractional_scale in f32 -- the paper does not give a scale; the default 64
/// maps [0, 1) onto the positions of a 64-patch side (896 px at patch 14), so the frequencies
/// resolve a neighbouring patch on grids up to that size.
struct sinusoid_options {
  float base = 10000.0f;           ///< finite, > 0
  float fractional_scale = 64.0f;  ///< finite, > 0; used with fractional coordinates only
};

namespace detail {
template <class Backend>
struct factorized_impl {  // specialized in detail/factorized_ref.hpp, detail/factorized_cpu.hpp
  static_assert(always_false<Backend>,
                "posemb::factorized_* has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/posemb/factorized.hpp was included through tessera.hpp)");
};

/// Width of each phi for a combine mode.
[[nodiscard]] constexpr index_t phi_width(combine_mode c, index_t d_model) noexcept {
  return c == combine_mode::concat ? d_model / 2 : d_model;
}

/// Row of a learned fractional table of n_rows entries for r in [0, 1]: floor(r * n_rows) in f32,
/// clamped to n_rows - 1 (r == 1, or an f32 product that rounds up to n_rows). This uniform
/// discretisation (cell i covers [i / n_rows, (i + 1) / n_rows)) is tessera's choice: the paper does
/// not specify one (spec 6.3). For a grid side equal to n_rows it gives back the absolute index.
[[nodiscard]] inline index_t fractional_row(float r, index_t n_rows) noexcept {
  auto const i = static_cast<index_t>(std::floor(r * static_cast<float>(n_rows)));
  return i < 0 ? 0 : (i >= n_rows ? n_rows - 1 : i);
}

/// The table row a token's coordinate selects (absolute: the index; fractional: fractional_row).
template <class Coord>
[[nodiscard]] inline index_t table_row(Coord c, index_t n_rows) noexcept {
  if constexpr (std::is_same_v<Coord, float>) return fractional_row(c, n_rows);
  else return static_cast<index_t>(c);
}

/// The sinusoid's position p of a coordinate (absolute: float(index); fractional: r * scale).
template <class Coord>
[[nodiscard]] inline float sinusoid_position(Coord c, float scale) noexcept {
  if constexpr (std::is_same_v<Coord, float>) return c * scale;
  else return static_cast<float>(c);
}

template <class Space>
void check_factorized_common(char const* block, tensor_view<float, 2, Space> const& x, index_t n_coords,
                             index_t coord_cols, combine_mode combine) {
  TESSERA_CHECK(n_coords == x.extent(0) && coord_cols == 2, block, ": coords must be [", x.extent(0),
                ", 2] (row, col), got [", n_coords, ", ", coord_cols, "]");
  TESSERA_CHECK(x.is_row_contiguous(), block, ": the last dimension of x must be contiguous (stride 1), got ",
                x.stride(1));
  TESSERA_CHECK(combine != combine_mode::concat || x.extent(1) % 2 == 0, block,
                ": combine_mode::concat needs an even d_model, got ", x.extent(1));
}

/// Coordinate checks on host memory: absolute indices in [0, limit_y / limit_x) (limit < 0: only
/// >= 0 and int32), fractional values finite and in [0, 1].
template <class Coord, class Space>
void check_coords(char const* block, tensor_view<Coord const, 2, Space> const& coords, index_t limit_y,
                  index_t limit_x) {
  if constexpr (std::is_same_v<Space, backend::host_space>) {
    for (index_t t = 0; t < coords.extent(0); ++t) {
      Coord const r = coords(t, 0), c = coords(t, 1);
      if constexpr (std::is_same_v<Coord, float>) {
        TESSERA_CHECK(std::isfinite(r) && std::isfinite(c) && r >= 0.0f && r <= 1.0f && c >= 0.0f && c <= 1.0f,
                      block, ": fractional coordinates must be in [0, 1], token ", t, " has (", r, ", ", c, ")");
      } else {
        TESSERA_CHECK(r >= 0 && c >= 0, block, ": coordinates must be >= 0, token ", t, " has (", r, ", ", c, ")");
        TESSERA_CHECK(limit_y < 0 || (r < limit_y && c < limit_x), block, ": token ", t, " has (row, col) = (", r,
                      ", ", c, ") but the tables have ", limit_y, " rows (y) and ", limit_x,
                      " rows (x); absolute indices must be below them");
      }
    }
  }
}
}  // namespace detail

/// Factorized position embedding from learned tables, added in place: for token t with
/// coordinates (a, b), x[t, :] += phi_y (op) phi_x where phi_y = table_y[row(a)], phi_x = table_x[row(b)].
///   x:       [n_tokens, d_model] f32 (e.g. the patch embeddings of a packed buffer); rows may be
///            strided, last dimension contiguous.
///   coords:  [n_tokens, 2]; int32 (absolute: row(a) = a, must be < the table's rows, else
///            tessera::error) or f32 (fractional: a in [0, 1], row(a) = floor(a * rows), clamped to
///            rows - 1, see detail::fractional_row). Padding slots: any valid coordinate (0, 0).
///   table_y: [n_rows_y, d_phi] f32, bf16 or f16 (vit-pytorch pos_embed_height); last dim contiguous.
///   table_x: [n_rows_x, d_phi] of the same type (pos_embed_width); d_phi = d_model (sum, product)
///            or d_model / 2 (concat).
/// Numerics: table values widened exactly to f32, then one or two f32 operations per element in
/// the order documented at combine_mode: every backend gives the same bits as PyTorch's
/// `x + h_pos + w_pos`. Workspace: none. Determinism: exact.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, class Coord, weight_type W>
  requires(std::is_same_v<std::remove_cv_t<Coord>, std::int32_t> || std::is_same_v<std::remove_cv_t<Coord>, float>)
void factorized_learned(tensor_view<float, 2, backend::space_t<Backend>> x,
                        tensor_view<Coord, 2, backend::space_t<Backend>> coords,
                        tensor_view<W, 2, backend::space_t<Backend>> table_y,
                        tensor_view<W, 2, backend::space_t<Backend>> table_x, combine_mode combine,
                        exec_ctx<Backend>& ctx) {
  using space = backend::space_t<Backend>;
  using coord_t = std::remove_cv_t<Coord>;
  using weight_t = std::remove_cv_t<W>;
  char const* const block = "posemb::factorized_learned";
  detail::check_factorized_common(block, x, coords.extent(0), coords.extent(1), combine);
  index_t const d_phi = detail::phi_width(combine, x.extent(1));
  TESSERA_CHECK(table_y.extent(1) == d_phi && table_x.extent(1) == d_phi, block, ": with d_model ", x.extent(1),
                " and this combine mode the tables need ", d_phi, " columns, got ", table_y.extent(1), " (y) and ",
                table_x.extent(1), " (x)");
  TESSERA_CHECK(table_y.extent(0) >= 1 && table_x.extent(0) >= 1, block, ": the tables need at least one row, got ",
                table_y.extent(0), " (y) and ", table_x.extent(0), " (x)");
  TESSERA_CHECK(table_y.is_row_contiguous() && table_x.is_row_contiguous() && coords.is_row_contiguous(), block,
                ": the last dimension of the tables and of coords must be contiguous");
  tensor_view<coord_t const, 2, space> const c(coords);
  bool const absolute = coord_mode_of_v<coord_t> == coord_mode::absolute;
  detail::check_coords(block, c, absolute ? table_y.extent(0) : -1, absolute ? table_x.extent(0) : -1);
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  detail::factorized_impl<Backend>::run_learned(x, c, tensor_view<weight_t const, 2, space>(table_y),
                                                tensor_view<weight_t const, 2, space>(table_x), combine, ctx);
}

/// Factorized position embedding from sinusoids (sinusoid_options), added in place:
/// x[t, :] += phi(p_y) (op) phi(p_x), phi of width d_phi = d_model (sum, product) or d_model / 2
/// (concat), which must be even.
///   x:      [n_tokens, d_model] f32; rows may be strided, last dimension contiguous.
///   coords: [n_tokens, 2] int32 (absolute, >= 0: p = index) or f32 (fractional, in [0, 1]:
///           p = r * opt.fractional_scale).
/// Numerics: the f32 angle p * w_i; the reference takes cos / sin in double rounded to f32, the cpu
/// backend xsimd::sincos (about 1 ulp). Workspace: the cpu backend takes (2 + 2 * threads) * d_phi
/// floats from ctx.scratch(). Determinism: bitwise reproducible for a backend, any thread count.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, class Coord>
  requires(std::is_same_v<std::remove_cv_t<Coord>, std::int32_t> || std::is_same_v<std::remove_cv_t<Coord>, float>)
void factorized_sinusoidal(tensor_view<float, 2, backend::space_t<Backend>> x,
                           tensor_view<Coord, 2, backend::space_t<Backend>> coords, combine_mode combine,
                           exec_ctx<Backend>& ctx, sinusoid_options const& opt = {}) {
  using space = backend::space_t<Backend>;
  using coord_t = std::remove_cv_t<Coord>;
  char const* const block = "posemb::factorized_sinusoidal";
  detail::check_factorized_common(block, x, coords.extent(0), coords.extent(1), combine);
  index_t const d_phi = detail::phi_width(combine, x.extent(1));
  TESSERA_CHECK(d_phi % 2 == 0, block, ": the sinusoid width (", d_phi, ") must be even (sin / cos pairs)");
  TESSERA_CHECK(coords.is_row_contiguous(), block, ": the last dimension of coords must be contiguous");
  TESSERA_CHECK(opt.base > 0.0f && std::isfinite(opt.base) && opt.fractional_scale > 0.0f &&
                    std::isfinite(opt.fractional_scale),
                block, ": base (", opt.base, ") and fractional_scale (", opt.fractional_scale,
                ") must be finite and > 0");
  tensor_view<coord_t const, 2, space> const c(coords);
  detail::check_coords(block, c, -1, -1);
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  detail::factorized_impl<Backend>::run_sinusoidal(x, c, combine, opt, ctx);
}

}  // namespace tessera::posemb

#include <tessera/posemb/detail/factorized_ref.hpp>
#include <tessera/posemb/detail/factorized_cpu.hpp>
