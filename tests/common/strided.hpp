// SPDX-License-Identifier: Apache-2.0
// strided_rows: a [n_rows, dim] f32 operand stored at a row stride >= dim in a guarded buffer,
// with a sentinel in the gaps between rows that no kernel may touch; heads_buffer: the same for
// [n_tokens, n_heads, head_dim] at a head and a token stride (q or k inside a fused projection).
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

/// [n_tokens, n_heads, head_dim] values at head stride hs and token stride ts inside a guarded
/// buffer whose other elements hold a sentinel.
class heads_buffer {
 public:
  static constexpr float gap = -777.25f;
  heads_buffer(index_t n_tokens, index_t n_heads, index_t head_dim, index_t hs, index_t ts,
               std::vector<float> const& values)
      : n_(n_tokens), h_(n_heads), d_(head_dim), hs_(hs), ts_(ts),
        buf_(n_tokens == 0 ? 0 : (n_tokens - 1) * ts + (n_heads - 1) * hs + head_dim, gap) {
    for (index_t i = 0; i < n_ * h_ * d_; ++i) buf_.data()[offset(i)] = values[static_cast<std::size_t>(i)];
  }
  [[nodiscard]] tensor_view<float, 3> view() { return {buf_.data(), {n_, h_, d_}, {ts_, hs_, 1}}; }
  [[nodiscard]] std::vector<float> values() const {
    std::vector<float> v(static_cast<std::size_t>(n_ * h_ * d_));
    for (index_t i = 0; i < n_ * h_ * d_; ++i) v[static_cast<std::size_t>(i)] = buf_.data()[offset(i)];
    return v;
  }
  [[nodiscard]] bool intact() const {
    std::vector<bool> payload(static_cast<std::size_t>(buf_.size()), false);
    for (index_t i = 0; i < n_ * h_ * d_; ++i) payload[static_cast<std::size_t>(offset(i))] = true;
    for (index_t i = 0; i < buf_.size(); ++i)
      if (!payload[static_cast<std::size_t>(i)] && buf_.data()[i] != gap) return false;
    return buf_.intact();
  }

 private:
  [[nodiscard]] index_t offset(index_t i) const { return i / (h_ * d_) * ts_ + i / d_ % h_ * hs_ + i % d_; }
  index_t n_, h_, d_, hs_, ts_;
  guarded<float> buf_;
};

}  // namespace tessera::test
