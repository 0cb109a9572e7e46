# SPDX-License-Identifier: Apache-2.0
"""PyTorch side of the POINTS1.5 benchmark (scripts/bench_points.sh): transformers 4.46.3's Qwen2-VL
vision tower (Qwen2VisionTransformerPretrainedModel from transformers.models.qwen2_vl.modeling_qwen2_vl)
with random weights (its own init) at the shapes bench_points uses, on the CPU with a fixed thread
count, in float32 and in bfloat16, run on the same pixel_values bench_points computed and timed the
same way:

  tower   POINTS1.5 runs the tower as WePOINTS' Qwen2VisionTransformerForNavitPOINTS.forward does:
          the images' pixel_values concatenated, patch_embed, rot_pos_emb(grid_thw), every block over
          cu_seqlens (from grid_thw), no merger. Every block of transformers' tower builds one
          [n, n] mask over the whole pack and attends densely under it (eager: matmul + mask +
          softmax; sdpa: scaled_dot_product_attention with a boolean mask), so its attention costs
          grow with the square of the pack, not of each image.
  timing  tools/bench/timing.py's loop with bench_points' runs per case (from its JSON): a warm-up
          run, then the timed runs; a case that bench_points timed without a warm-up run of its own
          (the large one, warmed up by the case before it) is timed the same way here.
  attention --attn auto (default) takes, per dtype, whichever of attn_implementation "eager" and
          "sdpa" runs one block of the largest case faster on this machine (both are dense under
          the mask; neither is block-diagonal); the JSON records the probe.

Also checks, outside the timing, that the pixel_values it reads are what transformers'
Qwen2VLImageProcessor (WePOINTS' smart_resize, as tools/golden/make_image_goldens.py substitutes it)
makes of the same synthetic images, rebuilt here from bench_points' integer formula.

With --tessera-json and --pixels (bench_points --json / --dump-pixels of the same run) it prints both
side by side with the ratios (tessera bf16 against PyTorch f32 and bf16) and writes the combined JSON
(--out).

    .venv/bin/python tools/bench/points_torch.py --threads 2 --tessera-json bench_points.json --pixels DIR
        [--dtypes f32 bf16] [--attn auto|eager|sdpa] [--json PATH] [--out PATH]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from timing import timed  # tools/bench/timing.py, beside this script


def synthetic_image(height: int, width: int, k: int) -> np.ndarray:
    """uint8 [height, width, 3]: bench_points' synthetic_image, the same integer formula."""
    y = np.arange(height, dtype=np.int64)[:, None, None]
    x = np.arange(width, dtype=np.int64)[None, :, None]
    c = np.arange(3, dtype=np.int64)[None, None, :]
    v = (7 * x + 13 * y + 61 * c + ((x * y) >> 4) % 64 + ((x ^ y) & 15) * 3 + 97 * k) % 256
    return v.astype(np.uint8)


def check_pixels(case: dict, pixels: np.ndarray, limits: tuple[int, int]) -> dict:
    """transformers' processor on the same images against bench_points' pixel_values."""
    from transformers.image_utils import ChannelDimension

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
    import make_image_goldens as reference  # substitutes WePOINTS' smart_resize into the processor

    proc = reference.processor(limits)
    images = [synthetic_image(im["height"], im["width"], k) for k, im in enumerate(case["images"])]
    out = proc(images=images, input_data_format=ChannelDimension.LAST)
    ref = np.asarray(out["pixel_values"], dtype=np.float32)
    thw = np.asarray(out["image_grid_thw"]).tolist()
    same_grid = thw == [im["grid_thw"] for im in case["images"]]
    max_diff = float(np.max(np.abs(ref - pixels))) if ref.shape == pixels.shape else float("inf")
    return {"same_grid_thw": same_grid, "same_shape": ref.shape == pixels.shape, "max_abs_diff": max_diff,
            "identical": bool(same_grid and ref.shape == pixels.shape and max_diff == 0.0)}


def navit_forward(model, pixel_values, grid_thw):
    """The tower as Qwen2VisionTransformerForNavitPOINTS.forward runs it: the merger is not applied."""
    import torch
    import torch.nn.functional as F

    hidden = model.patch_embed(pixel_values)
    rotary = model.rot_pos_emb(grid_thw)
    cu_seqlens = torch.repeat_interleave(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0]).cumsum(dim=0,
                                                                                                  dtype=torch.int32)
    cu_seqlens = F.pad(cu_seqlens, (1, 0), value=0)
    for block in model.blocks:
        hidden = block(hidden, cu_seqlens=cu_seqlens, rotary_pos_emb=rotary)
    return hidden


def bench_dtype(dtype_name: str, vision: dict, cases: list[dict], inputs: dict, args) -> dict:
    import torch
    from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    config = Qwen2VLVisionConfig(depth=vision["depth"], embed_dim=vision["embed_dim"], num_heads=vision["num_heads"],
                                 mlp_ratio=vision["mlp_ratio"], hidden_act=vision["hidden_act"], in_channels=3,
                                 patch_size=vision["patch_size"], temporal_patch_size=vision["temporal_patch_size"],
                                 spatial_merge_size=vision["spatial_merge_size"], hidden_size=3584)
    attn, probe = args.attn, {}
    if attn == "auto":
        # PyTorch at its best on this machine: one block of each attention implementation on the
        # largest case (eager and sdpa trade places between f32 / bf16 and pack sizes on CPUs).
        name = max(cases, key=lambda c: c["vit_tokens"])["name"]
        pixels, grid = inputs[name]
        x, g = torch.from_numpy(pixels), torch.tensor(grid, dtype=torch.int64)
        one_block = copy.deepcopy(config)
        one_block.depth = 1
        for impl in ("eager", "sdpa"):
            torch.manual_seed(0)
            m1 = Qwen2VisionTransformerPretrainedModel._from_config(one_block, torch_dtype=dtype,
                                                                    attn_implementation=impl).eval()
            with torch.inference_mode():
                probe[impl] = min(timed(lambda: navit_forward(m1, x, g), 2, 0.0)) * 1e3
            del m1
        attn = min(probe, key=probe.get)
        print(f"tower {dtype_name}: one block on {name}: eager {probe['eager']:.1f} ms, sdpa {probe['sdpa']:.1f} ms "
              f"-> {attn}", file=sys.stderr)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = Qwen2VisionTransformerPretrainedModel._from_config(config, torch_dtype=dtype,
                                                               attn_implementation=attn).eval()
    build_s = time.perf_counter() - t0
    attn_class = type(model.blocks[0].attn).__name__
    print(f"tower {dtype_name}: built in {build_s:.1f} s ({attn_class}, "
          f"{sum(p.numel() for p in model.blocks.parameters()) / 1e6:.0f} M parameters in the blocks)", file=sys.stderr)
    out = {"dtype": dtype_name, "build_s": build_s, "attn_implementation": attn, "attention_class": attn_class,
           "attn_probe_one_block_ms": probe, "cases": []}
    with torch.inference_mode():
        for case in cases:
            pixels, grid = inputs[case["name"]]
            x = torch.from_numpy(pixels)
            g = torch.tensor(grid, dtype=torch.int64)
            result = {}

            def run():
                result["y"] = navit_forward(model, x, g)
            runs = case["vision_tower"]
            t = timed(run, runs["reps"], 0.0, warmup=None if runs["warm_up_run"] else (lambda: None))
            y = result["y"]
            finite = bool(torch.isfinite(y).all())
            flops = runs["flops"]  # the same images: bench_points' count of the useful work
            n = int(pixels.shape[0])
            dense_pairs = n * n
            rec = {"name": case["name"], "vit_tokens": n, "min_ms": min(t) * 1e3,
                   "median_ms": statistics.median(t) * 1e3, "reps": len(t), "warm_up_run": runs["warm_up_run"],
                   "gflops": flops / min(t) * 1e-9, "output_finite": finite, "output_shape": list(y.shape),
                   "attention_pairs_dense": dense_pairs,
                   "attention_pairs_block_diagonal": sum(im["vit_tokens"] ** 2 for im in case["images"])}
            out["cases"].append(rec)
            print(f"  {case['name']}: {min(t) * 1e3:.1f} ms min, {statistics.median(t) * 1e3:.1f} ms median "
                  f"({len(t)} runs{'' if runs['warm_up_run'] else ', warmed up by the case before'}): "
                  f"{rec['gflops']:.1f} GFLOP/s of the same useful work{'' if finite else ', OUTPUT NOT FINITE'}",
                  file=sys.stderr)
    del model
    return out


def report(tessera: dict, torch_result: dict) -> tuple[list[dict], list[dict]]:
    """The side-by-side rows and the issue's targets."""
    by_dtype = {r["dtype"]: {c["name"]: c for c in r["cases"]} for r in torch_result["runs"]}
    fma = tessera["roofs"]["fma_peak_gflops"]
    rows, targets = [], []
    for case in tessera["cases"]:
        name = case["name"]
        tower = case["vision_tower"]
        gen = case["generate"]
        row = {"case": name, "images": [f"{im['width']}x{im['height']}" for im in case["images"]],
               "vit_tokens": case["vit_tokens"], "llm_image_tokens": case["llm_image_tokens"],
               "prompt_tokens": case["prompt_tokens"],
               "tessera_preprocess_ms": case["preprocess"]["min_ms"],
               "tessera_vision_tower_ms": tower["min_ms"], "tessera_vision_gflops": tower["gflops"],
               "tessera_fraction_of_fma_peak": tower["gflops"] / fma,
               "tessera_projector_ms": case["projector"]["decoder_shape"]["min_ms"],
               "tessera_vision_plus_projector_7b_ms": case["projector"]["7B_shape"]["vision_tower_plus_projector_min_ms"],
               "tessera_ttft_ms": gen["ttft_ms"]["min"], "tessera_prefill_ms": gen["prefill_ms"]["min"],
               "tessera_decode_tokens_per_s": gen["decode_tokens_per_s"],
               "tessera_fraction_of_dram_roofline": gen["fraction_of_roofline_weights"]}
        for d in ("f32", "bf16"):
            t = by_dtype.get(d, {}).get(name)
            if t is not None:
                row[f"torch_{d}_vision_tower_ms"] = t["min_ms"]
                row[f"torch_{d}_gflops"] = t["gflops"]
                row[f"ratio_vs_torch_{d}"] = t["min_ms"] / tower["min_ms"]
        rows.append(row)
        if "ratio_vs_torch_f32" in row:
            targets.append({"target": f"{name} vision tower: tessera bf16 speed / PyTorch f32 (same threads)",
                            "value": row["ratio_vs_torch_f32"], "goal": 1.5, "met": row["ratio_vs_torch_f32"] >= 1.5})
        targets.append({"target": f"{name} vision tower GFLOP/s / FMA peak (same run)",
                        "value": row["tessera_fraction_of_fma_peak"], "goal": 0.7,
                        "met": row["tessera_fraction_of_fma_peak"] >= 0.7})
    return rows, targets


def print_report(tessera: dict, rows: list[dict], targets: list[dict], attn: dict) -> None:
    r = tessera["roofs"]
    print(f"\n{tessera['machine']['cpu']}, {tessera['machine']['threads']} threads; roofs of the tessera run: "
          f"f32 FMA peak {r['fma_peak_gflops']:.1f} GFLOP/s, bf16 dot peak {r['bf16_dot_peak_gflops']:.1f} GFLOP/s, "
          f"DRAM read {r['dram_read_gbps']:.1f} GB/s")
    impls = ", ".join(f"{d} {a}" for d, a in attn.items())
    print(f"PyTorch: transformers' Qwen2-VL tower, attn_implementation {impls}, no merger (WePOINTS' packing)\n")
    head = (f"{'case':<11} {'ViT tok':>7} {'prep ms':>8} {'vision ms':>10} {'GFLOP/s':>8} {'%FMA':>5} "
            f"{'+proj 7B':>9} {'TTFT ms':>8} {'dec tok/s':>9} {'%roof':>6} | {'torch f32':>10} {'torch bf16':>10} "
            f"{'vs f32':>7} {'vs bf16':>7}")
    print(head)
    def cell(v, fmt):
        return "-" if v is None else format(v, fmt)

    for x in rows:
        f32, b16 = x.get("torch_f32_vision_tower_ms"), x.get("torch_bf16_vision_tower_ms")
        r32, r16 = x.get("ratio_vs_torch_f32"), x.get("ratio_vs_torch_bf16")
        print(f"{x['case']:<11} {x['vit_tokens']:>7} {x['tessera_preprocess_ms']:>8.1f} "
              f"{x['tessera_vision_tower_ms']:>10.1f} {x['tessera_vision_gflops']:>8.1f} "
              f"{100 * x['tessera_fraction_of_fma_peak']:>4.0f}% {x['tessera_vision_plus_projector_7b_ms']:>9.1f} "
              f"{x['tessera_ttft_ms']:>8.1f} {x['tessera_decode_tokens_per_s']:>9.1f} "
              f"{100 * x['tessera_fraction_of_dram_roofline']:>5.0f}% | "
              f"{cell(f32, '.1f'):>10} {cell(b16, '.1f'):>10} {cell(r32, '.2f') + 'x':>7} {cell(r16, '.2f') + 'x':>7}")
    print("\n(vision = the tower alone, tessera bf16 weights; +proj 7B = tower + the 7B-shape projector; TTFT = "
          "preprocess + tower + projector + prefill + first token of generate(); decode against the weight-bandwidth "
          "roofline)")
    print("\ntargets:")
    for t in targets:
        print(f"  {t['target']:<72} {t['value']:8.3f}  (goal >= {t['goal']:g})  {'met' if t['met'] else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tessera-json", required=True, help="bench_points --json of the same run (shapes, cases, runs)")
    ap.add_argument("--pixels", required=True, help="bench_points --dump-pixels folder: <case>.f32 per case")
    ap.add_argument("--dtypes", nargs="+", default=["f32", "bf16"], choices=["f32", "bf16"])
    ap.add_argument("--attn", default="auto", choices=["auto", "eager", "sdpa"],
                    help="the tower's attention implementation; auto (default): per dtype, whichever of eager and "
                         "sdpa runs one block of the largest case faster")
    ap.add_argument("--json", default="", help="this side's results alone")
    ap.add_argument("--out", default="", help="the combined JSON (tessera, torch, side by side, targets)")
    ap.add_argument("--load", action="append", default=[], help="load lines to record (repeatable)")
    args = ap.parse_args()

    import torch
    import transformers
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    with open(args.tessera_json) as f:
        tessera = json.load(f)
    vision = tessera["model"]["vision"]
    limits = (tessera["model"]["preprocessor"]["min_pixels"], tessera["model"]["preprocessor"]["max_pixels"])
    inputs, checks = {}, {}
    for case in tessera["cases"]:
        pixels = np.fromfile(os.path.join(args.pixels, case["name"] + ".f32"), dtype="<f4").reshape(-1, vision["patch_dim"])
        assert pixels.shape[0] == case["vit_tokens"], (pixels.shape, case["vit_tokens"])
        inputs[case["name"]] = (pixels, [im["grid_thw"] for im in case["images"]])
        checks[case["name"]] = check_pixels(case, pixels, limits)
        c = checks[case["name"]]
        verdict = "identical" if c["identical"] else "DIFFER (max abs diff %g, grid_thw %s)" % (
            c["max_abs_diff"], "same" if c["same_grid_thw"] else "different")
        print(f"{case['name']}: pixel_values vs transformers' Qwen2VLImageProcessor on the same images: {verdict}",
              file=sys.stderr)

    result = {"versions": {"python": platform.python_version(), "torch": torch.__version__,
                           "transformers": transformers.__version__, "numpy": np.__version__},
              "threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "model": "transformers Qwen2VisionTransformerPretrainedModel (random init: normal std 0.02), run as "
                       "WePOINTS' Qwen2VisionTransformerForNavitPOINTS.forward: patch_embed, rot_pos_emb, blocks over "
                       "cu_seqlens, no merger",
              "attn_implementation": args.attn,
              "load_average_1min_start": os.getloadavg()[0],
              "pixel_values_check": checks,
              "runs": [bench_dtype(d, vision, tessera["cases"], inputs, args) for d in args.dtypes]}
    result["load_average_1min_end"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)

    rows, targets = report(tessera, result)
    print_report(tessera, rows, targets, {r["dtype"]: r["attn_implementation"] for r in result["runs"]})
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"load": args.load, "tessera": tessera, "torch": result, "side_by_side": rows,
                       "targets": targets}, f, indent=2)
            f.write("\n")
        print(f"\nJSON written to {args.out}")
    ok = all(c["identical"] for c in checks.values()) and all(
        c["output_finite"] for r in result["runs"] for c in r["cases"]) and tessera["check"]["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
