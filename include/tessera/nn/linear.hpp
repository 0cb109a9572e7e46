// SPDX-License-Identifier: Apache-2.0
// nn::linear -- y = x @ W^T + b, torch.nn.functional.linear with f32 activations and f32, bf16 or
// f16 weights in PyTorch's [out_features, in_features] layout, accumulated in f32; or with
// quantized weights (quant::qmatrix: 8-bit or 4-bit), as if dequantized first.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/quant/format.hpp>

#include <optional>
#include <span>
#include <type_traits>

namespace tessera::nn {

/// How the products x[m,k] * W[n,k] are formed (accumulation is always f32).
enum class product_precision {
  /// x stays f32; W is widened to f32 exactly; f32 FMA. The accurate choice for every dtype.
  f32,
  /// x is rounded to bf16 (nearest even) first; bf16 x bf16 products are exact in f32 and summed
  /// in f32 -- what PyTorch computes for a bf16 model, and what the AVX-512 BF16 dot instruction
  /// does at twice the f32 FMA rate. Valid with bf16 weights only.
  bf16,
};

/// The default for a weight type: bf16 weights use bf16 products (bf16 model semantics, fastest);
/// f32 and f16 weights use f32 products.
template <class W>
inline constexpr product_precision default_precision_v =
    std::is_same_v<std::remove_cv_t<W>, bf16> ? product_precision::bf16 : product_precision::f32;

/// The parameters of an nn.Linear: weight [d_out, d_in] (row-major, PyTorch's layout) and an
/// optional bias [d_out]. Views: whoever builds them (a checkpoint binder, a test) owns the memory.
/// `quantized`, when not empty (host memory only), holds the weight instead: 8-bit or 4-bit
/// (quant::qmatrix); `weight` may then be empty or still point at the dense original, which
/// linear() no longer reads.
template <weight_type T, class Space = host_space>
struct linear_weights {
  tensor_view<T const, 2, Space> weight;
  std::optional<tensor_view<T const, 1, Space>> bias;
  quant::qmatrix quantized{};
};

namespace detail {
template <class Backend>
struct linear_impl {  // specialized in detail/linear_ref.hpp, detail/linear_cpu.hpp
  static_assert(always_false<Backend>,
                "nn::linear has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/nn/linear.hpp was included through tessera.hpp)");
};
template <class Backend>
struct qlinear_impl {  // quantized weights; specialized in detail/linear_ref.hpp, detail/linear_cpu.hpp
  static_assert(always_false<Backend>, "nn::linear with quantized weights has no implementation for this backend");
};

/// nn::linear's checks of a quantized product (x [m, w.cols], y [m, w.rows], a bias of w.rows or 0
/// elements, contiguous last dimensions).
inline void check_quantized_linear(tensor_view<float const, 2> x, quant::qmatrix const& w, index_t bias_size,
                                   bool bias_contiguous, tensor_view<float, 2> y) {
  TESSERA_CHECK(!w.empty(), "nn::linear: the quantized weight is empty (format dense)");
  quant::check_group(w.format, w.cols, w.group, "nn::linear");
  TESSERA_CHECK(x.extent(1) == w.cols, "nn::linear: x is [", x.extent(0), ", ", x.extent(1), "] but the ",
                quant::name_of(w.format), " W is [", w.rows, ", ", w.cols, "]: the inner dimensions must agree");
  TESSERA_CHECK(y.extent(0) == x.extent(0) && y.extent(1) == w.rows, "nn::linear: y must be [", x.extent(0), ", ",
                w.rows, "], got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(bias_size == 0 || bias_size == w.rows, "nn::linear: bias must have ", w.rows,
                " elements (or none), got ", bias_size);
  TESSERA_CHECK(x.is_row_contiguous() && y.is_row_contiguous() && bias_contiguous,
                "nn::linear: the last dimension of x, y and the bias must be contiguous");
}
}  // namespace detail

/// Whether a backend multiplies by quantized weights (the reference and the cpu backends do).
template <class Backend>
inline constexpr bool supports_quantized_v = false;
template <>
inline constexpr bool supports_quantized_v<backend::reference> = true;
template <class Arch>
inline constexpr bool supports_quantized_v<backend::cpu_simd<Arch>> = true;

/// Mirrors torch.nn.functional.linear / nn.Linear.
///   x:    [n_tokens, d_in]  f32; rows may be strided, the last dimension must be contiguous.
///   w:    [d_out, d_in]     f32, bf16 or f16; rows may be strided, last dimension contiguous.
///   bias: [d_out] of the weight type or f32, or an empty view (extent 0) for no bias.
///   y:    [n_tokens, d_out] f32; rows may be strided, last dimension contiguous; must not
///         overlap x, w or bias.
///   precision: see product_precision; product_precision::bf16 requires bf16 weights.
/// Workspace: the cpu backend packs panels of W (and x for bf16 products) into ctx.scratch().
/// Determinism: for a given backend, shape and thread count the result is bitwise reproducible;
/// the summation order (and so the last bits) depends on the backend and its blocking.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W, class Bias>
  requires(std::is_same_v<std::remove_cv_t<Bias>, float> || std::is_same_v<std::remove_cv_t<Bias>, std::remove_cv_t<W>>)
void linear(tensor_view<float const, 2, backend::space_t<Backend>> x, tensor_view<W, 2, backend::space_t<Backend>> w,
            tensor_view<Bias, 1, backend::space_t<Backend>> bias, tensor_view<float, 2, backend::space_t<Backend>> y,
            exec_ctx<Backend>& ctx, product_precision precision = default_precision_v<W>) {
  using weight_t = std::remove_cv_t<W>;
  TESSERA_CHECK(x.extent(1) == w.extent(1), "nn::linear: x is [", x.extent(0), ", ", x.extent(1), "] but W is [",
                w.extent(0), ", ", w.extent(1), "]: the inner dimensions must agree");
  TESSERA_CHECK(y.extent(0) == x.extent(0) && y.extent(1) == w.extent(0), "nn::linear: y must be [", x.extent(0),
                ", ", w.extent(0), "], got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(bias.extent(0) == 0 || bias.extent(0) == w.extent(0), "nn::linear: bias must have ", w.extent(0),
                " elements (or none), got ", bias.extent(0));
  TESSERA_CHECK(x.is_row_contiguous() && w.is_row_contiguous() && y.is_row_contiguous() &&
                    (bias.extent(0) <= 1 || bias.stride(0) == 1),
                "nn::linear: the last dimension of x, W, y and the bias must be contiguous");
  TESSERA_CHECK((precision == product_precision::f32 || std::is_same_v<weight_t, bf16>),
                "nn::linear: bf16 products need bf16 weights; this weight type takes product_precision::f32");
  detail::linear_impl<Backend>::run(x, tensor_view<weight_t const, 2, backend::space_t<Backend>>(w),
                                    tensor_view<std::remove_cv_t<Bias> const, 1, backend::space_t<Backend>>(bias), y,
                                    ctx, precision);
}

/// Without bias.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void linear(tensor_view<float const, 2, backend::space_t<Backend>> x, tensor_view<W, 2, backend::space_t<Backend>> w,
            tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx,
            product_precision precision = default_precision_v<W>) {
  linear<Backend>(x, w, tensor_view<float const, 1, backend::space_t<Backend>>(nullptr, {0}), y, ctx, precision);
}

/// With quantized weights: y = x @ dequantize(W)^T + bias, where dequantize(W) is exact in f32
/// (quant::dequantize_row). The same shapes, bias and precision rules as above:
/// product_precision::f32 multiplies f32 x by the exact weights; product_precision::bf16 rounds x
/// to bf16 first and, in the cpu backend's large-M (prefill) path, the dequantized weights too
/// (backend/cpu/qgemm.hpp). Host backends only (supports_quantized_v).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, class Bias>
  requires(std::is_same_v<std::remove_cv_t<Bias>, float> || weight_type<std::remove_cv_t<Bias>>)
void linear(tensor_view<float const, 2> x, quant::qmatrix const& w, tensor_view<Bias, 1> bias, tensor_view<float, 2> y,
            exec_ctx<Backend>& ctx, product_precision precision = product_precision::f32) {
  static_assert(supports_quantized_v<Backend>, "nn::linear: this backend has no quantized weights");
  detail::check_quantized_linear(x, w, bias.extent(0), bias.extent(0) <= 1 || bias.stride(0) == 1, y);
  detail::qlinear_impl<Backend>::run(x, w, tensor_view<std::remove_cv_t<Bias> const, 1>(bias), y, ctx, precision);
}

/// One output of the grouped nn::linear below: y = x @ dequantize(w)^T + bias.
template <class Bias>
struct quantized_output {
  quant::qmatrix w;
  tensor_view<Bias const, 1> bias;  ///< [w.rows], or empty for none
  tensor_view<float, 2> y;          ///< [x rows, w.rows]
};

/// Several quantized linear layers of the same x (a decoder's q, k and v; gate and up): each
/// output exactly as its own nn::linear (the same checks, bitwise the same values), in one pass
/// where the backend has one: the cpu backend's decode kernels (x of at most 4 rows) quantize x
/// once and share the rows of all the matrices among the threads in one parallel region, instead
/// of one region (and one barrier, and one load-balancing tail) per matrix.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, class Bias>
void linear(tensor_view<float const, 2> x, std::span<quantized_output<Bias> const> outs, exec_ctx<Backend>& ctx,
            product_precision precision = product_precision::f32) {
  static_assert(supports_quantized_v<Backend>, "nn::linear: this backend has no quantized weights");
  for (quantized_output<Bias> const& o : outs)
    detail::check_quantized_linear(x, o.w, o.bias.extent(0), o.bias.extent(0) <= 1 || o.bias.stride(0) == 1, o.y);
  detail::qlinear_impl<Backend>::run_group(x, outs, ctx, precision);
}

/// With an nn.Linear's parameters (weight and optional bias), as above; the quantized weight when
/// there is one.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void linear(tensor_view<float const, 2, backend::space_t<Backend>> x,
            linear_weights<W, backend::space_t<Backend>> const& w, tensor_view<float, 2, backend::space_t<Backend>> y,
            exec_ctx<Backend>& ctx, product_precision precision = default_precision_v<W>) {
  using view1 = tensor_view<W const, 1, backend::space_t<Backend>>;
  if constexpr (supports_quantized_v<Backend>) {
    if (!w.quantized.empty()) {
      linear<Backend>(x, w.quantized, w.bias ? *w.bias : view1(nullptr, {0}), y, ctx, precision);
      return;
    }
  } else {
    TESSERA_CHECK(w.quantized.empty(), "nn::linear: quantized weights need the reference or the cpu backend");
  }
  linear<Backend>(x, w.weight, w.bias ? *w.bias : view1(nullptr, {0}), y, ctx, precision);
}

}  // namespace tessera::nn

#include <tessera/nn/detail/linear_ref.hpp>
#include <tessera/nn/detail/linear_cpu.hpp>
