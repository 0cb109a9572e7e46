// SPDX-License-Identifier: Apache-2.0
// Tolerances of every comparison in the test suite, per dtype, in one place (style guide §8).
// A test may widen a budget only with a comment giving the measured error.
#pragma once

#include <tessera/core/dtype.hpp>

#include <cmath>

namespace tessera::test {

/// |got - want| <= atol + rtol * |want|, element by element.
struct tolerance {
  double atol = 0;
  double rtol = 0;
  /// Budget for a reduction over k terms longer than 1024: scaled by sqrt(k / 1024).
  [[nodiscard]] tolerance for_reduction(double k) const noexcept {
    double const s = k > 1024 ? std::sqrt(k / 1024.0) : 1.0;
    return {atol * s, rtol * s};
  }
  [[nodiscard]] tolerance scaled(double s) const noexcept { return {atol * s, rtol * s}; }
};

template <class T>
struct tol;
template <>
struct tol<float> {
  static constexpr tolerance vs_ref{1e-5, 1e-5};
  static constexpr tolerance vs_golden{1e-4, 1e-4};
  static constexpr double model_nmse = 1e-8;
};
template <>
struct tol<f16> {
  static constexpr tolerance vs_ref{1e-3, 2e-3};
  static constexpr tolerance vs_golden{2e-3, 4e-3};
  static constexpr double model_nmse = 1e-5;
};
template <>
struct tol<bf16> {
  static constexpr tolerance vs_ref{8e-3, 1.6e-2};
  static constexpr tolerance vs_golden{1.6e-2, 3.2e-2};
  static constexpr double model_nmse = 1e-4;
};

/// The absolute floor of f32 golden comparisons, relative to the magnitude of the output it
/// applies to (test::compare_scaled): atol = min(tol.atol, golden_rel_floor * max |want|). With
/// tol<float>::vs_golden (atol 1e-4) it only tightens outputs whose largest value is under 10 in
/// magnitude (softmax rows of 1280 probabilities, GELU tails, small norm outputs) and never widens a
/// budget, so a fixed 1e-4 can no longer hide an error in a small output.
inline constexpr double golden_rel_floor = 1e-5;

}  // namespace tessera::test
