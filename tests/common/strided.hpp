// SPDX-License-Identifier: Apache-2.0
// strided_rows: a [n_rows, dim] f32 operand stored at a row stride >= dim in a guarded buffer,
// with a sentinel in the gaps between rows that no kernel may touch.
#pragma once

#include "common/compare.hpp"

#include <vector>

namespace tessera::test {

class strided_rows {
 public:
  static constexpr float gap = -777.25f;
  strided_rows(index_t n_rows, index_t dim, index_t stride, std::vector<float> const& values)
      : n_rows_(n_rows), dim_(dim), stride_(stride), buf_(n_rows == 0 ? 0 : (n_rows - 1) * stride + dim, gap) {
    for (index_t r = 0; r < n_rows; ++r)
      for (index_t j = 0; j < dim; ++j) buf_.data()[r * stride + j] = values[static_cast<std::size_t>(r * dim + j)];
  }
  [[nodiscard]] tensor_view<float, 2> view() { return {buf_.data(), {n_rows_, dim_}, {stride_, 1}}; }
  [[nodiscard]] std::vector<float> values() const {
    std::vector<float> v;
    for (index_t r = 0; r < n_rows_; ++r)
      for (index_t j = 0; j < dim_; ++j) v.push_back(buf_.data()[r * stride_ + j]);
    return v;
  }
  /// True when neither the gaps between rows nor the guard after the last row were written.
  [[nodiscard]] bool intact() const {
    for (index_t r = 0; r + 1 < n_rows_; ++r)
      for (index_t j = dim_; j < stride_; ++j)
        if (buf_.data()[r * stride_ + j] != gap) return false;
    return buf_.intact();
  }

 private:
  index_t n_rows_, dim_, stride_;
  guarded<float> buf_;
};

}  // namespace tessera::test
