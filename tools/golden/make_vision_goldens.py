# SPDX-License-Identifier: Apache-2.0
"""Golden data for tessera's vision blocks and encoders (issue 5: attention, 2-D RoPE, pooling,
patch merging, the Qwen2-VL / POINTS1.5 ViT tower and vit-pytorch's NaViT).

Runs the *reference* code on seeded inputs and writes what tessera must reproduce:

  vision_blocks.safetensors          single blocks: packed attention (torch SDPA per segment, f32), Qwen2-VL
                                     2-D RoPE (HF VisionRotaryEmbedding + rot_pos_emb +
                                     apply_rotary_pos_emb_vision), HF PatchMerger, timm 1.0.12
                                     AttentionPoolLatent (MAP head), vit-pytorch NaViT attention pooling.
  vision_blocks_2.safetensors        the GQA + causal and the bf16 attention cases (one file would pass 2 MB).
  vision_qwen2vl/                    config.json (Qwen2VLVisionConfig.save_pretrained) + model.safetensors
                                     (a random 2-block tower, HF `visual.*` names, bf16, no merger).
  vision_qwen2vl_outputs.safetensors synthetic uint8 images, Qwen2VLImageProcessor pixel_values (WePOINTS'
                                     smart_resize substituted, as make_image_goldens.py does), rotary table,
                                     per-block outputs in f32 and bf16, the tower's own merger (weights + out).
  vision_navit/                      config.json (tessera's schema, see README) + model.safetensors
                                     (vit-pytorch 1.26.11 NaViT state_dict, every parameter randomized).
  vision_navit_outputs.safetensors   two packed groups of images: every stage's output, plus a token-dropout
                                     run (train mode) with the kept patch indices.
  vision_manifest.json               versions, seeds, settings, per-file sha256, every tensor's dtype / shape.

Layouts: attention tensors are [n_tokens, n_heads, head_dim] (tessera's, i.e. HF's [heads, tokens, dim]
transposed); cu_seqlens are cumulative offsets with a leading 0 (HF's cu_seqlens); NaViT activations keep
vit-pytorch's padded [groups, max_len, dim] layout.

timm and vit_pytorch are used without their package __init__ (both import torchvision, which the
golden venv does not have): timm.layers is mounted as a bare package and na_vit.py is loaded from its file.

Regenerate only on purpose; CI never runs this. The output is deterministic (float32 / bfloat16 on the
CPU, one thread, deterministic algorithms, torch.manual_seed per case): run it twice, compare sha256 sums.

    .venv/bin/python tools/golden/make_vision_goldens.py [--out tests/golden]
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import types
from collections import OrderedDict
from functools import partial

import numpy as np
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from einops import rearrange, repeat
from torch import nn
from transformers.image_utils import ChannelDimension
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import (
    PatchMerger,
    Qwen2VisionTransformerPretrainedModel,
    VisionRotaryEmbedding,
    apply_rotary_pos_emb_vision,
)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAX_FILE_BYTES = 2 * 1024 * 1024  # style guide section 8: every golden file under 2 MB
GENERATOR = "tools/golden/make_vision_goldens.py"

# make_image_goldens.py substitutes WePOINTS' smart_resize into transformers' Qwen2VLImageProcessor
# when it is imported, and provides the synthetic-image formula test_golden_image.cpp implements.
sys.path.insert(0, HERE)
import make_image_goldens as image_goldens  # noqa: E402


def _load_timm_attention_pool() -> types.ModuleType:
    """timm.layers.attention_pool without timm/__init__ and timm/layers/__init__ (they import torchvision)."""
    site = os.path.dirname(os.path.dirname(importlib.util.find_spec("einops").origin))
    for name in ("timm", "timm.layers"):
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [os.path.join(site, *name.split("."))]
            sys.modules[name] = pkg
    return importlib.import_module("timm.layers.attention_pool")


def _load_na_vit() -> types.ModuleType:
    """vit_pytorch/na_vit.py loaded from its file (vit_pytorch/__init__ imports torchvision)."""
    site = os.path.dirname(os.path.dirname(importlib.util.find_spec("einops").origin))
    spec = importlib.util.spec_from_file_location("vit_pytorch_na_vit", os.path.join(site, "vit_pytorch", "na_vit.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


timm_attention_pool = _load_timm_attention_pool()
na_vit = _load_na_vit()

_DTYPE_NAME = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int32: "I32", torch.uint8: "U8"}


# --------------------------------------------------------------------------------------------- #
# Output collection
# --------------------------------------------------------------------------------------------- #
class Goldens:
    """Tensors per output file, plus manifest entries per case."""

    def __init__(self) -> None:
        self.files: "OrderedDict[str, OrderedDict[str, torch.Tensor]]" = OrderedDict()
        self.cases: "OrderedDict[str, OrderedDict]" = OrderedDict()
        self.extra_files: "OrderedDict[str, str]" = OrderedDict()  # rel path -> kind (config.json files)

    def case(self, name: str, file: str, seed: int, **info) -> None:
        assert name not in self.cases, name
        torch.manual_seed(seed)
        self.cases[name] = OrderedDict(file=file, seed=seed, **info)
        self.files.setdefault(file, OrderedDict())

    def put(self, file: str, name: str, value: torch.Tensor) -> torch.Tensor:
        tensors = self.files.setdefault(file, OrderedDict())
        assert name not in tensors, name
        v = value.detach().contiguous().clone()
        assert v.dtype in _DTYPE_NAME, (name, v.dtype)
        tensors[name] = v
        return v


def randomize_(module: nn.Module, *, gamma_std: float = 0.25, bias_std: float = 0.2, gain: float = 1.0) -> None:
    """Non-trivial parameters: matrices N(0, gain^2 / fan_in) (fan_in = product of all but the first
    dim), norm gammas 1 + N(0, gamma_std^2), biases and other vectors N(0, bias_std^2). Nothing is zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "gamma" or (leaf == "weight" and p.dim() == 1):
                p.copy_(1.0 + gamma_std * torch.randn_like(p))
            elif p.dim() >= 2 and leaf == "weight":
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) * (gain / math.sqrt(fan_in)))
            else:
                p.copy_(bias_std * torch.randn_like(p))


def round_params_to_bf16_(module: nn.Module) -> None:
    """Every parameter rounded to a bfloat16 value (kept in float32)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).float())


def segments(cu: list[int]) -> list[tuple[int, int]]:
    return [(cu[i], cu[i + 1]) for i in range(len(cu) - 1)]


def cumulative(lengths: list[int]) -> list[int]:
    return [0] + np.cumsum(lengths).tolist()


# --------------------------------------------------------------------------------------------- #
# 1. vision_blocks.safetensors
# --------------------------------------------------------------------------------------------- #
BLOCKS = "vision_blocks.safetensors"
# The contract's shapes do not fit one file under 2 MB (attn alone is 1.2 MB): attn_gqa_causal.* and
# attn_bf16.* (same tensor names) live in this second file.
BLOCKS2 = "vision_blocks_2.safetensors"


def sdpa_packed(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: list[int], causal: bool) -> torch.Tensor:
    """torch SDPA per segment on [n, heads, dim] tensors; GQA: kv head h // (H / Hkv) (repeat_interleave)."""
    rep = q.shape[1] // k.shape[1]
    out = torch.zeros_like(q)
    for b, e in segments(cu):
        if e == b:
            continue  # an empty segment contributes nothing
        qs = q[b:e].transpose(0, 1)
        ks = k[b:e].repeat_interleave(rep, dim=1).transpose(0, 1)
        vs = v[b:e].repeat_interleave(rep, dim=1).transpose(0, 1)
        out[b:e] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal).transpose(0, 1)
    return out


def attention_cases(g: Goldens) -> None:
    lengths = [37, 1, 64, 0, 130]
    cu = cumulative(lengths)
    n = cu[-1]
    g.case("attn", BLOCKS, 5001, reference="torch.nn.functional.scaled_dot_product_attention per segment",
           causal=False, scale="1/sqrt(80)", seqlens=lengths,
           note="q scaled by 2 for a peaked softmax; cu_seqlens = cumulative offsets with a leading 0")
    q = g.put(BLOCKS, "attn.q", 2.0 * torch.randn(n, 4, 80))
    k = g.put(BLOCKS, "attn.k", torch.randn(n, 4, 80))
    v = g.put(BLOCKS, "attn.v", torch.randn(n, 4, 80))
    g.put(BLOCKS, "attn.cu_seqlens", torch.tensor(cu, dtype=torch.int32))
    g.put(BLOCKS, "attn.seqlens", torch.tensor(lengths, dtype=torch.int32))
    g.put(BLOCKS, "attn.out", sdpa_packed(q, k, v, cu, causal=False))

    lengths = [17, 50, 33]
    cu = cumulative(lengths)
    n = cu[-1]
    g.case("attn_gqa_causal", BLOCKS2, 5002, reference="torch SDPA per segment, is_causal=True, kv heads "
           "repeat_interleave'd (query head h uses kv head h // 3)", causal=True, scale="1/sqrt(64)", seqlens=lengths)
    q = g.put(BLOCKS2, "attn_gqa_causal.q", 2.0 * torch.randn(n, 6, 64))
    k = g.put(BLOCKS2, "attn_gqa_causal.k", torch.randn(n, 2, 64))
    v = g.put(BLOCKS2, "attn_gqa_causal.v", torch.randn(n, 2, 64))
    g.put(BLOCKS2, "attn_gqa_causal.cu_seqlens", torch.tensor(cu, dtype=torch.int32))
    g.put(BLOCKS2, "attn_gqa_causal.seqlens", torch.tensor(lengths, dtype=torch.int32))
    g.put(BLOCKS2, "attn_gqa_causal.out", sdpa_packed(q, k, v, cu, causal=True))

    lengths = [37, 1, 64, 0, 130]
    cu = cumulative(lengths)
    n = cu[-1]
    g.case("attn_bf16", BLOCKS2, 5003, reference="torch SDPA per segment in bfloat16 on the CPU (out stored bf16); "
           "out_f32 = the same in float32 on the widened bf16 inputs", causal=False, scale="1/sqrt(80)", seqlens=lengths)
    q = g.put(BLOCKS2, "attn_bf16.q", (2.0 * torch.randn(n, 4, 80)).to(torch.bfloat16))
    k = g.put(BLOCKS2, "attn_bf16.k", torch.randn(n, 4, 80).to(torch.bfloat16))
    v = g.put(BLOCKS2, "attn_bf16.v", torch.randn(n, 4, 80).to(torch.bfloat16))
    g.put(BLOCKS2, "attn_bf16.cu_seqlens", torch.tensor(cu, dtype=torch.int32))
    g.put(BLOCKS2, "attn_bf16.seqlens", torch.tensor(lengths, dtype=torch.int32))
    out = g.put(BLOCKS2, "attn_bf16.out", sdpa_packed(q, k, v, cu, causal=False))
    assert out.dtype == torch.bfloat16
    g.put(BLOCKS2, "attn_bf16.out_f32", sdpa_packed(q.float(), k.float(), v.float(), cu, causal=False))


def rope2d_case(g: Goldens) -> None:
    g.case("rope2d", BLOCKS, 5004, reference="transformers Qwen2VisionTransformerPretrainedModel.rot_pos_emb with "
           "VisionRotaryEmbedding(40) (head_dim 80, theta 1e4, spatial_merge_size 2) + apply_rotary_pos_emb_vision",
           note="pos_ids = rot_pos_emb's (row, col) ids, read out by running rot_pos_emb with an identity table")
    grid = torch.tensor([[1, 4, 6], [1, 2, 2], [1, 8, 4]])
    rope = VisionRotaryEmbedding(40)
    owner = types.SimpleNamespace(spatial_merge_size=2, rotary_pos_emb=rope)
    freqs = Qwen2VisionTransformerPretrainedModel.rot_pos_emb(owner, grid)
    ident = types.SimpleNamespace(spatial_merge_size=2,
                                  rotary_pos_emb=lambda n: torch.arange(n, dtype=torch.float64)[:, None])
    pos = Qwen2VisionTransformerPretrainedModel.rot_pos_emb(ident, grid)
    n = int((grid[:, 0] * grid[:, 1] * grid[:, 2]).sum())
    assert freqs.shape == (n, 40) and pos.shape == (n, 2)
    assert torch.equal(freqs, torch.cat([pos[:, :1].float() * rope.inv_freq, pos[:, 1:].float() * rope.inv_freq], 1))
    x = torch.randn(n, 2, 80)
    out = apply_rotary_pos_emb_vision(x.unsqueeze(0), freqs).squeeze(0)
    g.put(BLOCKS, "rope2d.grid_thw", grid.to(torch.int32))
    g.put(BLOCKS, "rope2d.pos_ids", pos.to(torch.int32))
    g.put(BLOCKS, "rope2d.freqs", freqs)
    g.put(BLOCKS, "rope2d.x", x)
    g.put(BLOCKS, "rope2d.out", out)


def merger_case(g: Goldens) -> None:
    g.case("merger", BLOCKS, 5005, reference="transformers PatchMerger(dim=96, context_dim=64, spatial_merge_size=2)",
           note="x rows are merge-window-major (4 consecutive rows = one 2x2 window), as the ViT emits them; "
                "ln_out = ln_q(x); LayerNorm eps 1e-6, exact (erf) GELU")
    grid = torch.tensor([[1, 4, 6], [1, 2, 2], [1, 6, 4]])
    n = int((grid[:, 0] * grid[:, 1] * grid[:, 2]).sum())
    m = PatchMerger(dim=96, context_dim=64, spatial_merge_size=2)
    randomize_(m)
    x = g.put(BLOCKS, "merger.x", torch.randn(n, 64))
    g.put(BLOCKS, "merger.grid_thw", grid.to(torch.int32))
    for name, p in m.state_dict().items():
        g.put(BLOCKS, f"merger.{name}", p)
    with torch.no_grad():
        g.put(BLOCKS, "merger.ln_out", m.ln_q(x))
        g.put(BLOCKS, "merger.out", m(x))


def map_case(g: Goldens) -> None:
    APL = timm_attention_pool.AttentionPoolLatent
    fused = bool(timm_attention_pool.use_fused_attn())
    g.case("map", BLOCKS, 5006, reference="timm 1.0.12 AttentionPoolLatent(64, num_heads=4, mlp_ratio=4, "
           "qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6)), pool_type 'token', one image per call (batch 1)",
           fused_attn=fused, note="Mlp = fc1, exact GELU, fc2; every parameter randomized (latent N(0, 0.25))")
    m = APL(64, num_heads=4, mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6)).eval()
    randomize_(m)
    with torch.no_grad():
        m.latent.copy_(0.5 * torch.randn_like(m.latent))
    for name, p in m.state_dict().items():
        g.put(BLOCKS, f"map.{name}", p)
    for i, n in enumerate((9, 1, 40)):
        x = g.put(BLOCKS, f"map.x.{i}", torch.randn(n, 64))
        with torch.no_grad():
            y = m(x.unsqueeze(0))
        assert y.shape == (1, 64)
        g.put(BLOCKS, f"map.out.{i}", y[0])


def navitpool_case(g: Goldens) -> None:
    g.case("navitpool", BLOCKS, 5007, reference="vit-pytorch 1.26.11 na_vit.Attention(dim=64, heads=4, dim_head=16) "
           "as NaViT.forward uses it for attention pooling: queries tiled per image, attn_mask from image ids and "
           "key padding, context = x (not normed), out = attn_pool(queries, context=x, attn_mask) + queries",
           note="one packed row of 3 images (12, 5, 20 tokens) + 7 padding tokens; image_ids -1 = padding")
    attn = na_vit.Attention(dim=64, heads=4, dim_head=16).eval()
    randomize_(attn)
    queries_param = g.put(BLOCKS, "navitpool.queries", torch.randn(64))
    counts, pad = [12, 5, 20], 7
    n = sum(counts) + pad
    x = g.put(BLOCKS, "navitpool.x", torch.randn(1, n, 64))
    for name, p in attn.state_dict().items():
        if name == "norm.beta":
            assert not p.any()  # a zero buffer (LayerNorm without bias)
            continue
        g.put(BLOCKS, f"navitpool.{name}", p)
    # NaViT.forward's masks, with the padding run after the images (pad_sequence pads ids with 0).
    ids = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
    batched_image_ids = F.pad(ids, (0, pad), value=0)[None]
    key_pad_mask = torch.arange(n)[None] < torch.tensor([sum(counts)])[:, None]
    max_queries = 3
    queries = repeat(queries_param, "d -> b n d", n=max_queries, b=1)
    image_id_arange = torch.arange(max_queries)
    attn_pool_mask = rearrange(image_id_arange, "i -> i 1") == rearrange(batched_image_ids, "b j -> b 1 j")
    attn_pool_mask = attn_pool_mask & rearrange(key_pad_mask, "b j -> b 1 j")
    attn_pool_mask = rearrange(attn_pool_mask, "b i j -> b 1 i j")
    with torch.no_grad():
        out = attn(queries, context=x, attn_mask=attn_pool_mask) + queries
    g.put(BLOCKS, "navitpool.image_ids", torch.where(key_pad_mask[0], batched_image_ids[0], -1).to(torch.int32))
    g.put(BLOCKS, "navitpool.out", out[0])


# --------------------------------------------------------------------------------------------- #
# 2. The Qwen2-VL / POINTS1.5 ViT tower
# --------------------------------------------------------------------------------------------- #
QWEN_DIR = "vision_qwen2vl"
QWEN_OUT = "vision_qwen2vl_outputs.safetensors"
QWEN_VISION = OrderedDict(depth=2, embed_dim=128, hidden_size=96, hidden_act="quick_gelu", mlp_ratio=4, num_heads=4,
                          in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
QWEN_ATTN = "sdpa"  # VisionSdpaAttention (block-diagonal boolean mask); see README
# (min_pixels, max_pixels): 56*56 is the processor default; the max makes the large image take the
# downscaling branch of smart_resize, the 40 x 40 one takes the min_pixels branch.
QWEN_PIXELS = (56 * 56, 28 * 28 * 24)
QWEN_IMAGES = ((60, 90), (40, 40), (150, 260))  # (height, width): make_image_goldens.synthetic_image


def save_config(cfg, path: str) -> None:
    """config.json exactly as cfg.save_pretrained writes it, at `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg.save_pretrained(tmp)
        shutil.move(os.path.join(tmp, "config.json"), path)


def nmse(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.double(), ref.double()
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())


class Capture:
    """Forward-hook outputs (or forward-pre-hook inputs) of modules, by name."""

    def __init__(self) -> None:
        self.values: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self.handles = []

    def output(self, module: nn.Module, name: str) -> None:
        def hook(_m, _args, out):
            self.values[name] = out.detach().clone()
        self.handles.append(module.register_forward_hook(hook))

    def input(self, module: nn.Module, name: str) -> None:
        def hook(_m, args):
            self.values[name] = args[0].detach().clone()
        self.handles.append(module.register_forward_pre_hook(hook))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def qwen2vl_tower(g: Goldens, out_dir: str) -> None:
    proc = image_goldens.processor(QWEN_PIXELS)
    g.case("qwen2vl", QWEN_OUT, 6001,
           reference=f"transformers {transformers.__version__} Qwen2VisionTransformerPretrainedModel "
                     f"(attn_implementation '{QWEN_ATTN}'), Qwen2VLImageProcessor with WePOINTS' smart_resize",
           vision_config=QWEN_VISION, attn_implementation=QWEN_ATTN,
           processor=OrderedDict(cls="transformers Qwen2VLImageProcessor", min_pixels=QWEN_PIXELS[0],
                                 max_pixels=QWEN_PIXELS[1], smart_resize="WePOINTS' (make_image_goldens.py)",
                                 input_data_format="channels_last"),
           images="make_image_goldens.synthetic_image(h, w) (uint8 [h, w, 3]) for (h, w) in "
                  f"{[list(s) for s in QWEN_IMAGES]}; the processor runs per image, results concatenated in order",
           weights="every parameter random (matrices N(0, 1/fan_in), LayerNorm gammas 1 + N(0, 1/16), biases "
                   "N(0, 0.04)), then rounded to bfloat16 values; the f32 run uses exactly those values",
           bf16="the same model .to(torch.bfloat16) with rotary_pos_emb.inv_freq kept float32 (as "
                "from_pretrained(torch_dtype=torch.bfloat16) leaves that non-persistent buffer) on "
                "pixel_values.bfloat16()",
           out="the blocks' output without the merger (what POINTS' Qwen2VisionTransformerForNavitPOINTS returns); "
               "merger.out = the tower's own PatchMerger on it (model(...) output)")
    cfg = Qwen2VLVisionConfig(**QWEN_VISION)
    cfg._attn_implementation = QWEN_ATTN
    model = Qwen2VisionTransformerPretrainedModel(cfg).eval()
    assert type(model.blocks[0].attn).__name__ == "VisionSdpaAttention"
    randomize_(model)
    round_params_to_bf16_(model)

    pixel_values, grids = [], []
    for i, (h, w) in enumerate(QWEN_IMAGES):
        img = g.put(QWEN_OUT, f"image.{i}", torch.from_numpy(image_goldens.synthetic_image(h, w)))
        r = proc(images=img.numpy(), input_data_format=ChannelDimension.LAST)
        pv, thw = np.asarray(r["pixel_values"]), np.asarray(r["image_grid_thw"])
        assert pv.dtype == np.float32 and thw.shape == (1, 3)
        rh, rw = image_goldens.points_smart_resize(h, w, 28, *QWEN_PIXELS)
        assert (int(thw[0, 1]) * 14, int(thw[0, 2]) * 14) == (rh, rw)
        pixel_values.append(torch.from_numpy(pv))
        grids.append(torch.from_numpy(thw))
    pv = g.put(QWEN_OUT, "pixel_values", torch.cat(pixel_values))
    grid = torch.cat(grids)
    g.put(QWEN_OUT, "grid_thw", grid.to(torch.int32))
    g.cases["qwen2vl"]["grid_thw"] = grid.tolist()

    cap = Capture()
    cap.output(model.patch_embed, "patch_embed.out")
    for i, blk in enumerate(model.blocks):
        cap.output(blk, f"blocks.{i}.out")
    with torch.no_grad():
        rotary = model.rot_pos_emb(grid)
        merged = model(pv, grid)
    cap.remove()
    g.put(QWEN_OUT, "rotary_pos_emb", rotary)
    for name, t in cap.values.items():
        g.put(QWEN_OUT, name, t)
    out = g.put(QWEN_OUT, "out", cap.values[f"blocks.{len(model.blocks) - 1}.out"])
    for name, p in model.merger.state_dict().items():
        g.put(QWEN_OUT, f"merger.{name}", p.to(torch.bfloat16))
    g.put(QWEN_OUT, "merger.out", merged)

    # bf16 run.
    m16 = copy.deepcopy(model).to(torch.bfloat16)
    m16.rotary_pos_emb.inv_freq = model.rotary_pos_emb.inv_freq.clone()
    cap = Capture()
    cap.output(m16.patch_embed, "bf16.patch_embed.out")
    for i, blk in enumerate(m16.blocks):
        cap.output(blk, f"bf16.blocks.{i}.out")
    with torch.no_grad():
        m16(pv.to(torch.bfloat16), grid)
    cap.remove()
    for name, t in cap.values.items():
        assert t.dtype == torch.bfloat16
        g.put(QWEN_OUT, name, t)
    out16 = g.put(QWEN_OUT, "bf16.out", cap.values[f"bf16.blocks.{len(m16.blocks) - 1}.out"])

    # Checks: every image alone gives the packed rows (block-diagonal attention); bf16 vs f32.
    offsets = cumulative((grid[:, 0] * grid[:, 1] * grid[:, 2]).tolist())
    alone_diff = 0.0
    with torch.no_grad():
        for i in range(grid.shape[0]):
            b, e = offsets[i], offsets[i + 1]
            cap = Capture()
            cap.output(model.blocks[-1], "out")
            model(pv[b:e], grid[i:i + 1])
            cap.remove()
            alone_diff = max(alone_diff, float((cap.values["out"] - out[b:e]).abs().max()))
    # The eager implementation (additive finfo.min mask, float32 softmax) on the same weights.
    eager_cfg = Qwen2VLVisionConfig(**QWEN_VISION)
    eager_cfg._attn_implementation = "eager"
    eager = Qwen2VisionTransformerPretrainedModel(eager_cfg).eval()
    eager.load_state_dict(model.state_dict())
    cap = Capture()
    cap.output(eager.blocks[-1], "out")
    with torch.no_grad():
        eager(pv, grid)
    cap.remove()
    eager_diff = float((cap.values["out"] - out).abs().max())
    checks = OrderedDict(
        packed_vs_alone_max_abs_diff=alone_diff,
        eager_vs_sdpa_out_max_abs_diff=eager_diff,
        out_max_abs=float(out.abs().max()), out_rms=float(out.pow(2).mean().sqrt()),
        bf16_out_nmse_vs_f32=nmse(out16, out),
        bf16_blocks_nmse_vs_f32=[nmse(cap_v, cap_f) for cap_v, cap_f in
                                 ((g.files[QWEN_OUT][f"bf16.blocks.{i}.out"], g.files[QWEN_OUT][f"blocks.{i}.out"])
                                  for i in range(len(model.blocks)))],
        bf16_patch_embed_nmse_vs_f32=nmse(g.files[QWEN_OUT]["bf16.patch_embed.out"],
                                          g.files[QWEN_OUT]["patch_embed.out"]))
    g.cases["qwen2vl"]["checks"] = checks
    print("qwen2vl checks:", json.dumps(checks))

    # The checkpoint: HF names, bf16, no merger (model::bind_vision_encoder with qwen2_vl naming).
    os.makedirs(os.path.join(out_dir, QWEN_DIR), exist_ok=True)
    for name, p in model.state_dict().items():
        if name.startswith("merger."):
            continue
        assert name != "rotary_pos_emb.inv_freq"  # non-persistent
        g.put(f"{QWEN_DIR}/model.safetensors", f"visual.{name}", p.to(torch.bfloat16))
    save_config(cfg, os.path.join(out_dir, QWEN_DIR, "config.json"))
    g.extra_files[f"{QWEN_DIR}/config.json"] = "Qwen2VLVisionConfig.save_pretrained config.json"


# --------------------------------------------------------------------------------------------- #
# 3. vit-pytorch NaViT
# --------------------------------------------------------------------------------------------- #
NAVIT_DIR = "vision_navit"
NAVIT_OUT = "vision_navit_outputs.safetensors"
NAVIT_ARGS = OrderedDict(image_size=64, patch_size=8, num_classes=10, dim=64, depth=2, heads=4, dim_head=16,
                         mlp_dim=128, channels=3)
NAVIT_DROP = 0.25
NAVIT_GROUPS = (((64, 48), (32, 32), (16, 64)), ((40, 24), (56, 40)))  # (height, width) per image per group


def navit_config() -> OrderedDict:
    a = NAVIT_ARGS
    return OrderedDict(architecture="vit_pytorch.NaViT", image_size=[a["image_size"], a["image_size"]],
                       patch_size=a["patch_size"], num_classes=a["num_classes"], dim=a["dim"], depth=a["depth"],
                       heads=a["heads"], dim_head=a["dim_head"], mlp_dim=a["mlp_dim"], channels=a["channels"],
                       layer_norm_eps=1e-5)


def navit_run(model: nn.Module, groups: list, prefix: str, g: Goldens) -> list:
    """One forward over all groups; stores every stage under `prefix`. Returns the kept indices per
    image when the model is in train mode (token dropout), else None."""
    cap = Capture()
    cap.output(model.to_patch_embedding, "patch_embed.out")
    cap.input(model.dropout, "pos.out")
    layers = model.transformer.layers
    for l in range(len(layers)):
        cap.input(layers[l + 1][0] if l + 1 < len(layers) else model.transformer.norm, f"blocks.{l}.out")
    cap.output(model.transformer, "transformer.out")
    cap.input(model.mlp_head, "pool.out")

    noise = []
    real_randn = torch.randn

    def recording_randn(*args, **kwargs):
        t = real_randn(*args, **kwargs)
        noise.append(t.clone())
        return t

    torch.randn = recording_randn
    try:
        with torch.no_grad():
            logits = model(groups)
    finally:
        torch.randn = real_randn
        cap.remove()

    keep = None
    counts = [[(img.shape[1] // NAVIT_ARGS["patch_size"]) * (img.shape[2] // NAVIT_ARGS["patch_size"])
               for img in grp] for grp in groups]
    if model.training:
        # NaViT.forward: per image, in order, keep_indices = torch.randn((n,)).topk(num_keep).indices.
        flat = [n for grp in counts for n in grp]
        assert len(noise) == len(flat)
        keep, it = [], iter(noise)
        for grp in counts:
            kg = []
            for n in grp:
                r = next(it)
                assert r.shape == (n,)
                kg.append(r.topk(max(1, int(n * (1 - NAVIT_DROP))), dim=-1).indices)
            keep.append(kg)
        counts = [[len(k) for k in kg] for kg in keep]
    else:
        assert not noise
    n_max = max(sum(c) for c in counts)
    ids = torch.full((len(groups), n_max), -1, dtype=torch.int32)
    for b, c in enumerate(counts):
        ids[b, :sum(c)] = torch.repeat_interleave(torch.arange(len(c), dtype=torch.int32), torch.tensor(c))
    g.put(NAVIT_OUT, f"{prefix}image_ids", ids)
    for name, t in cap.values.items():
        g.put(NAVIT_OUT, prefix + name, t)
    g.put(NAVIT_OUT, f"{prefix}logits", logits)
    if keep is not None:
        for b, kg in enumerate(keep):
            for i, k in enumerate(kg):
                g.put(NAVIT_OUT, f"{prefix}keep.{b}.{i}", k.to(torch.int32))
    assert cap.values["patch_embed.out"].shape == (len(groups), n_max, NAVIT_ARGS["dim"])
    return keep


def navit(g: Goldens, out_dir: str) -> None:
    g.case("navit", NAVIT_OUT, 7001,
           reference="vit-pytorch 1.26.11 na_vit.NaViT(" + ", ".join(f"{k}={v}" for k, v in NAVIT_ARGS.items()) +
                     f", token_dropout_prob={NAVIT_DROP}) on a list of 2 groups (packed rows)",
           groups=[[list(s) for s in grp] for grp in NAVIT_GROUPS],
           weights="every parameter random: matrices N(0, 1/fan_in), LayerNorm / RMSNorm gammas 1 + N(0, 1/16), "
                   "Linear biases N(0, 0.04), pos_embed_height / pos_embed_width N(0, 0.25), attn_pool_queries "
                   "N(0, 1); the LayerNorm beta buffers (all zero) are not stored",
           main_run="model.eval()", drop_run=f"model.train() (dropout probabilities are 0, so only token dropout, "
                                             f"p = {NAVIT_DROP}, acts), torch.manual_seed(7002) right before the forward",
           layout="activations padded [n_groups, max_len, dim] as vit-pytorch computes them; padding rows hold "
                  "whatever vit-pytorch computes there (pad_sequence pads image ids with 0, so padding queries "
                  "attend to image 0 of their row): compare only rows with image_ids >= 0",
           tensors="image_ids [n_groups, max_len] int32 (-1 = padding); pool.out / logits: real images in group "
                   "order; drop.keep.{g}.{i}: kept patch indices (row-major patch index h * pw + w) in topk order, "
                   "the order of the image's tokens in the packed row")
    model = na_vit.NaViT(**NAVIT_ARGS, token_dropout_prob=NAVIT_DROP)
    randomize_(model)
    with torch.no_grad():
        model.pos_embed_height.copy_(0.5 * torch.randn_like(model.pos_embed_height))
        model.pos_embed_width.copy_(0.5 * torch.randn_like(model.pos_embed_width))
        model.attn_pool_queries.copy_(torch.randn_like(model.attn_pool_queries))

    groups = []
    for b, grp in enumerate(NAVIT_GROUPS):
        groups.append([g.put(NAVIT_OUT, f"image.{b}.{i}", torch.randn(NAVIT_ARGS["channels"], h, w))
                       for i, (h, w) in enumerate(grp)])

    model.eval()
    navit_run(model, groups, "", g)
    model.train()
    torch.manual_seed(7002)
    keep = navit_run(model, groups, "drop.", g)
    g.cases["navit"]["drop_kept_counts"] = [[len(k) for k in kg] for kg in keep]

    # Check: each group alone gives its own rows (groups do not see each other).
    model.eval()
    diff = 0.0
    with torch.no_grad():
        both = model(groups)
        row = 0
        for grp in groups:
            alone = model([grp])
            diff = max(diff, float((alone - both[row:row + len(grp)]).abs().max()))
            row += len(grp)
    # Check: the dropped run's patch embeddings are the full run's rows picked by the kept indices.
    t = g.files[NAVIT_OUT]
    keep_diff = 0.0
    for b, kg in enumerate(keep):
        full_ids, drop_ids = t["image_ids"][b], t["drop.image_ids"][b]
        for i, k in enumerate(kg):
            full_rows = t["patch_embed.out"][b][full_ids == i]
            drop_rows = t["drop.patch_embed.out"][b][drop_ids == i]
            keep_diff = max(keep_diff, float((full_rows[k.long()] - drop_rows).abs().max()))
    g.cases["navit"]["checks"] = OrderedDict(group_alone_vs_batched_logits_max_abs_diff=diff,
                                             drop_patch_embed_vs_full_rows_at_keep_max_abs_diff=keep_diff)
    assert keep_diff < 1e-5
    print("navit checks:", json.dumps(g.cases["navit"]["checks"]))

    os.makedirs(os.path.join(out_dir, NAVIT_DIR), exist_ok=True)
    for name, p in model.state_dict().items():
        if name.endswith(".beta"):
            assert not p.any()
            continue
        g.put(f"{NAVIT_DIR}/model.safetensors", name, p)
    with open(os.path.join(out_dir, NAVIT_DIR, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(navit_config(), f, indent=2)
        f.write("\n")
    g.extra_files[f"{NAVIT_DIR}/config.json"] = "tessera's NaViT config schema (tools/golden/README.md)"


# --------------------------------------------------------------------------------------------- #
# Manifest and main
# --------------------------------------------------------------------------------------------- #
def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def versions() -> OrderedDict:
    v = importlib.metadata.version
    return OrderedDict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                       timm=v("timm"), vit_pytorch=v("vit-pytorch"), einops=v("einops"), numpy=np.__version__,
                       safetensors=safetensors.__version__, pillow=v("pillow"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden"), help="output directory (tests/golden)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    g = Goldens()
    attention_cases(g)
    rope2d_case(g)
    merger_case(g)
    map_case(g)
    navitpool_case(g)
    os.makedirs(args.out, exist_ok=True)
    qwen2vl_tower(g, args.out)
    navit(g, args.out)

    files = OrderedDict()
    for file, tensors in g.files.items():
        path = os.path.join(args.out, file)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        safetensors.torch.save_file(dict(tensors), path, metadata={"generator": GENERATOR})
        size = os.path.getsize(path)
        if size >= MAX_FILE_BYTES:
            print(f"error: {path} is {size} bytes, over the 2 MB limit", file=sys.stderr)
            return 1
        files[file] = OrderedDict(bytes=size, sha256=sha256_of(path), tensors=OrderedDict(
            (k, OrderedDict(dtype=_DTYPE_NAME[t.dtype], shape=list(t.shape))) for k, t in tensors.items()))
        print(f"wrote {path} ({size} bytes, {len(tensors)} tensors)")
    for rel, kind in g.extra_files.items():
        path = os.path.join(args.out, rel)
        files[rel] = OrderedDict(kind=kind, bytes=os.path.getsize(path), sha256=sha256_of(path))

    manifest = OrderedDict()
    manifest["generator"] = GENERATOR
    manifest["regenerate"] = f".venv/bin/python {GENERATOR}"
    manifest["versions"] = versions()
    manifest["settings"] = OrderedDict(device="cpu", torch_num_threads=1, deterministic_algorithms=True,
                                       seeding="torch.manual_seed(case seed) at the start of each case")
    cases = OrderedDict(g.cases)
    manifest["qwen2vl"] = cases.pop("qwen2vl")  # the encoders at the top level, the single blocks under "cases"
    manifest["navit"] = cases.pop("navit")
    manifest["cases"] = cases
    manifest["files"] = files
    path = os.path.join(args.out, "vision_manifest.json")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
