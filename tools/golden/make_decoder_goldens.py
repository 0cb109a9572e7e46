# SPDX-License-Identifier: Apache-2.0
"""Golden data for tessera's Qwen2.5 decoder (the LLM of POINTS1.5, spec sections 4 and 4.2).

Runs transformers 4.46.3 `Qwen2ForCausalLM` (attn_implementation "eager") on two tiny random configs
and writes, per config NAME (decoder_tied, decoder_untied), under <out> (tests/golden):

  NAME/                          config.json + generation_config.json + model.safetensors, written by
                                 model.to(torch.bfloat16).save_pretrained (HF names; no lm_head.weight
                                 when tied; config.json says torch_dtype bfloat16).
  NAME_custom_llama.safetensors  the same bf16 tensors under POINTS1.5's CustomLlama names (spec 4.2,
                                 converted by make_config_goldens.to_custom_llama: key_value_dense =
                                 stack over kv heads g of [k rows of g; v rows of g], dense_h_to_4h =
                                 cat([up, gate]); no llm.embed_out.weight when tied). A CustomLlama-style
                                 forward of layer 0 on the converted tensors is checked against HF's
                                 k_proj / v_proj / MLP outputs before anything is written.
  NAME_outputs.safetensors       prompt ids, decode ids, and for precision P in {f32, bf16}:
                                 P.embed, P.layer.{i}, P.final_norm, P.logits (prompt), P.decode_logits
                                 (prompt in a DynamicCache, then one decode id at a time), P.logits2 (a
                                 second prompt alone); f32.greedy_ids / f32.greedy_margin (64 greedy
                                 steps, cross-checked against model.generate).
  decoder_manifest.json          versions, settings, per config: the Qwen2Config kwargs, seeds, init
                                 stds, greedy margins, sanity checks; per file bytes, sha256 and every
                                 tensor's dtype and shape.

Weights: every parameter random (not HF's zero biases / unit norm weights), then rounded to bfloat16
values, so the float32 model holds exactly the checkpoint's values (the C++ f32 path widens the bf16
checkpoint exactly). f32 = that float32 model; bf16 = Qwen2ForCausalLM.from_pretrained(NAME,
torch_dtype=torch.bfloat16), i.e. model.to(torch.bfloat16) with the rotary inv_freq buffers left
float32 (a plain .to(bfloat16) would round inv_freq too; the manifest records how much that changes).

Layouts are tessera's: [tokens, features] (HF's [1, L, d] with the batch dim removed). Every float
output is stored as float32 (bf16 results widened exactly).

Regenerate only on purpose; CI never runs this. The output is deterministic (CPU, one thread,
deterministic algorithms, torch.manual_seed per config): run it twice, compare sha256 sums.

    .venv/bin/python tools/golden/make_decoder_goldens.py [--out tests/golden]
"""
from __future__ import annotations

import argparse
import copy
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
import torch.nn.functional as F
import transformers
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAX_FILE_BYTES = 2_000_000  # every golden file under 2 MB
GENERATOR = "tools/golden/make_decoder_goldens.py"

# The HF -> CustomLlama conversion (spec section 4.2) shared with the config fixtures.
sys.path.insert(0, HERE)
from make_config_goldens import hf_to_custom_llama_names, to_custom_llama  # noqa: E402

_DTYPE_NAME = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int32: "I32"}

COMMON = OrderedDict(vocab_size=320, hidden_size=256, num_hidden_layers=2, hidden_act="silu",
                     max_position_embeddings=2048, use_sliding_window=False, torch_dtype="bfloat16",
                     architectures=["Qwen2ForCausalLM"])
CONFIGS = OrderedDict(
    decoder_tied=OrderedDict(
        seed=8001,
        qwen2=OrderedDict(COMMON, num_attention_heads=4, num_key_value_heads=2, intermediate_size=320,
                          tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6)),
    decoder_untied=OrderedDict(
        seed=8002,
        qwen2=OrderedDict(COMMON, num_attention_heads=2, num_key_value_heads=1, intermediate_size=224,
                          tie_word_embeddings=False, rope_theta=1e4, rms_norm_eps=1e-5)),
)
# Parameter init (then rounded to bf16): see randomize_().
INIT = OrderedDict(embed_std=0.25, lm_head_std=0.25, linear_std=0.08, qkv_bias_std=0.1, norm_weight_std=0.1)
N_PROMPT, N_PROMPT2, N_DECODE, N_GREEDY = 24, 17, 8, 64
# prompt_ids are drawn with torch.Generator().manual_seed(s) for the first s of seed * 100 + k,
# k = 1, 2, ..., 20, whose f32 greedy run passes the margin check; prompt2_ids / decode_ids use seed + 200.
PROMPT_SEED_KS = list(range(1, 21))
MIN_MARGIN_OVER_STD = 1e-3  # every greedy step: top1 - top2 >= 1e-3 * std(that step's logits)


def randomize_(model: Qwen2ForCausalLM) -> None:
    """Every parameter random, drawn from the global generator (torch.manual_seed(config seed)) in
    named_parameters order: embed_tokens N(0, embed_std^2), an untied lm_head N(0, lm_head_std^2),
    other matrices N(0, linear_std^2), q/k/v biases N(0, qkv_bias_std^2), RMSNorm weights
    1 + N(0, norm_weight_std^2). Then every value is rounded to bfloat16 (kept in float32)."""
    with torch.no_grad():
        for name, p in model.named_parameters():  # a tied lm_head is the embedding (listed once)
            if name == "model.embed_tokens.weight":
                p.copy_(INIT["embed_std"] * torch.randn_like(p))
            elif name == "lm_head.weight":
                p.copy_(INIT["lm_head_std"] * torch.randn_like(p))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + INIT["norm_weight_std"] * torch.randn_like(p))
            elif name.endswith(".bias"):
                assert any(f"self_attn.{x}_proj." in name for x in "qkv"), name
                p.copy_(INIT["qkv_bias_std"] * torch.randn_like(p))
            else:
                assert name.endswith(".weight") and p.dim() == 2, name
                p.copy_(INIT["linear_std"] * torch.randn_like(p))
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())


class Capture:
    """Forward-hook outputs of modules, by name; tuple outputs (decoder layers) give output[0]."""

    def __init__(self) -> None:
        self.values: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self.handles = []

    def output(self, module: torch.nn.Module, name: str) -> None:
        def hook(_m, _args, out):
            t = out[0] if isinstance(out, tuple) else out
            self.values[name] = t.detach().clone()
        self.handles.append(module.register_forward_hook(hook))

    def input(self, module: torch.nn.Module, name: str) -> None:
        def hook(_m, args):
            self.values[name] = args[0].detach().clone()
        self.handles.append(module.register_forward_pre_hook(hook))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def step(model, ids: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
    """One forward of ids ([n] int) appended to the cache; logits [n, vocab]."""
    out = model(input_ids=ids.long()[None], past_key_values=cache, use_cache=True)
    return out.logits[0]


def run_precision(model, prefix: str, ids: dict, tensors: OrderedDict) -> None:
    """P.embed / P.layer.{i} / P.final_norm / P.logits for the prompt, P.decode_logits, P.logits2."""
    cap = Capture()
    cap.output(model.model.embed_tokens, "embed")
    for i, layer in enumerate(model.model.layers):
        cap.output(layer, f"layer.{i}")
    cap.output(model.model.norm, "final_norm")
    with torch.no_grad():
        cache = DynamicCache()
        logits = step(model, ids["prompt_ids"], cache)
        cap.remove()
        decode = [step(model, ids["decode_ids"][j:j + 1], cache)[0] for j in range(N_DECODE)]
        logits2 = step(model, ids["prompt2_ids"], DynamicCache())
    for name, t in cap.values.items():
        assert t.shape[0] == 1 and t.shape[1] == N_PROMPT, (name, t.shape)
        tensors[f"{prefix}.{name}"] = t[0].float()
    tensors[f"{prefix}.logits"] = logits.float()
    tensors[f"{prefix}.decode_logits"] = torch.stack(decode).float()
    tensors[f"{prefix}.logits2"] = logits2.float()


def greedy(model, prompt: torch.Tensor) -> tuple[list[int], list[float], float]:
    """N_GREEDY greedy steps with a DynamicCache: argmax (torch.argmax: the first max on ties), fed
    back one at a time. Returns the ids, top1 - top2 per step, and min(margin / std(step logits))."""
    ids, margins, ratio = [], [], float("inf")
    with torch.no_grad():
        cache = DynamicCache()
        logits = step(model, prompt, cache)[-1]
        for j in range(N_GREEDY):
            top = torch.topk(logits, 2).values
            nxt = int(torch.argmax(logits))
            assert logits[nxt] == top[0]
            margin = float(top[0] - top[1])
            ids.append(nxt)
            margins.append(margin)
            ratio = min(ratio, margin / float(logits.std()))
            if j + 1 < N_GREEDY:
                logits = step(model, torch.tensor([nxt]), cache)[-1]
    return ids, margins, ratio


def nmse(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.double(), ref.double()
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())


def check_custom_llama(model, custom: "OrderedDict[str, torch.Tensor]", hf: "OrderedDict[str, torch.Tensor]",
                       cfg: Qwen2Config, prompt: torch.Tensor) -> OrderedDict:
    """CustomLlama-style math of layer 0 (spec 4.2) on the converted tensors vs HF's layer 0, f32."""
    n_kv, hd = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    L = prompt.numel()
    layer = model.model.layers[0]
    cap = Capture()
    cap.input(layer.self_attn.k_proj, "attn_in")
    cap.output(layer.self_attn.q_proj, "q")
    cap.output(layer.self_attn.k_proj, "k")
    cap.output(layer.self_attn.v_proj, "v")
    cap.input(layer.mlp, "mlp_in")
    cap.output(layer.mlp, "mlp_out")
    with torch.no_grad():
        model(input_ids=prompt.long()[None], use_cache=False)
    cap.remove()
    c = {k: v.float() for k, v in custom.items()}
    p = "llm.lm.layers.0."
    x = cap.values["attn_in"][0]
    q = F.linear(x, c[p + "attention.query_dense.weight"], c[p + "attention.query_dense.bias"])
    kv = F.linear(x, c[p + "attention.key_value_dense.weight"], c[p + "attention.key_value_dense.bias"])
    kv = kv.view(L, n_kv, 2 * hd)
    k, v = kv[..., :hd].reshape(L, n_kv * hd), kv[..., hd:].reshape(L, n_kv * hd)
    xm = cap.values["mlp_in"][0]
    h = F.linear(xm, c[p + "mlp.dense_h_to_4h.weight"])
    x1, x2 = h.chunk(2, -1)
    mlp = F.linear(x1 * F.silu(x2), c[p + "mlp.dense_4h_to_h.weight"])
    swapped = F.linear(x2 * F.silu(x1), c[p + "mlp.dense_4h_to_h.weight"])  # gate first: must NOT match
    diffs = OrderedDict(
        q=float((q - cap.values["q"][0]).abs().max()), k=float((k - cap.values["k"][0]).abs().max()),
        v=float((v - cap.values["v"][0]).abs().max()), mlp=float((mlp - cap.values["mlp_out"][0]).abs().max()))
    for name, ours in (("q", q), ("k", k), ("v", v), ("mlp_out", mlp)):
        ref = cap.values[name][0]
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5), (name, float((ours - ref).abs().max()))
    assert not torch.allclose(swapped, cap.values["mlp_out"][0], rtol=1e-2, atol=1e-2)
    # k and v swapped within a kv head must not match either.
    assert not torch.allclose(kv[..., hd:].reshape(L, n_kv * hd), cap.values["k"][0], rtol=1e-2, atol=1e-2)
    # Every other tensor is a plain rename.
    renames = [("llm.lm.embed_in.weight", "model.embed_tokens.weight"),
               ("llm.lm.final_layer_norm.weight", "model.norm.weight")]
    for i in range(cfg.num_hidden_layers):
        a, b = f"llm.lm.layers.{i}.", f"model.layers.{i}."
        renames += [(a + "input_layernorm.weight", b + "input_layernorm.weight"),
                    (a + "post_attention_layernorm.weight", b + "post_attention_layernorm.weight"),
                    (a + "attention.query_dense.weight", b + "self_attn.q_proj.weight"),
                    (a + "attention.query_dense.bias", b + "self_attn.q_proj.bias"),
                    (a + "attention.dense.weight", b + "self_attn.o_proj.weight"),
                    (a + "mlp.dense_4h_to_h.weight", b + "mlp.down_proj.weight")]
    if not cfg.tie_word_embeddings:
        renames.append(("llm.embed_out.weight", "lm_head.weight"))
    for a, b in renames:
        assert torch.equal(custom[a], hf[b]), (a, b)
    return diffs


def file_entry(path: str, rel_kind: str | None = None) -> OrderedDict:
    e = OrderedDict()
    if rel_kind:
        e["kind"] = rel_kind
    e["bytes"] = os.path.getsize(path)
    with open(path, "rb") as f:
        e["sha256"] = hashlib.sha256(f.read()).hexdigest()
    if path.endswith(".safetensors"):
        tensors = OrderedDict()
        with safetensors.safe_open(path, "pt") as st:
            for k in st.keys():
                x = st.get_slice(k)
                tensors[k] = OrderedDict(dtype=x.get_dtype(), shape=list(x.get_shape()))
        e["tensors"] = tensors
    return e


def make_config(name: str, spec: OrderedDict, out_dir: str, files: OrderedDict) -> OrderedDict:
    seed = spec["seed"]
    cfg = Qwen2Config(**spec["qwen2"])
    cfg._attn_implementation = "eager"
    entry = OrderedDict(seed=seed, qwen2_config=spec["qwen2"], attn_implementation="eager",
                        head_dim=cfg.hidden_size // cfg.num_attention_heads)

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).eval()
    assert type(model.model.layers[0].self_attn).__name__ == "Qwen2Attention"
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == cfg.tie_word_embeddings
    randomize_(model)
    entry["init"] = OrderedDict(INIT, rounding="every parameter rounded to bfloat16 (p = p.bfloat16().float())",
                                draw_order="torch.manual_seed(seed), Qwen2ForCausalLM(config), then per parameter "
                                           "in named_parameters() order")
    if cfg.tie_word_embeddings:
        del entry["init"]["lm_head_std"]

    # The bf16 checkpoint (HF names) and the bf16 model as from_pretrained gives it.
    ck_dir = os.path.join(out_dir, name)
    if os.path.isdir(ck_dir):
        shutil.rmtree(ck_dir)
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(ck_dir, safe_serialization=True)
    with open(os.path.join(ck_dir, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["torch_dtype"] == "bfloat16"
    hf_sd = safetensors.torch.load_file(os.path.join(ck_dir, "model.safetensors"))
    assert ("lm_head.weight" in hf_sd) != cfg.tie_word_embeddings
    m16 = Qwen2ForCausalLM.from_pretrained(ck_dir, torch_dtype=torch.bfloat16, attn_implementation="eager").eval()
    assert m16.model.rotary_emb.inv_freq.dtype == torch.float32
    assert torch.equal(m16.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), m16.state_dict().items()):
        assert n1 == n2 and p2.dtype == torch.bfloat16 and torch.equal(p1, p2.float()), n1
    for n, t in hf_sd.items():
        assert torch.equal(t.float(), model.state_dict()[n]), n

    # CustomLlama names: the checkpoint's tensors converted by spec 4.2.
    n_kv, hd = cfg.num_key_value_heads, entry["head_dim"]
    src = OrderedDict(hf_sd)
    if cfg.tie_word_embeddings:
        src["lm_head.weight"] = src["model.embed_tokens.weight"]  # to_custom_llama always maps the head
    custom = to_custom_llama(src, n_kv, hd)
    if cfg.tie_word_embeddings:
        del custom["llm.embed_out.weight"]
    expect = hf_to_custom_llama_names(OrderedDict((k, list(v.shape)) for k, v in hf_sd.items()), n_kv, hd)
    assert sorted(expect) == sorted(custom), (sorted(expect), sorted(custom))
    for k, s in expect.items():
        assert list(custom[k].shape) == s and custom[k].dtype == torch.bfloat16, k
    custom_file = f"{name}_custom_llama.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in custom.items()},
                                os.path.join(out_dir, custom_file), metadata={"format": "pt"})
    custom = safetensors.torch.load_file(os.path.join(out_dir, custom_file))  # check what was written

    # Prompt ids (the prompt seed is the first that passes the greedy margin check).
    gen = torch.Generator().manual_seed(seed + 200)
    prompt2 = torch.randint(0, cfg.vocab_size, (N_PROMPT2,), generator=gen, dtype=torch.int64).to(torch.int32)
    decode = torch.randint(0, cfg.vocab_size, (N_DECODE,), generator=gen, dtype=torch.int64).to(torch.int32)
    tried = []
    for k in PROMPT_SEED_KS:
        prompt_seed = seed * 100 + k
        prompt = torch.randint(0, cfg.vocab_size, (N_PROMPT,), generator=torch.Generator().manual_seed(prompt_seed),
                               dtype=torch.int64).to(torch.int32)
        g_ids, g_margins, ratio = greedy(model, prompt)
        tried.append(OrderedDict(prompt_seed=prompt_seed, min_margin=min(g_margins), min_margin_over_std=ratio))
        if ratio >= MIN_MARGIN_OVER_STD:
            break
    else:
        raise RuntimeError(f"{name}: no prompt seed passes the greedy margin check: {tried}")
    ids = OrderedDict(prompt_ids=prompt, prompt2_ids=prompt2, decode_ids=decode)
    entry["seeds"] = OrderedDict(
        weights=seed, prompt_ids=prompt_seed, prompt_seed_candidates=[seed * 100 + k for k in PROMPT_SEED_KS],
        prompt_seeds_tried=tried, prompt2_and_decode_ids=seed + 200,
        ids_draw="torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(s)); prompt2_ids then "
                 "decode_ids from one generator")

    # generate() cross-check of the manual greedy loop.
    with torch.no_grad():
        gen_out = model.generate(prompt.long()[None], attention_mask=torch.ones(1, N_PROMPT, dtype=torch.long),
                                 do_sample=False, max_new_tokens=N_GREEDY, min_new_tokens=N_GREEDY,
                                 eos_token_id=None, pad_token_id=None, bos_token_id=None, num_beams=1,
                                 temperature=None, top_p=None, top_k=None)
    assert gen_out.shape == (1, N_PROMPT + N_GREEDY), gen_out.shape
    assert gen_out[0, N_PROMPT:].tolist() == g_ids, (gen_out[0, N_PROMPT:].tolist(), g_ids)

    entry["checks"] = checks = OrderedDict()
    checks["custom_llama_layer0_max_abs_diff"] = check_custom_llama(model, custom, hf_sd, cfg, prompt)

    tensors: "OrderedDict[str, torch.Tensor]" = OrderedDict(ids)
    run_precision(model, "f32", ids, tensors)
    run_precision(m16, "bf16", ids, tensors)
    tensors["f32.greedy_ids"] = torch.tensor(g_ids, dtype=torch.int32)
    tensors["f32.greedy_margin"] = torch.tensor(g_margins, dtype=torch.float32)

    # Sanity checks recorded in the manifest.
    with torch.no_grad():
        full = model(input_ids=torch.cat([prompt, decode]).long()[None], use_cache=False).logits[0]
        greedy_full = model(input_ids=torch.cat([prompt, torch.tensor(g_ids[:-1], dtype=torch.int32)]).long()[None],
                            use_cache=False).logits[0, N_PROMPT - 1:]
        # A plain model.to(bfloat16) rounds the rotary inv_freq buffers to bf16 as well.
        naive = copy.deepcopy(model).to(torch.bfloat16)
        naive_logits = naive(input_ids=prompt.long()[None], use_cache=False).logits[0].float()
    checks["f32_decode_cache_vs_full_sequence_max_abs_diff"] = float(
        (tensors["f32.decode_logits"] - full[N_PROMPT:]).abs().max())
    checks["f32_prompt_cached_vs_full_sequence_max_abs_diff"] = float(
        (tensors["f32.logits"] - full[:N_PROMPT]).abs().max())
    checks["f32_greedy_argmax_of_full_sequence_run_equal"] = bool(greedy_full.argmax(-1).tolist() == g_ids)
    checks["generate_equals_manual_greedy"] = True
    for k in ("layer.0", f"layer.{cfg.num_hidden_layers - 1}", "final_norm", "logits", "decode_logits", "logits2"):
        checks[f"bf16_{k}_nmse_vs_f32"] = nmse(tensors[f"bf16.{k}"], tensors[f"f32.{k}"])
    for k in ("logits", "decode_logits", "logits2"):
        checks[f"bf16_{k}_argmax_agreement_with_f32"] = float(
            (tensors[f"bf16.{k}"].argmax(-1) == tensors[f"f32.{k}"].argmax(-1)).float().mean())
    checks["bf16_inv_freq_logits_max_abs_diff"] = float((naive_logits - tensors["bf16.logits"]).abs().max())
    stats = OrderedDict()
    for k in ("f32.embed", "f32.layer.0", f"f32.layer.{cfg.num_hidden_layers - 1}", "f32.final_norm", "f32.logits"):
        t = tensors[k]
        stats[k] = OrderedDict(rms=float(t.pow(2).mean().sqrt()), max_abs=float(t.abs().max()))
    checks["activation_stats"] = stats
    checks["logits_std_per_position_mean"] = float(tensors["f32.logits"].std(-1).mean())
    entry["greedy"] = OrderedDict(
        n_new=N_GREEDY, min_margin=min(g_margins), min_margin_over_step_logits_std=ratio,
        required_min_margin_over_std=MIN_MARGIN_OVER_STD, distinct_ids=len(set(g_ids)),
        cross_check="model.generate(do_sample=False, max_new_tokens=64, min_new_tokens=64, eos_token_id=None)")
    for k, t in tensors.items():
        assert torch.isfinite(t.float()).all(), k

    out_file = f"{name}_outputs.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, out_file),
                                metadata={"generator": GENERATOR})
    for f in sorted(os.listdir(ck_dir)):
        files[f"{name}/{f}"] = file_entry(os.path.join(ck_dir, f))
    files[custom_file] = file_entry(os.path.join(out_dir, custom_file))
    files[out_file] = file_entry(os.path.join(out_dir, out_file))
    entry["files"] = OrderedDict(checkpoint=f"{name}/", custom_llama=custom_file, outputs=out_file)
    print(f"{name}: prompt seed {prompt_seed}, greedy min margin {min(g_margins):.4g} "
          f"(ratio {ratio:.3g}), distinct {len(set(g_ids))}; checks {json.dumps(checks)}")
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden"), help="output directory (tests/golden)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)

    files = OrderedDict()
    configs = OrderedDict()
    for name, spec in CONFIGS.items():
        configs[name] = make_config(name, spec, args.out, files)
    for rel, e in files.items():
        if e["bytes"] >= MAX_FILE_BYTES:
            print(f"error: {rel} is {e['bytes']} bytes, over the 2 MB limit", file=sys.stderr)
            return 1

    manifest = OrderedDict()
    manifest["generator"] = GENERATOR
    manifest["regenerate"] = f".venv/bin/python {GENERATOR}"
    manifest["versions"] = OrderedDict(
        python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
        safetensors=safetensors.__version__, numpy=np.__version__)
    manifest["settings"] = OrderedDict(
        device="cpu", torch_num_threads=1, deterministic_algorithms=True,
        reference="transformers Qwen2ForCausalLM, attn_implementation 'eager', DynamicCache",
        f32="the float32 model whose parameters are all bf16 values (the checkpoint widened exactly)",
        bf16="Qwen2ForCausalLM.from_pretrained(<config>/, torch_dtype=torch.bfloat16): the same values in bf16, "
             "rotary inv_freq kept float32 (bf16_inv_freq_logits_max_abs_diff: what rounding it too would change)",
        layout="[tokens, features]: HF's [1, L, d] with the batch dim removed; every float output stored as float32",
        tensors=OrderedDict([
            ("prompt_ids", f"int32 [{N_PROMPT}]"), ("prompt2_ids", f"int32 [{N_PROMPT2}]"),
            ("decode_ids", f"int32 [{N_DECODE}]: fed one at a time after the prompt (fixed, not argmax)"),
            ("P.embed", "embedding rows of prompt_ids"),
            ("P.layer.{i}", "output hidden state of decoder layer i (forward hook, output[0][0])"),
            ("P.final_norm", "model.model.norm output"), ("P.logits", "logits of every prompt position"),
            ("P.decode_logits", "prompt with use_cache=True into a DynamicCache, then decode_ids[j] one at a time "
                                "(positions 24..31): logits of each step"),
            ("P.logits2", "logits of prompt2_ids alone (fresh cache, positions 0..16)"),
            ("f32.greedy_ids", f"int32 [{N_GREEDY}]: greedy continuation of prompt_ids (cache, torch.argmax)"),
            ("f32.greedy_margin", "top1 - top2 logit at each greedy step")]))
    manifest["configs"] = configs
    manifest["files"] = files
    path = os.path.join(args.out, "decoder_manifest.json")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for rel, e in files.items():
        print(f"wrote {rel} ({e['bytes']} bytes)")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
