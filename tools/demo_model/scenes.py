# SPDX-License-Identifier: Apache-2.0
"""Synthetic scenes for the shapes-tiny demo model: coloured shapes on plain and textured
backgrounds, at random resolutions and aspect ratios, with a caption and question / answer pairs.

Every scene is a pure function of its seed (`make_scene(seed)`), so the training stream and the
held-out set are regenerated exactly from (first seed, count); nothing here reads the clock.

The questions come in five categories; every answer is one short, unambiguous string:
  count     "How many shapes are there?" -> "3", "How many circles ...?" -> "2"
  colour    "What colour is the star?" -> "green"            (asked only of a shape type seen once)
  shape     "What shape is the red object?" -> "triangle"    (asked only of a colour seen once)
  position  "Is the red circle to the left or to the right of the blue star?" -> "left"
            "Is the red circle above or below the blue star?" -> "below"
            (asked only of pairs whose extents do not overlap along the asked axis)
  size      "Which is bigger, the red circle or the blue star?" -> "the red circle"
            (asked only where one is at least 1.6 times the other's size)
and a caption ("Describe this image."), the shapes listed left to right.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (215, 38, 38),
    "green": (34, 160, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 200, 20),
    "purple": (135, 55, 185),
    "orange": (245, 125, 20),
}
SHAPES = ("circle", "square", "triangle", "star")
BACKGROUNDS = ("white", "grey", "cream", "striped", "checkered", "dotted", "gradient", "noisy")
SIDE_MIN, SIDE_MAX = 56, 700          # pixels a side
ASPECT_MIN, ASPECT_MAX = 0.25, 4.0    # width / height
MAX_SHAPES = 6
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six"]
CATEGORIES = ("count", "colour", "shape", "position", "size")

# The model sees an image resized (Qwen2-VL smart_resize) to between these pixel counts; shapes are
# drawn big enough to cover about three 14-pixel patches a side at that resolution.
MODEL_MIN_PIXELS = 16 * 28 * 28
MODEL_MAX_PIXELS = 64 * 28 * 28
MIN_SHAPE_AT_MODEL = 40.0


@dataclass
class Shape:
    kind: str
    colour: str
    cx: float  # centre, pixels
    cy: float
    r: float   # radius of the circumscribed circle, pixels
    geom: tuple = ()  # what is drawn: ("ellipse" | "rect", bbox) or ("polygon", points)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass
class Scene:
    seed: int
    width: int
    height: int
    background: str
    shapes: list[Shape]
    image: Image.Image = field(repr=False)
    labels: np.ndarray = field(repr=False, default=None)  # [height, width] uint8: 0 background, k + 1 shape k


def model_scale(w: int, h: int) -> float:
    """How much the processor scales an image (approximately: smart_resize also rounds to 28)."""
    px = w * h
    if px > MODEL_MAX_PIXELS:
        return math.sqrt(MODEL_MAX_PIXELS / px)
    if px < MODEL_MIN_PIXELS:
        return math.sqrt(MODEL_MIN_PIXELS / px)
    return 1.0


def _light(rng: random.Random) -> tuple[int, int, int]:
    base = rng.randint(205, 250)
    return tuple(min(255, max(0, base + rng.randint(-12, 12))) for _ in range(3))


def _background(rng: random.Random, kind: str, w: int, h: int) -> Image.Image:
    if kind == "white":
        return Image.new("RGB", (w, h), (255, 255, 255))
    if kind == "grey":
        g = rng.randint(200, 230)
        return Image.new("RGB", (w, h), (g, g, g))
    if kind == "cream":
        return Image.new("RGB", (w, h), (250, 243, 222))
    a, b = _light(rng), _light(rng)
    img = Image.new("RGB", (w, h), a)
    d = ImageDraw.Draw(img)
    step = max(6, int(min(w, h) * rng.uniform(0.05, 0.12)))
    if kind == "striped":
        if rng.random() < 0.5:
            for x in range(0, w, 2 * step):
                d.rectangle([x, 0, x + step - 1, h], fill=b)
        else:
            for y in range(0, h, 2 * step):
                d.rectangle([0, y, w, y + step - 1], fill=b)
    elif kind == "checkered":
        for y in range(0, h, step):
            for x in range(0, w, step):
                if ((x // step) + (y // step)) % 2:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=b)
    elif kind == "dotted":
        for y in range(step // 2, h, step):
            for x in range(step // 2, w, step):
                d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=b)
    elif kind == "gradient":
        t = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h, dtype=np.float32)
        ramp = np.asarray(a, np.float32)[None, :] * (1 - t[:, None]) + np.asarray(b, np.float32)[None, :] * t[:, None]
        arr = np.broadcast_to(ramp[None, :, :], (h, w, 3)) if len(t) == w else np.broadcast_to(ramp[:, None, :], (h, w, 3))
        img = Image.fromarray(np.ascontiguousarray(arr).astype(np.uint8))
    elif kind == "noisy":
        # Low-frequency noise: a small random grid upscaled (compresses well, still a texture).
        nprng = np.random.default_rng(rng.getrandbits(32))
        small = nprng.integers(-14, 15, size=(max(2, h // 16), max(2, w // 16), 1))
        arr = np.clip(np.asarray(a, np.int32)[None, None, :] + small, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr).resize((w, h), Image.BILINEAR)
    else:
        raise ValueError(kind)
    return img


def _star(cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    pts = []
    for k in range(10):
        rad = r if k % 2 == 0 else r * 0.45
        a = rot + k * math.pi / 5 - math.pi / 2
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _geometry(s: Shape, rng: random.Random) -> tuple:
    if s.kind == "circle":
        return ("ellipse", [s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r])
    if s.kind == "square":
        h = s.r * 0.78  # half side: the square's corners lie inside the circumscribed circle
        return ("rect", [s.cx - h, s.cy - h, s.cx + h, s.cy + h])
    if s.kind == "triangle":
        rot = rng.uniform(-0.25, 0.25)
        return ("polygon", [(s.cx + s.r * math.cos(rot - math.pi / 2 + k * 2 * math.pi / 3),
                             s.cy + s.r * math.sin(rot - math.pi / 2 + k * 2 * math.pi / 3)) for k in range(3)])
    if s.kind == "star":
        return ("polygon", _star(s.cx, s.cy, s.r, rng.uniform(-0.2, 0.2)))
    raise ValueError(s.kind)


def _draw(d: ImageDraw.ImageDraw, geom: tuple, fill) -> None:
    kind, g = geom
    {"ellipse": d.ellipse, "rect": d.rectangle, "polygon": d.polygon}[kind](g, fill=fill)


def _size(rng: random.Random) -> tuple[int, int]:
    while True:
        w, h = rng.randint(SIDE_MIN, SIDE_MAX), rng.randint(SIDE_MIN, SIDE_MAX)
        if ASPECT_MIN <= w / h <= ASPECT_MAX:
            return w, h


def make_scene(seed: int) -> Scene:
    rng = random.Random(seed)
    while True:
        w, h = _size(rng)
        n = rng.randint(1, MAX_SHAPES)
        scale = model_scale(w, h)
        short = min(w, h)
        r_min = max(MIN_SHAPE_AT_MODEL / scale, 0.09 * short) / 2
        r_max = max(r_min * 1.25, min(0.25 * short, 0.5 * math.sqrt(w * h / n) * 0.6))
        combos = [(k, c) for k in SHAPES for c in COLOURS]
        rng.shuffle(combos)
        shapes: list[Shape] = []
        for kind, colour in combos[:n]:
            for _attempt in range(200):
                r = rng.uniform(r_min, r_max)
                cx, cy = rng.uniform(r + 1, w - r - 1), rng.uniform(r + 1, h - r - 1)
                if cx - r < 0 or cy - r < 0:
                    continue
                if all(math.hypot(cx - o.cx, cy - o.cy) > r + o.r + 3 for o in shapes):
                    shapes.append(Shape(kind, colour, cx, cy, r))
                    break
            else:
                break
        if len(shapes) == n:
            break
    background = rng.choice(BACKGROUNDS)
    img = _background(rng, background, w, h)
    d = ImageDraw.Draw(img)
    labels = Image.new("L", (w, h), 0)
    dl = ImageDraw.Draw(labels)
    for k, s in enumerate(shapes):
        s.geom = _geometry(s, rng)
        _draw(d, s.geom, COLOURS[s.colour])
        _draw(dl, s.geom, k + 1)
    return Scene(seed, w, h, background, shapes, img, np.asarray(labels))


# ------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------
def _plural(kind: str) -> str:
    return kind + "s"


def _list(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def caption(scene: Scene) -> str:
    shapes = sorted(scene.shapes, key=lambda s: s.cx)
    n = len(shapes)
    items = _list([("an " if s.name[0] in "aeiou" else "a ") + s.name for s in shapes])
    what = "one shape" if n == 1 else f"{NUMBER_WORDS[n]} shapes"
    return f"{what.capitalize()} on a {scene.background} background: {items}."


CAPTION_QUESTIONS = ["Describe this image.", "Describe the image.", "What is in this picture?",
                     "Describe this image in detail.", "What do you see?"]
COUNT_ALL = ["How many shapes are there?", "How many shapes are in the image?", "Count the shapes.",
             "How many objects can you see?", "How many shapes does the picture show?"]
COUNT_KIND = ["How many {p} are there?", "How many {p} are in the image?", "Count the {p}.",
              "How many {p} can you see?"]
COUNT_COLOUR = ["How many {c} shapes are there?", "How many {c} objects are in the picture?",
                "Count the {c} shapes."]
COLOUR_Q = ["What colour is the {k}?", "What is the colour of the {k}?", "Which colour does the {k} have?",
            "What color is the {k}?"]
SHAPE_Q = ["What shape is the {c} object?", "Which shape is {c}?", "What is the {c} shape?",
           "What kind of shape is the {c} one?"]
LR_Q = ["Is the {a} to the left or to the right of the {b}?", "Is the {a} left or right of the {b}?",
        "Is the {a} on the left or on the right of the {b}?"]
AB_Q = ["Is the {a} above or below the {b}?", "Is the {a} higher or lower than the {b}?"]
SIZE_Q = ["Which is bigger, the {a} or the {b}?", "Which is larger: the {a} or the {b}?",
          "Which shape is bigger, the {a} or the {b}?"]
AB_ANSWERS = {"above or below": ("above", "below"), "higher or lower": ("higher", "lower")}


def questions(scene: Scene, rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Every askable (question, answer) per category, one phrasing each, drawn with rng."""
    shapes = scene.shapes
    out: dict[str, list[tuple[str, str]]] = {c: [] for c in CATEGORIES}
    out["count"].append((rng.choice(COUNT_ALL), str(len(shapes))))
    kinds = [s.kind for s in shapes]
    colours = [s.colour for s in shapes]
    for k in SHAPES:
        if k in kinds or rng.random() < 0.25:
            out["count"].append((rng.choice(COUNT_KIND).format(p=_plural(k)), str(kinds.count(k))))
    for c in COLOURS:
        if c in colours or rng.random() < 0.15:
            out["count"].append((rng.choice(COUNT_COLOUR).format(c=c), str(colours.count(c))))
    for s in shapes:
        if kinds.count(s.kind) == 1:
            out["colour"].append((rng.choice(COLOUR_Q).format(k=s.kind), s.colour))
        if colours.count(s.colour) == 1:
            out["shape"].append((rng.choice(SHAPE_Q).format(c=s.colour), s.kind))
    for i, a in enumerate(shapes):
        for j, b in enumerate(shapes):
            if i == j:
                continue
            if abs(a.cx - b.cx) > a.r + b.r:
                out["position"].append((rng.choice(LR_Q).format(a=a.name, b=b.name), "left" if a.cx < b.cx else "right"))
            if abs(a.cy - b.cy) > a.r + b.r:
                q = rng.choice(AB_Q)
                up, down = next(v for k, v in AB_ANSWERS.items() if k in q)
                out["position"].append((q.format(a=a.name, b=b.name), up if a.cy < b.cy else down))
            if i < j and max(a.r, b.r) >= 1.6 * min(a.r, b.r):
                q = rng.choice(SIZE_Q).format(a=a.name, b=b.name) if rng.random() < 0.5 else \
                    rng.choice(SIZE_Q).format(a=b.name, b=a.name)
                out["size"].append((q, "the " + (a.name if a.r > b.r else b.name)))
    return out


def all_text_phrasings() -> list[str]:
    """Every phrasing with every filler, and every answer: the tokenizer's training text."""
    lines = list(CAPTION_QUESTIONS) + list(COUNT_ALL)
    names = [f"{c} {k}" for k in SHAPES for c in COLOURS]
    for k in SHAPES:
        lines += [q.format(p=_plural(k)) for q in COUNT_KIND] + [q.format(k=k) for q in COLOUR_Q]
    for c in COLOURS:
        lines += [q.format(c=c) for q in COUNT_COLOUR] + [q.format(c=c) for q in SHAPE_Q]
    for a in names:
        for b in names[:6]:
            lines += [q.format(a=a, b=b) for q in LR_Q + AB_Q + SIZE_Q]
        lines.append("the " + a)
    lines += [str(i) for i in range(MAX_SHAPES + 1)] + list(COLOURS) + list(SHAPES)
    lines += ["left", "right", "above", "below", "higher", "lower"]
    for bg in BACKGROUNDS:
        lines.append(f"Three shapes on a {bg} background: a red circle, a blue square and a green star.")
    for n in range(1, MAX_SHAPES + 1):
        lines.append(("one shape" if n == 1 else f"{NUMBER_WORDS[n]} shapes").capitalize() + " on a white background:")
    return lines
