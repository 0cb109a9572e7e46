# SPDX-License-Identifier: Apache-2.0
"""Config and checkpoint fixtures for tessera's config readers and weight-name maps
(tests/io/test_config*.cpp, tests/io/test_weight_map*.cpp, tests/golden/test_golden_config*.cpp).

Writes, under <out>/config_fixtures/:
  configs/<case>.json    config.json files written by the transformers 4.46.3 config classes
                         (save_pretrained), some with fields removed by hand, so the C++ defaults
                         are checked against what Python resolves for the same file;
  checkpoints/<name>/    tiny random checkpoints (bf16) saved with the naming each reference uses:
    qwen2_tiny               Qwen2ForCausalLM.save_pretrained (HF names, untied lm_head)
    qwen2_tied_tiny          the same with tie_word_embeddings=True (save_pretrained drops lm_head)
    points_custom_llama_tiny POINTS1.5 (Dec 2024) names: the qwen2_tiny weights converted to
                             CustomLlama by spec section 4.2 (key_value_dense = stack_g [k_g; v_g],
                             dense_h_to_4h = cat [up; gate]), a tiny Qwen2-VL ViT under
                             vision_encoder.* (with its unused merger, spec section 7.16) and a
                             PatchMerger under vision_projector.*, plus the rotary_emb.inv_freq
                             buffers CustomLlamaForCausalLM ignores on load
    qwen2_vl_tiny            Qwen2VLForConditionalGeneration.save_pretrained (visual.*, model.*,
                             lm_head), whose visual.* holds the same ViT weights
    points_qwen2_sharded     the 2025 POINTS naming (llm.model.*, llm.lm_head) of the qwen2_tiny
                             weights + the same ViT / projector, in two shards with an index json
and <out>/config_manifest.json: versions, seeds, every file's size and sha256, what the Python
config classes resolve for every config case (fields and derived sizes read off the instantiated
modules), and the state-dict names and shapes of real-sized models built on the meta device.

POINTS1.5's CustomLlamaConfig is not part of transformers (it ships as remote code with the
checkpoint). Its defaults are taken from the public copy of the HF configuration file in
josephydu/sglang python/sglang/srt/configs/pointsv15_chat.py @ a6f0c03fedf03ae73605976fa4c822e05bb633ff
(identical in the PaddleMIX port); resolve_custom_llama() below applies them on top of
transformers' PretrainedConfig, which supplies tie_word_embeddings (default True) and the rest.

Regenerate only on purpose; CI never runs this. Output is byte-for-byte reproducible.

    .venv/bin/python tools/golden/make_config_goldens.py --out tests/golden
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
from collections import OrderedDict

import numpy as np
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import PretrainedConfig, Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLConfig, Qwen2VLVisionConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import (
    PatchMerger,
    Qwen2VisionTransformerPretrainedModel,
    Qwen2VLForConditionalGeneration,
)

GENERATOR = "tools/golden/make_config_goldens.py"
MAX_TOTAL_BYTES = 1024 * 1024  # the brief: all fixtures together under 1 MB

# ------------------------------------------------------------------------------------------------
# CustomLlamaConfig (POINTS1.5 remote code) resolution
# ------------------------------------------------------------------------------------------------
# Keyword defaults of CustomLlamaConfig.__init__ in the public copy cited in the module docstring.
CUSTOM_LLAMA_DEFAULTS = OrderedDict(
    vocab_size=102400, hidden_size=2560, num_layers=32, num_attention_heads=20, num_kv_heads=4,
    ffn_hidden_size=2560 * 4, hidden_act="swiglu", rotary_pct=1.0, rotary_emb_base=10000,
    rotary_compress=1.0, max_position_embeddings=4096, initializer_range=0.02, layernorm_epsilon=1e-5,
    use_cache=True, bos_token_id=0, eos_token_id=2, rms_norm=None, norm_type="layer_norm",
    qkv_proj_bias=True, out_proj_bias=True, mlp_fc1_bias=True, mlp_fc2_bias=True)


def resolve_custom_llama(llm_config: dict) -> OrderedDict:
    """What CustomLlamaConfig(**llm_config) holds: its own defaults for its own fields, `rms_norm`
    (when not None) overriding `norm_type`, num_hidden_layers = num_layers, and PretrainedConfig's
    handling of everything else (tie_word_embeddings, torch_dtype, ...)."""
    kwargs = dict(llm_config)
    own = OrderedDict((k, kwargs.pop(k, v)) for k, v in CUSTOM_LLAMA_DEFAULTS.items())
    kwargs.pop("model_type", None)
    base = PretrainedConfig(bos_token_id=own["bos_token_id"], eos_token_id=own["eos_token_id"], **kwargs)
    out = OrderedDict(own)
    if own["rms_norm"] is not None:
        out["norm_type"] = "rms_norm" if own["rms_norm"] else "layer_norm"
    out["num_hidden_layers"] = own["num_layers"]
    out["tie_word_embeddings"] = base.tie_word_embeddings
    out["torch_dtype"] = base.to_dict()["torch_dtype"]
    out["bos_token_id"] = base.bos_token_id
    out["eos_token_id"] = base.eos_token_id
    return out


def custom_llama_derived(r: dict) -> OrderedDict:
    """Sizes CustomLlamaAttention / CustomLlamaMLP compute from the config (same public copy):
    head_size = hidden // heads, rotary_ndims = int(head_size * rotary_pct), GQA groups,
    dense_h_to_4h rows = 2 * ffn for swiglu."""
    head = r["hidden_size"] // r["num_attention_heads"]
    return OrderedDict(
        head_dim=head, rotary_dim=int(head * r["rotary_pct"]),
        group_size=r["num_attention_heads"] // r["num_kv_heads"],
        key_value_dense_rows=head * 2 * r["num_kv_heads"],
        dense_h_to_4h_rows=r["ffn_hidden_size"] * (2 if r["hidden_act"] == "swiglu" else 1))


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
QWEN2_FIELDS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
                "rope_theta", "rope_scaling", "use_sliding_window", "sliding_window", "torch_dtype", "bos_token_id",
                "eos_token_id"]
VISION_FIELDS = ["depth", "embed_dim", "hidden_size", "hidden_act", "mlp_ratio", "num_heads", "in_channels",
                 "patch_size", "spatial_merge_size", "temporal_patch_size"]


def pick(d: dict, keys) -> OrderedDict:
    return OrderedDict((k, d.get(k)) for k in keys)


def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def save_config(cfg: PretrainedConfig, path: str) -> None:
    """config.json exactly as cfg.save_pretrained writes it, at `path`."""
    tmp = path + ".d"
    cfg.save_pretrained(tmp)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.move(os.path.join(tmp, "config.json"), path)
    shutil.rmtree(tmp)


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=OrderedDict)


def shapes(state_dict) -> OrderedDict:
    return OrderedDict((k, list(v.shape)) for k, v in state_dict.items())


def qwen2_derived(cfg: Qwen2Config) -> tuple[OrderedDict, OrderedDict]:
    """Sizes read off a Qwen2ForCausalLM built on the meta device, and the state-dict shapes
    save_pretrained would store (lm_head.weight is dropped when tied, as save_pretrained does)."""
    with torch.device("meta"):
        m = Qwen2ForCausalLM(cfg)
    attn = m.model.layers[0].self_attn
    derived = OrderedDict(
        head_dim=attn.head_dim, n_kv_heads=attn.num_key_value_heads, group_size=attn.num_key_value_groups,
        q_rows=attn.q_proj.out_features, k_rows=attn.k_proj.out_features, d_ff=m.model.layers[0].mlp.intermediate_size,
        rotary_dim=int(m.model.rotary_emb.inv_freq.numel() * 2))
    sd = shapes(m.state_dict())
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight")
    return derived, sd


def vision_derived(cfg: Qwen2VLVisionConfig) -> tuple[OrderedDict, OrderedDict]:
    with torch.device("meta"):
        m = Qwen2VisionTransformerPretrainedModel._from_config(cfg)
    w = m.patch_embed.proj.weight
    derived = OrderedDict(
        head_dim=cfg.embed_dim // cfg.num_heads, mlp_dim=m.blocks[0].mlp.fc1.out_features,
        patch_dim=int(np.prod(w.shape[1:])), merge_dim=m.merger.hidden_size,
        merger_out_dim=m.merger.mlp[2].out_features, rope_freqs=int(m.rotary_pos_emb.inv_freq.numel()))
    return derived, shapes(m.state_dict())


def hf_to_custom_llama_names(sd: OrderedDict, n_kv: int, head_dim: int) -> OrderedDict:
    """State-dict shapes under POINTS1.5's CustomLlama names (spec section 4.2)."""
    out = OrderedDict()
    for k, s in sd.items():
        if k == "model.embed_tokens.weight":
            out["llm.lm.embed_in.weight"] = s
        elif k == "model.norm.weight":
            out["llm.lm.final_layer_norm.weight"] = s
        elif k == "lm_head.weight":
            out["llm.embed_out.weight"] = s
        else:
            p = k.replace("model.layers.", "llm.lm.layers.")
            if ".self_attn.k_proj." in p:
                kind = p.rsplit(".", 1)[1]
                kv = [2 * n_kv * head_dim] + s[1:]
                out[p.replace("self_attn.k_proj." + kind, "attention.key_value_dense." + kind)] = kv
            elif ".self_attn.v_proj." in p:
                continue
            elif ".mlp.gate_proj." in p:
                out[p.replace("mlp.gate_proj.", "mlp.dense_h_to_4h.")] = [2 * s[0]] + s[1:]
            elif ".mlp.up_proj." in p:
                continue
            else:
                p = (p.replace("self_attn.q_proj.", "attention.query_dense.")
                     .replace("self_attn.o_proj.", "attention.dense.")
                     .replace("mlp.down_proj.", "mlp.dense_4h_to_h."))
                out[p] = s
    return out


def randomize(module: torch.nn.Module, gen: torch.Generator, scale: float = 0.25) -> None:
    """Every parameter from N(0, scale^2), so biases and norm weights are not the 0/1 defaults and
    a wrongly paired tensor cannot compare equal by accident."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * scale)


def bf16(sd) -> "OrderedDict[str, torch.Tensor]":
    return OrderedDict((k, v.detach().to(torch.bfloat16).contiguous().clone()) for k, v in sd.items())


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ------------------------------------------------------------------------------------------------
# Config cases
# ------------------------------------------------------------------------------------------------
# Qwen2.5 numbers from spec section 4.4 (the models' published config.json files).
QWEN25 = OrderedDict(
    qwen2_5_0_5b=dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False,
                      sliding_window=32768, max_window_layers=24, bos_token_id=151643, eos_token_id=151643,
                      torch_dtype="bfloat16", architectures=["Qwen2ForCausalLM"]),
    qwen2_5_1_5b=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False,
                      sliding_window=32768, max_window_layers=21, bos_token_id=151643, eos_token_id=151645,
                      torch_dtype="bfloat16", architectures=["Qwen2ForCausalLM"]),
    qwen2_5_7b=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                    rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False, use_sliding_window=False,
                    sliding_window=131072, max_window_layers=28, bos_token_id=151643, eos_token_id=151645,
                    torch_dtype="bfloat16", architectures=["Qwen2ForCausalLM"]),
)
TINY_LLM = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=1000000.0,
                tie_word_embeddings=False, torch_dtype="bfloat16", bos_token_id=1, eos_token_id=[2, 3],
                architectures=["Qwen2ForCausalLM"])
TINY_TIED_LLM = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                     tie_word_embeddings=True, torch_dtype="bfloat16", architectures=["Qwen2ForCausalLM"])
TINY_VISION = dict(depth=2, embed_dim=16, hidden_size=64, num_heads=2, mlp_ratio=2, in_channels=3, patch_size=14,
                   temporal_patch_size=2, spatial_merge_size=2, hidden_act="quick_gelu")
REAL_VISION_7B = dict(depth=32, embed_dim=1280, hidden_size=3584, num_heads=16, mlp_ratio=4, in_chans=3,
                      patch_size=14, spatial_patch_size=14, temporal_patch_size=2, spatial_merge_size=2)


def custom_llama_from_qwen2(q: dict, **overrides) -> OrderedDict:
    """The llm_config a POINTS1.5 checkpoint of this Qwen2 decoder carries (CustomLlama fields)."""
    d = OrderedDict(
        model_type="custom_llama", architectures=["CustomLlamaForCausalLM"],
        auto_map={"AutoConfig": "configuration_llama.CustomLlamaConfig",
                  "AutoModelForCausalLM": "modeling_llama.CustomLlamaForCausalLM"},
        vocab_size=q["vocab_size"], hidden_size=q["hidden_size"], num_layers=q["num_hidden_layers"],
        num_attention_heads=q["num_attention_heads"], num_kv_heads=q["num_key_value_heads"],
        ffn_hidden_size=q["intermediate_size"], hidden_act="swiglu", rotary_pct=1.0,
        rotary_emb_base=q["rope_theta"], rotary_compress=1.0, max_position_embeddings=q["max_position_embeddings"],
        initializer_range=0.02, layernorm_epsilon=q["rms_norm_eps"], norm_type="rms_norm", qkv_proj_bias=True,
        out_proj_bias=False, mlp_fc1_bias=False, mlp_fc2_bias=False,
        tie_word_embeddings=q["tie_word_embeddings"], bos_token_id=q.get("bos_token_id", 0),
        eos_token_id=q.get("eos_token_id", 2), torch_dtype=q.get("torch_dtype", "bfloat16"))
    d.update(overrides)
    return d


def points_config(llm_config: dict, vision: dict) -> OrderedDict:
    return OrderedDict(
        architectures=["POINTSV15ChatModel"],
        auto_map={"AutoConfig": "configuration_pointsv15_chat.POINTSV15ChatConfig",
                  "AutoModelForCausalLM": "modeling_pointsv15_chat.POINTSV15ChatModel"},
        model_type="pointsv1.5_chat", llm_config=llm_config,
        vision_config=Qwen2VLVisionConfig(**vision).to_diff_dict(), torch_dtype="bfloat16",
        transformers_version=transformers.__version__)


class Cases:
    def __init__(self, root: str) -> None:
        self.root = root
        self.entries: "OrderedDict[str, OrderedDict]" = OrderedDict()
        self.state_dicts: "OrderedDict[str, OrderedDict]" = OrderedDict()

    def path(self, case: str) -> str:
        return os.path.join(self.root, "configs", case + ".json")

    def rel(self, case: str) -> str:
        return f"config_fixtures/configs/{case}.json"

    def qwen2(self, case: str, cfg: Qwen2Config | None = None, drop=(), edit=None, note: str = "",
              state_dict: bool = False) -> None:
        """A Qwen2 config.json: save_pretrained of `cfg`, minus the `drop` fields, patched by `edit`;
        then what Qwen2Config.from_json_file resolves and what Qwen2ForCausalLM builds from it."""
        path = self.path(case)
        if cfg is not None:
            save_config(cfg, path)
        d = read_json(path) if cfg is not None else OrderedDict()
        for k in drop:
            d.pop(k)
        if edit:
            edit(d)
        write_json(path, d)
        entry = OrderedDict(file=self.rel(case), kind="qwen2", note=note)
        r = Qwen2Config.from_json_file(path)
        entry["resolved"] = pick(r.to_dict(), QWEN2_FIELDS)
        try:
            derived, sd = qwen2_derived(r)
            entry["derived"] = derived
            if state_dict:
                self.state_dicts[case] = sd
        except Exception as e:  # noqa: BLE001 - recorded: the reference refuses this config
            entry["python_error"] = f"{type(e).__name__}: {e}"
        self.entries[case] = entry

    def vision(self, case: str, d: dict, note: str = "", state_dict: bool = False, full_qwen2_vl: bool = False) -> None:
        path = self.path(case)
        if full_qwen2_vl:
            save_config(Qwen2VLConfig(vision_config=d), path)
        else:
            write_json(path, d)
        entry = OrderedDict(file=self.rel(case), kind="qwen2_vl_vision", note=note)
        if full_qwen2_vl:
            r = Qwen2VLVisionConfig.from_pretrained(path)  # takes vision_config out of a qwen2_vl config.json
        else:
            r = Qwen2VLVisionConfig.from_dict(read_json(path))
        entry["resolved"] = pick(r.to_dict(), VISION_FIELDS)
        derived, sd = vision_derived(r)
        entry["derived"] = derived
        if state_dict:
            self.state_dicts[case] = sd
        self.entries[case] = entry

    def points(self, case: str, cfg: dict, flavour: str, note: str = "", state_dict: bool = False) -> None:
        path = self.path(case)
        write_json(path, cfg)
        entry = OrderedDict(file=self.rel(case), kind="points15", llm_flavour=flavour, note=note)
        llm = cfg["llm_config"]
        if flavour == "custom_llama":
            r = resolve_custom_llama(llm)
            entry["resolved_llm"] = r
            entry["derived_llm"] = custom_llama_derived(r)
        else:
            q = Qwen2Config(**llm)
            entry["resolved_llm"] = pick(q.to_dict(), QWEN2_FIELDS)
            entry["derived_llm"], _ = qwen2_derived(q)
        v = Qwen2VLVisionConfig(**cfg["vision_config"])
        entry["resolved_vision"] = pick(v.to_dict(), VISION_FIELDS)
        entry["derived_vision"], vsd = vision_derived(v)
        # POINTSV15ChatModel's projector: PatchMerger(llm hidden_size, context_dim=embed_dim), merge 2.
        with torch.device("meta"):
            proj = PatchMerger(dim=entry["resolved_llm"]["hidden_size"], context_dim=v.embed_dim)
        entry["derived_projector"] = OrderedDict(context_dim=v.embed_dim, hidden_dim=proj.hidden_size,
                                                 out_dim=proj.mlp[2].out_features)
        if state_dict:
            assert flavour == "custom_llama"
            r = entry["resolved_llm"]
            q = Qwen2Config(vocab_size=r["vocab_size"], hidden_size=r["hidden_size"],
                            intermediate_size=r["ffn_hidden_size"], num_hidden_layers=r["num_layers"],
                            num_attention_heads=r["num_attention_heads"], num_key_value_heads=r["num_kv_heads"],
                            tie_word_embeddings=r["tie_word_embeddings"])
            _, qsd = qwen2_derived(q)
            sd = hf_to_custom_llama_names(qsd, r["num_kv_heads"], r["hidden_size"] // r["num_attention_heads"])
            for k, s in vsd.items():
                sd["vision_encoder." + k] = s
            for k, s in shapes(proj.state_dict()).items():
                sd["vision_projector." + k] = s
            self.state_dicts[case] = sd
        self.entries[case] = entry


def config_cases(c: Cases) -> None:
    for name, kw in QWEN25.items():
        c.qwen2(name, Qwen2Config(**kw), note="spec 4.4 numbers, save_pretrained", state_dict=True)
    c.qwen2("qwen2_tiny", Qwen2Config(**TINY_LLM), note="config of checkpoints/qwen2_tiny")
    c.qwen2("qwen2_empty", note="{}: every field from the Qwen2Config defaults")
    c.qwen2("qwen2_5_7b_sparse", Qwen2Config(**QWEN25["qwen2_5_7b"]),
            drop=("intermediate_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
                  "hidden_act", "rope_scaling", "use_sliding_window", "sliding_window", "torch_dtype"),
            note="7B with fields removed: those take the class defaults")
    c.qwen2("qwen2_5_0_5b_no_kv_heads", Qwen2Config(**QWEN25["qwen2_5_0_5b"]), drop=("num_key_value_heads",),
            note="num_key_value_heads removed: the class default 32 applies (not num_attention_heads), "
                 "and 14 heads are not a multiple of 32")
    c.qwen2("qwen2_5_0_5b_null_kv_heads", Qwen2Config(**QWEN25["qwen2_5_0_5b"]),
            edit=lambda d: d.__setitem__("num_key_value_heads", None),
            note="num_key_value_heads null: Qwen2Config uses num_attention_heads")
    c.qwen2("qwen2_heads_not_dividing", Qwen2Config(**dict(TINY_LLM, hidden_size=66)),
            note="hidden_size 66 with 4 heads: Qwen2Attention raises")
    c.qwen2("qwen2_rope_default", Qwen2Config(**dict(TINY_LLM, rope_scaling={"type": "default"})),
            note="rope_scaling {type: default}: plain RoPE")

    c.vision("vision_tiny", Qwen2VLVisionConfig(**TINY_VISION).to_dict(), note="vision_config of the tiny checkpoints")
    c.vision("vision_empty", {}, note="{}: every field from the Qwen2VLVisionConfig defaults", state_dict=True)
    c.vision("qwen2_vl_7b_full", REAL_VISION_7B, full_qwen2_vl=True,
             note="a whole Qwen2-VL config.json (Qwen2VLConfig.save_pretrained); the reader takes its vision_config, "
                  "which uses in_chans / spatial_patch_size like the published file (both ignored by the class)")
    c.vision("vision_mlp_ratio_float", dict(TINY_VISION, mlp_ratio=2.5),
             note="mlp_ratio 2.5: int(embed_dim * mlp_ratio) = 40")

    real_llm = custom_llama_from_qwen2(QWEN25["qwen2_5_7b"], layernorm_epsilon=1e-5)
    c.points("points15_7b", points_config(real_llm, REAL_VISION_7B), "custom_llama",
             note="POINTS1.5-7B as spec 4.1/4.4 expect it (CustomLlama llm_config, Qwen2-VL-7B ViT)", state_dict=True)
    sparse = OrderedDict((k, real_llm[k]) for k in ("vocab_size", "hidden_size", "num_layers", "num_attention_heads",
                                                     "num_kv_heads", "ffn_hidden_size", "auto_map"))
    c.points("points15_7b_llm_defaults", points_config(sparse, REAL_VISION_7B), "custom_llama",
             note="llm_config with only the sizes: CustomLlamaConfig defaults for the rest (layer_norm, all biases, "
                  "tied head, base 10000, eps 1e-5)")
    c.points("points15_rms_norm_flag", points_config(OrderedDict(sparse, rms_norm=True, norm_type="layer_norm",
                                                                 tie_word_embeddings=False), REAL_VISION_7B),
             "custom_llama", note="rms_norm true overrides norm_type")
    c.points("points15_tiny", points_config(custom_llama_from_qwen2(TINY_LLM), TINY_VISION), "custom_llama",
             note="config of checkpoints/points_custom_llama_tiny")
    qwen2_llm = Qwen2Config(**TINY_LLM).to_diff_dict()
    c.points("points15_qwen2_tiny", points_config(qwen2_llm, TINY_VISION), "qwen2",
             note="the 2025 Qwen2-based POINTS variant: llm_config is a Qwen2Config (checkpoints/points_qwen2_sharded)")


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------
def save_checkpoint(directory: str, tensors: "OrderedDict[str, torch.Tensor]", config: dict,
                    shards: list[list[str]] | None = None) -> None:
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, "config.json"), config)
    meta = {"format": "pt"}
    if shards is None:
        safetensors.torch.save_file(dict(tensors), os.path.join(directory, "model.safetensors"), metadata=meta)
        return
    weight_map = OrderedDict()
    total = 0
    for i, names in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        part = OrderedDict((n, tensors[n]) for n in names)
        safetensors.torch.save_file(dict(part), os.path.join(directory, file), metadata=meta)
        for n, t in part.items():
            weight_map[n] = file
            total += t.numel() * t.element_size()
    assert sorted(weight_map) == sorted(tensors), "every tensor in exactly one shard"
    write_json(os.path.join(directory, "model.safetensors.index.json"),
               OrderedDict(metadata=OrderedDict(total_size=total), weight_map=OrderedDict(sorted(weight_map.items()))))


def hf_save(model: torch.nn.Module, directory: str) -> None:
    """model.save_pretrained, keeping only config.json and model.safetensors."""
    model.save_pretrained(directory, safe_serialization=True)
    for f in os.listdir(directory):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(directory, f))


def to_custom_llama(sd: "OrderedDict[str, torch.Tensor]", n_kv: int, head_dim: int) -> "OrderedDict[str, torch.Tensor]":
    """HF Qwen2 names -> POINTS1.5 CustomLlama names by spec section 4.2:
    key_value_dense = stack over kv heads g of [k_proj rows of g; v_proj rows of g] (weight and bias),
    dense_h_to_4h = cat([up_proj, gate_proj]) (first half up, second half gate)."""
    out = OrderedDict()
    layers = sorted({int(k.split(".")[2]) for k in sd if k.startswith("model.layers.")})
    out["llm.lm.embed_in.weight"] = sd["model.embed_tokens.weight"]
    for i in layers:
        h, p = f"model.layers.{i}.", f"llm.lm.layers.{i}."
        out[p + "input_layernorm.weight"] = sd[h + "input_layernorm.weight"]
        out[p + "attention.query_dense.weight"] = sd[h + "self_attn.q_proj.weight"]
        out[p + "attention.query_dense.bias"] = sd[h + "self_attn.q_proj.bias"]
        for kind in ("weight", "bias"):
            k = sd[h + "self_attn.k_proj." + kind]
            v = sd[h + "self_attn.v_proj." + kind]
            k = k.reshape(n_kv, head_dim, *k.shape[1:])
            v = v.reshape(n_kv, head_dim, *v.shape[1:])
            out[p + "attention.key_value_dense." + kind] = torch.cat([k, v], dim=1).reshape(
                2 * n_kv * head_dim, *k.shape[2:]).contiguous()
        out[p + "attention.dense.weight"] = sd[h + "self_attn.o_proj.weight"]
        out[p + "post_attention_layernorm.weight"] = sd[h + "post_attention_layernorm.weight"]
        out[p + "mlp.dense_h_to_4h.weight"] = torch.cat(
            [sd[h + "mlp.up_proj.weight"], sd[h + "mlp.gate_proj.weight"]], dim=0).contiguous()
        out[p + "mlp.dense_4h_to_h.weight"] = sd[h + "mlp.down_proj.weight"]
    out["llm.lm.final_layer_norm.weight"] = sd["model.norm.weight"]
    out["llm.embed_out.weight"] = sd["lm_head.weight"]
    return out


def checkpoints(root: str) -> OrderedDict:
    info = OrderedDict()
    ck = os.path.join(root, "checkpoints")
    if os.path.isdir(ck):
        shutil.rmtree(ck)

    # qwen2_tiny: HF Qwen2ForCausalLM, every parameter random, bf16.
    gen = torch.Generator().manual_seed(4001)
    cfg = Qwen2Config(**TINY_LLM)
    llm = Qwen2ForCausalLM(cfg)
    randomize(llm, gen)
    llm = llm.to(torch.bfloat16)
    hf_save(llm, os.path.join(ck, "qwen2_tiny"))
    hf_sd = OrderedDict((k, v.detach().clone()) for k, v in llm.state_dict().items())
    info["qwen2_tiny"] = OrderedDict(seed=4001, config_case="qwen2_tiny", naming="hf_qwen2")

    # qwen2_tied_tiny: tie_word_embeddings -> save_pretrained stores no lm_head.weight.
    gen = torch.Generator().manual_seed(4002)
    tied = Qwen2ForCausalLM(Qwen2Config(**TINY_TIED_LLM))
    randomize(tied, gen)
    tied.tie_weights()
    tied = tied.to(torch.bfloat16)
    hf_save(tied, os.path.join(ck, "qwen2_tied_tiny"))
    info["qwen2_tied_tiny"] = OrderedDict(seed=4002, naming="hf_qwen2", tied=True)

    # The tiny ViT + its merger (Qwen2VisionTransformerPretrainedModel) and a POINTS projector.
    gen = torch.Generator().manual_seed(4003)
    vit = Qwen2VisionTransformerPretrainedModel._from_config(Qwen2VLVisionConfig(**TINY_VISION))
    randomize(vit, gen)
    vit_sd = bf16(vit.state_dict())
    proj = PatchMerger(dim=TINY_LLM["hidden_size"], context_dim=TINY_VISION["embed_dim"])
    randomize(proj, gen)
    proj_sd = bf16(proj.state_dict())

    # points_custom_llama_tiny: CustomLlama names + vision_encoder.* (with its unused merger) +
    # vision_projector.* + the inv_freq buffers CustomLlamaForCausalLM ignores on load.
    head_dim = TINY_LLM["hidden_size"] // TINY_LLM["num_attention_heads"]
    t = to_custom_llama(hf_sd, TINY_LLM["num_key_value_heads"], head_dim)
    inv_freq = 1.0 / (TINY_LLM["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    for i in range(TINY_LLM["num_hidden_layers"]):
        t[f"llm.lm.layers.{i}.attention.rotary_emb.inv_freq"] = inv_freq.clone()
    for k, v in vit_sd.items():
        t["vision_encoder." + k] = v
    for k, v in proj_sd.items():
        t["vision_projector." + k] = v
    save_checkpoint(os.path.join(ck, "points_custom_llama_tiny"), t,
                    points_config(custom_llama_from_qwen2(TINY_LLM), TINY_VISION))
    info["points_custom_llama_tiny"] = OrderedDict(seed=[4001, 4003], config_case="points15_tiny",
                                                   naming="points_custom_llama", converted_from="qwen2_tiny")

    # qwen2_vl_tiny: Qwen2VLForConditionalGeneration.save_pretrained; visual.* = the tiny ViT above.
    gen = torch.Generator().manual_seed(4004)
    vl_cfg = Qwen2VLConfig(**dict(TINY_TIED_LLM, tie_word_embeddings=False, architectures=None),
                           vision_config=dict(TINY_VISION), rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]})
    vl = Qwen2VLForConditionalGeneration(vl_cfg)
    randomize(vl, gen)
    vl = vl.to(torch.bfloat16)
    with torch.no_grad():
        vl.visual.load_state_dict(vit_sd)
    hf_save(vl, os.path.join(ck, "qwen2_vl_tiny"))
    info["qwen2_vl_tiny"] = OrderedDict(seed=[4004, 4003], naming="hf_qwen2 + qwen2_vl")

    # points_qwen2_sharded: the 2025 naming, two shards (llm | vision + projector), no unused merger.
    t = OrderedDict()
    for k, v in hf_sd.items():
        t["llm." + k] = v
    for k, v in vit_sd.items():
        if not k.startswith("merger."):
            t["vision_encoder." + k] = v
    for k, v in proj_sd.items():
        t["vision_projector." + k] = v
    llm_names = [k for k in t if k.startswith("llm.")]
    rest = [k for k in t if not k.startswith("llm.")]
    save_checkpoint(os.path.join(ck, "points_qwen2_sharded"), t,
                    points_config(Qwen2Config(**TINY_LLM).to_diff_dict(), TINY_VISION), shards=[llm_names, rest])
    info["points_qwen2_sharded"] = OrderedDict(seed=[4001, 4003], config_case="points15_qwen2_tiny",
                                               naming="points_qwen2", shards=2)
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (tests/golden)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()

    root = os.path.join(args.out, "config_fixtures")
    cfg_dir = os.path.join(root, "configs")
    if os.path.isdir(cfg_dir):
        shutil.rmtree(cfg_dir)
    cases = Cases(root)
    config_cases(cases)
    ckpts = checkpoints(root)

    files = OrderedDict()
    total = 0
    for dirpath, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, args.out).replace(os.sep, "/")
            files[rel] = OrderedDict(bytes=os.path.getsize(p), sha256=sha256(p))
            total += files[rel]["bytes"]
    for name, entry in ckpts.items():
        d = os.path.join(root, "checkpoints", name)
        tensors = OrderedDict()
        for f in sorted(os.listdir(d)):
            if f.endswith(".safetensors"):
                with safetensors.safe_open(os.path.join(d, f), "pt") as st:
                    for k in sorted(st.keys()):
                        x = st.get_slice(k)
                        tensors[k] = [x.get_dtype(), list(x.get_shape())]
        entry["dir"] = f"config_fixtures/checkpoints/{name}"
        entry["tensors"] = tensors

    manifest = OrderedDict()
    manifest["generator"] = GENERATOR
    manifest["regenerate"] = f".venv/bin/python {GENERATOR} --out tests/golden"
    manifest["versions"] = OrderedDict(
        python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
        safetensors=safetensors.__version__, numpy=np.__version__)
    manifest["custom_llama_config_source"] = (
        "josephydu/sglang python/sglang/srt/configs/pointsv15_chat.py @ a6f0c03fedf03ae73605976fa4c822e05bb633ff "
        "(public copy of POINTS1.5's configuration_llama.CustomLlamaConfig; same defaults in the PaddleMIX port)")
    manifest["custom_llama_defaults"] = CUSTOM_LLAMA_DEFAULTS
    manifest["settings"] = OrderedDict(torch_num_threads=1, deterministic_algorithms=True, weights="bf16",
                                       init="every parameter N(0, 0.25^2) from torch.Generator(seed)")
    manifest["files"] = files
    manifest["total_bytes"] = total
    manifest["config_cases"] = cases.entries
    manifest["checkpoints"] = ckpts
    manifest["state_dicts"] = cases.state_dicts
    out = os.path.join(args.out, "config_manifest.json")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {len(files)} fixture files ({total} bytes) and {out}")
    if total >= MAX_TOTAL_BYTES:
        print(f"error: fixtures total {total} bytes, over the 1 MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
