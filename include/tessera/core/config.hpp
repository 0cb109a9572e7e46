// SPDX-License-Identifier: Apache-2.0
// Compile-time configuration shared by every tessera header: version, debug switch, helpers for
// static_assert messages in primary templates.
#pragma once

#include <cstdint>
#include <type_traits>

#define TESSERA_VERSION_MAJOR 0
#define TESSERA_VERSION_MINOR 1
#define TESSERA_VERSION_PATCH 0

#ifndef TESSERA_DEBUG
#define TESSERA_DEBUG 0
#endif

#ifndef TESSERA_SIMD_ARCH_NAME
#define TESSERA_SIMD_ARCH_NAME "unspecified"
#endif

/// Marks the small accessors that CUDA kernels may call too (tensor_view's data/extent/stride).
#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__
#else
#define TESSERA_HOST_DEVICE
#endif

namespace tessera {

/// Signed index type of every extent, stride and offset (PyTorch uses int64 too).
using index_t = std::int64_t;

/// `static_assert(always_false<T>, "...")` in a primary template fires only when instantiated.
template <class...>
inline constexpr bool always_false = false;

}  // namespace tessera
