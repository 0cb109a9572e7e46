# SPDX-License-Identifier: Apache-2.0
"""Pillow + transformers side of the image benchmark (scripts/bench_image.sh), measuring what
bench_image measures, the same way, on one thread:

  decode      Image.open(io.BytesIO(data)).convert('RGB'), the file's bytes held in memory;
  preprocess  the POINTS1.5 reference preprocessing of the decoded image: transformers'
              Qwen2VLImageProcessor(min_pixels=56*56, max_pixels=28*28*1280) with WePOINTS'
              smart_resize substituted (as tools/golden/make_image_goldens.py runs it), called with
              input_data_format=ChannelDimension.LAST;
  pipeline    both.

A warm-up call, then --reps timed calls (at least --min-time seconds in all): min and median, input
megapixels per second. Outside the timing, the FNV-1a 64 of the decoded RGB bytes and of
pixel_values (float32 little-endian), as bench_image computes them over tessera's outputs (a plain
byte loop: a few seconds per run, once). Writes JSON with the versions of Pillow, its libjpeg-turbo,
numpy, transformers and torch.

    .venv/bin/python tools/bench/image_pillow.py --image photo.jpg [--reps N] [--quick] --json pillow.json

--make-jpeg PATH --size WxH writes the benchmark's deterministic photo-like test JPEG instead
(quality 90, 4:2:0, optimize=False) and exits.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import Image, features  # noqa: E402
from timing import timed  # noqa: E402  (tools/bench/timing.py, beside this script)


# --------------------------------------------------------------------------------------------- #
# The test image
# --------------------------------------------------------------------------------------------- #
def photo_like(width: int, height: int, seed: int = 20241210) -> np.ndarray:
    """uint8 [height, width, 3], deterministic: a smooth sky-to-ground scene (gradients and
    low-frequency shading), a horizon, hard-edged discs and boxes, a band of fine stripes,
    multi-scale texture and low-amplitude Gaussian noise (sigma 3 levels), so that the JPEG has
    about the entropy of a photo (4000 x 3000 at quality 90: about 3 MB) rather than that of flat
    color or of white noise."""
    rng = np.random.default_rng(seed)
    y = (np.arange(height, dtype=np.float32) / max(height - 1, 1))[:, None]
    x = (np.arange(width, dtype=np.float32) / max(width - 1, 1))[None, :]
    horizon = 0.55 + 0.04 * np.sin(2 * math.pi * (1.3 * x + 0.2))
    sky = y < horizon
    img = np.empty((height, width, 3), dtype=np.float32)
    shade = 0.5 + 0.5 * np.sin(2 * math.pi * (0.8 * x + 0.6 * y)) * np.cos(2 * math.pi * 1.7 * y)
    img[..., 0] = np.where(sky, 90 + 80 * y + 20 * x, 70 + 60 * shade + 40 * (1 - y))
    img[..., 1] = np.where(sky, 140 + 70 * y, 100 + 70 * shade)
    img[..., 2] = np.where(sky, 230 - 60 * y, 50 + 40 * shade * x)
    # Objects with hard edges: discs and boxes of flat-ish color, shaded along y.
    for _ in range(24):
        cx, cy = rng.uniform(0, 1), rng.uniform(0.3, 1)
        r = rng.uniform(0.02, 0.09)
        color = rng.uniform(20, 235, size=3).astype(np.float32)
        if rng.uniform() < 0.5:
            mask = (x - cx) ** 2 * (width / height) ** 2 + (y - cy) ** 2 < r * r
        else:
            mask = (np.abs(x - cx) * width / height < r) & (np.abs(y - cy) < 0.7 * r)
        img[mask] = (color[None, :] * (0.85 + 0.3 * np.broadcast_to(y, mask.shape)[mask])[:, None])
    # Fine detail: a band of thin stripes (fences, text-like texture).
    band = (y > 0.8) & (y < 0.86)
    stripes = (np.floor(x * width / 3) % 2 == 0) & band
    img[stripes] *= 0.55
    # Texture (foliage, fabric): Gaussian noise at 1/16, 1/4 and 1/2 resolution, upsampled bicubic;
    # strong on the ground and the objects, faint in the sky.
    def texture(scale: int) -> np.ndarray:
        n = rng.normal(0.0, 1.0, size=(max(height // scale, 2), max(width // scale, 2))).astype(np.float32)
        return np.asarray(Image.fromarray(n, "F").resize((width, height), Image.BICUBIC))

    tex = 28 * texture(16) + 18 * texture(4) + 12 * texture(2)
    img += (tex * np.where(sky, np.float32(0.3), np.float32(1.0)))[..., None]
    img += rng.normal(0.0, 3.0, size=img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_jpeg(path: Path, width: int, height: int) -> None:
    buf = io.BytesIO()
    Image.fromarray(photo_like(width, height), "RGB").save(buf, format="JPEG", quality=90, subsampling="4:2:0",
                                                            optimize=False, progressive=False)
    path.write_bytes(buf.getvalue())
    print(f"wrote {path}: {width} x {height}, {len(buf.getvalue())} bytes, sha256 "
          f"{hashlib.sha256(buf.getvalue()).hexdigest()}")


def fnv1a64(data) -> str:
    """FNV-1a 64 of the bytes, byte by byte (bench_image computes the same)."""
    h = 0xCBF29CE484222325
    mask = 0xFFFFFFFFFFFFFFFF
    prime = 0x100000001B3
    for b in data:
        h = ((h ^ b) * prime) & mask
    return f"{h:016x}"


def stage(times: list[float], megapixels: float) -> dict:
    med = times[len(times) // 2]
    return {"min_s": times[0], "median_s": med, "reps": len(times), "mp_per_s": megapixels / times[0],
            "mp_per_s_median": megapixels / med}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=2.0, help="least seconds of timed calls per stage")
    ap.add_argument("--quick", action="store_true", help="2 reps, no minimum time (a smoke run, not a measurement)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--make-jpeg", type=Path, metavar="PATH", help="write the test JPEG and exit")
    ap.add_argument("--size", default="4000x3000", help="WxH of --make-jpeg")
    args = ap.parse_args()

    if args.make_jpeg:
        w, h = (int(v) for v in args.size.lower().split("x"))
        make_jpeg(args.make_jpeg, w, h)
        return 0
    if args.image is None or args.json is None:
        ap.error("--image and --json are required (or --make-jpeg)")
    if args.quick:
        args.reps, args.min_time = min(args.reps, 2), 0.0

    import torch  # transformers imports it; one intra-op thread like everything else here

    torch.set_num_threads(1)
    import transformers
    from transformers.image_utils import ChannelDimension

    # The reference processor exactly as the goldens run it: importing the golden generator
    # substitutes WePOINTS' smart_resize into transformers' Qwen2VLImageProcessor.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
    import make_image_goldens as reference

    proc = reference.processor(reference.POINTS_DEFAULT)

    data = args.image.read_bytes()

    def decode():
        return Image.open(io.BytesIO(data)).convert("RGB")

    def preprocess(img):
        return proc(images=img, input_data_format=ChannelDimension.LAST)["pixel_values"]

    decoded = decode()
    out = proc(images=decoded, input_data_format=ChannelDimension.LAST)
    pv = np.asarray(out["pixel_values"])
    thw = [int(v) for v in np.asarray(out["image_grid_thw"])[0]]
    assert pv.dtype == np.float32 and pv.ndim == 2, (pv.dtype, pv.shape)
    width, height = decoded.size
    megapixels = width * height / 1e6
    print(f"Pillow {PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}), transformers "
          f"{transformers.__version__}: {args.image} {width} x {height} ({megapixels:.2f} MP), {len(data)} bytes -> "
          f"resized {thw[2] * 14} x {thw[1] * 14}, {pv.shape[0]} patches")

    t_decode = sorted(timed(decode, args.reps, args.min_time))
    t_pre = sorted(timed(lambda: preprocess(decoded), args.reps, args.min_time))
    t_pipe = sorted(timed(lambda: preprocess(decode()), args.reps, args.min_time))

    t0 = time.perf_counter()
    rgb_bytes = decoded.tobytes()  # mode RGB: rows top to bottom, R G B interleaved, as tessera's rgb_image
    rgb_hash = fnv1a64(rgb_bytes)
    pv_bytes = np.ascontiguousarray(pv, dtype="<f4").tobytes()
    pv_hash = fnv1a64(pv_bytes)
    hash_s = time.perf_counter() - t0

    result = {
        "versions": {"python": platform.python_version(), "pillow": PIL.__version__,
                     "libjpeg_turbo": features.version("libjpeg_turbo"), "numpy": np.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__},
        "threads": {"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"],
                    "OPENBLAS_NUM_THREADS": os.environ["OPENBLAS_NUM_THREADS"],
                    "MKL_NUM_THREADS": os.environ["MKL_NUM_THREADS"], "torch": torch.get_num_threads()},
        "quick": args.quick,
        "image": {"path": str(args.image), "width": width, "height": height, "megapixels": megapixels,
                  "file_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "resized": {"height": thw[1] * 14, "width": thw[2] * 14},
        "grid_thw": thw,
        "n_patches": int(pv.shape[0]),
        "n_features": int(pv.shape[1]),
        "decode": {**stage(t_decode, megapixels), "rgb_fnv1a64": rgb_hash, "rgb_bytes": len(rgb_bytes)},
        "preprocess": stage(t_pre, megapixels),
        "pipeline": {**stage(t_pipe, megapixels), "pixel_values_fnv1a64": pv_hash, "pixel_values_bytes": len(pv_bytes)},
        "hash_s": hash_s,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for name, t in (("decode", t_decode), ("preprocess", t_pre), ("pipeline", t_pipe)):
        print(f"  {name:<10} min {t[0] * 1e3:9.2f} ms  median {t[len(t) // 2] * 1e3:9.2f} ms  "
              f"{megapixels / t[0]:8.1f} MP/s  ({len(t)} reps)")
    print(f"  decoded RGB fnv1a64 {rgb_hash}, pixel_values fnv1a64 {pv_hash} (hashed in {hash_s:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
