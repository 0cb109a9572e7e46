# SPDX-License-Identifier: Apache-2.0
"""Golden data for tessera's image path (tests/golden/test_golden_image.cpp, tests/io/test_image*.cpp).

Runs the *reference* code and writes what tessera must reproduce:

  image_goldens.safetensors  POINTS1.5 preprocessing: transformers 4.46.3 Qwen2VLImageProcessor with
                             WePOINTS' smart_resize substituted (written here from spec section 1.2:
                             sides below 28 accepted), on the real images in ../shared/data/images and
                             on synthetic images from a formula that test_golden_image.cpp implements
                             identically. Per case: the Pillow-resized uint8 image and pixel_values in
                             full for small cases; FNV-1a 64 hashes (per row and whole) and seeded
                             samples for large ones (and always for real images, whose pixels must not
                             be committed). Plus the 3 x 256 table of normalized values computed by
                             transformers' own rescale + normalize.
  image_formats.safetensors  Pillow's Image.open(f).convert('RGB') of every fixture in images/.
  images/                    tiny synthetic fixtures in every format and mode tessera decodes, written
                             by Pillow or, for layouts Pillow cannot write, by this script (PNG, BMP,
                             TGA, GIF byte by byte) and by tools/golden/image_helper.c (JPEG: YCCK,
                             CMYK without an Adobe marker, RGB without YCbCr conversion, 4:4:0, 4:1:1,
                             arithmetic coding, progressive with restart markers), which this script
                             compiles with `cc ... $(pkg-config --cflags --libs libjpeg)` against the
                             system libjpeg-turbo.
  image_manifest.json        versions (python, torch, transformers, pillow, numpy, safetensors, Pillow's
                             libjpeg-turbo and zlib, the system libjpeg-turbo that wrote the helper's
                             JPEG files), settings, every case and fixture (how each file was written;
                             for JPEG its frame type, sampling, markers and scans).

Every expected pixel comes from Pillow itself: Image.open(f).convert('RGB') of the fixture or of the real
image (for JPEG: Pillow's bundled libjpeg-turbo; a 1-component file opens as mode L and is replicated, a
4-component one as mode CMYK read inverted, rawmode "CMYK;I", with or without an Adobe marker). Whoever
wrote a file, neither the writer's own decoder nor tessera ever supplies expected pixels.

The processor is called with input_data_format="channels_last": without it, transformers infers the
channel axis from the array shape and reads an image whose height is 1 or 3 as channels-first (a
reference bug that would turn a 1 x W image into garbage); for every other height the result is the same.

Regenerate only on purpose (new cases, new pinned versions in tools/requirements.txt); CI never runs
this. The output is deterministic: run it twice and compare sha256 sums.

    .venv/bin/python tools/golden/make_image_goldens.py --out tests/golden
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import OrderedDict

import numpy as np
import PIL
import safetensors
import safetensors.numpy
import torch
import transformers
from PIL import Image, features
from transformers.image_transforms import resize as hf_resize
from transformers.image_utils import ChannelDimension, PILImageResampling
from transformers.models.qwen2_vl import image_processing_qwen2_vl
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_DIR = os.path.join(REPO, "..", "shared", "data", "images")
MAX_GOLDEN_BYTES = 2 * 1024 * 1024  # style guide section 8: every golden file under 2 MB
MAX_JPEG_FIXTURE_BYTES = 3 * 1024   # the decoder tests decode every prefix of every fixture
N_SAMPLES = 4096

POINTS_DEFAULT = (56 * 56, 28 * 28 * 1280)     # Qwen2VLImageProcessor defaults (POINTS1.5, spec 1.7)
QWEN2VL_7B = (56 * 56, 16384 * 28 * 28)         # Qwen2-VL-7B-Instruct preprocessor_config.json
VLMEVALKIT = (840 * 840, 28 * 28 * 1280)        # VLMEvalKit POINTSV15: min_pixels = 840 * 840 by default

SMALL_PATCH_LIMIT = 100  # cases with at most this many patches store pixel_values in full


# --------------------------------------------------------------------------------------------- #
# The reference: transformers' processor with WePOINTS' smart_resize
# --------------------------------------------------------------------------------------------- #
def points_smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                        max_pixels: int = 14 * 14 * 4 * 1280) -> tuple[int, int]:
    """spec/points15.md section 1.2: transformers' smart_resize, except that sides below `factor`
    are accepted (the aspect-ratio check only runs when both sides are >= factor)."""
    if height < factor or width < factor:
        pass
    elif max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# Qwen2VLImageProcessor._preprocess looks smart_resize up in its module at call time.
image_processing_qwen2_vl.smart_resize = points_smart_resize


def processor(limits: tuple[int, int]) -> Qwen2VLImageProcessor:
    return Qwen2VLImageProcessor(min_pixels=limits[0], max_pixels=limits[1])


def normalization_table() -> np.ndarray:
    """table[c, v] = transformers' rescale + normalize of uint8 value v in channel c (float32)."""
    proc = processor(POINTS_DEFAULT)
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # [1, 256, 3]
    x = proc.rescale(ramp, scale=proc.rescale_factor, input_data_format=ChannelDimension.LAST)
    x = proc.normalize(x, mean=proc.image_mean, std=proc.image_std, input_data_format=ChannelDimension.LAST)
    assert x.dtype == np.float32
    return np.ascontiguousarray(x[0].T)  # [3, 256]


def permute_like_spec(chw: np.ndarray, t: int = 2, p: int = 14, m: int = 2) -> np.ndarray:
    """spec section 1.5: [C, H, W] -> (N, C * t * p * p), merge-window-major tokens, (c, t, py, px)."""
    c, h, w = chw.shape
    x = np.tile(chw[None], (t, 1, 1, 1)).reshape(1, t, c, h // p // m, m, p, w // p // m, m, p)
    return x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape((h // p) * (w // p), c * t * p * p)


# --------------------------------------------------------------------------------------------- #
# Synthetic images (test_golden_image.cpp implements the same formula)
# --------------------------------------------------------------------------------------------- #
def synthetic_image(h: int, w: int) -> np.ndarray:
    """uint8 [h, w, 3]: gradients + 8-pixel checkerboard + integer hash noise, white columns
    (x % 17 == 0) and black rows (y % 13 == 0), so resampling meets edges, ringing and clipping.
    All arithmetic is uint32 with wrap-around."""
    M = np.uint64(0xFFFFFFFF)
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                          np.arange(3, dtype=np.uint64), indexing="ij")
    v = ((x * np.uint64(0x9E3779B1)) ^ (y * np.uint64(0x85EBCA77)) ^ (c * np.uint64(0xC2B2AE3D))) & M
    v ^= v >> np.uint64(15)
    v = (v * np.uint64(0x2C1B3C6D)) & M
    v ^= v >> np.uint64(12)
    v = (v * np.uint64(0x297A2D39)) & M
    v ^= v >> np.uint64(15)
    grad = np.where(c == 0, (x * np.uint64(255)) // np.uint64(max(w - 1, 1)),
                    np.where(c == 1, (y * np.uint64(255)) // np.uint64(max(h - 1, 1)),
                             ((x + y) * np.uint64(255)) // np.uint64(max(w + h - 2, 1))))
    checker = np.where(((x // np.uint64(8)) + (y // np.uint64(8))) % np.uint64(2) == 0, np.uint64(255), np.uint64(0))
    val = (grad * np.uint64(3) + checker * np.uint64(2) + (v & np.uint64(255)) * np.uint64(3)) >> np.uint64(3)
    val = np.where(x % np.uint64(17) == 0, np.uint64(255), val)
    val = np.where(y % np.uint64(13) == 0, np.uint64(0), val)
    return val.astype(np.uint8)


# --------------------------------------------------------------------------------------------- #
# Hashes and helpers
# --------------------------------------------------------------------------------------------- #
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64_rows(a: np.ndarray) -> np.ndarray:
    """FNV-1a 64 of each row's bytes (rows = first axis), vectorized over rows."""
    rows = a.reshape(a.shape[0], -1)
    h = np.full(rows.shape[0], FNV_OFFSET, dtype=np.uint64)
    prime = np.uint64(FNV_PRIME)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h = (h ^ rows[:, j].astype(np.uint64)) * prime
    return h


def as_i64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64).view(np.int64)


def tool_versions() -> OrderedDict:
    """Pillow and what it bundles (the decoders that give every expected pixel), and the system
    libjpeg-turbo that image_helper.c links to write the JPEG layouts Pillow cannot write."""
    system_jpeg = subprocess.run(["pkg-config", "--modversion", "libjpeg"], capture_output=True, text=True,
                                 check=True).stdout.strip()
    pkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libjpeg62-turbo-dev"], capture_output=True, text=True)
    if pkg.returncode == 0 and pkg.stdout:
        system_jpeg += f" (Debian libjpeg62-turbo-dev {pkg.stdout})"
    return OrderedDict(
        python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
        pillow=PIL.__version__, numpy=np.__version__, safetensors=safetensors.__version__,
        libjpeg_turbo=features.version("libjpeg_turbo"), zlib=features.version("zlib"),
        fixture_writer_libjpeg_turbo=system_jpeg)


# --------------------------------------------------------------------------------------------- #
# tools/golden/image_helper.c: JPEG writing and hashing
# --------------------------------------------------------------------------------------------- #
class Helper:
    """tools/golden/image_helper.c: JPEG layouts Pillow cannot write (system libjpeg) and whole-buffer
    FNV-1a 64."""

    def __init__(self, workdir: str) -> None:
        self.exe = os.path.join(workdir, "image_helper")
        src = os.path.join(REPO, "tools", "golden", "image_helper.c")
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libjpeg"], capture_output=True, text=True,
                               check=True).stdout.split()
        subprocess.run(["cc", "-O2", "-o", self.exe, src] + flags, check=True)
        self.workdir = workdir

    def jpeg(self, layout: str, samples: np.ndarray) -> bytes:
        """A JPEG of `layout` (see image_helper.c) from interleaved uint8 samples [h, w, components]."""
        assert samples.dtype == np.uint8 and samples.ndim == 3
        h, w = samples.shape[:2]
        src, dst = os.path.join(self.workdir, "in.raw"), os.path.join(self.workdir, "out.jpg")
        np.ascontiguousarray(samples).tofile(src)
        subprocess.run([self.exe, "jpeg", layout, str(w), str(h), src, dst], check=True)
        with open(dst, "rb") as f:
            return f.read()

    def fnv1a64(self, a: np.ndarray) -> str:
        """FNV-1a 64 of the array's bytes (C order, little-endian), as 16 hex digits."""
        path = os.path.join(self.workdir, "hash.bin")
        np.ascontiguousarray(a).tofile(path)
        return subprocess.run([self.exe, "fnv1a64", path], capture_output=True, text=True, check=True).stdout.strip()


def jpeg_structure(data: bytes) -> OrderedDict:
    """What a JPEG file holds, read from its markers (recorded in the manifest per fixture)."""
    sof_kinds = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC9: "extended, arithmetic",
                 0xCA: "progressive, arithmetic"}
    assert data[:2] == b"\xff\xd8"
    frame, ids, sampling, jfif, adobe, interval = None, [], [], False, None, 0
    pos, scans, restart_markers = 2, 0, 0
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, pos
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        body = data[pos + 4:pos + 2 + length]
        if marker in sof_kinds:
            frame = sof_kinds[marker]
            for i in range(body[5]):
                ids.append(body[6 + 3 * i])
                sampling.append(f"{body[7 + 3 * i] >> 4}x{body[7 + 3 * i] & 15}")
        elif marker == 0xE0 and body[:5] == b"JFIF\x00":
            jfif = True
        elif marker == 0xEE and body[:5] == b"Adobe":
            adobe = body[11]
        elif marker == 0xDD:
            interval = struct.unpack(">H", body[:2])[0]
        pos += 2 + length
        if marker == 0xDA:  # the entropy-coded data runs to the next marker that is not RSTn (0xFF00: a data byte)
            scans += 1
            while not (data[pos] == 0xFF and data[pos + 1] != 0 and not 0xD0 <= data[pos + 1] <= 0xD7):
                if data[pos] == 0xFF and 0xD0 <= data[pos + 1] <= 0xD7:
                    restart_markers += 1
                pos += 1
    assert frame is not None
    return OrderedDict(frame=frame, components=len(ids), component_ids=ids, sampling=sampling, jfif=jfif,
                       adobe_transform=adobe, restart_interval=interval, scans=scans, restart_markers=restart_markers)


# --------------------------------------------------------------------------------------------- #
# Preprocessing cases
# --------------------------------------------------------------------------------------------- #
class Goldens:
    def __init__(self) -> None:
        self.tensors: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self.cases: list = []

    def put(self, name: str, value: np.ndarray) -> str:
        assert name not in self.tensors, name
        self.tensors[name] = np.ascontiguousarray(value)
        return name


def run_case(g: Goldens, helper: Helper, table: np.ndarray, name: str, rgb: Image.Image, limits: tuple[int, int], source: OrderedDict,
             seed: int, full: bool | None = None) -> None:
    assert rgb.mode == "RGB"
    w, h = rgb.size
    proc = processor(limits)
    out = proc(images=rgb, input_data_format=ChannelDimension.LAST)
    pv = np.asarray(out["pixel_values"])
    thw = np.asarray(out["image_grid_thw"])
    assert pv.dtype == np.float32 and thw.shape == (1, 3)
    rh, rw = points_smart_resize(h, w, 28, *limits)
    assert (int(thw[0, 1]) * 14, int(thw[0, 2]) * 14) == (rh, rw)
    resized = hf_resize(np.asarray(rgb), size=(rh, rw), resample=PILImageResampling.BICUBIC,
                        input_data_format=ChannelDimension.LAST)
    assert resized.dtype == np.uint8 and resized.shape == (rh, rw, 3)
    # pixel_values is the normalization table looked up and permuted: checked here, exhaustively.
    chw = np.stack([table[c][resized[:, :, c]] for c in range(3)])
    assert np.array_equal(permute_like_spec(chw), pv), name

    n_patches = pv.shape[0]
    if full is None:
        full = source["kind"] == "synthetic" and n_patches <= SMALL_PATCH_LIMIT
    entry = OrderedDict(name=name, source=source, input_size=[h, w], min_pixels=limits[0], max_pixels=limits[1],
                        resized_size=[rh, rw], grid_thw=[int(v) for v in thw[0]], n_patches=int(n_patches),
                        n_features=int(pv.shape[1]), llm_tokens=int(n_patches) // 4, storage="full" if full else "hashed")
    entry["grid_thw_tensor"] = g.put(f"{name}.grid_thw", thw.astype(np.int64))
    entry["resized_row_fnv1a64"] = g.put(f"{name}.resized_row_fnv1a64", as_i64(fnv1a64_rows(resized)))
    entry["resized_fnv1a64"] = helper.fnv1a64(resized)
    entry["pixel_values_fnv1a64"] = helper.fnv1a64(pv)
    if full:
        entry["resized"] = g.put(f"{name}.resized", resized)
        entry["pixel_values"] = g.put(f"{name}.pixel_values", pv)
    rng = np.random.default_rng(seed)
    count = min(N_SAMPLES, pv.size)
    idx = np.sort(rng.choice(pv.size, size=count, replace=False)).astype(np.int64)
    entry["sample_seed"] = seed
    entry["sample_index"] = g.put(f"{name}.sample_index", idx)
    entry["sample_value"] = g.put(f"{name}.sample_value", pv.reshape(-1)[idx])
    g.cases.append(entry)
    print(f"  {name}: {h}x{w} -> {rh}x{rw}, grid {list(thw[0])}, {n_patches} patches, {entry['storage']}")


def preprocessing_cases(g: Goldens, table: np.ndarray, helper: Helper) -> None:
    seed = 7000
    synthetic = [(1, 1), (27, 500), (28, 28), (29, 31), (4000, 30), (3000, 4000)]
    for h, w in synthetic:
        img = Image.fromarray(synthetic_image(h, w), "RGB")
        src = OrderedDict(kind="synthetic", height=h, width=w)
        run_case(g, helper, table, f"synthetic_{h}x{w}", img, POINTS_DEFAULT, src, seed)
        seed += 1
    for (h, w), limits, tag in [((29, 31), VLMEVALKIT, "vlmevalkit"), ((1, 1), VLMEVALKIT, "vlmevalkit"),
                                ((3000, 4000), QWEN2VL_7B, "qwen2vl_7b")]:
        img = Image.fromarray(synthetic_image(h, w), "RGB")
        src = OrderedDict(kind="synthetic", height=h, width=w)
        run_case(g, helper, table, f"synthetic_{h}x{w}_{tag}", img, limits, src, seed)
        seed += 1

    real = ["donut_cord_receipt_00004.jpg", "donut_document.png", "skimage_astronaut.png", "skimage_coffee.png"]
    if not os.path.isdir(DATA_DIR):
        sys.exit(f"{DATA_DIR} not found: the real-image cases need ../shared/data/images")
    for file in real:
        with open(os.path.join(DATA_DIR, file), "rb") as f:
            data = f.read()
        opened = Image.open(io.BytesIO(data))
        mode = opened.mode
        rgb = opened.convert("RGB")
        decoded = np.asarray(rgb)
        stem = os.path.splitext(file)[0]
        src = OrderedDict(kind="real", file=file, file_bytes=len(data), decoded_by="Pillow", pillow_mode=mode,
                          decoded_size=[decoded.shape[0], decoded.shape[1]],
                          decoded_fnv1a64=helper.fnv1a64(decoded))
        if file.endswith(".jpg"):
            src["jpeg"] = jpeg_structure(data)
        run_case(g, helper, table, f"real_{stem}", rgb, POINTS_DEFAULT, src, seed)
        seed += 1
        if file == "skimage_coffee.png":
            run_case(g, helper, table, f"real_{stem}_vlmevalkit", rgb, VLMEVALKIT, src, seed)
            seed += 1
        if file == "donut_document.png":
            run_case(g, helper, table, f"real_{stem}_qwen2vl_7b", rgb, QWEN2VL_7B, src, seed)
            seed += 1


# --------------------------------------------------------------------------------------------- #
# Format fixtures
# --------------------------------------------------------------------------------------------- #
def fixture_pixels(h: int, w: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, c), dtype=np.uint8)


def blocky_noise(h: int, w: int, c: int, seed: int, saturated: bool = False) -> np.ndarray:
    """uint8 [h, w, c]: 5 x 5 blocks of random colours (saturated: every sample 0 or 255) plus noise in
    [-8, 8], clipped."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (-(-h // 5), -(-w // 5), c), dtype=np.int16)
    if saturated:
        blocks = np.where(blocks < 128, 0, 255).astype(np.int16)
    img = np.kron(blocks, np.ones((5, 5, 1), dtype=np.int16))[:h, :w]
    return np.clip(img + rng.integers(-8, 9, (h, w, c), dtype=np.int16), 0, 255).astype(np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples: np.ndarray, depth: int) -> bytes:
    """One PNG/BMP-style row of samples at `depth` bits, most significant bits first."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // depth
    vals = list(samples.astype(int).tolist()) + [0] * ((-len(samples)) % per)
    out = bytearray()
    for i in range(0, len(vals), per):
        b = 0
        for v in vals[i:i + per]:
            b = (b << depth) | v
        out.append(b)
    return bytes(out)


def write_png(samples: np.ndarray, color_type: int, depth: int, extra: list[tuple[bytes, bytes]] = (),
              interlace: bool = False) -> bytes:
    """A PNG from samples [h, w, channels] (filter 0 on every row)."""
    h, w = samples.shape[:2]
    flat = samples.reshape(h, w, -1)

    def raw_rows(img: np.ndarray) -> bytes:
        return b"".join(b"\x00" + pack_row(img[y].reshape(-1), depth) for y in range(img.shape[0]))

    if interlace:
        data = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                               (0, 1, 1, 2)]:
            sub = flat[y0::dy, x0::dx]
            if sub.size:
                data += raw_rows(sub)
    else:
        data = raw_rows(flat)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for kind, payload in extra:
        out += png_chunk(kind, payload)
    return out + png_chunk(b"IDAT", zlib.compress(data, 9)) + png_chunk(b"IEND", b"")


def write_bmp(h: int, w: int, bits: int, rows: list[bytes], palette: bytes = b"", header_size: int = 40,
              compression: int = 0, masks: tuple = (), top_down: bool = False) -> bytes:
    """A BMP; `rows` are the pixel rows top to bottom (unpadded), `palette` the raw entries."""
    stride = ((w * bits + 31) >> 3) & ~3
    body = b"".join(r + b"\x00" * (stride - len(r)) for r in (rows if top_down else rows[::-1]))
    if header_size == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", header_size, w, -h if top_down else h, 1, bits, compression, len(body),
                           2835, 2835, len(palette) // 4 if bits <= 8 else 0, 0)
        if header_size >= 52:
            m = list(masks) + [0] * (4 - len(masks))
            info += struct.pack("<IIII", *m)
            info += b"\x00" * (header_size - len(info))
        elif masks:
            info += struct.pack("<III", *masks[:3])
    offset = 14 + len(info) + len(palette)
    head = b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset)
    return head + info + palette + body


def write_tga(h: int, w: int, image_type: int, depth: int, data: bytes, flags: int = 0, cmap: bytes = b"",
              cmap_start: int = 0, cmap_len: int = 0, cmap_depth: int = 0) -> bytes:
    header = struct.pack("<BBBHHBHHHHBB", 0, 1 if cmap_len else 0, image_type, cmap_start, cmap_len, cmap_depth,
                         0, 0, w, h, depth, flags)
    return header + cmap + data


def gif_parts(data: bytes) -> tuple[bytes, bytes]:
    """(global colour table, LZW data = code size byte + sub-blocks + terminator) of a Pillow GIF."""
    flags = data[10]
    pos = 13
    gct = b""
    if flags & 0x80:
        gct = data[pos:pos + 3 * (2 << (flags & 7))]
        pos += len(gct)
    while data[pos] == 0x21:  # skip extensions
        pos += 2
        while data[pos]:
            pos += 1 + data[pos]
        pos += 1
    assert data[pos] == 0x2C
    iflags = data[pos + 9]
    pos += 10
    if iflags & 0x80:
        pos += 3 * (2 << (iflags & 7))
    start = pos
    pos += 1
    while data[pos]:
        pos += 1 + data[pos]
    return gct, data[start:pos + 1]


def pillow_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def make_fixtures(helper: Helper) -> "OrderedDict[str, tuple[str, bytes, str]]":
    """name -> (extension, bytes, how it was written)."""
    fx: "OrderedDict[str, tuple[str, bytes, str]]" = OrderedDict()
    H, W = 11, 13  # odd sizes: partial Adam7 passes, BMP row padding, 4:2:0 edges
    rgb = fixture_pixels(H, W, 3, 1)
    gray = fixture_pixels(H, W, 1, 2)[:, :, 0]
    alpha = fixture_pixels(H, W, 1, 3)[:, :, 0]
    idx = (fixture_pixels(H, W, 1, 4)[:, :, 0] % 6).astype(np.uint8)
    pal6 = bytes(fixture_pixels(1, 6, 3, 5).reshape(-1).tolist())
    pal_img = Image.fromarray(idx, "P")
    pal_img.putpalette(pal6)

    # PNG, written by Pillow
    fx["png_l"] = ("png", pillow_bytes(Image.fromarray(gray, "L"), "PNG"), "Pillow, mode L")
    fx["png_l_trns"] = ("png", pillow_bytes(Image.fromarray(gray, "L"), "PNG", transparency=int(gray[0, 0])),
                        "Pillow, mode L, tRNS gray value")
    fx["png_la"] = ("png", pillow_bytes(Image.fromarray(np.dstack([gray, alpha]), "LA"), "PNG"), "Pillow, mode LA")
    fx["png_p"] = ("png", pillow_bytes(pal_img, "PNG"), "Pillow, mode P, 6-entry palette")
    fx["png_p_trns"] = ("png", pillow_bytes(pal_img, "PNG", transparency=bytes([0, 128, 255, 7, 0, 99])),
                        "Pillow, mode P, tRNS alpha per palette entry")
    fx["png_rgb"] = ("png", pillow_bytes(Image.fromarray(rgb, "RGB"), "PNG"), "Pillow, mode RGB")
    fx["png_rgb_trns"] = ("png", pillow_bytes(Image.fromarray(rgb, "RGB"), "PNG", transparency=tuple(int(v) for v in rgb[0, 0])),
                          "Pillow, mode RGB, tRNS colour")
    fx["png_rgba"] = ("png", pillow_bytes(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"), "Pillow, mode RGBA")
    fx["png_1bit"] = ("png", pillow_bytes(Image.fromarray(gray > 127).convert("1"), "PNG"), "Pillow, mode 1")
    g16 = (fixture_pixels(H, W, 2, 6).astype(np.uint16) @ np.array([1, 256], dtype=np.uint16)).astype(np.uint16)
    g16[0, :4] = [0, 255, 256, 65535]
    g16[1, :4] = [1, 254, 300, 1000]
    fx["png_i16"] = ("png", pillow_bytes(Image.fromarray(g16, "I;16"), "PNG"), "Pillow, mode I;16 (16-bit gray)")
    # PNG, written here (layouts Pillow does not write)
    s16 = fixture_pixels(H, W, 8, 7).astype(np.uint16).reshape(H, W, 4, 2) @ np.array([256, 1], dtype=np.uint16)
    fx["png_rgb16"] = ("png", write_png(s16[:, :, :3], 2, 16), "16-bit RGB")
    fx["png_rgba16"] = ("png", write_png(s16, 6, 16), "16-bit RGBA")
    fx["png_la16"] = ("png", write_png(s16[:, :, :2], 4, 16), "16-bit gray + alpha")
    fx["png_gray16_trns"] = ("png", write_png(g16[:, :, None], 0, 16, [(b"tRNS", struct.pack(">H", int(g16[0, 0])))]),
                             "16-bit gray with tRNS")
    fx["png_gray2"] = ("png", write_png((gray >> 6)[:, :, None], 0, 2), "2-bit gray")
    fx["png_gray4_interlaced"] = ("png", write_png((gray >> 4)[:, :, None], 0, 4, interlace=True), "4-bit gray, Adam7")
    fx["png_rgb_interlaced"] = ("png", write_png(rgb, 2, 8, interlace=True), "8-bit RGB, Adam7")
    fx["png_p4_short_palette"] = ("png", write_png((gray >> 4)[:, :, None], 3, 4, [(b"PLTE", pal6[:9])]),
                                  "4-bit palette of 3 entries, indices up to 15 (past the palette: black)")
    fx["png_p2_trns"] = ("png", write_png((gray >> 6)[:, :, None], 3, 2, [(b"PLTE", pal6[:12]), (b"tRNS", b"\x00\x80")]),
                         "2-bit palette with tRNS")

    # JPEG: odd sizes (partial MCUs at the right and bottom edges for every sampling), blocky images
    # (less ringing) plus noise, every file under 3 KB (tests decode every prefix of every fixture).
    big = np.kron(fixture_pixels(4, 4, 3, 8), np.ones((5, 5, 1), dtype=np.uint8))[:19, :17]  # blocky: less ringing
    fx["jpeg_rgb"] = ("jpg", pillow_bytes(Image.fromarray(big, "RGB"), "JPEG", quality=90), "Pillow, RGB 4:2:0, q90")
    fx["jpeg_rgb444_progressive"] = ("jpg", pillow_bytes(Image.fromarray(big, "RGB"), "JPEG", quality=95, subsampling=0,
                                                         progressive=True), "Pillow, RGB 4:4:4, progressive")
    fx["jpeg_gray"] = ("jpg", pillow_bytes(Image.fromarray(big[:, :, 0], "L"), "JPEG", quality=90), "Pillow, mode L")
    fx["jpeg_cmyk"] = ("jpg", pillow_bytes(Image.fromarray(np.dstack([big, big[:, :, :1]]), "CMYK"), "JPEG", quality=95),
                       "Pillow, mode CMYK (Adobe APP14, inverted)")
    small = blocky_noise(19, 17, 3, 10)  # 19 rows x 17 columns
    wide = blocky_noise(21, 35, 3, 11)   # 21 rows x 35 columns: 4:1:1 and 4:2:2 MCUs are 32 / 16 wide
    wide_gray = blocky_noise(21, 35, 1, 12)[:, :, 0]
    cmyk = blocky_noise(19, 17, 4, 13)
    fx["jpeg_rgb422"] = ("jpg", pillow_bytes(Image.fromarray(wide, "RGB"), "JPEG", quality=90, subsampling=1),
                         "Pillow, RGB 4:2:2 (subsampling=1), q90")
    fx["jpeg_rgb444"] = ("jpg", pillow_bytes(Image.fromarray(small, "RGB"), "JPEG", quality=90, subsampling=0),
                         "Pillow, RGB 4:4:4 (subsampling=0), baseline, q90")
    fx["jpeg_rgb420_progressive"] = ("jpg", pillow_bytes(Image.fromarray(wide, "RGB"), "JPEG", quality=90, subsampling=2,
                                                         progressive=True), "Pillow, RGB 4:2:0, progressive, q90")
    fx["jpeg_gray_progressive"] = ("jpg", pillow_bytes(Image.fromarray(wide_gray, "L"), "JPEG", quality=90,
                                                       progressive=True), "Pillow, mode L, progressive, q90")
    fx["jpeg_rgb420_restart_blocks"] = ("jpg", pillow_bytes(Image.fromarray(wide, "RGB"), "JPEG", quality=90,
                                                            subsampling=2, restart_marker_blocks=2),
                                        "Pillow, RGB 4:2:0, q90, restart_marker_blocks=2 (a restart interval of 2 "
                                        "MCUs, crossing MCU rows)")
    fx["jpeg_rgb420_restart_rows"] = ("jpg", pillow_bytes(Image.fromarray(wide, "RGB"), "JPEG", quality=90,
                                                          subsampling=2, restart_marker_rows=1),
                                      "Pillow, RGB 4:2:0, q90, restart_marker_rows=1 (a restart marker after every "
                                      "MCU row)")
    fx["jpeg_rgb420_q20"] = ("jpg", pillow_bytes(Image.fromarray(blocky_noise(19, 17, 3, 14, saturated=True), "RGB"),
                                                 "JPEG", quality=20, subsampling=2),
                             "Pillow, RGB 4:2:0, q20, saturated colours (strong ringing, clipped at 0 and 255)")
    # JPEG layouts Pillow cannot write: tools/golden/image_helper.c, system libjpeg, q90.
    fx["jpeg_ycck"] = ("jpg", helper.jpeg("ycck", cmyk),
                       "system libjpeg (image_helper jpeg ycck): CMYK stored as YCCK, sampling 2x2 1x1 1x1 2x2, "
                       "Adobe APP14 transform 2, q90")
    fx["jpeg_cmyk_no_adobe"] = ("jpg", helper.jpeg("cmyk_no_adobe", cmyk),
                                "system libjpeg (image_helper jpeg cmyk_no_adobe): CMYK 4:4:4:4 without an Adobe "
                                "marker (Pillow reads it inverted all the same), q90")
    fx["jpeg_rgb_no_ycbcr"] = ("jpg", helper.jpeg("rgb", small),
                               "system libjpeg (image_helper jpeg rgb): RGB stored without YCbCr conversion, "
                               "Adobe APP14 transform 0, 4:4:4, q90")
    fx["jpeg_rgb440"] = ("jpg", helper.jpeg("h1v2", wide),
                         "system libjpeg (image_helper jpeg h1v2): YCbCr 4:4:0 (luma 1x2), q90")
    fx["jpeg_rgb411"] = ("jpg", helper.jpeg("h4v1", wide),
                         "system libjpeg (image_helper jpeg h4v1): YCbCr 4:1:1 (luma 4x1), q90")
    fx["jpeg_rgb420_arithmetic"] = ("jpg", helper.jpeg("arith", wide),
                                    "system libjpeg (image_helper jpeg arith): YCbCr 4:2:0, arithmetic coding, q90")
    fx["jpeg_rgb420_progressive_restart"] = ("jpg", helper.jpeg("h2v2_restart_progressive", wide),
                                             "system libjpeg (image_helper jpeg h2v2_restart_progressive): YCbCr "
                                             "4:2:0, progressive (jpeg_simple_progression), restart interval 1 MCU, "
                                             "q90")

    # GIF
    gif_p = pillow_bytes(pal_img, "GIF")
    fx["gif_p"] = ("gif", gif_p, "Pillow, mode P")
    fx["gif_p_trns"] = ("gif", pillow_bytes(pal_img, "GIF", transparency=2), "Pillow, mode P, transparent index 2")
    tall = Image.fromarray((fixture_pixels(20, 9, 1, 9)[:, :, 0] % 5).astype(np.uint8), "P")
    tall.putpalette(pal6[:15])
    fx["gif_interlaced"] = ("gif", pillow_bytes(tall, "GIF", interlace=True), "Pillow, mode P, interlaced (20 rows)")
    ramp = Image.fromarray((gray // 4).astype(np.uint8), "P")
    ramp.putpalette(bytes(v for i in range(256) for v in (i, i, i)))
    fx["gif_gray_identity"] = ("gif", pillow_bytes(ramp, "GIF", optimize=False),
                               "Pillow, identity gray palette (Pillow reopens it as mode L)")
    gct, lzw = gif_parts(gif_p)
    lct_bits = (len(gct) // 3).bit_length() - 2
    sub = (b"GIF89a" + struct.pack("<HHBBB", W + 5, H + 3, 0x00, 0, 0)        # no global table
           + b"\x21\xF9\x04\x01\x00\x00\x04\x00"                             # GCE: transparent index 4
           + b"\x2C" + struct.pack("<HHHHB", 3, 2, W, H, 0x80 | lct_bits) + gct  # frame at (3, 2), local table
           + lzw + b"\x3B")
    fx["gif_subframe_lct_trns"] = ("gif", sub, "crafted: frame smaller than the screen, local table, transparent index 4")

    # BMP
    fx["bmp_rgb24"] = ("bmp", pillow_bytes(Image.fromarray(rgb, "RGB"), "BMP"), "Pillow, 24-bit")
    fx["bmp_rgba32"] = ("bmp", pillow_bytes(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "BMP"),
                        "Pillow, 32-bit (alpha ignored when read)")
    fx["bmp_p8"] = ("bmp", pillow_bytes(pal_img, "BMP"), "Pillow, 8-bit palette")
    fx["bmp_l8"] = ("bmp", pillow_bytes(Image.fromarray(gray, "L"), "BMP"), "Pillow, mode L (identity gray palette)")
    fx["bmp_1bit"] = ("bmp", pillow_bytes(Image.fromarray(gray > 127).convert("1"), "BMP"), "Pillow, mode 1")
    bgrx = b"".join(bytes([b, g, r, 0]) for r, g, b in zip(pal6[0::3], pal6[1::3], pal6[2::3]))
    fx["bmp_p4_short_palette"] = ("bmp", write_bmp(H, W, 4, [pack_row(gray[y] >> 4, 4) for y in range(H)], bgrx),
                                  "4-bit, 6-entry palette, indices up to 15 (past the palette: black)")
    v565 = ((rgb[:, :, 0].astype(np.uint16) >> 3) << 11) | ((rgb[:, :, 1].astype(np.uint16) >> 2) << 5) | (rgb[:, :, 2] >> 3)
    v555 = ((rgb[:, :, 0].astype(np.uint16) >> 3) << 10) | ((rgb[:, :, 1].astype(np.uint16) >> 3) << 5) | (rgb[:, :, 2] >> 3)
    fx["bmp_rgb565"] = ("bmp", write_bmp(H, W, 16, [v565[y].astype("<u2").tobytes() for y in range(H)],
                                         compression=3, masks=(0xF800, 0x7E0, 0x1F)), "16-bit 5-6-5 BITFIELDS")
    fx["bmp_rgb555"] = ("bmp", write_bmp(H, W, 16, [v555[y].astype("<u2").tobytes() for y in range(H)]),
                        "16-bit 5-5-5 (BI_RGB)")
    fx["bmp_rgb24_top_down"] = ("bmp", write_bmp(H, W, 24, [rgb[y, :, ::-1].tobytes() for y in range(H)], top_down=True),
                                "24-bit, negative height (top-down rows)")
    bgra = np.dstack([rgb[:, :, ::-1], alpha])
    fx["bmp_v5_bgra"] = ("bmp", write_bmp(H, W, 32, [bgra[y].tobytes() for y in range(H)], header_size=124, compression=3,
                                          masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)), "124-byte header, BGRA bitfields")
    xbgr = np.dstack([alpha, rgb[:, :, ::-1]])
    fx["bmp_v4_xbgr"] = ("bmp", write_bmp(H, W, 32, [xbgr[y].tobytes() for y in range(H)], header_size=108, compression=3,
                                          masks=(0xFF000000, 0xFF0000, 0xFF00, 0)), "108-byte header, XBGR bitfields")
    bgr_pal = b"".join(bytes([b, g, r]) for r, g, b in zip(pal6[0::3], pal6[1::3], pal6[2::3]))
    fx["bmp_core12_p8"] = ("bmp", write_bmp(H, W, 8, [idx[y].tobytes() for y in range(H)], bgr_pal, header_size=12),
                           "12-byte OS/2 header, 8-bit palette of BGR triplets")

    # TGA
    fx["tga_rgb"] = ("tga", pillow_bytes(Image.fromarray(rgb, "RGB"), "TGA"), "Pillow, 24-bit, bottom-up")
    fx["tga_rgba_rle"] = ("tga", pillow_bytes(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "TGA",
                                              compression="tga_rle"), "Pillow, 32-bit RLE")
    fx["tga_l"] = ("tga", pillow_bytes(Image.fromarray(gray, "L"), "TGA"), "Pillow, 8-bit gray")
    fx["tga_la"] = ("tga", pillow_bytes(Image.fromarray(np.dstack([gray, alpha]), "LA"), "TGA"), "Pillow, gray + alpha")
    fx["tga_p"] = ("tga", pillow_bytes(pal_img, "TGA"), "Pillow, colour-mapped")
    fx["tga_rgb_top_right"] = ("tga", write_tga(H, W, 2, 24, rgb[:, :, ::-1].tobytes(), flags=0x30),
                               "24-bit, top-down and right-to-left (descriptor 0x30)")
    fx["tga_rgb16_right"] = ("tga", write_tga(H, W, 2, 16, (v555 | 0x8000).astype("<u2").tobytes(), flags=0x10),
                             "16-bit 5-5-5, bottom-up right-to-left (descriptor 0x10)")
    fx["tga_p_first_entry_5"] = ("tga", write_tga(H, W, 1, 8, (gray % 16).astype(np.uint8).tobytes(), cmap=bgr_pal,
                                                  cmap_start=5, cmap_len=6, cmap_depth=24),
                                 "colour map with first entry index 5 (indices 0-4 and 11-15 are black)")
    # RLE with literal packets that continue on the next row (Pillow accepts those; runs may not cross).
    px = rgb[:, :, ::-1].reshape(-1, 3)
    rle = bytearray()
    i = 0
    while i < len(px):
        if (i // W) % 2 == 0 and i % W + 4 <= W:  # a run of 4 copies of the first pixel, inside the row
            rle += bytes([0x80 | 3]) + px[i].tobytes()
            i += 4
        else:  # a literal packet of up to 7 pixels, possibly spanning two rows
            n = min(7, len(px) - i)
            rle += bytes([n - 1]) + px[i:i + n].tobytes()
            i += n
    fx["tga_rgb_rle_cross_rows"] = ("tga", write_tga(H, W, 10, 24, bytes(rle), flags=0x20),
                                    "24-bit RLE, top-down, literal packets spanning rows")
    return fx


# --------------------------------------------------------------------------------------------- #
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    images_dir = os.path.join(args.out, "images")
    if os.path.isdir(images_dir):
        shutil.rmtree(images_dir)
    os.makedirs(images_dir)
    np.random.seed(0)

    manifest = OrderedDict()
    manifest["generator"] = "tools/golden/make_image_goldens.py"
    manifest["regenerate"] = ".venv/bin/python tools/golden/make_image_goldens.py --out tests/golden"
    manifest["versions"] = tool_versions()
    manifest["settings"] = OrderedDict(
        processor="transformers Qwen2VLImageProcessor with WePOINTS smart_resize (spec 1.2) substituted",
        input_data_format="channels_last", resample="PIL.Image.BICUBIC", rescale_factor=1 / 255,
        image_mean=list(Qwen2VLImageProcessor().image_mean), image_std=list(Qwen2VLImageProcessor().image_std),
        patch_size=14, temporal_patch_size=2, merge_size=2,
        limits=OrderedDict(points_default=list(POINTS_DEFAULT), qwen2vl_7b=list(QWEN2VL_7B), vlmevalkit=list(VLMEVALKIT)),
        hash="FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) over the bytes; per row of the resized "
             "uint8 image [h, w, 3] and over whole buffers (pixel_values as little-endian float32)",
        samples=f"{N_SAMPLES} distinct flat indices into pixel_values per case, numpy default_rng(sample_seed), sorted",
        synthetic="test_golden_image.cpp: synthetic_image(h, w) (uint32 hash noise + gradients + checkerboard + lines)",
        fixtures="every fixture's expected pixels are Pillow's Image.open(f).convert('RGB'), whoever wrote the file; "
                 "for JPEG, `jpeg` is read from the file's markers: sampling = horizontal x vertical factors per "
                 "component, adobe_transform null without an Adobe APP14 marker, restart_interval 0 without DRI, "
                 "restart_markers = RSTn markers in all scans")

    with tempfile.TemporaryDirectory() as tmp:
        helper = Helper(tmp)
        g = Goldens()
        table = normalization_table()
        g.put("normalization_table", table)
        print("preprocessing cases")
        preprocessing_cases(g, table, helper)
        manifest["cases"] = g.cases

        print("format fixtures")
        fixtures = make_fixtures(helper)
    fmt_tensors: "OrderedDict[str, np.ndarray]" = OrderedDict()
    fmt_entries = []
    for name, (ext, data, how) in fixtures.items():
        file = f"{name}.{ext}"
        if ext == "jpg" and len(data) >= MAX_JPEG_FIXTURE_BYTES:
            sys.exit(f"{file} is {len(data)} bytes, not under {MAX_JPEG_FIXTURE_BYTES}")
        with open(os.path.join(images_dir, file), "wb") as f:
            f.write(data)
        # The expected pixels are always Pillow's, whoever wrote the file.
        opened = Image.open(io.BytesIO(data))
        pillow_mode = opened.mode
        expected = np.asarray(opened.convert("RGB"))
        fmt_tensors[f"{name}.rgb"] = np.ascontiguousarray(expected)
        entry = OrderedDict(name=name, file=f"images/{file}", bytes=len(data), written_by=how, pillow_mode=pillow_mode,
                            size=[int(expected.shape[0]), int(expected.shape[1])],
                            expected="Pillow Image.open(f).convert('RGB')", tensor=f"{name}.rgb")
        if ext == "jpg":
            entry["jpeg"] = jpeg_structure(data)
        fmt_entries.append(entry)
        print(f"  {file}: {len(data)} bytes, Pillow mode {pillow_mode}")
    manifest["fixtures"] = fmt_entries

    files = OrderedDict()
    for fname, tensors in [("image_goldens.safetensors", g.tensors), ("image_formats.safetensors", fmt_tensors)]:
        path = os.path.join(args.out, fname)
        safetensors.numpy.save_file(dict(tensors), path, metadata={"generator": manifest["generator"]})
        size = os.path.getsize(path)
        if size > MAX_GOLDEN_BYTES:
            sys.exit(f"{fname} is {size} bytes, above the {MAX_GOLDEN_BYTES}-byte limit")
        files[fname] = OrderedDict(bytes=size, n_tensors=len(tensors))
        print(f"wrote {path} ({size} bytes, {len(tensors)} tensors)")
    manifest["files"] = files
    with open(os.path.join(args.out, "image_manifest.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.join(args.out, 'image_manifest.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
