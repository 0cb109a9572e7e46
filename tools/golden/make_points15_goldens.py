# SPDX-License-Identifier: Apache-2.0
"""End-to-end golden data for POINTS1.5 (model::points15): the ORIGINAL POINTS1.5 PyTorch code run
on a tiny random-weight model, written as real checkpoint directories plus reference outputs.

The reference code is not part of this repository. The script takes it by path at run time
(--reference-dir REFS holding each file at REFS/<owner>/<repo>/<path in repo>, or --ref KEY=PATH per
file), refuses to run when a file is missing or its sha256 differs, and records sha256 and origin
(repo@commit:path) in the manifest. `--list-references` prints the table, `--fetch-list` the raw
GitHub URL and destination of each file (tools/golden/README.md, POINTS1.5, shows the fetch loop).

What runs (spec/points15.md sections 1-5):
  * POINTSV15ChatModel (Dec-2024, CustomLlama LLM): the class body of POINTSV15ChatModel from
    josephydu/sglang's wepoints.py (a verbatim concatenation of the HF repo's modeling files), executed
    with the HF repo's own CustomLlamaForCausalLM (modeling_llama.py), POINTSV15ChatConfig /
    CustomLlamaConfig (configuration_*.py, from the archived HF snapshot) and WePOINTS'
    Qwen2VisionTransformerForNavitPOINTS;
  * POINTSV15ChatModel (2025, Qwen2ForCausalLM LLM, POINTS-Reader's modeling_pointsv15_chat.py +
    configuration_pointsv15_chat.py) on the SAME weights under Qwen2 names (spec 4.2 inverted);
  * WePOINTS' Qwen2ImageProcessorForPOINTSV15 (transformers 4.46.3 Qwen2VLImageProcessor with
    WePOINTS' smart_resize), on two real images from ../shared/data/images (never copied);
  * per request exactly what chat() does (construct_prompt, vision encoder, projector, tokenizer,
    generate with eos = <|im_end|>), minus the .cuda() calls.

Writes, under <out> (tests/golden/points15):
  custom_llama_f32/   the POINTS1.5 checkpoint as the HF repo has it: config.json, generation_config.json
                      (save_pretrained), model-0000{1,2}-of-00002.safetensors + model.safetensors.index.json
                      (float32, CustomLlama names, vision_encoder.* with its unused merger,
                      vision_projector.*), preprocessor_config.json, tokenizer.json, tokenizer_config.json,
                      vocab.json, merges.txt
  custom_llama_bf16/  the same weights in bfloat16 (one model.safetensors)
  qwen2_f32/          the same weights under the 2025 Qwen2 names (llm.model.*, llm.lm_head), float32
  images.safetensors                 per real image: image_grid_thw, FNV-1a 64 of each pixel_values row,
                                     4096 sampled pixel_values (the images and their pixels are not copied)
  outputs.safetensors                per request: input_ids, image_grid_thw; custom_llama_f32.* outputs
  outputs_qwen2_f32.safetensors      qwen2_f32.* outputs
  outputs_custom_llama_bf16.safetensors  custom_llama_bf16.* outputs
  manifest.json       versions, reference files (sha256 + origin), loading, shims, tokenizer, configs,
                      init, images, requests (prompt text, answers), cross-checks, tensor meanings,
                      per file bytes / sha256 / every tensor's dtype and shape

Regenerate only on purpose; CI never runs this. Deterministic (CPU, one thread, deterministic
algorithms, fixed seeds, deterministic BPE training): run twice, compare sha256 sums.

    .venv/bin/python tools/golden/make_points15_goldens.py --reference-dir REFS [--out tests/golden/points15]
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
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

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import AddedToken, AutoTokenizer, Qwen2TokenizerFast  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor  # noqa: E402
from transformers.models.qwen2_vl.modeling_qwen2_vl import PatchMerger as HFPatchMerger  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_config_goldens  # noqa: E402  (the house CustomLlama <- Qwen2 converter, for a round-trip check)
from make_decoder_goldens import file_entry  # noqa: E402  (bytes, sha256, every tensor's dtype and shape)
from make_tokenizer_goldens import byte_alphabet  # noqa: E402  (GPT-2's byte -> character table)

GENERATOR = "tools/golden/make_points15_goldens.py"
MAX_FILE_BYTES = 2_000_000  # every golden file under 2 MB
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "points15")
DEFAULT_IMAGES = os.path.join(os.path.dirname(REPO), "shared", "data", "images")
DEFAULT_QWEN2_TOKENIZER = os.path.join(os.path.dirname(REPO), "shared", "data", "qwen2-tokenizer")
_DTYPE_NAME = {torch.float32: "F32", torch.int32: "I32", torch.int64: "I64"}
N_SAMPLES = 4096  # sampled pixel_values per image (as make_image_goldens.py keeps for real images)
FNV_OFFSET, FNV_PRIME, U64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1

# ------------------------------------------------------------------------------------------------
# Reference files: key -> where it lies under --reference-dir (<repo>/<path in repo>), origin, sha256
# ------------------------------------------------------------------------------------------------
_RCA = ("earl-juanico/rca", "7fb4cd93dc6704e2d3a6d7580a9886a1cfa331ac",
        "POINTS-1-5-Qwen-2-5-7B-Chat/POINTS-1-5-Qwen-2-5-7B-Chat/")
_SGLANG = ("josephydu/sglang", "e68dcbe90f9f0c918206919e19f6914687516feb", "python/sglang/srt/models/")
_READER = ("hassanGH9/POINTS-Reader", "85856a868a8d78d92816bfda19f103fc63dd9b95", "")
_WEPOINTS = ("WePOINTS/WePOINTS", "c4eccb8f7ef9730aa573ceb91f5c34fc0fc8b481", "wepoints/")


def _ref(src, name, sha, role):
    repo, commit, prefix = src
    return OrderedDict(repo=repo, commit=commit, path=prefix + name, sha256=sha, role=role)


REFERENCES = OrderedDict([
    ("hf_modeling_llama", _ref(_RCA, "modeling_llama.py",
                               "1ea302fd3b25421cfd0e67a0c72114e658489284075a14e76672d11e0c92b41f",
                               "CustomLlamaForCausalLM (RMSNorm, RotaryEmbedding, CustomLlamaAttention, "
                               "CustomLlamaMLP): the LLM of the Dec-2024 POINTS1.5 HF repo "
                               "WePOINTS/POINTS-1-5-Qwen-2-5-7B-Chat (remote code) as archived in this snapshot; its "
                               "classes are AST-identical to the CustomLlama copy inside sglang_wepoints")),
    ("hf_configuration_llama", _ref(_RCA, "configuration_llama.py",
                                    "029f17a3f8e9a63c02fec63fa526fbdcac692f8ce6cd0d40c8273fde5086fc56",
                                    "CustomLlamaConfig (HF repo remote code)")),
    ("hf_configuration_pointsv15_chat", _ref(_RCA, "configuration_pointsv15_chat.py",
                                             "1e1f13bda87900d8d8c1f874fb4eeb1cdb67a86855667614bcf9209622bed4ed",
                                             "POINTSV15ChatConfig (CustomLlamaConfig + Qwen2VLVisionConfig; HF repo "
                                             "remote code)")),
    ("hf_config_json", _ref(_RCA, "config.json",
                            "148c153028727cc4f71d6a6055f9f0c2bad1b5ddfa7319c95792591908c19e37",
                            "the 7B model's config.json: every non-size field of the tiny config.json is taken from "
                            "it (the snapshot's auto_map was edited by its archivers; the HF values are restored)")),
    ("hf_preprocessor_config", _ref(_RCA, "preprocessor_config.json",
                                    "bc2923dd47b9f71e33b014c0a1b904dd3ca7bba20fc6449447062d1d31422431",
                                    "the 7B model's preprocessor_config.json (the tiny one changes min/max pixels)")),
    ("hf_generation_config", _ref(_RCA, "generation_config.json",
                                  "26d65ddd29b65f6900f6883c44d13e25895df46768c69da3bdb30ecbee7ee5f2",
                                  "the 7B model's generation_config.json (compared with what save_pretrained writes)")),
    ("sglang_wepoints", _ref(_SGLANG, "wepoints.py",
                             "6d112c320eb0603dabb2d3bf394c3e59ecb165dd1cfc9fa3e69970875c76fcf7",
                             "the HF repo's modeling_llama.py + WePOINTS' navit + modeling_pointsv15_chat.py "
                             "concatenated (black-formatted); only its POINTSV15ChatModel class (Dec-2024, "
                             "unmodified semantics) and its leading import statements are executed")),
    ("reader_modeling", _ref(_READER, "modeling_pointsv15_chat.py",
                             "07f3f678c4af541a61bca01bf2e69287f5668228390f2205e25a07c78320071d",
                             "POINTSV15ChatModel, 2025 variant on transformers' Qwen2ForCausalLM (POINTS-Reader)")),
    ("reader_configuration", _ref(_READER, "configuration_pointsv15_chat.py",
                                  "49be8f335ac5c02c5638db6115644d7d8285ee00968a5b5412491bea336a6b07",
                                  "POINTSV15ChatConfig, 2025 variant (Qwen2Config + Qwen2VLVisionConfig)")),
    ("wepoints_navit", _ref(_WEPOINTS, "models/vision/qwen2_vl_navit.py",
                            "2fa5fab3ed960ca19a3336b39691d4b352f4023a55be204b2030d6ae600e3d89",
                            "Qwen2VisionTransformerForNavitPOINTS: Qwen2-VL ViT forward without the merger")),
    ("wepoints_image_processor", _ref(_WEPOINTS, "utils/images/qwen2vl_image_processor.py",
                                      "a2f819cd118bfa84fb6fe63c42ce0b9e4fe53731b7d773ed0a6562c07c157571",
                                      "Qwen2ImageProcessorForPOINTSV15 (Qwen2VLImageProcessor + WePOINTS "
                                      "smart_resize)")),
])


def ref_layout(e: dict) -> str:
    return f"{e['repo']}/{e['path']}"


def ref_url(e: dict) -> str:
    return f"https://raw.githubusercontent.com/{e['repo']}/{e['commit']}/{e['path']}"


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def resolve_references(ref_dir: str | None, overrides: list[str]) -> "OrderedDict[str, str]":
    """key -> local path; refuses to run when a file is missing or its sha256 differs."""
    paths = OrderedDict()
    for item in overrides:
        key, sep, p = item.partition("=")
        if not sep or key not in REFERENCES:
            raise SystemExit(f"error: --ref wants KEY=PATH with KEY one of {', '.join(REFERENCES)}; got {item!r}")
        paths[key] = p
    errors = []
    for key, e in REFERENCES.items():
        if key not in paths:
            if ref_dir is None:
                errors.append(f"{key}: no --reference-dir and no --ref {key}=PATH")
                continue
            paths[key] = os.path.join(ref_dir, ref_layout(e))
        p = paths[key]
        if not os.path.isfile(p):
            errors.append(f"{key}: missing {p} (expected {e['repo']}@{e['commit']}:{e['path']})")
            continue
        got = sha256_file(p)
        if got != e["sha256"]:
            errors.append(f"{key}: {p} has sha256 {got}, expected {e['sha256']} "
                          f"({e['repo']}@{e['commit']}:{e['path']})")
    if errors:
        raise SystemExit("error: reference files:\n  " + "\n  ".join(errors))
    return OrderedDict((k, paths[k]) for k in REFERENCES)


# ------------------------------------------------------------------------------------------------
# Tiny model, tokenizer, processor settings
# ------------------------------------------------------------------------------------------------
# Size fields replaced in the 7B config.json; every other field stays as the 7B file has it.
LLM_SIZE = OrderedDict(hidden_size=64, num_layers=2, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
                       ffn_hidden_size=128, max_position_embeddings=4096)  # + vocab_size (tokenizer size -> x64)
VISION_SIZE = OrderedDict(depth=2, embed_dim=32, num_heads=2)  # + hidden_size = LLM hidden_size
# What the reference code requires of the non-size fields it inherits from the 7B config.json.
LLM_EXPECT = OrderedDict(hidden_act="swiglu", layernorm_epsilon=1e-05, norm_type="rms_norm", qkv_proj_bias=True,
                         out_proj_bias=False, mlp_fc1_bias=False, mlp_fc2_bias=False, rotary_emb_base=1000000.0,
                         rotary_pct=1.0, rotary_compress=1.0, tie_word_embeddings=False)
VISION_EXPECT = OrderedDict(hidden_act="quick_gelu", mlp_ratio=4, in_channels=3, patch_size=14, spatial_merge_size=2,
                            temporal_patch_size=2)
HF_AUTO_MAP = OrderedDict(AutoConfig="configuration_pointsv15_chat.POINTSV15ChatConfig",
                          AutoModelForCausalLM="modeling_pointsv15_chat.POINTSV15ChatModel")
HF_LLM_AUTO_MAP = OrderedDict(AutoConfig="configuration_llama.CustomLlamaConfig",
                              AutoModelForCausalLM="modeling_llama.CustomLlamaForCausalLM")
MIN_PIXELS, MAX_PIXELS = 56 * 56, 28 * 28 * 48  # both real images -> 160 patches, 40 LLM tokens each
F32_SHARD_BYTES = "600KB"  # the f32 CustomLlama checkpoint: two shards + index, like the 7B repo's four

# Tokenizer: byte-level BPE trained on the text below; Qwen2.5's 22 added tokens after it.
BPE_VOCAB = 480          # 256 byte symbols + 224 merges
VOCAB_MULTIPLE = 64      # llm vocab_size = tokenizer size rounded up (Qwen2.5-7B: 151665 -> 152064)
QWEN25_ADDED = [  # (content, special) in id order, as Qwen2.5's tokenizer_config.json declares them
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False)]
ADDITIONAL_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
                      "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                      "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
TRAINING_TEXT = """\
Describe this image in detail. What is in the picture? What is on the table?
A cup of coffee on a saucer. The coffee is hot and the cup is white.
There is a spoon next to the cup, and the table is made of wood.
This is a receipt from a small shop. The receipt shows the items, the prices and the total.
The total price is written at the bottom of the receipt, below the tax and the change.
What is different between the two images? The first image shows a drink, the second one shows text.
Please read the text in the image and answer the question in one sentence.
The image is bright, the colors are warm, and the light comes from the left side.
A model that reads images can describe them, count the objects, and answer questions about them.
Language models predict the next token; vision encoders turn patches of pixels into vectors.
The user asks a question about the image, and the assistant answers the user.
The camera took the photo in the morning. The station, the library and the garden are near the river.
How many items are on the receipt? Three items: tea, bread and cake. The total is twelve dollars.
Thank you for your order. Please come again. Cash, card, change, subtotal, discount, quantity.
请描述这张图片。图片里有什么？桌子上有一杯咖啡。
这是一张收据，上面写着商品、价格和总价。这张收据上写了什么？
请比较这两张图片。第一张图片是咖啡，第二张图片是文字。
图像处理模型可以阅读图片中的文字，并回答问题。
今天早上我在商店买了面包和茶，一共十二元。谢谢光临，欢迎再来。
视觉编码器把图像切成小块，语言模型根据上下文生成下一个词。
"""
TRAINING_REPEAT = 4  # the text is fed this many times (frequencies x4; the merge order is the same)

# Greedy decoding as the WePOINTS README passes it to chat(), with 32 new tokens; chat() adds
# eos_token_id = <|im_end|>.
GENERATION = OrderedDict(max_new_tokens=32, temperature=0.0, top_p=0.0, num_beams=1)
IM_END_ROW_SCALE = 1.5  # INIT: the <|im_end|> row of embed_out is scaled by this (see randomize_)
MIN_STOPPED_ANSWER = 6  # seed rule: answers that stop do so after at least this many tokens
MIN_MARGIN_OVER_STD = 1e-2  # every f32 greedy step: top1 - top2 >= 1e-2 * std(that step's logits)
# and no bf16 greedy step has an exact tie (top1 == top2 in bf16)
SEED_CANDIDATES = [15001 + k for k in range(60)]  # weight seeds, the first that passes the margin check
VISION_ATTN = "eager"

INIT = OrderedDict(
    llm=OrderedDict(embed_in_std=0.25, embed_out_std=0.25, linear_std=0.08, qkv_bias_std=0.1, norm_weight_std=0.1,
                    im_end_row_scale=IM_END_ROW_SCALE,
                    padding_rows="embed_in / embed_out rows from the tokenizer size up to vocab_size are zero"),
    vision=OrderedDict(matrix="N(0, 1/fan_in) (fan_in = numel of one output row; the Conv3d kernel: 3*2*14*14)",
                       layer_norm_weight_std=0.25, bias_std=0.2,
                       scope="vision_encoder.* (including its unused merger) and vision_projector.*"),
    rounding="every parameter rounded to a bfloat16 value (kept float32), so the f32 and bf16 checkpoints hold "
             "the same values",
    draw_order="torch.Generator().manual_seed(seed), then per parameter in POINTSV15ChatModel.named_parameters() "
               "order (llm.*, vision_encoder.*, vision_projector.*)")

IMAGES = OrderedDict(A="skimage_astronaut.png", B="donut_cord_receipt_00004.jpg")  # square PNG, 2:3 JPEG: grids differ
SAMPLE_SEEDS = OrderedDict(A=15201, B=15202)


def requests_spec() -> "OrderedDict[str, list]":
    """Messages in POINTS' chat() format; images by key (A, B)."""
    img = lambda k: OrderedDict(type="image", image=k)  # noqa: E731
    txt = lambda t: OrderedDict(type="text", text=t)  # noqa: E731
    return OrderedDict([
        ("one_image", [OrderedDict(role="user", content=[img("A"), txt("Describe this image in detail.")])]),
        ("two_images", [OrderedDict(role="user", content=[
            img("A"), img("B"), txt("What is different between the two images? 请比较这两张图片。")])]),
        ("multi_turn", [
            OrderedDict(role="user", content=[img("A"), txt("Who is in this picture?")]),
            OrderedDict(role="assistant", content=[txt("An astronaut in a white suit, holding a helmet.")]),
            OrderedDict(role="user", content=[img("B"), txt("这张收据上写了什么？")])]),
    ])


# ------------------------------------------------------------------------------------------------
# Loading the reference code
# ------------------------------------------------------------------------------------------------
def _new_package(name: str) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__path__ = []
    sys.modules[name] = m
    return m


def _load_module(name: str, path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class Shims:
    """The few changes needed to run the reference on a CPU with a tiny vision tower; each is recorded."""

    def __init__(self) -> None:
        self.records: list[OrderedDict] = []
        self.calls: "OrderedDict[str, int]" = OrderedDict()

    def add(self, name: str, where: str, what: str, why: str) -> None:
        self.records.append(OrderedDict(name=name, where=where, what=what, why=why))
        self.calls[name] = 0

    def hit(self, name: str) -> None:
        self.calls[name] += 1


def load_reference(paths: "OrderedDict[str, str]", vision_embed_dim: int, shims: Shims) -> types.SimpleNamespace:
    ns = types.SimpleNamespace()
    loading = OrderedDict()

    # WePOINTS package files: registered under their package names (what `pip install -e WePOINTS`
    # provides; the package __init__s re-export exactly these classes, utils/__init__ would also import
    # catty, which is not needed here).
    for pkg in ("wepoints", "wepoints.models", "wepoints.models.vision", "wepoints.utils", "wepoints.utils.images"):
        _new_package(pkg)
    navit = _load_module("wepoints.models.vision.qwen2_vl_navit", paths["wepoints_navit"])
    improc = _load_module("wepoints.utils.images.qwen2vl_image_processor", paths["wepoints_image_processor"])
    sys.modules["wepoints.models"].Qwen2VisionTransformerForNavitPOINTS = navit.Qwen2VisionTransformerForNavitPOINTS
    sys.modules["wepoints.utils.images"].Qwen2ImageProcessorForPOINTSV15 = improc.Qwen2ImageProcessorForPOINTSV15
    ns.Navit = navit.Qwen2VisionTransformerForNavitPOINTS
    ns.ImageProcessor = improc.Qwen2ImageProcessorForPOINTSV15
    loading["wepoints.models.vision.qwen2_vl_navit"] = "wepoints_navit, loaded as that module"
    loading["wepoints.utils.images.qwen2vl_image_processor"] = "wepoints_image_processor, loaded as that module"

    # The HF repo's remote code, as transformers' trust_remote_code loads it: one package holding
    # configuration_llama.py, modeling_llama.py, configuration_pointsv15_chat.py (relative imports).
    pkg = "points15_hf_remote_code"
    _new_package(pkg)
    hf_cfg_llama = _load_module(f"{pkg}.configuration_llama", paths["hf_configuration_llama"])
    hf_llama = _load_module(f"{pkg}.modeling_llama", paths["hf_modeling_llama"])
    hf_cfg = _load_module(f"{pkg}.configuration_pointsv15_chat", paths["hf_configuration_pointsv15_chat"])
    assert hf_llama.CustomLlamaConfig is hf_cfg_llama.CustomLlamaConfig
    assert hf_llama.USE_FLASH_ATTN is False, "flash_attn is installed: the CustomLlama eager path would not run"
    loading[f"{pkg}.configuration_llama"] = "hf_configuration_llama"
    loading[f"{pkg}.modeling_llama"] = ("hf_modeling_llama (flash_attn not installed: USE_FLASH_ATTN False, "
                                        "CustomLlamaAttention._attn, its eager path)")
    loading[f"{pkg}.configuration_pointsv15_chat"] = "hf_configuration_pointsv15_chat"

    # POINTSV15ChatModel (Dec 2024): the class from the sglang copy, executed in a module whose
    # globals are that file's leading import statements plus the HF remote-code classes above
    # (CustomLlamaForCausalLM, POINTSV15ChatConfig) and WePOINTS' navit class. The file's CustomLlama
    # copy, its `from sglang.srt.configs import ...` and everything else is not executed.
    src_path = paths["sglang_wepoints"]
    with open(src_path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=src_path)
    header, cls_node, seen_def = [], None, False
    for node in tree.body:
        seen_def = seen_def or isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign))
        if not seen_def and isinstance(node, (ast.Import, ast.ImportFrom, ast.Try)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sglang"):
                continue
            header.append(node)
        if isinstance(node, ast.ClassDef) and node.name == "POINTSV15ChatModel":
            cls_node = node
    assert cls_node is not None
    chat_mod = types.ModuleType(f"{pkg}.modeling_pointsv15_chat")
    chat_mod.__file__ = src_path
    sys.modules[chat_mod.__name__] = chat_mod
    exec(compile(ast.Module(body=header, type_ignores=[]), src_path, "exec"), chat_mod.__dict__)
    chat_mod.CustomLlamaForCausalLM = hf_llama.CustomLlamaForCausalLM
    chat_mod.CustomLlamaConfig = hf_cfg_llama.CustomLlamaConfig
    chat_mod.POINTSV15ChatConfig = hf_cfg.POINTSV15ChatConfig
    chat_mod.Qwen2VisionTransformerForNavitPOINTS = navit.Qwen2VisionTransformerForNavitPOINTS
    exec(compile(ast.Module(body=[cls_node], type_ignores=[]), src_path, "exec"), chat_mod.__dict__)
    ns.CustomModel = chat_mod.POINTSV15ChatModel
    ns.CustomConfig = hf_cfg.POINTSV15ChatConfig
    loading[f"{pkg}.modeling_pointsv15_chat"] = OrderedDict(
        POINTSV15ChatModel=f"sglang_wepoints lines {cls_node.lineno}-{cls_node.end_lineno} (the class only)",
        globals=f"sglang_wepoints's leading import statements (lines {header[0].lineno}-{header[-1].end_lineno}, "
                "without `from sglang.srt.configs import CustomLlamaConfig, POINTSV15ChatConfig`), then "
                "CustomLlamaForCausalLM from hf_modeling_llama, CustomLlamaConfig from hf_configuration_llama, "
                "POINTSV15ChatConfig from hf_configuration_pointsv15_chat, Qwen2VisionTransformerForNavitPOINTS "
                "from wepoints_navit")

    # The 2025 Qwen2 variant: `from configuration_pointsv15_chat import ...` and
    # `from wepoints.models import ...` resolve to the modules registered above.
    reader_cfg = _load_module("configuration_pointsv15_chat", paths["reader_configuration"])
    reader = _load_module("points15_reader_modeling_pointsv15_chat", paths["reader_modeling"])
    assert reader.Qwen2VisionTransformerForNavitPOINTS is navit.Qwen2VisionTransformerForNavitPOINTS
    ns.ReaderModel = reader.POINTSV15ChatModel
    ns.ReaderConfig = reader_cfg.POINTSV15ChatConfig
    loading["configuration_pointsv15_chat"] = "reader_configuration (top-level module: the modeling file imports it "\
                                              "absolutely)"
    loading["points15_reader_modeling_pointsv15_chat"] = "reader_modeling"

    # --- shims -----------------------------------------------------------------------------------
    shims.add("vision_attn_implementation", "POINTSV15ChatModel.__init__ (both variants): "
              "Qwen2VisionTransformerForNavitPOINTS._from_config(config.vision_config, "
              "attn_implementation=\"flash_attention_2\")",
              f"attn_implementation \"flash_attention_2\" replaced by \"{VISION_ATTN}\" (a wrapper around the class's "
              "_from_config; everything else passed through)",
              "flash_attn needs CUDA. transformers 4.46.3's eager VisionAttention computes the same block-diagonal "
              "attention over cu_seqlens (f32 softmax); the manifest records eager vs sdpa")
    orig_from_config = ns.Navit._from_config.__func__

    def _from_config(cls, config, **kwargs):
        assert kwargs.get("attn_implementation") == "flash_attention_2", kwargs
        shims.hit("vision_attn_implementation")
        kwargs["attn_implementation"] = VISION_ATTN
        return orig_from_config(cls, config, **kwargs)

    ns.Navit._from_config = classmethod(_from_config)
    ns.navit_from_config_unshimmed = lambda config, attn: orig_from_config(ns.Navit, config, attn_implementation=attn)

    shims.add("projector_context_dim", "POINTSV15ChatModel.__init__ (both variants): "
              "PatchMerger(config.llm_config.hidden_size, context_dim=1280)",
              f"context_dim 1280 replaced by the tiny vision embed_dim {vision_embed_dim} (the module-level name "
              "PatchMerger is bound to a function that checks context_dim == 1280 and builds transformers' "
              "PatchMerger with the tiny width)",
              "1280 is the 7B ViT's embed_dim, hard-coded; the tiny tower is narrower")

    def patch_merger(dim, context_dim, spatial_merge_size=2):
        assert context_dim == 1280, context_dim
        shims.hit("projector_context_dim")
        return HFPatchMerger(dim, context_dim=vision_embed_dim, spatial_merge_size=spatial_merge_size)

    chat_mod.PatchMerger = patch_merger
    reader.PatchMerger = patch_merger

    shims.add("reader_llm_attn_implementation", "2025 variant POINTSV15ChatModel.__init__: "
              "config.llm_config._attn_implementation = \"flash_attention_2\"; self.llm = Qwen2ForCausalLM(...)",
              "the module-level name Qwen2ForCausalLM is bound to a function that checks the request for "
              "\"flash_attention_2\", sets \"eager\" and builds transformers' Qwen2ForCausalLM",
              "flash_attn needs CUDA; transformers' eager Qwen2Attention is the CPU path of the same model")
    hf_qwen2 = transformers.Qwen2ForCausalLM

    def qwen2_for_causal_lm(config):
        assert config._attn_implementation == "flash_attention_2", config._attn_implementation
        shims.hit("reader_llm_attn_implementation")
        config._attn_implementation = "eager"
        return hf_qwen2(config)

    reader.Qwen2ForCausalLM = qwen2_for_causal_lm

    shims.add("reader_projector_dtype", "2025 variant: PatchMerger(...).to(torch.bfloat16) in __init__ and "
              "self.vision_projector(image_features.to(torch.bfloat16)) in chat()",
              "the ViT features are cast to the projector's dtype instead of bf16. (The model written with "
              "save_pretrained is made float32 first, model.float(); from_pretrained of that f32 checkpoint gives "
              "an f32 projector by itself: transformers assigns the checkpoint's tensors to the parameters.)",
              "a bf16 hard-coding of that fork; the Dec-2024 code runs the projector in the model dtype, and the "
              "f32 cross-check needs both variants in f32")
    shims.add("no_cuda", "chat() (both variants): torch.from_numpy(image_grid_thws).cuda().long()",
              "chat() is not called; its steps are run as written with .long() on the CPU: construct_prompt, "
              "vision_encoder, vision_projector, tokenizer(prompt), convert_tokens_to_ids, generate, batch_decode",
              "no GPU; the steps are otherwise chat()'s own")
    shims.add("tie_word_embeddings", "2025 variant: top-level POINTSV15ChatConfig", "the Qwen2-naming config.json "
              "carries \"tie_word_embeddings\": false at the top level (and in llm_config)",
              "that variant defines get_output_embeddings(), and from_pretrained's tie_weights() reads the "
              "top-level config, whose PretrainedConfig default True would tie llm.lm_head to the embedding "
              "(the manifest records the check)")
    ns.loading = loading
    return ns


# ------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------
def add_qwen25_tokens(tok: Qwen2TokenizerFast, base: int) -> None:
    for k, (content, special) in enumerate(QWEN25_ADDED):
        tok.add_tokens([AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False,
                                   single_word=False)], special_tokens=special)
        assert tok.convert_tokens_to_ids(content) == base + k, (content, tok.convert_tokens_to_ids(content))


def pipeline_json(tok) -> OrderedDict:
    d = json.loads(tok.backend_tokenizer.to_str())
    return OrderedDict((k, d[k]) for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder"))


def build_tokenizer(work: str, qwen2_dir: str, text: str = TRAINING_TEXT, bpe_vocab: int = BPE_VOCAB,
                    repeat: int = TRAINING_REPEAT) -> tuple[str, OrderedDict]:
    """Trains the tiny BPE and writes tokenizer.json / vocab.json / merges.txt / tokenizer_config.json
    into work/tokenizer. The normalizer / pre-tokenizer / decoder / post-processor are what
    transformers' Qwen2TokenizerFast builds from a vocab.json + merges.txt (its Qwen2 converter), checked
    equal to those built from the shared Qwen2 vocabulary. text / bpe_vocab / repeat: the training
    text (one line per sample), the BPE size before the added tokens, how often the text is fed
    (tools/demo_model trains its own tokenizer with these)."""
    boot_dir = os.path.join(work, "boot")
    os.makedirs(boot_dir)
    b2u = byte_alphabet()
    with open(os.path.join(boot_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({b2u[b]: i for i, b in enumerate(sorted(b2u))}, f, ensure_ascii=False)
    with open(os.path.join(boot_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
    boot = Qwen2TokenizerFast(vocab_file=os.path.join(boot_dir, "vocab.json"),
                              merges_file=os.path.join(boot_dir, "merges.txt"))
    bpe = Tokenizer(models.BPE(dropout=None, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    bpe.normalizer = boot.backend_tokenizer.normalizer
    bpe.pre_tokenizer = boot.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=bpe_vocab, min_frequency=2, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), limit_alphabet=256)
    lines = [ln for ln in text.splitlines() if ln] * repeat
    bpe.train_from_iterator(lines, trainer=trainer)
    assert bpe.get_vocab_size() == bpe_vocab, bpe.get_vocab_size()
    model_dir = os.path.join(work, "bpe")
    os.makedirs(model_dir)
    bpe.model.save(model_dir)

    tok = Qwen2TokenizerFast(vocab_file=os.path.join(model_dir, "vocab.json"),
                             merges_file=os.path.join(model_dir, "merges.txt"))
    assert len(tok) == bpe_vocab + 1  # <|endoftext|>, added by Qwen2TokenizerFast.__init__
    add_qwen25_tokens(tok, bpe_vocab)
    assert len(tok) == bpe_vocab + len(QWEN25_ADDED)
    out = os.path.join(work, "tokenizer")
    tok.save_pretrained(out)
    keep = ("tokenizer.json", "vocab.json", "merges.txt")
    for f in os.listdir(out):
        if f not in keep:
            os.remove(os.path.join(out, f))
    # tokenizer_config.json: Qwen2.5's fields (tokenizer_config.json of the 7B repo) with the tiny ids.
    # The chat_template is left out: POINTS builds its prompt in construct_prompt / apply_chat_template.
    decoder = OrderedDict()
    for k, (content, special) in enumerate(QWEN25_ADDED):
        decoder[str(bpe_vocab + k)] = OrderedDict(content=content, lstrip=False, normalized=False, rstrip=False,
                                                  single_word=False, special=special)
    cfg = OrderedDict(add_bos_token=False, add_prefix_space=False, added_tokens_decoder=decoder,
                      additional_special_tokens=ADDITIONAL_SPECIAL, bos_token=None, clean_up_tokenization_spaces=False,
                      eos_token="<|im_end|>", errors="replace", model_max_length=131072, pad_token="<|endoftext|>",
                      split_special_tokens=False, tokenizer_class="Qwen2Tokenizer", unk_token=None)
    write_json(os.path.join(out, "tokenizer_config.json"), cfg)

    info = OrderedDict()
    info["files"] = "tokenizer.json, vocab.json, merges.txt (Qwen2TokenizerFast.save_pretrained), tokenizer_config.json"
    info["training"] = OrderedDict(
        library=f"tokenizers {tokenizers.__version__} BpeTrainer", vocab_size=bpe_vocab, min_frequency=2,
        initial_alphabet="pre_tokenizers.ByteLevel.alphabet() (all 256 byte symbols)", limit_alphabet=256,
        pre_tokenizer="Qwen2's (Split on Qwen2's regex, then ByteLevel without prefix space), NFC normalizer",
        text_lines=len(lines) // repeat, text_repeat=repeat,
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), text=text)
    info["added_tokens"] = OrderedDict((c, bpe_vocab + k) for k, (c, _s) in enumerate(QWEN25_ADDED))
    info["size"] = len(tok)
    info["chat_template"] = "none (POINTS builds the prompt itself, spec 5.1)"
    # The pipeline equals the one transformers builds from the shared Qwen2 vocabulary.
    ref = Qwen2TokenizerFast(vocab_file=os.path.join(qwen2_dir, "vocab.json"),
                             merges_file=os.path.join(qwen2_dir, "merges.txt"))
    info["pipeline_equals_qwen2"] = pipeline_json(ref) == pipeline_json(tok)
    assert info["pipeline_equals_qwen2"]
    info["pipeline"] = pipeline_json(tok)
    return out, info


# ------------------------------------------------------------------------------------------------
# Configs and weights
# ------------------------------------------------------------------------------------------------
def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=OrderedDict)


def tiny_config_dict(real: OrderedDict, vocab_size: int) -> OrderedDict:
    """The 7B config.json with the size fields replaced and the HF auto_map restored."""
    d = copy.deepcopy(real)
    d["auto_map"] = copy.deepcopy(HF_AUTO_MAP)
    llm, vis = d["llm_config"], d["vision_config"]
    llm["auto_map"] = copy.deepcopy(HF_LLM_AUTO_MAP)
    for k, v in LLM_SIZE.items():
        assert k in llm, k
        llm[k] = v
    llm["vocab_size"] = vocab_size
    for k, v in VISION_SIZE.items():
        assert k in vis, k
        vis[k] = v
    vis["hidden_size"] = LLM_SIZE["hidden_size"]
    for k, v in LLM_EXPECT.items():
        assert llm[k] == v, (k, llm[k], v)
    for k, v in VISION_EXPECT.items():
        assert vis[k] == v, (k, vis[k], v)
    d["torch_dtype"] = "float32"
    return d


def qwen2_llm_config(c: OrderedDict, bos: int, eos: int) -> OrderedDict:
    """Qwen2Config kwargs of the same LLM (spec 4.2 / 4.4 correspondence)."""
    return OrderedDict(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["ffn_hidden_size"],
        num_hidden_layers=c["num_layers"], num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_kv_heads"], hidden_act="silu", max_position_embeddings=c["max_position_embeddings"],
        initializer_range=c["initializer_range"], rms_norm_eps=c["layernorm_epsilon"], use_cache=True,
        tie_word_embeddings=False, rope_theta=c["rotary_emb_base"], use_sliding_window=False, sliding_window=None,
        max_window_layers=c["num_layers"], attention_dropout=0.0, bos_token_id=bos, eos_token_id=eos,
        architectures=["Qwen2ForCausalLM"], model_type="qwen2")


def randomize_(model: torch.nn.Module, seed: int, n_tokens: int, im_end_id: int) -> None:
    g = torch.Generator().manual_seed(seed)
    L, V = INIT["llm"], INIT["vision"]

    def randn(p):
        return torch.randn(p.shape, generator=g, dtype=torch.float32)

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("llm."):
                if name == "llm.lm.embed_in.weight":
                    p.copy_(L["embed_in_std"] * randn(p))
                elif name == "llm.embed_out.weight":
                    p.copy_(L["embed_out_std"] * randn(p))
                elif name.endswith("layernorm.weight") or name.endswith("final_layer_norm.weight"):
                    p.copy_(1.0 + L["norm_weight_std"] * randn(p))
                elif name.endswith(".bias"):
                    assert "query_dense" in name or "key_value_dense" in name, name
                    p.copy_(L["qkv_bias_std"] * randn(p))
                else:
                    assert name.endswith(".weight") and p.dim() == 2, name
                    p.copy_(L["linear_std"] * randn(p))
            else:
                assert name.startswith(("vision_encoder.", "vision_projector.")), name
                leaf = name.rsplit(".", 1)[-1]
                if leaf == "weight" and p.dim() == 1:
                    p.copy_(1.0 + V["layer_norm_weight_std"] * randn(p))
                elif leaf == "weight":
                    p.copy_(randn(p) / math.sqrt(p[0].numel()))
                else:
                    p.copy_(V["bias_std"] * randn(p))
        model.llm.lm.embed_in.weight[n_tokens:] = 0
        model.llm.embed_out.weight[n_tokens:] = 0
        # A longer <|im_end|> head row, so that some answers stop before max_new_tokens (the stop path).
        model.llm.embed_out.weight[im_end_id] *= L["im_end_row_scale"]
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())


def custom_to_qwen2(sd: "OrderedDict[str, torch.Tensor]", n_kv: int, hd: int) -> "OrderedDict[str, torch.Tensor]":
    """POINTS1.5 CustomLlama names -> 2025 Qwen2 names (spec 4.2 inverted): key_value_dense rows are,
    per kv head g, head_dim K rows then head_dim V rows; dense_h_to_4h = cat([up, gate])."""
    out = OrderedDict()
    for k, t in sd.items():
        if not k.startswith("llm."):
            out[k] = t
            continue
        if k == "llm.lm.embed_in.weight":
            out["llm.model.embed_tokens.weight"] = t
        elif k == "llm.lm.final_layer_norm.weight":
            out["llm.model.norm.weight"] = t
        elif k == "llm.embed_out.weight":
            out["llm.lm_head.weight"] = t
        else:
            p = k.replace("llm.lm.layers.", "llm.model.layers.")
            if ".attention.key_value_dense." in p:
                kind = p.rsplit(".", 1)[1]
                kv = t.reshape(n_kv, 2, hd, *t.shape[1:])
                out[p.replace("attention.key_value_dense.", "self_attn.k_proj.")] = \
                    kv[:, 0].reshape(n_kv * hd, *t.shape[1:]).contiguous()
                out[p.replace("attention.key_value_dense.", "self_attn.v_proj.")] = \
                    kv[:, 1].reshape(n_kv * hd, *t.shape[1:]).contiguous()
                assert kind in ("weight", "bias")
            elif ".mlp.dense_h_to_4h." in p:
                up, gate = t.chunk(2, dim=0)
                out[p.replace("mlp.dense_h_to_4h.", "mlp.gate_proj.")] = gate.contiguous()
                out[p.replace("mlp.dense_h_to_4h.", "mlp.up_proj.")] = up.contiguous()
            else:
                out[p.replace("attention.query_dense.", "self_attn.q_proj.")
                     .replace("attention.dense.", "self_attn.o_proj.")
                     .replace("mlp.dense_4h_to_h.", "mlp.down_proj.")] = t
    return out


# ------------------------------------------------------------------------------------------------
# Running the reference
# ------------------------------------------------------------------------------------------------
def messages_with_paths(msgs: list, images_dir: str) -> list:
    out = []
    for m in msgs:
        content = []
        for item in m["content"]:
            if item["type"] == "image":
                content.append(dict(type="image", image=os.path.join(images_dir, IMAGES[item["image"]])))
            else:
                content.append(dict(item))
        out.append(dict(role=m["role"], content=content))
    return out


def llm_parts(model, variant: str):
    if variant.startswith("custom_llama"):
        return model.llm.lm.layers, model.llm.lm.final_layer_norm
    return model.llm.model.layers, model.llm.model.norm


def run_request(model, variant: str, tokenizer, image_processor, messages: list, shims: Shims) -> OrderedDict:
    """What chat() does, step by step, plus the tensors along the way."""
    r = OrderedDict()
    prompt, images, image_grid_thws = model.construct_prompt(messages, image_processor)
    r["prompt"] = prompt
    r["pixel_values"] = np.array(images)
    r["image_grid_thw"] = np.concatenate(image_grid_thws, axis=0)
    shims.hit("no_cuda")
    pixel_values = torch.from_numpy(r["pixel_values"]).to(model.vision_encoder.device).to(model.vision_encoder.dtype)
    grid = torch.from_numpy(r["image_grid_thw"]).long()  # chat(): .cuda().long()
    with torch.no_grad():
        feats = model.vision_encoder(pixel_values, grid_thw=grid)
        if variant.startswith("qwen2"):  # the 2025 code casts to bf16 here (shim reader_projector_dtype)
            shims.hit("reader_projector_dtype")
            proj = model.vision_projector(feats.to(next(model.vision_projector.parameters()).dtype))
        else:
            proj = model.vision_projector(feats)
    r["vision_out"], r["projector_out"] = feats, proj
    model_inputs = tokenizer(prompt, return_tensors="pt")
    input_ids, attention_mask = model_inputs["input_ids"], model_inputs["attention_mask"]
    eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    image_token_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    generation_config = dict(GENERATION)
    generation_config.update({"eos_token_id": eos_token_id})
    r["input_ids"] = input_ids[0]

    captured = []

    def pre_hook(_m, _args, kwargs):
        if kwargs.get("inputs_embeds") is not None and not captured:
            captured.append(kwargs["inputs_embeds"].detach().clone())

    h = model.llm.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        with torch.no_grad():
            outputs = model.generate(input_ids=input_ids, image_grid_thws=grid, attention_mask=attention_mask,
                                     image_features=[proj], image_token_id=image_token_id, **generation_config)
    finally:
        h.remove()
    r["response"] = tokenizer.batch_decode(outputs, skip_special_tokens=True)[0]
    r["answer_ids"] = outputs[0]
    assert len(captured) == 1 and captured[0].shape[:2] == input_ids.shape
    embeds = captured[0]
    r["input_embeds"] = embeds[0]

    # The same call again, asking generate() for its raw logits at every step (cached decoding).
    with torch.no_grad():
        g2 = model.generate(input_ids=input_ids, image_grid_thws=grid, attention_mask=attention_mask,
                            image_features=[proj], image_token_id=image_token_id, output_logits=True,
                            return_dict_in_generate=True, **generation_config)
    assert torch.equal(g2.sequences, outputs), (g2.sequences, outputs)
    r["answer_logits"] = torch.cat(g2.logits, 0)
    assert r["answer_logits"].shape[0] == outputs.shape[1]
    top = torch.topk(r["answer_logits"].float(), 2, dim=-1).values
    r["answer_margin"] = top[:, 0] - top[:, 1]
    r["margin_over_std"] = float((r["answer_margin"] / r["answer_logits"].float().std(-1)).min())
    assert torch.equal(r["answer_logits"].argmax(-1), outputs[0])

    # One full forward of the spliced prompt (all positions), with every layer's output.
    layers, final_norm = llm_parts(model, variant)
    cap = OrderedDict()
    hs = []
    for i, layer in enumerate(layers):
        hs.append(layer.register_forward_hook(
            lambda _m, _a, out, i=i: cap.__setitem__(f"layer.{i}", out[0].detach().clone())))
    hs.append(final_norm.register_forward_hook(lambda _m, _a, out: cap.__setitem__("final_norm", out.detach().clone())))
    try:
        with torch.no_grad():
            logits = model.llm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits
    finally:
        for x in hs:
            x.remove()
    r["logits"] = logits[0]
    for k, v in cap.items():
        r[k] = v[0]
    # Teacher-forced: the prompt + the answer (all but its last id) in one forward, no cache.
    n = outputs.shape[1]
    with torch.no_grad():
        tail = model.llm.get_input_embeddings()(outputs[:, :-1])
        full = model.llm(inputs_embeds=torch.cat([embeds, tail], 1),
                         attention_mask=torch.ones(1, embeds.shape[1] + n - 1, dtype=torch.long),
                         use_cache=False).logits[0, embeds.shape[1] - 1:]
    r["teacher_forced_logits"] = full
    r["eos_token_id"], r["image_token_id"] = eos_token_id, image_token_id
    return r


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def save_tensors(path: str, tensors: "OrderedDict[str, torch.Tensor]") -> None:
    """Float tensors stored F32 (bf16 widened exactly); integer tensors as given (I32 ids, I64 hashes)."""
    out = OrderedDict()
    for k, v in tensors.items():
        v = v.detach()
        if v.is_floating_point() and v.dtype != torch.float32:
            v = v.float()
        assert v.dtype in _DTYPE_NAME, (k, v.dtype)
        out[k] = v.contiguous()
    safetensors.torch.save_file(dict(out), path, metadata={"generator": GENERATOR})


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.double() - b.double()).abs().max())


def nmse(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.double(), ref.double()
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())


def fnv1a64(data: bytes) -> str:
    """FNV-1a 64 of the bytes, 16 hex digits (the image goldens' hash)."""
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & U64
    return f"{h:016x}"


def fnv1a64_rows(a: np.ndarray) -> np.ndarray:
    """FNV-1a 64 of each row's bytes (little-endian), as int64 (the uint64 bits)."""
    rows = np.ascontiguousarray(a).view(np.uint8).reshape(a.shape[0], -1)
    h = np.full(rows.shape[0], FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h = (h ^ rows[:, j].astype(np.uint64)) * np.uint64(FNV_PRIME)
    return h.view(np.int64)


def prepare_checkpoint_dir(d: str, tok_dir: str, preprocessor: OrderedDict) -> None:
    for f in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tok_dir, f), os.path.join(d, f))
    write_json(os.path.join(d, "preprocessor_config.json"), preprocessor)


def load_checked(cls, d: str, dtype: torch.dtype, expect: "OrderedDict[str, torch.Tensor]"):
    model, info = cls.from_pretrained(d, torch_dtype=dtype, output_loading_info=True)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info[k], (d, k, info[k])
    model.eval()
    sd = model.state_dict()
    assert sorted(sd) == sorted(expect), (d, sorted(set(sd) ^ set(expect)))
    for k, v in expect.items():
        assert torch.equal(sd[k].float(), v.float()), (d, k)
    return model


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
VARIANTS = OrderedDict([
    ("custom_llama_f32", OrderedDict(dir="custom_llama_f32", dtype="float32", file="outputs.safetensors",
                                     model="POINTSV15ChatModel (Dec 2024, CustomLlamaForCausalLM)")),
    ("qwen2_f32", OrderedDict(dir="qwen2_f32", dtype="float32", file="outputs_qwen2_f32.safetensors",
                              model="POINTSV15ChatModel (2025, Qwen2ForCausalLM)")),
    ("custom_llama_bf16", OrderedDict(dir="custom_llama_bf16", dtype="bfloat16",
                                      file="outputs_custom_llama_bf16.safetensors",
                                      model="POINTSV15ChatModel (Dec 2024, CustomLlamaForCausalLM)")),
])

TENSOR_DOCS = OrderedDict([
    ("{req}", "one_image | two_images | multi_turn (manifest requests)"),
    ("{V}", "custom_llama_f32 | qwen2_f32 | custom_llama_bf16: the checkpoint directory of that name, run by the "
            "reference class of its naming"),
    ("{img}.image_grid_thw", "images.safetensors: I32 [1, 3] (t, h, w) in patches of image img (A, B)"),
    ("{img}.pixel_values_row_fnv1a64", "images.safetensors: I64 [N]: FNV-1a 64 (uint64 bits) of the 1176 little-endian "
                                       "F32 values of each pixel_values row, as Qwen2ImageProcessorForPOINTSV15("
                                       "images=PIL RGB) returns them (spec 1.5 order); the whole array's FNV-1a 64 "
                                       "and sha256 are in the manifest"),
    ("{img}.sample_index", "images.safetensors: I32 [4096]: sorted flat indices into pixel_values [N * 1176]"),
    ("{img}.sample_value", "images.safetensors: F32 [4096]: pixel_values at sample_index"),
    ("{req}.input_ids", "outputs.safetensors: I32 [L]: tokenizer(prompt) ids (the same for every variant)"),
    ("{req}.image_grid_thw", "outputs.safetensors: I32 [n_images, 3], in prompt order; the request's pixel_values "
                             "are the listed images' pixel_values concatenated"),
    ("{V}.{req}.vision_out", "F32 [sum N, embed_dim]: vision_encoder(pixel_values, grid_thw) (no merger)"),
    ("{V}.{req}.projector_out", "F32 [sum N / 4, hidden]: vision_projector(vision_out) (PatchMerger)"),
    ("{V}.{req}.input_embeds", "F32 [L, hidden]: the embeddings generate() hands to llm.generate: embed(input_ids) "
                               "with the <|image_pad|> runs replaced by projector_out rows in order"),
    ("{V}.{req}.layer.{i}", "F32 [L, hidden]: output of decoder layer i on input_embeds (one full forward, no cache)"),
    ("{V}.{req}.final_norm", "F32 [L, hidden]: the final RMSNorm output"),
    ("{V}.{req}.logits", "F32 [L, vocab]: logits of every prompt position (same forward)"),
    ("{V}.{req}.answer_ids", "I32 [n]: the greedy answer: llm.generate's new ids (n <= 32; ends with <|im_end|> "
                             "when it stopped on it)"),
    ("{V}.{req}.answer_logits", "F32 [n, vocab]: generate()'s raw logits at each step (output_logits; step 0 = the "
                                "prompt's last position, then cached decoding of each answer id)"),
    ("{V}.{req}.answer_margin", "F32 [n]: top1 - top2 of answer_logits per step"),
])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-dir", help="directory holding the reference files as <owner>/<repo>/<path in repo> "
                                            "(see --list-references)")
    ap.add_argument("--ref", action="append", default=[], metavar="KEY=PATH",
                    help="one reference file by key, overriding --reference-dir (repeatable)")
    ap.add_argument("--list-references", action="store_true", help="print key, origin, sha256 and URL of each "
                                                                   "reference file, then exit")
    ap.add_argument("--fetch-list", action="store_true", help="print '<raw URL>\\t<path under --reference-dir>' "
                                                              "per reference file, then exit")
    ap.add_argument("--images", default=DEFAULT_IMAGES, help="the shared images directory (../shared/data/images)")
    ap.add_argument("--qwen2-tokenizer", default=DEFAULT_QWEN2_TOKENIZER,
                    help="the shared Qwen2 vocab.json + merges.txt (../shared/data/qwen2-tokenizer), for the "
                         "tokenizer pipeline check")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (tests/golden/points15)")
    args = ap.parse_args()

    if args.list_references:
        for k, e in REFERENCES.items():
            print(f"{k}\n  {e['repo']}@{e['commit']}:{e['path']}\n  sha256 {e['sha256']}\n  {ref_url(e)}\n"
                  f"  -> <reference-dir>/{ref_layout(e)}")
        return 0
    if args.fetch_list:
        for e in REFERENCES.values():
            print(f"{ref_url(e)}\t{ref_layout(e)}")
        return 0
    paths = resolve_references(args.reference_dir, args.ref)
    args.ref_paths = paths
    for name in IMAGES.values():
        if not os.path.isfile(os.path.join(args.images, name)):
            raise SystemExit(f"error: missing image {os.path.join(args.images, name)}")

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()

    shims = Shims()
    ref = load_reference(paths, VISION_SIZE["embed_dim"], shims)

    work = tempfile.mkdtemp(prefix="points15_goldens_")
    try:
        return generate(args, paths, ref, shims, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def generate(args, paths, ref, shims: Shims, work: str) -> int:
    manifest = OrderedDict()
    manifest["generator"] = GENERATOR
    manifest["regenerate"] = f".venv/bin/python {GENERATOR} --reference-dir REFS"
    manifest["versions"] = OrderedDict(
        python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
        tokenizers=tokenizers.__version__, pillow=PIL.__version__, numpy=np.__version__,
        safetensors=safetensors.__version__)
    manifest["settings"] = OrderedDict(
        device="cpu", torch_num_threads=1, deterministic_algorithms=True, vision_attn_implementation=VISION_ATTN,
        llm_attention="CustomLlama: its own eager path (baddbmm, causal mask of finfo.min, softmax in the activation "
                      "dtype); Qwen2: transformers' eager Qwen2Attention",
        generation=OrderedDict(GENERATION, eos_token_id="<|im_end|> (added by chat())", do_sample=False,
                               note="the WePOINTS README's generation_config with max_new_tokens 32; do_sample is "
                                    "False from the LLM's generation config, so temperature / top_p are ignored: "
                                    "greedy, stop on <|im_end|> (included in the answer ids)"),
        layout="[tokens, features]: HF's [1, L, d] without the batch dim; float outputs stored F32 (bf16 results "
               "widened exactly), ids I32")
    manifest["references"] = OrderedDict(
        (k, OrderedDict(origin=f"{e['repo']}@{e['commit']}:{e['path']}", sha256=e["sha256"],
                        bytes=os.path.getsize(paths[k]), layout=ref_layout(e), url=ref_url(e), role=e["role"]))
        for k, e in REFERENCES.items())

    # Tokenizer.
    tok_dir, tok_info = build_tokenizer(work, args.qwen2_tokenizer)
    n_tokens = tok_info["size"]
    vocab_size = -(-n_tokens // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    tok_info["llm_vocab_size"] = vocab_size

    # Configs.
    real = read_json(paths["hf_config_json"])
    cfg_dict = tiny_config_dict(real, vocab_size)
    real_pre = read_json(paths["hf_preprocessor_config"])
    preprocessor = copy.deepcopy(real_pre)
    preprocessor["min_pixels"], preprocessor["max_pixels"] = MIN_PIXELS, MAX_PIXELS
    preprocessor["size"] = OrderedDict(max_pixels=MAX_PIXELS, min_pixels=MIN_PIXELS, longest_edge=MAX_PIXELS,
                                       shortest_edge=MIN_PIXELS)
    bos_id, eos_id = BPE_VOCAB, BPE_VOCAB + 2  # <|endoftext|>, <|im_end|>

    requests = requests_spec()
    out = args.out
    os.makedirs(out, exist_ok=True)
    foreign = sorted(set(os.listdir(out)) - set(OUTPUT_ENTRIES))
    if foreign:  # never delete what this script did not write (e.g. --out tests/golden by mistake)
        raise SystemExit(f"error: {out} holds entries this script does not write: {', '.join(foreign[:5])}; "
                         "pass an empty directory or tests/golden/points15")

    tried = []
    for seed in SEED_CANDIDATES:
        result = build_and_run(args, ref, shims, cfg_dict, preprocessor, tok_dir, n_tokens, seed, bos_id, eos_id,
                               requests, out)
        tried.append(OrderedDict(seed=seed, f32_min_margin_over_std=result["min_margin_over_std"],
                                 bf16_min_margin=result["bf16_min_margin"],
                                 f32_answers_stopped_on_im_end=result["n_stopped_f32"],
                                 f32_answers_of_max_new_tokens=result["n_full_f32"],
                                 f32_shortest_stopped_answer=result["min_stop_len_f32"]))
        if (result["min_margin_over_std"] >= MIN_MARGIN_OVER_STD and result["bf16_min_margin"] > 0 and
                result["n_stopped_f32"] >= 1 and result["n_full_f32"] >= 1 and
                result["min_stop_len_f32"] >= MIN_STOPPED_ANSWER):
            break
        print(f"seed {seed}: f32 min greedy margin / std {result['min_margin_over_std']:.3g}, bf16 min margin "
              f"{result['bf16_min_margin']:.3g}, {result['n_stopped_f32']} f32 answers stop on <|im_end|>: "
              "trying the next seed")
    else:
        raise RuntimeError(f"no weight seed passes the greedy margin check: {tried}")

    for name, n in shims.calls.items():
        assert n > 0, f"shim {name} never applied"
    manifest["loading"] = ref.loading
    manifest["shims"] = shims.records
    manifest["tokenizer"] = tok_info
    manifest["configs"] = result["configs"]
    manifest["init"] = OrderedDict(INIT, seed=seed, seeds_tried=tried,
                                   seed_rule=f"the first of {SEED_CANDIDATES[0]}.. whose f32 greedy answers have "
                                             f"top1 - top2 >= {MIN_MARGIN_OVER_STD} * std(step logits) at every step, "
                                             "in both namings, whose bf16 answers have no exact tie, and of whose "
                                             "f32 answers at least one stops on <|im_end|> after at least "
                                             f"{MIN_STOPPED_ANSWER} tokens (none sooner) and at least one runs to "
                                             "max_new_tokens")
    manifest["images"] = result["images"]
    manifest["requests"] = result["requests"]
    manifest["checks"] = result["checks"]
    manifest["tensors"] = TENSOR_DOCS
    files = OrderedDict()
    for root, _dirs, fs in sorted(os.walk(out)):
        for f in sorted(fs):
            p = os.path.join(root, f)
            rel = os.path.relpath(p, out).replace(os.sep, "/")
            files[rel] = file_entry(p)
    for rel, e in files.items():
        if e["bytes"] >= MAX_FILE_BYTES:
            print(f"error: {rel} is {e['bytes']} bytes, over the 2 MB limit", file=sys.stderr)
            return 1
    manifest["files"] = OrderedDict(sorted(files.items()))
    path = os.path.join(out, "manifest.json")
    write_json(path, manifest)
    for rel, e in files.items():
        print(f"wrote {rel} ({e['bytes']} bytes)")
    print(f"wrote {os.path.relpath(path, REPO)}")
    return 0


def build_and_run(args, ref, shims, cfg_dict, preprocessor, tok_dir, n_tokens, seed, bos_id, eos_id, requests, out):
    clear_outputs(out)
    res = OrderedDict()
    configs = OrderedDict()

    # --- the POINTS1.5 (Dec 2024) model, random weights, saved f32 (sharded) and bf16 --------------
    config = ref.CustomConfig(**copy.deepcopy(cfg_dict))
    model = ref.CustomModel(config).eval()
    randomize_(model, seed, n_tokens, eos_id)
    custom_sd = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    d_f32 = os.path.join(out, VARIANTS["custom_llama_f32"]["dir"])
    model.save_pretrained(d_f32, safe_serialization=True, max_shard_size=F32_SHARD_BYTES)
    d_bf16 = os.path.join(out, VARIANTS["custom_llama_bf16"]["dir"])
    model.to(torch.bfloat16).save_pretrained(d_bf16, safe_serialization=True)  # (not used afterwards)
    for d in (d_f32, d_bf16):
        prepare_checkpoint_dir(d, tok_dir, preprocessor)

    # --- the same weights under the 2025 Qwen2 names ----------------------------------------------
    llm_cfg = cfg_dict["llm_config"]
    n_kv, hd = llm_cfg["num_kv_heads"], llm_cfg["hidden_size"] // llm_cfg["num_attention_heads"]
    q_dict = OrderedDict(architectures=["POINTSV15ChatModel"], auto_map=copy.deepcopy(HF_AUTO_MAP),
                         llm_config=qwen2_llm_config(llm_cfg, bos_id, eos_id),
                         vision_config=copy.deepcopy(cfg_dict["vision_config"]), tie_word_embeddings=False,
                         torch_dtype="float32")
    qconfig = ref.ReaderConfig(**copy.deepcopy(q_dict))
    qmodel = ref.ReaderModel(qconfig).float().eval()
    qwen2_sd = custom_to_qwen2(custom_sd, n_kv, hd)
    qmodel.load_state_dict(qwen2_sd, strict=True)
    d_q = os.path.join(out, VARIANTS["qwen2_f32"]["dir"])
    qmodel.save_pretrained(d_q, safe_serialization=True)
    prepare_checkpoint_dir(d_q, tok_dir, preprocessor)
    del model, qmodel

    checks = OrderedDict()
    # Round trip through the house converter (make_config_goldens.to_custom_llama, Qwen2 -> CustomLlama).
    hf_names = OrderedDict((k[len("llm."):], v) for k, v in qwen2_sd.items() if k.startswith("llm."))
    back = make_config_goldens.to_custom_llama(hf_names, n_kv, hd)
    assert sorted(back) == sorted(k for k in custom_sd if k.startswith("llm.")), sorted(back)
    for k, v in back.items():
        assert torch.equal(v, custom_sd[k]), k
    checks["qwen2_names_to_custom_llama_round_trip_exact"] = True

    for v, spec in VARIANTS.items():
        configs[v] = read_json(os.path.join(out, spec["dir"], "config.json"))
    configs["preprocessor_config"] = preprocessor
    configs["generation_config"] = read_json(os.path.join(d_f32, "generation_config.json"))
    configs["generation_config_equals_7b_file"] = configs["generation_config"] == read_json(
        args.ref_paths["hf_generation_config"])
    res["configs"] = configs

    # --- load every checkpoint through the reference classes --------------------------------------
    bf16_sd = OrderedDict((k, t.to(torch.bfloat16)) for k, t in custom_sd.items())
    models = OrderedDict(
        custom_llama_f32=load_checked(ref.CustomModel, d_f32, torch.float32, custom_sd),
        qwen2_f32=None,
        custom_llama_bf16=load_checked(ref.CustomModel, d_bf16, torch.bfloat16, bf16_sd))
    qm, qinfo = ref.ReaderModel.from_pretrained(d_q, torch_dtype=torch.float32, output_loading_info=True)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not qinfo[k], (k, qinfo[k])
    # from_pretrained assigns the checkpoint's f32 tensors to the parameters (param-buffer assignment),
    # so the projector the 2025 __init__ cast to bf16 comes back f32.
    assert all(p.dtype == torch.float32 for p in qm.parameters())
    qm.eval()
    qsd = qm.state_dict()
    assert sorted(qsd) == sorted(qwen2_sd)
    for k, t in qwen2_sd.items():
        assert torch.equal(qsd[k], t), k
    assert qm.llm.lm_head.weight is not qm.llm.model.embed_tokens.weight
    models["qwen2_f32"] = qm
    # Without the top-level tie_word_embeddings false, from_pretrained ties the head (shim tie_word_embeddings).
    tcfg = ref.ReaderConfig.from_pretrained(d_q)
    tcfg.tie_word_embeddings = True
    tm = ref.ReaderModel.from_pretrained(d_q, config=tcfg, torch_dtype=torch.float32)
    shims.hit("tie_word_embeddings")
    checks["qwen2_top_level_tie_word_embeddings_true_ties_lm_head"] = bool(
        tm.llm.lm_head.weight.data_ptr() == tm.llm.model.embed_tokens.weight.data_ptr())
    del tm

    tokenizer = AutoTokenizer.from_pretrained(d_f32)
    assert isinstance(tokenizer, Qwen2TokenizerFast) and len(tokenizer) == n_tokens, type(tokenizer)
    image_processor = ref.ImageProcessor.from_pretrained(d_f32)
    assert (image_processor.min_pixels, image_processor.max_pixels) == (MIN_PIXELS, MAX_PIXELS)
    checks["tokenizer_class"] = type(tokenizer).__name__
    checks["image_processor_class"] = type(image_processor).__name__

    # --- images -------------------------------------------------------------------------------------
    images = OrderedDict()
    pix = OrderedDict()  # full pixel_values, kept in memory for the checks only
    hashed = OrderedDict()
    hf_proc = Qwen2VLImageProcessor.from_pretrained(d_f32)  # what POINTS-Reader's inference.py loads
    for key, name in IMAGES.items():
        p = os.path.join(args.images, name)
        rgb = Image.open(p).convert("RGB")
        data = image_processor(images=rgb)
        data_hf = hf_proc(images=rgb)
        grid = [int(x) for x in data["image_grid_thw"][0]]
        pv = np.asarray(data["pixel_values"])
        assert pv.dtype == np.float32 and pv.shape[1] == 1176
        e = OrderedDict(file=f"../shared/data/images/{name}", file_sha256=sha256_file(p),
                        size_hw=[rgb.height, rgb.width], decoded_fnv1a64=fnv1a64(rgb.tobytes()),
                        decoded_rgb_sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
                        resized_hw=[grid[1] * 14, grid[2] * 14], image_grid_thw=grid,
                        n_patches=int(data["pixel_values"].shape[0]), n_llm_tokens=grid[1] * grid[2] // 4,
                        transformers_processor_equal=bool(np.array_equal(data["pixel_values"], data_hf["pixel_values"])
                                                          and np.array_equal(data["image_grid_thw"],
                                                                             data_hf["image_grid_thw"])))
        assert e["transformers_processor_equal"]
        e["pixel_values_fnv1a64"] = fnv1a64(pv.tobytes())
        e["pixel_values_sha256"] = hashlib.sha256(pv.tobytes()).hexdigest()
        e["sample_seed"] = SAMPLE_SEEDS[key]
        images[key] = e
        pix[f"{key}.pixel_values"] = torch.from_numpy(pv)
        pix[f"{key}.image_grid_thw"] = torch.from_numpy(data["image_grid_thw"])
        idx = np.sort(np.random.default_rng(SAMPLE_SEEDS[key]).choice(pv.size, size=N_SAMPLES, replace=False))
        hashed[f"{key}.image_grid_thw"] = pix[f"{key}.image_grid_thw"].to(torch.int32)
        hashed[f"{key}.pixel_values_row_fnv1a64"] = torch.from_numpy(fnv1a64_rows(pv))
        hashed[f"{key}.sample_index"] = torch.from_numpy(idx.astype(np.int32))
        hashed[f"{key}.sample_value"] = torch.from_numpy(pv.reshape(-1)[idx])
    save_tensors(os.path.join(out, "images.safetensors"), hashed)
    res["images"] = images

    # --- requests -------------------------------------------------------------------------------------
    shared = OrderedDict()
    per_variant = OrderedDict((v, OrderedDict()) for v in VARIANTS)
    req_info = OrderedDict()
    results = OrderedDict()
    min_ratio, bf16_min_margin = float("inf"), float("inf")
    n_stopped, n_full, min_stop_len = 0, 0, GENERATION["max_new_tokens"]
    for req, msgs in requests.items():
        messages = messages_with_paths(msgs, args.images)
        results[req] = OrderedDict()
        for v, m in models.items():
            results[req][v] = run_request(m, v, tokenizer, image_processor, messages, shims)
        base = results[req]["custom_llama_f32"]
        img_keys = [item["image"] for msg in msgs for item in msg["content"] if item["type"] == "image"]
        exp_pix = torch.cat([pix[f"{k}.pixel_values"] for k in img_keys])
        for v, r in results[req].items():
            assert r["prompt"] == base["prompt"]
            assert torch.equal(r["input_ids"], base["input_ids"])
            assert np.array_equal(r["pixel_values"], exp_pix.numpy()), (req, v)
            assert np.array_equal(r["image_grid_thw"], base["image_grid_thw"])
        shared[f"{req}.input_ids"] = base["input_ids"].to(torch.int32)
        shared[f"{req}.image_grid_thw"] = torch.from_numpy(base["image_grid_thw"]).to(torch.int32)
        info = OrderedDict()
        info["messages"] = msgs
        info["images"] = img_keys
        info["prompt"] = base["prompt"]
        info["n_prompt_tokens"] = int(base["input_ids"].numel())
        ids = base["input_ids"]
        info["image_pad_runs"] = [[int(s), int(e)] for s, e in _runs(ids, base["image_token_id"])]
        info["answers"] = OrderedDict()
        for v, r in results[req].items():
            a = [int(x) for x in r["answer_ids"]]
            info["answers"][v] = OrderedDict(
                ids=a, n_new=len(a), stopped_on_im_end=bool(a and a[-1] == r["eos_token_id"]),
                text=r["response"], min_margin=float(r["answer_margin"].min()),
                min_margin_over_step_logits_std=r["margin_over_std"])
            for k in ("vision_out", "projector_out", "input_embeds", "logits", "answer_ids", "answer_logits",
                      "answer_margin") + tuple(f"layer.{i}" for i in range(LLM_SIZE["num_layers"])) + ("final_norm",):
                per_variant[v][f"{v}.{req}.{k}"] = r[k].to(torch.int32) if k == "answer_ids" else r[k]
            if v == "custom_llama_f32":
                if info["answers"][v]["stopped_on_im_end"]:
                    n_stopped += 1
                    min_stop_len = min(min_stop_len, len(a))
                else:
                    n_full += 1
            if v != "custom_llama_bf16":
                min_ratio = min(min_ratio, r["margin_over_std"])
            else:
                bf16_min_margin = min(bf16_min_margin, float(r["answer_margin"].min()))
        # Cross-checks.
        c = OrderedDict()
        q = results[req]["qwen2_f32"]
        for k in ("vision_out", "projector_out", "input_embeds", "layer.0", "layer.1", "final_norm", "logits"):
            c[f"qwen2_vs_custom_llama_f32_{k}_max_abs_diff"] = max_abs(q[k], base[k])
        c["qwen2_vs_custom_llama_f32_logits_max_abs"] = float(base["logits"].abs().max())
        c["qwen2_vs_custom_llama_f32_answer_ids_equal"] = bool(torch.equal(q["answer_ids"], base["answer_ids"]))
        if torch.equal(q["answer_ids"], base["answer_ids"]):
            c["qwen2_vs_custom_llama_f32_answer_logits_max_abs_diff"] = max_abs(q["answer_logits"],
                                                                               base["answer_logits"])
        for v in ("custom_llama_f32", "qwen2_f32", "custom_llama_bf16"):
            r = results[req][v]
            c[f"{v}_prompt_last_logits_vs_generate_step0_max_abs_diff"] = max_abs(r["logits"][-1],
                                                                                 r["answer_logits"][0])
            c[f"{v}_teacher_forced_vs_cached_answer_logits_max_abs_diff"] = max_abs(r["teacher_forced_logits"],
                                                                                   r["answer_logits"])
            c[f"{v}_teacher_forced_argmax_equals_answer"] = bool(
                torch.equal(r["teacher_forced_logits"].argmax(-1), r["answer_ids"]))
        b = results[req]["custom_llama_bf16"]
        for k in ("vision_out", "projector_out", "input_embeds", "final_norm", "logits"):
            c[f"bf16_vs_f32_{k}_nmse"] = nmse(b[k].float(), base[k])
        c["bf16_vs_f32_prompt_logits_argmax_agreement"] = float(
            (b["logits"].float().argmax(-1) == base["logits"].argmax(-1)).float().mean())
        n_same = 0
        for x, y in zip(b["answer_ids"].tolist(), base["answer_ids"].tolist()):
            if x != y:
                break
            n_same += 1
        c["bf16_vs_f32_answer_common_prefix"] = n_same
        info["checks"] = c
        req_info[req] = info
    res["min_margin_over_std"], res["bf16_min_margin"] = min_ratio, bf16_min_margin
    res["n_stopped_f32"], res["n_full_f32"], res["min_stop_len_f32"] = n_stopped, n_full, min_stop_len

    # Vision eager vs sdpa (f32), on request two_images' packed input.
    vm = models["custom_llama_f32"].vision_encoder
    sd_vm = ref.navit_from_config_unshimmed(copy.deepcopy(vm.config), "sdpa").eval()
    sd_vm.load_state_dict(vm.state_dict())
    with torch.no_grad():
        p2 = torch.cat([pix["A.pixel_values"], pix["B.pixel_values"]])
        g2 = torch.cat([pix["A.image_grid_thw"], pix["B.image_grid_thw"]]).long()
        checks["vision_eager_vs_sdpa_two_images_max_abs_diff"] = max_abs(sd_vm(p2, grid_thw=g2), vm(p2, grid_thw=g2))
        alone = torch.cat([vm(pix["A.pixel_values"], grid_thw=pix["A.image_grid_thw"].long()),
                           vm(pix["B.pixel_values"], grid_thw=pix["B.image_grid_thw"].long())])
        checks["vision_packed_vs_each_image_alone_max_abs_diff"] = max_abs(vm(p2, grid_thw=g2), alone)
    checks["tokenizer_round_trip"] = all(
        tokenizer.decode(results[r]["custom_llama_f32"]["input_ids"]) == req_info[r]["prompt"] for r in requests)
    res["checks"] = checks
    res["requests"] = req_info

    save_tensors(os.path.join(out, VARIANTS["custom_llama_f32"]["file"]),
                 OrderedDict(list(shared.items()) + list(per_variant["custom_llama_f32"].items())))
    for v in ("qwen2_f32", "custom_llama_bf16"):
        save_tensors(os.path.join(out, VARIANTS[v]["file"]), per_variant[v])
    return res


OUTPUT_ENTRIES = [v["dir"] for v in VARIANTS.values()] + [v["file"] for v in VARIANTS.values()] + [
    "images.safetensors", "manifest.json"]


def clear_outputs(out: str) -> None:
    for name in OUTPUT_ENTRIES:
        p = os.path.join(out, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)


def _runs(ids: torch.Tensor, tok: int) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, x in enumerate(ids.tolist() + [None]):
        if x == tok and start is None:
            start = i
        elif x != tok and start is not None:
            runs.append((start, i))
            start = None
    return runs


if __name__ == "__main__":
    sys.exit(main())
