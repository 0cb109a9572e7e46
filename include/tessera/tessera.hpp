// SPDX-License-Identifier: Apache-2.0
// tessera umbrella header: every public header of the library, nothing from detail/.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/nn/linear.hpp>
