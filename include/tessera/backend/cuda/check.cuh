// SPDX-License-Identifier: Apache-2.0
// Error checks of the CUDA backend: TESSERA_CUDA_CHECK turns a failed CUDA runtime call into
// tessera::error (error name, description, the expression and where it was); TESSERA_CUBLAS_CHECK
// does the same for cuBLAS; TESSERA_CUDA_CHECK_LAUNCH() follows every kernel launch and, under
// TESSERA_CUDA_SYNC_DEBUG, synchronizes so that a fault is reported at the launch that caused it.
#pragma once

#include <tessera/core/error.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <source_location>

namespace tessera::cuda_detail {

/// Throws tessera::error for a failed CUDA runtime call (and does nothing on cudaSuccess).
inline void check_cuda(cudaError_t status, char const* expr,
                       ::tessera::source_location where = ::tessera::source_location::current()) {
  if (status == cudaSuccess) [[likely]]
    return;
  ::tessera::detail::raise_at(where, "CUDA error ", cudaGetErrorName(status), " (", static_cast<int>(status),
                              "): ", cudaGetErrorString(status), " in `", expr, "`");
}

/// Throws tessera::error for a failed cuBLAS call.
inline void check_cublas(cublasStatus_t status, char const* expr,
                         ::tessera::source_location where = ::tessera::source_location::current()) {
  if (status == CUBLAS_STATUS_SUCCESS) [[likely]]
    return;
  ::tessera::detail::raise_at(where, "cuBLAS error ", cublasGetStatusName(status), " (", static_cast<int>(status),
                              "): ", cublasGetStatusString(status), " in `", expr, "`");
}

}  // namespace tessera::cuda_detail

/// Checks a CUDA runtime call: TESSERA_CUDA_CHECK(cudaMemcpyAsync(...));
#define TESSERA_CUDA_CHECK(expr) \
  ::tessera::cuda_detail::check_cuda((expr), #expr, ::tessera::source_location::current())

/// Checks a cuBLAS call: TESSERA_CUBLAS_CHECK(cublasGemmEx(...));
#define TESSERA_CUBLAS_CHECK(expr) \
  ::tessera::cuda_detail::check_cublas((expr), #expr, ::tessera::source_location::current())

/// After every kernel launch: reports launch errors (bad configuration, missing kernel image)
/// at once. With TESSERA_CUDA_SYNC_DEBUG=1 it also waits for the whole device, so a fault
/// inside the kernel is reported here and not at some later, unrelated call. Never use the sync
/// variant in timing runs.
#ifndef TESSERA_CUDA_SYNC_DEBUG
#define TESSERA_CUDA_SYNC_DEBUG 0
#endif
#if TESSERA_CUDA_SYNC_DEBUG
#define TESSERA_CUDA_CHECK_LAUNCH()                                                            \
  do {                                                                                         \
    ::tessera::cuda_detail::check_cuda(cudaGetLastError(), "kernel launch",                   \
                                       ::tessera::source_location::current());                       \
    ::tessera::cuda_detail::check_cuda(cudaDeviceSynchronize(), "kernel execution (TESSERA_CUDA_SYNC_DEBUG)", \
                                       ::tessera::source_location::current());                       \
  } while (0)
#else
#define TESSERA_CUDA_CHECK_LAUNCH()                                                            \
  ::tessera::cuda_detail::check_cuda(cudaGetLastError(), "kernel launch", ::tessera::source_location::current())
#endif
