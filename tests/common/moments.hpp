// SPDX-License-Identifier: Apache-2.0
// test::sample_moments: the sample mean and variance of n_draws draws of a random quantity, for the
// statistical checks of the samplers (token dropping, resolution sampling).
#pragma once

#include <vector>

namespace tessera::test {

inline constexpr int n_draws = 10000;

struct moments {
  double mean = 0, var = 0;
};

/// The sample mean and the unbiased sample variance of n_draws calls of draw().
template <class F>
moments sample_moments(F&& draw) {
  std::vector<double> x(n_draws);
  for (auto& v : x) v = draw();
  double m = 0;
  for (double v : x) m += v;
  m /= n_draws;
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return {m, s / (n_draws - 1)};
}

}  // namespace tessera::test
