# SPDX-License-Identifier: Apache-2.0
"""Golden data for tessera's single-kernel tests (tests/golden/test_golden_nn.cpp).

Runs the *reference* PyTorch / transformers modules on seeded float32 inputs and writes inputs,
parameters and outputs to <out>/nn_kernels.safetensors (and the K > 1024 linear cases, whose
weights alone are ~1.5 MB, to <out>/nn_linear_k1280.safetensors; every file stays under 2 MB) plus
<out>/manifest.json (versions, seeds, and for every case: op, module, file, parameters, tensor
names, dtypes and shapes).

Tensor names are "<case>.<tensor>" (e.g. "layer_norm_d1280.x", ".weight", ".bias", ".y").
Layouts are tessera's: row-major [rows, features]; RoPE tensors are [n_tokens, n_heads, head_dim].

The eps-sensitive normalization cases (rows whose variance is comparable to eps, each computed
with eps = 1e-5 and eps = 1e-6) go to <out>/nn_norm_eps.safetensors with their own manifest
<out>/nn_norm_eps_manifest.json; they have their own seeds, so adding them changed nothing in the
files above. `--only norm_eps` writes just those two files (`--only kernels` just the others).

Regenerate only on purpose (a new case, a new pinned torch/transformers); CI never runs this.
The output is byte-for-byte reproducible on one machine: run it twice and compare sha256 sums.
(F.linear's f32 outputs may differ in the last bit between CPUs, as torch picks its GEMM kernel
by CPU features: regenerating on another machine can change the linear / MLP outputs by ~1 ulp.)

    .venv/bin/python tools/golden/make_nn_goldens.py --out tests/golden
    .venv/bin/python tools/golden/make_nn_goldens.py --out tests/golden --only norm_eps
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections import OrderedDict

import numpy as np
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from transformers.activations import QuickGELUActivation
from transformers.models.qwen2.configuration_qwen2 import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2MLP,
    Qwen2RMSNorm,
    Qwen2RotaryEmbedding,
    apply_rotary_pos_emb,
)

FILE_NAME = "nn_kernels.safetensors"
FILE_NAME_LARGE = "nn_linear_k1280.safetensors"  # the K > 1024 linear cases (their weights are ~1.5 MB)
FILE_NAME_NORM_EPS = "nn_norm_eps.safetensors"  # the eps-sensitive norm cases (own manifest, own seeds)
MANIFEST_NAME = "manifest.json"
MANIFEST_NAME_NORM_EPS = "nn_norm_eps_manifest.json"
MAX_FILE_BYTES = 2 * 1024 * 1024  # style guide §8: every golden file under 2 MB

_DTYPE_NAME = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.int32: "I32",
    torch.int64: "I64",
}


class Golden:
    """Collects tensors and per-case manifest entries."""

    def __init__(self, first_seed: int = 1000) -> None:
        self.files: "OrderedDict[str, OrderedDict[str, torch.Tensor]]" = OrderedDict()
        self.cases: "OrderedDict[str, dict]" = OrderedDict()
        self._next_seed = first_seed

    def case(self, name: str, op: str, module: str, file: str = FILE_NAME, **params) -> tuple[dict, int]:
        assert name not in self.cases, name
        seed = self._next_seed
        self._next_seed += 1
        torch.manual_seed(seed)
        entry = {"op": op, "module": module, "file": file, "seed": seed, "params": params,
                 "tensors": OrderedDict()}
        self.cases[name] = entry
        self.files.setdefault(file, OrderedDict())
        return entry, seed

    def put(self, case: str, tensor: str, value: torch.Tensor, role: str) -> torch.Tensor:
        key = f"{case}.{tensor}"
        tensors = self.files[self.cases[case]["file"]]
        assert key not in tensors, key
        assert value.dtype in _DTYPE_NAME, value.dtype
        v = value.detach().contiguous().clone()
        tensors[key] = v
        self.cases[case]["tensors"][tensor] = {
            "name": key,
            "dtype": _DTYPE_NAME[v.dtype],
            "shape": list(v.shape),
            "role": role,
        }
        return v


def f32_from_bits(bits) -> torch.Tensor:
    a = np.asarray(bits, dtype=np.uint32)
    return torch.from_numpy(a.view(np.float32).copy())


# --------------------------------------------------------------------------------------------- #
# dtype conversion
# --------------------------------------------------------------------------------------------- #
def dtype_cases(g: Golden) -> None:
    name = "dtype_convert"
    g.case(name, "convert", "torch.Tensor.to(torch.bfloat16 / torch.float16)",
           note="bit-exact for every element; x holds edge values, ties and random bit patterns (no NaN)")
    u = lambda f: int(np.array([f], dtype=np.float32).view(np.uint32)[0])  # noqa: E731
    edges = [
        0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, 65504.0, -65504.0, 65519.0, 65520.0, -65520.0, 65536.0,
        1e10, -1e10, 3.0e38, -3.0e38, 2.0 ** -14, 2.0 ** -24, -(2.0 ** -24), 2.0 ** -25, -(2.0 ** -25),
        1.5 * 2.0 ** -25, 3 * 2.0 ** -25, 5 * 2.0 ** -25, 2.0 ** -26, 1.5 * 2.0 ** -24, 2.5 * 2.0 ** -24,
        2.0 ** -14 - 2.0 ** -25, 2.0 ** -14 - 2.0 ** -24, 2.0 ** -126, 2.0 ** -127, 2.0 ** -130,
        1.5 * 2.0 ** -133, 2.0 ** -149, -(2.0 ** -149), 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -11,
        1 + 3 * 2.0 ** -11, 1 + 2.0 ** -12, -(1 + 2.0 ** -8), -(1 + 2.0 ** -11), 0.1, -0.1, 1.0 / 3.0,
        float("inf"), float("-inf"),
    ]
    bits = [u(v) for v in edges]
    bits += [
        0x7F7FFFFF, 0xFF7FFFFF,  # +-FLT_MAX: bf16 rounds up to inf
        0x7F7F8000, 0x7F7F7FFF,  # bf16 tie at the top (rounds to inf) / just below
        0x3F808001, 0x3F807FFF, 0x3F818000,  # around the bf16 tie after 1
        0x3F801000, 0x3F803000, 0x3F801001, 0x3F800FFF,  # around the f16 tie after 1
        0x00000001, 0x80000001, 0x007FFFFF, 0x00400000, 0x00008000, 0x00018000,  # f32 subnormals
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001,  # 65504 .. 65520 boundary
        0x387FE000, 0x387FF000, 0x38800000,  # just below / at the smallest f16 normal
        0x33000001, 0x33800000, 0x33C00000,  # just above 2^-25, 2^-24, 1.5 * 2^-24
    ]
    gen = torch.Generator().manual_seed(g.cases[name]["seed"])

    def rand_u32(n: int) -> np.ndarray:
        return torch.randint(0, 2 ** 32, (n,), generator=gen, dtype=torch.int64).numpy().astype(np.uint32)

    # 4096 random bit patterns over all exponents; NaN patterns get the exponent's top bit cleared.
    r = rand_u32(4096)
    nan_mask = (r & 0x7FFFFFFF) > 0x7F800000
    r[nan_mask] &= ~np.uint32(0x40000000)
    # 1024 values with exponents inside the f16 range (2^-26 .. 2^17) and random mantissas.
    e = torch.randint(101, 145, (1024,), generator=gen, dtype=torch.int64).numpy().astype(np.uint32)
    m = rand_u32(1024)
    f16_range = (m & 0x807FFFFF) | (e << 23)
    # 512 exact bf16 ties (low 16 bits = 0x8000) at random exponents and signs (no NaN / inf).
    t = rand_u32(512)
    t = (t & 0xFFFF0000) | 0x8000
    t[(t & 0x7F800000) == 0x7F800000] &= ~np.uint32(0x40000000)
    # 512 exact f16 ties: normal range (low 13 bits = 0x1000) and subnormal range (odd * 2^-25).
    e2 = torch.randint(103, 143, (384,), generator=gen, dtype=torch.int64).numpy().astype(np.uint32)
    m2 = rand_u32(384)
    t16 = (m2 & 0x807FE000) | (e2 << 23) | 0x1000
    k = torch.randint(0, 2048, (128,), generator=gen, dtype=torch.int64).numpy()
    sub = np.array([u((2 * int(kk) + 1) * 2.0 ** -25) for kk in k], dtype=np.uint32)
    sgn = rand_u32(128) & 0x80000000
    sub = sub | sgn
    all_bits = np.concatenate([np.array(bits, dtype=np.uint32), r, f16_range, t, t16, sub])
    x = f32_from_bits(all_bits)
    assert not torch.isnan(x).any()
    g.put(name, "x", x, "input")
    g.put(name, "bf16", x.to(torch.bfloat16), "output")
    g.put(name, "f16", x.to(torch.float16), "output")

    name = "dtype_convert_nan"
    g.case(name, "convert", "torch.Tensor.to(torch.bfloat16 / torch.float16)",
           note="NaN inputs: only NaN-ness of the result is part of the contract, not the payload")
    x = f32_from_bits([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF,
                       0x7FA00000, 0x7F812345, 0xFFC12345, 0x7F802000])
    g.put(name, "x", x, "input")
    g.put(name, "bf16", x.to(torch.bfloat16), "output")
    g.put(name, "f16", x.to(torch.float16), "output")


# --------------------------------------------------------------------------------------------- #
# linear
# --------------------------------------------------------------------------------------------- #
def linear_bf16_products(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """product_precision::bf16: x rounded to bf16, exact products, accumulated in float64."""
    xb = x.to(torch.bfloat16).double()
    return F.linear(xb, w.double(), None if b is None else b.double()).float()


def linear_cases(g: Golden) -> None:
    M, K, N = 5, 129, 72
    for wname, wdt, bdt in (("f32", torch.float32, torch.float32),
                            ("bf16", torch.bfloat16, torch.bfloat16),
                            ("f16", torch.float16, torch.float32)):
        name = f"linear_{wname}_m{M}_k{K}_n{N}"
        g.case(name, "linear", "torch.nn.functional.linear", weight_dtype=_DTYPE_NAME[wdt],
               bias_dtype=_DTYPE_NAME[bdt],
               outputs={"y_f32": "F.linear(x, W.float(), b.float()) in float32 (product_precision::f32)",
                        "y_nobias_f32": "F.linear(x, W.float()) in float32",
                        **({"y_bf16": "F.linear(x.bf16().double(), W.double(), b.double()).float() "
                                      "(product_precision::bf16)",
                            "y_nobias_bf16": "same without bias"} if wdt == torch.bfloat16 else {})})
        x = g.put(name, "x", torch.randn(M, K), "input")
        w = g.put(name, "weight", (torch.randn(N, K) * K ** -0.5).to(wdt), "param")
        b = g.put(name, "bias", (torch.randn(N) * 0.5).to(bdt), "param")
        with torch.no_grad():
            g.put(name, "y_f32", F.linear(x, w.float(), b.float()), "output")
            g.put(name, "y_nobias_f32", F.linear(x, w.float()), "output")
            if wdt == torch.bfloat16:
                g.put(name, "y_bf16", linear_bf16_products(x, w, b), "output")
                g.put(name, "y_nobias_bf16", linear_bf16_products(x, w, None), "output")

    M, K, N = 3, 1280, 200
    for wname, wdt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        name = f"linear_{wname}_m{M}_k{K}_n{N}"
        g.case(name, "linear", "torch.nn.functional.linear", file=FILE_NAME_LARGE, weight_dtype=_DTYPE_NAME[wdt],
               bias_dtype="F32",
               outputs={"y_f32": "F.linear(x, W.float(), b) in float32 (product_precision::f32)",
                        **({"y_bf16": "F.linear(x.bf16().double(), W.double(), b.double()).float() "
                                      "(product_precision::bf16)"} if wdt == torch.bfloat16 else {})})
        x = g.put(name, "x", torch.randn(M, K), "input")
        w = g.put(name, "weight", (torch.randn(N, K) * K ** -0.5).to(wdt), "param")
        b = g.put(name, "bias", torch.randn(N) * 0.5, "param")
        with torch.no_grad():
            g.put(name, "y_f32", F.linear(x, w.float(), b), "output")
            if wdt == torch.bfloat16:
                g.put(name, "y_bf16", linear_bf16_products(x, w, b), "output")


# --------------------------------------------------------------------------------------------- #
# normalization
# --------------------------------------------------------------------------------------------- #
def norm_cases(g: Golden) -> None:
    eps = 1e-6
    for rows, d, wdt, with_bias in ((5, 1280, torch.float32, True), (5, 72, torch.bfloat16, True),
                                    (1, 129, torch.float32, False), (5, 7, torch.float16, True),
                                    (1, 72, torch.bfloat16, False)):
        name = f"layer_norm_r{rows}_d{d}_{_DTYPE_NAME[wdt].lower()}" + ("" if with_bias else "_nobias")
        g.case(name, "layer_norm", "torch.nn.functional.layer_norm", eps=eps, weight_dtype=_DTYPE_NAME[wdt],
               bias=with_bias, note="16-bit weight/bias are widened to f32 exactly; x and y are f32")
        x = g.put(name, "x", torch.randn(rows, d) * 2.0 + 3.0, "input")
        w = g.put(name, "weight", (1.0 + 0.5 * torch.randn(d)).to(wdt), "param")
        b = g.put(name, "bias", (0.5 * torch.randn(d)).to(wdt), "param") if with_bias else None
        with torch.no_grad():
            y = F.layer_norm(x, (d,), w.float(), None if b is None else b.float(), eps)
        g.put(name, "y", y, "output")

    for rows, d, wdt, eps in ((5, 1280, torch.float32, 1e-6), (1, 72, torch.float32, 1e-6),
                              (5, 129, torch.bfloat16, 1e-6), (5, 7, torch.float32, 1e-5),
                              (1, 1280, torch.bfloat16, 1e-5)):
        name = f"rms_norm_r{rows}_d{d}_{_DTYPE_NAME[wdt].lower()}_eps{eps:g}"
        g.case(name, "rms_norm", "transformers.models.qwen2.modeling_qwen2.Qwen2RMSNorm", eps=eps,
               weight_dtype=_DTYPE_NAME[wdt],
               note="x f32; module.weight in weight_dtype; y = weight * normalized (f32 result)")
        x = g.put(name, "x", torch.randn(rows, d) * 1.5 + 0.25, "input")
        w = g.put(name, "weight", (1.0 + 0.5 * torch.randn(d)).to(wdt), "param")
        mod = Qwen2RMSNorm(d, eps=eps)
        with torch.no_grad():
            mod.weight = torch.nn.Parameter(w.clone(), requires_grad=False)
            y = mod(x)
        assert y.dtype == torch.float32
        g.put(name, "y", y, "output")


# --------------------------------------------------------------------------------------------- #
# normalization where eps matters (nn_norm_eps.safetensors)
# --------------------------------------------------------------------------------------------- #
NORM_EPS_VALUES = (1e-5, 1e-6)


def low_variance_rows(rows: int, d: int, centers: list[float], scales: list[float]) -> torch.Tensor:
    """Row r = centers[r] + scales[r] * N(0, 1): a variance of scales[r]^2, comparable to eps."""
    assert len(centers) == rows and len(scales) == rows
    c = torch.tensor(centers, dtype=torch.float32)[:, None]
    s = torch.tensor(scales, dtype=torch.float32)[:, None]
    return c + s * torch.randn(rows, d)


def norm_eps_cases(g: Golden) -> None:
    """layer_norm and Qwen2RMSNorm on rows with variance (LayerNorm) or mean square (RMSNorm) of
    1e-7 .. 1e-5, so that eps = 1e-5 and eps = 1e-6 give clearly different outputs; each case
    stores one x and its parameters and one output per eps ("y_eps1e-05", "y_eps1e-06")."""
    # LayerNorm: small offsets. With a large one torch's own f32 LayerNorm loses bits in x - mean:
    # center -1, std 1e-3 put torch's f32 output 1.6e-4 from the float64 result (a first draft of
    # this file), more than the C++ tests' budget, whatever the kernel does. Each case records
    # torch's f32 - float64 difference as torch_f32_vs_f64_max_abs.
    for rows, d, with_bias in ((6, 129, True), (3, 1280, True), (4, 72, False)):
        name = f"layer_norm_lowvar_r{rows}_d{d}_f32" + ("" if with_bias else "_nobias")
        centers = [0.0, 0.01, -0.03, 0.1, 0.2, -0.05][:rows]
        scales = [1e-3, 3e-4, 3e-3, 1e-3, 1e-3, 1e-3][:rows]
        g.case(name, "layer_norm", "torch.nn.functional.layer_norm", file=FILE_NAME_NORM_EPS,
               eps=list(NORM_EPS_VALUES), weight_dtype="F32", bias=with_bias, row_centers=centers,
               row_noise_std=scales,
               note="x row r = center + std * N(0,1): variance ~std^2, comparable to eps; "
                    "y_eps<eps> = F.layer_norm(x, (d,), weight, bias, eps)")
        x = g.put(name, "x", low_variance_rows(rows, d, centers, scales), "input")
        w = g.put(name, "weight", 1.0 + 0.5 * torch.randn(d), "param")
        b = g.put(name, "bias", 0.5 * torch.randn(d), "param") if with_bias else None
        f64 = {}
        for eps in NORM_EPS_VALUES:
            with torch.no_grad():
                y = F.layer_norm(x, (d,), w, b, eps)
                y64 = F.layer_norm(x.double(), (d,), w.double(), None if b is None else b.double(), eps)
            g.put(name, f"y_eps{eps:g}", y, "output")
            f64[f"eps{eps:g}"] = (y.double() - y64).abs().max().item()
        g.cases[name]["params"]["torch_f32_vs_f64_max_abs"] = f64

    # RMSNorm: centered rows (the mean square, not the variance, meets eps).
    for rows, d in ((5, 72), (3, 1280)):
        name = f"rms_norm_lowvar_r{rows}_d{d}_f32"
        centers = [0.0, 0.0, 1e-3, -5e-4, 0.0][:rows]
        scales = [1e-3, 3e-4, 1e-3, 3e-3, 1e-4][:rows]
        g.case(name, "rms_norm", "transformers.models.qwen2.modeling_qwen2.Qwen2RMSNorm", file=FILE_NAME_NORM_EPS,
               eps=list(NORM_EPS_VALUES), weight_dtype="F32", row_centers=centers, row_noise_std=scales,
               note="x row r = center + std * N(0,1): mean square ~center^2 + std^2, comparable to eps; "
                    "y_eps<eps> = Qwen2RMSNorm(d, eps) with the stored weight")
        x = g.put(name, "x", low_variance_rows(rows, d, centers, scales), "input")
        w = g.put(name, "weight", 1.0 + 0.5 * torch.randn(d), "param")
        f64 = {}
        for eps in NORM_EPS_VALUES:
            mod = Qwen2RMSNorm(d, eps=eps)
            with torch.no_grad():
                mod.weight = torch.nn.Parameter(w.clone(), requires_grad=False)
                y = mod(x)
                x64 = x.double()
                y64 = w.double() * (x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps))
            assert y.dtype == torch.float32
            g.put(name, f"y_eps{eps:g}", y, "output")
            f64[f"eps{eps:g}"] = (y.double() - y64).abs().max().item()
        g.cases[name]["params"]["torch_f32_vs_f64_max_abs"] = f64

    # The two eps must be told apart: every case's outputs differ by far more than a 1e-4 budget.
    for name, entry in g.cases.items():
        ys = [g.files[FILE_NAME_NORM_EPS][f"{name}.y_eps{eps:g}"] for eps in NORM_EPS_VALUES]
        diff = (ys[0] - ys[1]).abs().max().item()
        entry["params"]["max_abs_diff_between_eps"] = diff
        assert diff > 1e-2, (name, diff)


# --------------------------------------------------------------------------------------------- #
# softmax
# --------------------------------------------------------------------------------------------- #
def softmax_cases(g: Golden) -> None:
    name = "softmax_r5_d129"
    g.case(name, "softmax", "torch.softmax(x, dim=-1)",
           rows="0: N(0,3^2); 1: N(0,1) with -inf at every 3rd entry; 2: shuffled 80..100; "
                "3: N(0,20^2); 4: one entry 0, the rest -inf")
    d = 129
    x = torch.empty(5, d)
    x[0] = torch.randn(d) * 3
    x[1] = torch.randn(d)
    x[1, ::3] = float("-inf")
    x[2] = torch.linspace(80, 100, d)[torch.randperm(d)]
    x[3] = torch.randn(d) * 20
    x[4] = float("-inf")
    x[4, 17] = 0.0
    g.put(name, "x", x, "input")
    g.put(name, "y", torch.softmax(x, dim=-1), "output")

    for rows, d in ((1, 7), (2, 1280)):
        name = f"softmax_r{rows}_d{d}"
        g.case(name, "softmax", "torch.softmax(x, dim=-1)")
        x = g.put(name, "x", torch.randn(rows, d) * 4, "input")
        g.put(name, "y", torch.softmax(x, dim=-1), "output")

    name = "softmax_all_neg_inf"
    g.case(name, "softmax", "torch.softmax(x, dim=-1)",
           note="row 0 is all -inf: PyTorch returns NaN for the whole row; row 1 is ordinary")
    x = torch.full((2, 7), float("-inf"))
    x[1] = torch.randn(7)
    g.put(name, "x", x, "input")
    g.put(name, "y", torch.softmax(x, dim=-1), "output")


# --------------------------------------------------------------------------------------------- #
# activations, swiglu, add
# --------------------------------------------------------------------------------------------- #
def activation_input(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    specials = torch.tensor([0.0, -0.0, 1e-6, -1e-6, 1e-3, -1e-3, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 5.5, -5.5,
                             10.0, -10.0, 15.0, -15.0, 20.0, -20.0, 30.0, -30.0, 50.0, -50.0, 88.0, -88.0,
                             89.0, -89.0, 100.0, -100.0, 1000.0, -1000.0, 1e-30, -1e-30])
    lin = torch.linspace(-10.0, 10.0, 1001)
    rnd = torch.randn(165, generator=gen) * 4.0
    x = torch.cat([specials, lin, rnd])
    assert x.numel() == 1200
    return x.reshape(5, 240)


def activation_cases(g: Golden) -> None:
    ops = (
        ("gelu_erf", "torch.nn.functional.gelu(x)", lambda x: F.gelu(x)),
        ("gelu_tanh", "torch.nn.functional.gelu(x, approximate='tanh')", lambda x: F.gelu(x, approximate="tanh")),
        ("quick_gelu", "transformers.activations.QuickGELUActivation", QuickGELUActivation()),
        ("silu", "torch.nn.functional.silu", F.silu),
    )
    for name, module, fn in ops:
        _, seed = g.case(name, name, module,
                         note="x: specials (0, -0, +-1e-6 .. +-1000), linspace(-10, 10, 1001), N(0, 4^2)")
        x = g.put(name, "x", activation_input(seed), "input")
        with torch.no_grad():
            g.put(name, "y", fn(x), "output")

    name = "swiglu_r5_d200"
    g.case(name, "swiglu", "torch.nn.functional.silu(gate) * up")
    gate = g.put(name, "gate", torch.randn(5, 200) * 3.0, "input")
    up = g.put(name, "up", torch.randn(5, 200), "input")
    g.put(name, "y", F.silu(gate) * up, "output")

    name = "add_r5_d72"
    g.case(name, "add", "a + b (residual add)")
    a = g.put(name, "a", torch.randn(5, 72), "input")
    b = g.put(name, "b", torch.randn(5, 72) * 10.0, "input")
    g.put(name, "y", a + b, "output")


# --------------------------------------------------------------------------------------------- #
# RoPE (Qwen2, 1-D positions)
# --------------------------------------------------------------------------------------------- #
def rope_cases(g: Golden) -> None:
    positions = [0, 1, 2, 7, 100, 4095, 32767]
    for n_heads, head_dim, theta in ((3, 64, 1e6), (2, 128, 1e4), (2, 128, 1e6)):
        name = f"rope_1d_h{n_heads}_d{head_dim}_theta{theta:g}"
        cfg = Qwen2Config(hidden_size=n_heads * head_dim, num_attention_heads=n_heads,
                          num_key_value_heads=n_heads, rope_theta=theta, max_position_embeddings=32768)
        g.case(name, "rope_1d",
               "transformers.models.qwen2.modeling_qwen2.Qwen2RotaryEmbedding + apply_rotary_pos_emb",
               theta=theta, head_dim=head_dim, n_heads=n_heads, positions=positions,
               layout="q, k, q_out, k_out are [n_tokens, n_heads, head_dim] (HF's [1, heads, tokens, dim] "
                      "transposed); cos, sin are [n_tokens, head_dim] as the module returns them")
        n = len(positions)
        q = torch.randn(1, n_heads, n, head_dim)
        k = torch.randn(1, n_heads, n, head_dim)
        pos = torch.tensor([positions], dtype=torch.int64)
        rot = Qwen2RotaryEmbedding(config=cfg)
        with torch.no_grad():
            cos, sin = rot(q, pos)
            q_out, k_out = apply_rotary_pos_emb(q, k, cos, sin)
        tl = lambda t: t[0].transpose(0, 1)  # [heads, tokens, dim] -> [tokens, heads, dim]  # noqa: E731
        g.put(name, "positions", pos[0].to(torch.int32), "input")
        g.put(name, "q", tl(q), "input")
        g.put(name, "k", tl(k), "input")
        g.put(name, "inv_freq", rot.inv_freq.float(), "intermediate")
        g.put(name, "cos", cos[0], "intermediate")
        g.put(name, "sin", sin[0], "intermediate")
        g.put(name, "q_out", tl(q_out), "output")
        g.put(name, "k_out", tl(k_out), "output")


# --------------------------------------------------------------------------------------------- #
# Qwen2MLP
# --------------------------------------------------------------------------------------------- #
def mlp_cases(g: Golden) -> None:
    hidden, inter = 72, 200
    name = f"qwen2_mlp_h{hidden}_i{inter}"
    cfg = Qwen2Config(hidden_size=hidden, intermediate_size=inter, hidden_act="silu",
                      num_attention_heads=8, num_key_value_heads=8)
    g.case(name, "qwen2_mlp", "transformers.models.qwen2.modeling_qwen2.Qwen2MLP",
           hidden_size=hidden, intermediate_size=inter, hidden_act="silu",
           note="y = down_proj(silu(gate_proj(x)) * up_proj(x)); nn.Linear default init, float32")
    mlp = Qwen2MLP(cfg).float().eval()
    x = g.put(name, "x", torch.randn(5, hidden), "input")
    for p in ("gate_proj", "up_proj", "down_proj"):
        g.put(name, f"{p}.weight", getattr(mlp, p).weight, "param")
    with torch.no_grad():
        y = mlp(x)
    g.put(name, "y", y, "output")


def write(g: Golden, out: str, manifest_name: str, regenerate: str) -> int:
    """Writes g's files and its manifest into out; 1 if a file is over the size limit."""
    os.makedirs(out, exist_ok=True)
    sizes = OrderedDict()
    for file, tensors in g.files.items():
        path = os.path.join(out, file)
        safetensors.torch.save_file(dict(tensors), path, metadata={"generator": "tools/golden/make_nn_goldens.py"})
        sizes[file] = os.path.getsize(path)
        if sizes[file] >= MAX_FILE_BYTES:
            print(f"error: {path} is {sizes[file]} bytes, over the 2 MB limit", file=sys.stderr)
            return 1
        print(f"wrote {path} ({sizes[file]} bytes, {len(tensors)} tensors)")

    manifest = OrderedDict()
    manifest["generator"] = "tools/golden/make_nn_goldens.py"
    manifest["regenerate"] = regenerate
    manifest["versions"] = OrderedDict(
        python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
        safetensors=safetensors.__version__, numpy=np.__version__)
    manifest["settings"] = OrderedDict(dtype="float32", torch_num_threads=1, deterministic_algorithms=True,
                                       seeding="torch.manual_seed(case seed) before each case's inputs")
    manifest["files"] = OrderedDict()
    for file, tensors in g.files.items():
        manifest["files"][file] = OrderedDict(
            bytes=sizes[file], n_tensors=len(tensors),
            cases=[c for c, e in g.cases.items() if e["file"] == file])
    manifest["cases"] = g.cases
    with open(os.path.join(out, manifest_name), "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.join(out, manifest_name)} ({len(g.cases)} cases)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (tests/golden)")
    ap.add_argument("--only", choices=("kernels", "norm_eps"), default=None,
                    help="write only nn_kernels / nn_linear_k1280 + manifest.json (kernels), or only "
                         "nn_norm_eps + nn_norm_eps_manifest.json (norm_eps); default: both")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    if args.only in (None, "kernels"):
        g = Golden()
        dtype_cases(g)
        linear_cases(g)
        norm_cases(g)
        softmax_cases(g)
        activation_cases(g)
        rope_cases(g)
        mlp_cases(g)
        if write(g, args.out, MANIFEST_NAME, ".venv/bin/python tools/golden/make_nn_goldens.py --out tests/golden"):
            return 1

    if args.only in (None, "norm_eps"):
        g = Golden(first_seed=2000)
        norm_eps_cases(g)
        if write(g, args.out, MANIFEST_NAME_NORM_EPS,
                 ".venv/bin/python tools/golden/make_nn_goldens.py --out tests/golden --only norm_eps"):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
