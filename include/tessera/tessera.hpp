// SPDX-License-Identifier: Apache-2.0
// tessera umbrella header: every public header of the library, nothing from detail/, floor by
// floor from the bottom (docs/architecture.md).
#pragma once

// core: views, buffers, dtypes, errors, packed sequences, memory spaces, geometry, RNG
#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/memory_space.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/random.hpp>
// quant: 8- and 4-bit weight formats
#include <tessera/quant/format.hpp>
// backend: tags, execution contexts
#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
// blocks
#include <tessera/nn/linear.hpp>
#include <tessera/nn/layer_norm.hpp>
#include <tessera/nn/rms_norm.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/nn/softmax.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/swiglu.hpp>
#include <tessera/nn/add.hpp>
#include <tessera/nn/embedding.hpp>
#include <tessera/nn/gather.hpp>
#include <tessera/nn/random_parameters.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/token_drop.hpp>
#include <tessera/pack/resolution_sampler.hpp>
#include <tessera/posemb/rope_1d.hpp>
#include <tessera/posemb/rope_2d.hpp>
#include <tessera/posemb/factorized.hpp>
#include <tessera/attn/masked_attention.hpp>
#include <tessera/attn/cache_pass.hpp>
#include <tessera/pool/masked_mean.hpp>
#include <tessera/pool/masked_max.hpp>
#include <tessera/pool/patch_merge.hpp>
#include <tessera/pool/attention_pool.hpp>
// io: generic readers
#include <tessera/io/safetensors.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/io/image.hpp>
// text: strings <-> ids
#include <tessera/text/token_id.hpp>
#include <tessera/text/tokenizer.hpp>
#include <tessera/text/chat_template.hpp>
// vision and lm: the encoder and the language model from blocks
#include <tessera/vision/policies.hpp>
#include <tessera/vision/position_policies.hpp>
#include <tessera/vision/pool_policies.hpp>
#include <tessera/vision/vit_block.hpp>
#include <tessera/vision/vision_encoder.hpp>
#include <tessera/lm/decoder_config.hpp>
#include <tessera/lm/decoder_weights.hpp>
#include <tessera/lm/quantize.hpp>
#include <tessera/lm/kv_cache.hpp>
#include <tessera/lm/qwen2_decoder.hpp>
#include <tessera/lm/sampler.hpp>
#include <tessera/lm/generate.hpp>
// model: families (config, checkpoint names, processor, loader) and projectors
#include <tessera/model/projector/patch_merger.hpp>
#include <tessera/model/projector/mlp_projector.hpp>
#include <tessera/model/generation_config.hpp>
#include <tessera/model/qwen2/config.hpp>
#include <tessera/model/qwen2/checkpoint.hpp>
#include <tessera/model/qwen2/loader.hpp>
#include <tessera/model/quantized_checkpoint.hpp>
#include <tessera/model/qwen2_vl/config.hpp>
#include <tessera/model/qwen2_vl/checkpoint.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>
#include <tessera/model/qwen2_vl/preprocessor_config.hpp>
#include <tessera/model/qwen2_vl/encoder.hpp>
#include <tessera/model/navit/config.hpp>
#include <tessera/model/navit/checkpoint.hpp>
#include <tessera/model/navit/classifier.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/model/points15/checkpoint.hpp>
#include <tessera/model/points15/projector.hpp>
#include <tessera/model/points15/request.hpp>
#include <tessera/model/points15/model.hpp>
#include <tessera/model/points15/conversation.hpp>
