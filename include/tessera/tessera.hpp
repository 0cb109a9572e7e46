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
#include <tessera/io/config.hpp>
#include <tessera/io/weight_map.hpp>
#include <tessera/io/image.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/pack/random.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/token_drop.hpp>
#include <tessera/pack/resolution_sampler.hpp>
#include <tessera/text/tokenizer.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/layer_norm.hpp>
#include <tessera/nn/rms_norm.hpp>
#include <tessera/nn/softmax.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/swiglu.hpp>
#include <tessera/nn/add.hpp>
#include <tessera/posemb/rope_1d.hpp>
#include <tessera/posemb/rope_2d.hpp>
#include <tessera/posemb/factorized.hpp>
#include <tessera/pool/masked_mean.hpp>
#include <tessera/pool/masked_max.hpp>
#include <tessera/pool/patch_merge.hpp>
#include <tessera/pool/attention_pool.hpp>
