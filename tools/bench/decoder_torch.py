# SPDX-License-Identifier: Apache-2.0
"""PyTorch side of the decoder benchmark: transformers' Qwen2ForCausalLM with random weights at the
shapes bench_decoder uses (Qwen2.5-0.5B, Qwen2.5-1.5B), on the CPU with a fixed thread count, in bf16
(the dtype bench_decoder's weights have) and in f32 (PyTorch's fastest CPU path where the processor
lacks bf16 instructions: without AVX512-BF16 / AMX its bf16 matmuls take a slow fallback).
Measures what bench_decoder measures, the same way:

  prefill  a 512-token prompt into an empty cache, logits of the last token only
           (num_logits_to_keep=1), min and median over runs;
  decode   one token per step at a fixed context (128: the cache prefilled by the model; 2048: a
           DynamicCache filled with random keys / values, as bench_decoder does), the cache cropped
           back after every step, greedy argmax included.

With --tessera-json (bench_decoder's JSON of the same machine and run) it prints both side by side
with the ratio tessera / PyTorch and writes the combined JSON (--out).

    .venv/bin/python tools/bench/decoder_torch.py --threads 2 [--models 0.5B 1.5B] [--json PATH]
        [--tessera-json bench_decoder.json --out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from timing import timed  # tools/bench/timing.py, beside this script

SHAPES = {
    # name: (vocab, hidden, layers, heads, kv_heads, intermediate, tied), from the models' config.json
    "Qwen2.5-0.5B": (151936, 896, 24, 14, 2, 4864, True),
    "Qwen2.5-1.5B": (151936, 1536, 28, 12, 2, 8960, True),
}


def bench_model(name: str, dtype_name: str, args) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from transformers.cache_utils import DynamicCache

    vocab, hidden, layers, heads, kv_heads, inter, tied = SHAPES[name]
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, intermediate_size=inter, tie_word_embeddings=tied,
                         rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=32768, use_sliding_window=False)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype_name]
    model = Qwen2ForCausalLM._from_config(config, torch_dtype=dtype, attn_implementation=args.attn)
    model.eval()
    build_s = time.perf_counter() - t0
    head_dim = hidden // heads
    print(f"{name} {dtype_name}: built in {build_s:.1f} s ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B "
          f"params, attention '{args.attn}')", file=sys.stderr)
    out: dict = {"model": name, "dtype": dtype_name, "build_s": build_s, "attn_implementation": args.attn}
    gen = torch.Generator().manual_seed(99)

    with torch.inference_mode():
        # bf16 prefill is timed on a shorter prompt (--bf16-prefill) where PyTorch's bf16 path is slow:
        # a 512-token bf16 prefill of the 1.5B shape takes minutes on an AVX2-only CPU.
        n_prefill = args.prefill if dtype_name == "f32" else min(args.prefill, args.bf16_prefill)
        ids = torch.randint(0, vocab, (1, n_prefill), generator=gen)
        def prefill(x=ids):
            model(input_ids=x, use_cache=True, past_key_values=DynamicCache(), num_logits_to_keep=1)
        # Warm up on 16 tokens: a 512-token bf16 prefill can take minutes where bf16 is slow.
        t = timed(prefill, args.prefill_reps if dtype_name == "f32" else 1, 0.0, warmup=lambda: prefill(ids[:, :16]),
                  max_reps=200)
        out["prefill"] = {"tokens": n_prefill, "min_s": min(t), "median_s": statistics.median(t), "reps": len(t),
                          "tokens_per_s": n_prefill / min(t), "median_tokens_per_s": n_prefill / statistics.median(t)}
        print(f"  prefill {n_prefill}: {min(t):.3f} s min -> {n_prefill / min(t):.1f} tokens/s", file=sys.stderr)

        out["decode"] = []
        for ctx in args.contexts:
            cache = DynamicCache()
            if ctx <= 512:
                how = "prefilled by the model"
                model(input_ids=torch.randint(0, vocab, (1, ctx - 1), generator=gen), use_cache=True,
                      past_key_values=cache, num_logits_to_keep=1)
            else:
                how = "random keys / values"
                for layer in range(layers):
                    k = torch.randn(1, kv_heads, ctx - 1, head_dim, generator=gen).to(dtype)
                    v = torch.randn(1, kv_heads, ctx - 1, head_dim, generator=gen).to(dtype)
                    cache.update(k, v, layer)
            tok = torch.tensor([[1]])

            def step():
                nonlocal tok
                cache.crop(ctx - 1)
                logits = model(input_ids=tok, use_cache=True, past_key_values=cache).logits
                tok = logits[:, -1].argmax(-1, keepdim=True)
            t = timed(step, args.steps, 0.0, max_reps=200)
            out["decode"].append({"context": ctx, "cache": how, "min_ms": min(t) * 1e3,
                                  "median_ms": statistics.median(t) * 1e3, "steps": len(t),
                                  "tokens_per_s": 1.0 / min(t), "median_tokens_per_s": 1.0 / statistics.median(t)})
            print(f"  decode at context {ctx}: {min(t) * 1e3:.1f} ms min -> {1.0 / min(t):.1f} tokens/s",
                  file=sys.stderr)
    del model
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--prefill-reps", type=int, default=2, help="f32 runs; bf16 prefill runs once")
    ap.add_argument("--bf16-prefill", type=int, default=128, help="prompt tokens of the bf16 prefill")
    ap.add_argument("--contexts", type=int, nargs="+", default=[128, 2048])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--dtypes", nargs="+", default=["f32", "bf16"], choices=["f32", "bf16"])
    ap.add_argument("--json", default="")
    ap.add_argument("--tessera-json", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import torch
    import transformers
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    result = {"versions": {"python": platform.python_version(), "torch": torch.__version__,
                           "transformers": transformers.__version__},
              "threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "runs": [bench_model(m, d, args) for m in args.models for d in args.dtypes]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)

    if args.tessera_json:
        with open(args.tessera_json) as f:
            tessera = json.load(f)
        rows = []
        by_name = {m["model"]: m for m in tessera.get("models", [])}
        for m in result["runs"]:
            t = by_name.get(m["model"])
            if t is None:
                continue
            rows.append({"model": m["model"], "torch_dtype": m["dtype"],
                         "case": f"prefill {t['prefill']['tokens']}/{m['prefill']['tokens']}",
                         "tessera_tokens_per_s": t["prefill"]["tokens_per_s"],
                         "torch_tokens_per_s": m["prefill"]["tokens_per_s"]})
            tdec = {d["context"]: d for d in t["decode"]}
            for d in m["decode"]:
                if d["context"] in tdec:
                    rows.append({"model": m["model"], "torch_dtype": m["dtype"], "case": f"decode at context {d['context']}",
                                 "tessera_tokens_per_s": tdec[d["context"]]["tokens_per_s"],
                                 "torch_tokens_per_s": d["tokens_per_s"],
                                 "tessera_fraction_of_roofline": tdec[d["context"]]["fraction_of_roofline_weights"]})
        print(f"\n{'model':<14} {'case':<22} {'tessera (bf16) tok/s':>21} {'PyTorch':>8} {'PyTorch tok/s':>14} {'ratio':>8}")
        for r in rows:
            r["ratio"] = r["tessera_tokens_per_s"] / r["torch_tokens_per_s"]
            print(f"{r['model']:<14} {r['case']:<22} {r['tessera_tokens_per_s']:>21.1f} {r['torch_dtype']:>8} "
                  f"{r['torch_tokens_per_s']:>14.2f} {r['ratio']:>7.2f}x")
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"tessera": tessera, "torch": result, "side_by_side": rows}, f, indent=2)
                f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
