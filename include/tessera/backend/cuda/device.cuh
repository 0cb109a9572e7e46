// SPDX-License-Identifier: Apache-2.0
// Device discovery: device_available() answers "can this process use a CUDA device?" without
// throwing, so that tests and examples can skip CUDA work on machines without a usable GPU.
#pragma once

#include <tessera/backend/cuda/check.cuh>

#include <cuda_runtime.h>

namespace tessera::backend {

/// Number of CUDA devices this process can use; 0 when cudaGetDeviceCount fails for any reason
/// (no driver, a driver older than the runtime -- cudaErrorInsufficientDriver --, no device,
/// CUDA_VISIBLE_DEVICES hiding them all).
[[nodiscard]] inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();   // clear the (non-sticky) error so later checks start clean
    return 0;
  }
  return n;
}

/// True when at least one CUDA device answers.
[[nodiscard]] inline bool device_available() noexcept { return device_count() > 0; }

}  // namespace tessera::backend
