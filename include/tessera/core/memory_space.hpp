// SPDX-License-Identifier: Apache-2.0
// Memory spaces: where the elements of a tensor_view or buffer live. A view's space is part of its
// type, so handing host memory to a device kernel (or the reverse) is a compile error. Each
// backend names its space in backend::traits (backend/backend.hpp).
#pragma once

namespace tessera {

struct host_space {};    ///< memory the CPU can dereference
struct device_space {};  ///< CUDA device memory

}  // namespace tessera
