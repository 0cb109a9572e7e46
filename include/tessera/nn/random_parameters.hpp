// SPDX-License-Identifier: Apache-2.0
// nn::random_parameters -- owned parameter tensors with random values, for models put together in
// code that have no checkpoint (a new variant, an example, a test). linear() and norm() start as
// PyTorch's nn.Linear (kaiming_uniform_(a = sqrt(5)): weight and bias U(-1/sqrt(in), 1/sqrt(in)))
// and nn.LayerNorm / RMSNorm (weight ones, bias zeros) start; the values come from tessera::rng, so
// a seed gives the same parameters with every compiler and standard library.
#pragma once

#include <tessera/core/buffer.hpp>
#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/random.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace tessera::nn {

/// A store of parameter tensors: each call allocates one row-major tensor, fills it and returns a
/// view of it. The views stay valid while the store, or a copy of keep_alive(), lives. Tensor i of
/// the store (in call order) draws from rng(seed, i), so its values do not depend on the sizes of
/// the tensors made before it. Move-only; a moved-from store may only be destroyed or assigned to.
template <weight_type T>
class random_parameters {
 public:
  explicit random_parameters(std::uint64_t seed) : seed_(seed) {}
  random_parameters(random_parameters const&) = delete;  // two stores never share tensors
  random_parameters& operator=(random_parameters const&) = delete;
  random_parameters(random_parameters&&) noexcept = default;
  random_parameters& operator=(random_parameters&&) noexcept = default;

  /// A tensor of `extents` (>= 0 each), values uniform in [-bound, bound) rounded to T: a draw u of
  /// rng::uniform() gives bound * (2u - 1), computed in double, so it is the same on every platform.
  template <std::size_t Rank>
  [[nodiscard]] tensor_view<T const, static_cast<int>(Rank)> uniform(index_t const (&extents)[Rank], float bound) {
    TESSERA_CHECK(bound >= 0.0f && std::isfinite(bound), "nn::random_parameters: bound must be finite and >= 0, got ",
                  bound);
    rng r(seed_, tensors_->size());
    return make(extents, [&] { return static_cast<float>(bound * (2.0 * r.uniform() - 1.0)); });
  }

  /// A tensor of `extents` with every value `value` (rounded to T).
  template <std::size_t Rank>
  [[nodiscard]] tensor_view<T const, static_cast<int>(Rank)> constant(index_t const (&extents)[Rank], float value) {
    return make(extents, [&] { return value; });
  }

  /// nn.Linear(in, out, bias) as PyTorch initializes it: weight [out, in] and bias [out], both
  /// U(-1/sqrt(in), 1/sqrt(in)).
  [[nodiscard]] linear_weights<T> linear(index_t out, index_t in, bool bias = true) {
    TESSERA_CHECK(in >= 1, "nn::random_parameters::linear: in must be >= 1, got ", in);
    float const bound = 1.0f / std::sqrt(static_cast<float>(in));
    linear_weights<T> w{uniform({out, in}, bound), std::nullopt};
    if (bias) w.bias = uniform({out}, bound);
    return w;
  }

  /// nn.LayerNorm(n) (bias zeros) or RMSNorm(n) (no bias) as initialized: weight ones.
  [[nodiscard]] norm_weights<T> norm(index_t n, bool bias = false) {
    norm_weights<T> w{constant({n}, 1.0f), std::nullopt};
    if (bias) w.bias = constant({n}, 0.0f);
    return w;
  }

  /// Values held, over every tensor.
  [[nodiscard]] index_t n_values() const noexcept {
    index_t n = 0;
    for (host_buffer<T> const& b : *tensors_) n += b.size();
    return n;
  }

  /// Owns the tensors: weights that carry a keep_alive (vision::vision_encoder_weights,
  /// lm::decoder_weights) may hold it to outlive the store.
  [[nodiscard]] std::shared_ptr<void const> keep_alive() const noexcept { return tensors_; }

 private:
  template <std::size_t Rank, class Value>
  tensor_view<T const, static_cast<int>(Rank)> make(index_t const (&extents)[Rank], Value&& value) {
    index_t constexpr limit = index_t{1} << 40;  // values per tensor: far beyond any model, far from overflow
    std::array<index_t, Rank> ext{};
    index_t n = 1;
    for (std::size_t d = 0; d < Rank; ++d) {
      TESSERA_CHECK(extents[d] >= 0 && (extents[d] == 0 || n <= limit / extents[d]), "nn::random_parameters: extent ",
                    d, " is ", extents[d], "; extents must be >= 0 with at most 2^40 values in all");
      ext[d] = extents[d];
      n *= extents[d];
    }
    host_buffer<T> b(n);
    for (index_t i = 0; i < n; ++i) b[i] = from_float<T>(value());
    tensors_->push_back(std::move(b));
    return std::as_const(tensors_->back()).view(ext);
  }

  std::uint64_t seed_;
  std::shared_ptr<std::vector<host_buffer<T>>> tensors_ = std::make_shared<std::vector<host_buffer<T>>>();
};

}  // namespace tessera::nn
