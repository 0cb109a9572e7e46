# SPDX-License-Identifier: Apache-2.0
"""The shapes-tiny POINTS1.5 in PyTorch: the modules, weight names and config fields of the golden
generator's 2025 (Qwen2) POINTS1.5 variant, from transformers 4.46.3:

  vision_encoder    Qwen2VisionTransformerPretrainedModel, run as WePOINTS'
                    Qwen2VisionTransformerForNavitPOINTS runs it: patch_embed, 2-D RoPE, blocks over
                    the packed images (cu_seqlens); its own merger is kept in the checkpoint (POINTS1.5
                    checkpoints carry it) but never run
  vision_projector  PatchMerger(llm hidden, context_dim = vision embed_dim)
  llm               Qwen2ForCausalLM (untied lm_head)

and the prompt of spec 5.1 (no system prompt; per image <|vision_start|>, N x <|image_pad|>,
<|vision_end|>, "\\n"), with the projector's rows spliced into the <|image_pad|> runs.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import (PatchMerger, Qwen2VisionTransformerPretrainedModel,
                                                           apply_rotary_pos_emb_vision)

# The WePOINTS / HF remote-code names the checkpoint's config.json points at (as the golden's).
HF_AUTO_MAP = OrderedDict(AutoConfig="configuration_pointsv15_chat.POINTSV15ChatConfig",
                          AutoModelForCausalLM="modeling_pointsv15_chat.POINTSV15ChatModel")

VISION = OrderedDict(depth=4, embed_dim=128, num_heads=4, mlp_ratio=4, hidden_act="quick_gelu", in_channels=3,
                     patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
LLM = OrderedDict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=6,
                  num_key_value_heads=2, max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6)


class ShapesPoints(torch.nn.Module):
    def __init__(self, vocab_size: int, bos: int, eos: int, attn: str = "sdpa"):
        super().__init__()
        self.vision_config = Qwen2VLVisionConfig(**VISION, hidden_size=LLM["hidden_size"])
        self.llm_config = Qwen2Config(vocab_size=vocab_size, hidden_act="silu", initializer_range=0.02,
                                      use_cache=True, tie_word_embeddings=False, use_sliding_window=False,
                                      sliding_window=None, max_window_layers=LLM["num_hidden_layers"],
                                      attention_dropout=0.0, bos_token_id=bos, eos_token_id=eos,
                                      architectures=["Qwen2ForCausalLM"], **LLM)
        self.vision_config._attn_implementation = attn
        self.llm_config._attn_implementation = attn
        self.vision_encoder = Qwen2VisionTransformerPretrainedModel._from_config(self.vision_config,
                                                                                attn_implementation=attn)
        self.vision_projector = PatchMerger(LLM["hidden_size"], context_dim=VISION["embed_dim"],
                                            spatial_merge_size=VISION["spatial_merge_size"])
        self.llm = Qwen2ForCausalLM(self.llm_config)
        # True: transformers' own blocks (one [L, L] mask over the whole pack); False: the same math
        # with one attention call per image (training speed; checked equal in train.py).
        self.exact_blocks = True

    def encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """The vision tower, then the projector: one row per 2x2 patch group, images in order."""
        return self.vision_projector(self.vision_tokens(pixel_values, grid_thw))

    def vision_tokens(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """WePOINTS' Qwen2VisionTransformerForNavitPOINTS.forward (the parent's without the merger):
        one row per patch, in the processor's patch order."""
        v = self.vision_encoder
        h = v.patch_embed(pixel_values)
        rotary = v.rot_pos_emb(grid_thw)
        cu = torch.repeat_interleave(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0]).cumsum(0, dtype=torch.int32)
        cu = F.pad(cu, (1, 0), value=0)
        for blk in v.blocks:
            h = blk(h, cu_seqlens=cu, rotary_pos_emb=rotary) if self.exact_blocks else _block(blk, h, cu, rotary)
        return h

    def embed(self, ids: torch.Tensor, rows: torch.Tensor, image_pad: int) -> torch.Tensor:
        e = self.llm.model.embed_tokens(ids)
        mask = ids == image_pad
        assert int(mask.sum()) == rows.shape[0], (int(mask.sum()), rows.shape)
        e = e.clone()
        e[mask] = rows.to(e.dtype)
        return e

    def config_json(self) -> OrderedDict:
        import transformers
        llm = self.llm_config.to_dict()
        llm.pop("_attn_implementation_internal", None)
        vis = self.vision_config.to_dict()
        vis.pop("_attn_implementation_internal", None)
        return OrderedDict(architectures=["POINTSV15ChatModel"], auto_map=HF_AUTO_MAP, llm_config=llm,
                           model_type="pointsv1.5_chat", tie_word_embeddings=False, torch_dtype="float32",
                           transformers_version=transformers.__version__, vision_config=vis)


def _block(blk, h: torch.Tensor, cu: torch.Tensor, rotary: torch.Tensor) -> torch.Tensor:
    """Qwen2VLVisionBlock.forward with VisionSdpaAttention's math, attention run image by image."""
    L = h.shape[0]
    a = blk.attn
    q, k, v = a.qkv(blk.norm1(h)).reshape(L, 3, a.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    q = apply_rotary_pos_emb_vision(q.unsqueeze(0), rotary).squeeze(0)
    k = apply_rotary_pos_emb_vision(k.unsqueeze(0), rotary).squeeze(0)
    outs = []
    bounds = cu.tolist()
    for s, e in zip(bounds[:-1], bounds[1:]):
        o = F.scaled_dot_product_attention(q[s:e].transpose(0, 1), k[s:e].transpose(0, 1), v[s:e].transpose(0, 1))
        outs.append(o.transpose(0, 1).reshape(e - s, -1))
    h = h + a.proj(torch.cat(outs))
    return h + blk.mlp(blk.norm2(h))


@torch.no_grad()
def greedy(model: ShapesPoints, embeds: torch.Tensor, eos: int, max_new_tokens: int) -> list[int]:
    """Greedy decoding from one prompt's spliced embeddings [1, L, d]: the answer ids, <|im_end|>
    included when reached (what POINTS' chat() gets from generate with do_sample False)."""
    out = model.llm(inputs_embeds=embeds, use_cache=True)
    past, ids = out.past_key_values, []
    nxt = int(out.logits[0, -1].argmax())
    for _ in range(max_new_tokens):
        ids.append(nxt)
        if nxt == eos or len(ids) == max_new_tokens:
            break
        out = model.llm(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
    return ids
