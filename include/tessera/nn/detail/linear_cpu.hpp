// SPDX-License-Identifier: Apache-2.0
// nn::linear, cpu backend: hands the views to the blocked GEMM engine in backend/cpu/gemm.hpp.
#pragma once

#include <tessera/backend/cpu/gemm.hpp>
#include <tessera/backend/cpu/qgemm.hpp>

#include <new>
#include <span>

namespace tessera::nn::detail {

template <class Arch>
struct linear_impl<backend::cpu_simd<Arch>> {
  template <class W, class Bias>
  static void run(tensor_view<float const, 2> x,      // [n_tokens, d_in]
                  tensor_view<W const, 2> w,          // [d_out, d_in]
                  tensor_view<Bias const, 1> bias,    // [d_out] or [0]
                  tensor_view<float, 2> y,            // [n_tokens, d_out]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx, product_precision precision) {
    backend::cpu_detail::gemm_args<W, Bias> const g{x.extent(0), w.extent(0), x.extent(1), x.data(), x.stride(0),
                                                    w.data(), w.stride(0), bias.extent(0) ? bias.data() : nullptr,
                                                    y.data(), y.stride(0)};
    backend::cpu_detail::gemm<Arch>(g, precision == product_precision::bf16, ctx);
  }
};

template <class Arch>
struct qlinear_impl<backend::cpu_simd<Arch>> {
  template <class Bias>
  static void run(tensor_view<float const, 2> x, quant::qmatrix const& w, tensor_view<Bias const, 1> bias,
                  tensor_view<float, 2> y, exec_ctx<backend::cpu_simd<Arch>>& ctx, product_precision precision) {
    backend::cpu_detail::qgemm_args<Bias> const g{x.extent(0), x.data(), x.stride(0), w,
                                                  bias.extent(0) ? bias.data() : nullptr, y.data(), y.stride(0)};
    backend::cpu_detail::qgemm<Arch>(g, precision == product_precision::bf16, ctx);
  }
  template <class Bias>
  static void run_group(tensor_view<float const, 2> x, std::span<quantized_output<Bias> const> outs,
                        exec_ctx<backend::cpu_simd<Arch>>& ctx, product_precision precision) {
    auto frame = ctx.scratch().open();
    auto* const parts = frame.template alloc<backend::cpu_detail::qgemm_args<Bias>>(outs.size());  // [outs]
    for (std::size_t i = 0; i < outs.size(); ++i)
      new (parts + i) backend::cpu_detail::qgemm_args<Bias>{x.extent(0), x.data(), x.stride(0), outs[i].w,
                                                            outs[i].bias.extent(0) ? outs[i].bias.data() : nullptr,
                                                            outs[i].y.data(), outs[i].y.stride(0)};
    backend::cpu_detail::qgemm_group<Arch>(std::span<backend::cpu_detail::qgemm_args<Bias> const>(parts, outs.size()),
                                           precision == product_precision::bf16, ctx);
  }
};

}  // namespace tessera::nn::detail
