// SPDX-License-Identifier: Apache-2.0
// posemb::factorized_*, reference backend: per token and column, phi_y and phi_x looked up (or the
// sinusoid evaluated: f32 angle, cos / sin in double rounded to f32), then combined in f32.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>

namespace tessera::posemb::detail {

/// Column j of the sinusoid of width d_phi at position p: sin (j even) or cos (j odd) of p * w_{j/2}.
[[nodiscard]] inline float sinusoid_value(float p, index_t j, index_t d_phi, float base) noexcept {
  float const angle = p * rope_inv_freq(base, d_phi, j / 2);
  double const a = static_cast<double>(angle);
  return static_cast<float>(j % 2 == 0 ? std::sin(a) : std::cos(a));
}

template <>
struct factorized_impl<backend::reference> {
  template <class Coord, class W>
  static void run_learned(tensor_view<float, 2> x,             // [n_tokens, d_model]
                          tensor_view<Coord const, 2> coords,  // [n_tokens, 2]
                          tensor_view<W const, 2> table_y,     // [n_rows_y, d_phi]
                          tensor_view<W const, 2> table_x,     // [n_rows_x, d_phi]
                          combine_mode combine, exec_ctx<backend::reference>&) {
    for (index_t t = 0; t < x.extent(0); ++t) {
      index_t const ry = table_row(coords(t, 0), table_y.extent(0)), rx = table_row(coords(t, 1), table_x.extent(0));
      combine_row(x, t, combine, [&](index_t j) { return to_float(table_y(ry, j)); },
                  [&](index_t j) { return to_float(table_x(rx, j)); });
    }
  }

  template <class Coord>
  static void run_sinusoidal(tensor_view<float, 2> x,             // [n_tokens, d_model]
                             tensor_view<Coord const, 2> coords,  // [n_tokens, 2]
                             combine_mode combine, sinusoid_options const& opt, exec_ctx<backend::reference>&) {
    index_t const d_phi = phi_width(combine, x.extent(1));
    for (index_t t = 0; t < x.extent(0); ++t) {
      float const py = sinusoid_position(coords(t, 0), opt.fractional_scale);
      float const px = sinusoid_position(coords(t, 1), opt.fractional_scale);
      combine_row(x, t, combine, [&](index_t j) { return sinusoid_value(py, j, d_phi, opt.base); },
                  [&](index_t j) { return sinusoid_value(px, j, d_phi, opt.base); });
    }
  }

 private:
  /// x[t, :] += phi_y (op) phi_x, with phi_y(j), phi_x(j) the columns of each phi.
  template <class PhiY, class PhiX>
  static void combine_row(tensor_view<float, 2> x, index_t t, combine_mode combine, PhiY const& phi_y,
                          PhiX const& phi_x) {
    index_t const d = x.extent(1);
    switch (combine) {
      case combine_mode::sum:
        for (index_t j = 0; j < d; ++j) x(t, j) = (x(t, j) + phi_y(j)) + phi_x(j);
        break;
      case combine_mode::product:
        for (index_t j = 0; j < d; ++j) {
          float const p = phi_y(j) * phi_x(j);
          x(t, j) = x(t, j) + p;
        }
        break;
      case combine_mode::concat:
        for (index_t j = 0; j < d / 2; ++j) x(t, j) = x(t, j) + phi_y(j);
        for (index_t j = 0; j < d / 2; ++j) x(t, d / 2 + j) = x(t, d / 2 + j) + phi_x(j);
        break;
    }
  }
};

}  // namespace tessera::posemb::detail
