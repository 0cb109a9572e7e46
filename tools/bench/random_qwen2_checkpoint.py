# SPDX-License-Identifier: Apache-2.0
"""Writes a Qwen2.5-shaped checkpoint directory with random weights, as a download would look:
config.json, model.safetensors (bf16, HF names) and the tokenizer files copied from --tokenizer.

It exists for side-by-side speed comparisons on the same weights: bench_decoder --model DIR loads
the directory (quantizing on load with --weights q8,q4), and llama.cpp's convert_hf_to_gguf.py and
llama-quantize turn the same directory into its GGUF formats. Weights are N(0, 0.02) (norm weights
1, biases N(0, 0.02)), like transformers' own initialisation; the numbers do not matter for speed.

    .venv/bin/python tools/bench/random_qwen2_checkpoint.py --shape 0.5B --out /tmp/qwen2.5-0.5B-random \
        --tokenizer ../shared/data/qwen2-tokenizer
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

SHAPES = {
    # name: (vocab, hidden, layers, heads, kv_heads, intermediate, tied), from the models' config.json
    "0.5B": (151936, 896, 24, 14, 2, 4864, True),
    "1.5B": (151936, 1536, 28, 12, 2, 8960, True),
    "3B": (151936, 2048, 36, 16, 2, 11008, True),
    "7B": (152064, 3584, 28, 28, 4, 18944, False),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--tokenizer", type=pathlib.Path, help="a Qwen2 tokenizer directory (vocab.json, merges.txt, ...)")
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()

    import torch
    from safetensors.torch import save_file

    vocab, hidden, layers, heads, kv_heads, inter, tied = SHAPES[args.shape]
    hd = hidden // heads
    args.out.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "intermediate_size": inter, "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "tie_word_embeddings": tied, "torch_dtype": "bfloat16", "use_sliding_window": False,
        "sliding_window": 32768, "max_window_layers": layers, "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "initializer_range": 0.02, "use_cache": True,
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    gen = torch.Generator().manual_seed(args.seed)

    def normal(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * 0.02).to(torch.bfloat16)

    tensors: dict[str, torch.Tensor] = {"model.embed_tokens.weight": normal(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
        tensors[p + "post_attention_layernorm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
        tensors[p + "self_attn.q_proj.weight"] = normal(heads * hd, hidden)
        tensors[p + "self_attn.q_proj.bias"] = normal(heads * hd)
        tensors[p + "self_attn.k_proj.weight"] = normal(kv_heads * hd, hidden)
        tensors[p + "self_attn.k_proj.bias"] = normal(kv_heads * hd)
        tensors[p + "self_attn.v_proj.weight"] = normal(kv_heads * hd, hidden)
        tensors[p + "self_attn.v_proj.bias"] = normal(kv_heads * hd)
        tensors[p + "self_attn.o_proj.weight"] = normal(hidden, heads * hd)
        tensors[p + "mlp.gate_proj.weight"] = normal(inter, hidden)
        tensors[p + "mlp.up_proj.weight"] = normal(inter, hidden)
        tensors[p + "mlp.down_proj.weight"] = normal(hidden, inter)
    tensors["model.norm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
    if not tied:
        tensors["lm_head.weight"] = normal(vocab, hidden)
    save_file(tensors, str(args.out / "model.safetensors"), metadata={"format": "pt"})

    if args.tokenizer:
        for f in sorted(args.tokenizer.iterdir()):
            if f.is_file():
                shutil.copy2(f, args.out / f.name)
    n = sum(t.numel() for t in tensors.values())
    print(f"random_qwen2_checkpoint: Qwen2.5-{args.shape} shape, {n / 1e9:.2f} B parameters, seed {args.seed} -> "
          f"{args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
