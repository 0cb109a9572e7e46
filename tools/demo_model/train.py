# SPDX-License-Identifier: Apache-2.0
"""Trains models/shapes-tiny: a POINTS1.5 of tiny dimensions meant to answer questions about
synthetic scenes of coloured shapes (tools/demo_model/scenes.py). Run by a developer, on the CPU
(about two hours on 2 cores); never by tests or CI. tools/demo_model/README.md has the results.

    .venv/bin/python tools/demo_model/train.py [--out DIR] [--steps0 N] [--steps1 N] [--steps2 N] [--steps3 N]

Steps:
 1. tokenizer: a byte-level BPE trained with HF tokenizers on every phrasing of the scene text, with
    Qwen2.5's added tokens (<|endoftext|>, <|im_start|>, <|im_end|>, <|vision_start|>,
    <|vision_end|>, <|image_pad|>, ...) in Qwen2.5's order (the golden generator's build_tokenizer);
 2. stage 0, vision + projector alignment: the tower and the projector alone, with auxiliary linear
    heads (not exported): per patch (the colour and kind under it, where the other shapes lie from
    the shape under it: relations, ...), per 2 x 2 window (the same relations), and per image
    (scene_targets: the counts, the colour of each kind, the kind of each colour, where each shape
    is), the last asked of every row of the image, so that any row the LLM reads tells about the
    whole picture; then the projector's last Linear is rescaled so its rows are standardized
    (standardize_rows). --stage0-state saves this stage (and loads it when the file exists).
    (POINTS aligns a pretrained ViT and LLM on captions; here both start from random weights, and a
    random LLM gives the projector nothing to align to.)
 3. stage 1 (optional, --steps1): captions ("Describe this image." -> "Three shapes on a striped
    background: a red circle, ..."), every module trained;
 4. stage 2, instruction tuning: one-turn questions about count, colour, shape, position and size
    (QUESTIONS_PER_SCENE per image, the image encoded once and its questions packed as a tree after
    one shared prefix: pack_questions), captions mixed in; the loss on the answer tokens, the first
    one weighted FIRST_ANSWER_WEIGHT times; the LLM alone, on the rows stage 0 left (as POINTS keeps
    its pretrained ViT frozen), or with --train-tower every module, the auxiliary heads kept;
 5. stage 3, positions: the LLM alone again, a position question 40 % of the time, and linear
    probes on the LLM's residual stream (position_probes; not exported) that say where to look: at
    each shape name of a position question, where that shape is; at the second name, whether the
    first lies left of / above it. --stage2-state saves stages 0 to 2 (and loads them);
 6. export: config.json, preprocessor_config.json, generation_config.json, the tokenizer files and
    model.safetensors (f32), the loss curve (--loss-png) and training.json.
Seeded and single-process; evaluate.py measures the result. SHAPES_TINY_CHECKPOINT=PATH saves the
state_dict every 250 steps (to evaluate a run while it trains).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections import OrderedDict

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import Qwen2TokenizerFast  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "golden"))
import scenes  # noqa: E402
from model import ShapesPoints  # noqa: E402
from make_points15_goldens import build_tokenizer, write_json  # noqa: E402

TRAIN_SEED0 = 0                # training scenes: seeds 0, 1, 2, ...
HELDOUT_SEED0, HELDOUT_COUNT = 1_000_000, 200
EXAMPLES_SEED0 = 2_000_000     # the bundled scenes are drawn from here
BPE_VOCAB = 320
VOCAB_MULTIPLE = 64
EVAL_EVERY, EVAL_SCENES = 200, 40  # stage 2 prints held-out accuracy on the first EVAL_SCENES this often
CHECKPOINT = os.environ.get("SHAPES_TINY_CHECKPOINT")  # a developer's aid: state_dict every 250 steps
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


def preprocessor_json() -> OrderedDict:
    return OrderedDict(
        do_convert_rgb=True, do_normalize=True, do_rescale=True, do_resize=True, image_mean=IMAGE_MEAN,
        image_processor_type="Qwen2VLImageProcessor", image_std=IMAGE_STD, max_pixels=scenes.MODEL_MAX_PIXELS,
        merge_size=2, min_pixels=scenes.MODEL_MIN_PIXELS, patch_size=14, resample=3, rescale_factor=1 / 255,
        size=OrderedDict(max_pixels=scenes.MODEL_MAX_PIXELS, min_pixels=scenes.MODEL_MIN_PIXELS),
        temporal_patch_size=2)


def make_processor() -> Qwen2VLImageProcessor:
    p = preprocessor_json()
    return Qwen2VLImageProcessor(min_pixels=p["min_pixels"], max_pixels=p["max_pixels"], image_mean=IMAGE_MEAN,
                                 image_std=IMAGE_STD, patch_size=14, merge_size=2, temporal_patch_size=2)


class Text:
    """Token ids of the POINTS1.5 prompt pieces (spec 5.1)."""

    def __init__(self, tok: Qwen2TokenizerFast):
        self.tok = tok
        ids = tok.convert_tokens_to_ids
        self.im_start, self.im_end = ids("<|im_start|>"), ids("<|im_end|>")
        self.vstart, self.vend, self.pad = ids("<|vision_start|>"), ids("<|vision_end|>"), ids("<|image_pad|>")
        self.eot = ids("<|endoftext|>")
        self.enc = lambda s: tok.encode(s, add_special_tokens=False)
        self.user, self.nl = self.enc("user\n"), self.enc("\n")
        self.assistant = self.enc("assistant\n")

    def prompt_string(self, turns: list[tuple[str, str]], n_image: int) -> str:
        s = ""
        for k, (q, a) in enumerate(turns):
            img = ("<|vision_start|>" + "<|image_pad|>" * n_image + "<|vision_end|>\n") if k == 0 else ""
            s += f"<|im_start|>user\n{img}{q}<|im_end|>\n<|im_start|>assistant\n"
            if a is not None:
                s += f"{a}<|im_end|>\n"
        return s

    def conversation(self, turns: list[tuple[str, str | None]], n_image: int) -> tuple[list[int], list[int]]:
        """ids and labels (-100 except each answer and its <|im_end|>); the last answer may be None
        (a prompt to complete)."""
        ids, labels = [], []

        def add(t, learn=False):
            ids.extend(t)
            labels.extend(t if learn else [-100] * len(t))

        for k, (q, a) in enumerate(turns):
            add([self.im_start] + self.user)
            if k == 0:
                add([self.vstart] + [self.pad] * n_image + [self.vend])
                add(self.enc("\n" + q))
            else:
                add(self.enc(q))
            add([self.im_end] + self.nl + [self.im_start] + self.assistant)
            if a is not None:
                add(self.enc(a) + [self.im_end], learn=True)
                add(self.nl)
        return ids, labels


def sample_questions(scene, rng: random.Random, stage: int) -> list[tuple[str, str]]:
    """The (question, answer) pairs asked about one scene, each its own one-turn chat: stage 1 the
    caption; stage 2 up to QUESTIONS_PER_SCENE different facts (categories drawn evenly), a caption
    now and then; stage 3 the same with a position question STAGE3_POSITION_SHARE of the time. (Several facts in one multi-turn chat teach the model to read answers off earlier
    turns -- a caption, or the names in a position question -- instead of off the image.)"""
    cap = (rng.choice(scenes.CAPTION_QUESTIONS), scenes.caption(scene))
    if stage == 1:
        return [cap]
    qs = {c: list(v) for c, v in scenes.questions(scene, rng).items() if v}
    out = []
    while len(out) < QUESTIONS_PER_SCENE and qs:
        if rng.random() < CAPTION_SHARE:
            out.append(cap)
            continue
        if stage == 3 and "position" in qs and rng.random() < STAGE3_POSITION_SHARE:
            c = "position"
        else:
            c = rng.choice(sorted(qs))
        out.append(qs[c].pop(rng.randrange(len(qs[c]))))
        if not qs[c]:
            del qs[c]
    return out


QUESTIONS_PER_SCENE = 8
STAGE3_POSITION_SHARE = 0.4
FIRST_ANSWER_WEIGHT = 3.0
CAPTION_SHARE = 0.05
N_COMBOS = len(scenes.SHAPES) * len(scenes.COLOURS)
# The classified parts of scene_targets, in order: (name, how many targets, classes of each); then
# N_COMBOS presences and N_COMBOS (x, y) offsets.
GLOBAL_GROUPS = (("total", 1, 7), ("kind_counts", len(scenes.SHAPES), 7), ("colour_counts", len(scenes.COLOURS), 7),
                 ("colour_of_kind", len(scenes.SHAPES), len(scenes.COLOURS) + 1),
                 ("kind_of_colour", len(scenes.COLOURS), len(scenes.SHAPES) + 1))
GLOBAL_OUT = sum(n * c for _, n, c in GLOBAL_GROUPS) + 3 * N_COMBOS
AUX_OUT = len(scenes.COLOURS) + 1 + len(scenes.SHAPES) + 1 + 1 + 2 + 2 * N_COMBOS  # colour, kind, centre, (x, y), relations
AUX_WEIGHT = 0.5


OFFSET_UNIT = 4 * 28  # model pixels per unit of the position targets (4 LLM tokens)


def offset_from_centroid(scene, gh: int, gw: int):
    """Maps image pixels (x, y) to the offset from the shapes' centroid, in OFFSET_UNIT model pixels.
    The position targets are offsets from the shapes, not positions in the frame: the Qwen2-VL tower
    has no absolute position embedding (2-D RoPE only), so on a plain background nothing tells a
    patch where the frame's edge is, while where it lies from the shapes it can tell."""
    sx, sy = gw * 14 / scene.width, gh * 14 / scene.height
    mx = sum(s.cx for s in scene.shapes) / len(scene.shapes)
    my = sum(s.cy for s in scene.shapes) / len(scene.shapes)
    return lambda x, y: ((x - mx) * sx / OFFSET_UNIT, (y - my) * sy / OFFSET_UNIT)


def patch_labels(scene, gh: int, gw: int) -> torch.Tensor:
    """Per patch, in the processor's order (2 x 2 merge windows, row-major): the colour and kind of
    the shape under the patch centre (0: background), whether a shape's centre lies in the patch, and
    the patch centre's offset from the shapes' centroid. The targets of the vision tower's auxiliary
    head."""
    ys = ((np.arange(gh) + 0.5) * scene.height / gh).astype(np.int64)
    xs = ((np.arange(gw) + 0.5) * scene.width / gw).astype(np.int64)
    idx = scene.labels[ys[:, None], xs[None, :]].astype(np.int64)
    colour_of = np.array([0] + [list(scenes.COLOURS).index(s.colour) + 1 for s in scene.shapes])
    kind_of = np.array([0] + [scenes.SHAPES.index(s.kind) + 1 for s in scene.shapes])
    centre = np.zeros((gh, gw), np.int64)
    for s in scene.shapes:
        centre[min(gh - 1, int(s.cy * gh / scene.height)), min(gw - 1, int(s.cx * gw / scene.width))] = 1
    off = offset_from_centroid(scene, gh, gw)
    px, _ = off((np.arange(gw) + 0.5) * scene.width / gw, 0.0)
    _, py = off(0.0, (np.arange(gh) + 0.5) * scene.height / gh)
    px = np.broadcast_to(np.asarray(px)[None, :], (gh, gw))
    py = np.broadcast_to(np.asarray(py)[:, None], (gh, gw))
    cols = [colour_of[idx], kind_of[idx], centre, px, py]
    rel, known = relations(scene)
    cols += [rel[idx, j] for j in range(rel.shape[1])] + [known[idx, j] for j in range(known.shape[1])]
    order = lambda a: a.reshape(gh // 2, 2, gw // 2, 2).transpose(0, 2, 1, 3).reshape(-1)
    return torch.tensor(np.stack([order(np.asarray(c, np.float64)) for c in cols], 1), dtype=torch.float32)


N_REL = 2 * N_COMBOS  # per (kind, colour): whether it lies to the right of, and below, the shape under a patch


def combo_index(s) -> int:
    return scenes.SHAPES.index(s.kind) * len(scenes.COLOURS) + list(scenes.COLOURS).index(s.colour)


def relations(scene):
    """Per shape (row 0: background), where every other shape lies from it: [n + 1, N_REL] targets
    (whether the (kind, colour) is to the right of it, whether it is below it) and [n + 1, N_REL]
    masks (1 where the scene has that (kind, colour) apart from it along that axis, the condition under
    which scenes.questions asks). The tower's tokens and the projector's rows are asked these
    (PATCH_REL), so that a row on one shape tells where the others are: "Is the red circle left of
    the blue star?" can be answered by reading, off the rows of the red circle, the bit of the blue
    star. The rows learn them (97 % on held-out scenes); answers alone did not teach the LLM to use
    them (positions at chance after stage 2), the probes of stage 3 do (README.md)."""
    n = len(scene.shapes)
    rel = np.zeros((n + 1, N_REL))
    known = np.zeros((n + 1, N_REL))
    for i, a in enumerate(scene.shapes):
        for b in scene.shapes:
            if b is a:
                continue
            j = combo_index(b)
            if abs(a.cx - b.cx) > a.r + b.r:
                rel[i + 1, j], known[i + 1, j] = float(b.cx > a.cx), 1.0
            if abs(a.cy - b.cy) > a.r + b.r:
                rel[i + 1, N_COMBOS + j], known[i + 1, N_COMBOS + j] = float(b.cy > a.cy), 1.0
    return rel, known


PATCH_REL = 5  # the column of patch_labels where the relation targets start (then N_REL masks)


def relation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    t = labels[:, PATCH_REL:PATCH_REL + N_REL]
    m = labels[:, PATCH_REL + N_REL:PATCH_REL + 2 * N_REL]
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    return (bce * m).sum() / m.sum().clamp(min=1)


def aux_loss(head, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    nc, nk = len(scenes.COLOURS) + 1, len(scenes.SHAPES) + 1
    o = head(tokens)
    on = labels[:, 1] > 0
    # The kind again on the patches that lie on a shape, 3 times: most patches are background, and
    # without it the tower learns the colours at once and the kinds hardly at all (measured with
    # the colour and kind losses alone, 300 steps of 24 scenes: the kind of a shape's patches 67 %
    # without it at lr 1e-3, 98 % with it at lr 2e-3).
    kind_on = F.cross_entropy(o[on, nc:nc + nk], labels[on, 1].long()) if bool(on.any()) else o.sum() * 0
    return (F.cross_entropy(o[:, :nc], labels[:, 0].long()) + F.cross_entropy(o[:, nc:nc + nk], labels[:, 1].long())
            + 3.0 * kind_on
            + F.binary_cross_entropy_with_logits(o[:, nc + nk], labels[:, 2], pos_weight=torch.tensor(8.0))
            + F.mse_loss(o[:, nc + nk + 1:nc + nk + 3], labels[:, 3:5])
            + relation_loss(o[:, nc + nk + 3:], labels))


def scene_targets(scene, gh: int, gw: int) -> torch.Tensor:
    """Facts about the whole image, the targets of the rows' global head (every row of the image is
    asked for them, so the tower learns to spread them over the image): the number of shapes, of
    each kind and of each colour (0..6), the colour of each kind and the kind of each colour (or
    "none or several"), and per (kind, colour) whether it is there and its offset from the shapes'
    centroid (offset_from_centroid)."""
    kinds = [s.kind for s in scene.shapes]
    colours = [s.colour for s in scene.shapes]
    cols = list(scenes.COLOURS)
    t = [len(scene.shapes)]
    t += [kinds.count(k) for k in scenes.SHAPES] + [colours.count(c) for c in cols]
    t += [cols.index(next(s.colour for s in scene.shapes if s.kind == k)) if kinds.count(k) == 1 else len(cols)
          for k in scenes.SHAPES]
    t += [scenes.SHAPES.index(next(s.kind for s in scene.shapes if s.colour == c)) if colours.count(c) == 1
          else len(scenes.SHAPES) for c in cols]
    present, xy = [0.0] * N_COMBOS, [0.0] * (2 * N_COMBOS)
    off = offset_from_centroid(scene, gh, gw)
    for s in scene.shapes:
        i = scenes.SHAPES.index(s.kind) * len(cols) + cols.index(s.colour)
        present[i] = 1.0
        xy[2 * i], xy[2 * i + 1] = off(s.cx, s.cy)
    return torch.tensor([float(v) for v in t] + present + xy)


def global_loss(head, rows: torch.Tensor, grid: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The global head on every row against its image's scene_targets."""
    n = (grid[:, 1] * grid[:, 2] // 4)
    tgt = torch.repeat_interleave(targets, n, dim=0)
    o = head(rows)
    at = ti = 0
    loss = 0.0
    for _, count, classes in GLOBAL_GROUPS:
        logits = o[:, at:at + count * classes].reshape(-1, count, classes)
        loss = loss + F.cross_entropy(logits.reshape(-1, classes), tgt[:, ti:ti + count].reshape(-1).long())
        at += count * classes
        ti += count
    present = tgt[:, ti:ti + N_COMBOS]
    loss = loss + F.binary_cross_entropy_with_logits(o[:, at:at + N_COMBOS], present)
    at += N_COMBOS
    ti += N_COMBOS
    xy = o[:, at:at + 2 * N_COMBOS].reshape(-1, N_COMBOS, 2)
    err = (xy - tgt[:, ti:].reshape(-1, N_COMBOS, 2)).pow(2).sum(2) * present
    return loss + 2.0 * err.sum() / present.sum().clamp(min=1)


def pack_questions(text: Text, prompts: list[tuple[int, list[tuple[str, str]]]]):
    """Every question about one image in one sequence, as a tree: the shared prefix
    (<|im_start|>user\n<|vision_start|><|image_pad|> x N<|vision_end|>) once, then each question's
    branch ("\n" question <|im_end|>\n<|im_start|>assistant\n answer <|im_end|>\n), which sees the
    prefix and itself only, at the positions it has in its own one-turn chat. The same function as one
    chat per question (checked in main) for a third of the tokens. Returns ids, position ids, the
    additive [B, 1, L, L] mask, the target of each position (-100: none), its loss weight and, per
    row, where each question's tokens start ("\n" question)."""
    rows, starts = [], []
    for n_img, qas in prompts:
        ids, pos, branch, tgt, w = [], [], [], [], []
        starts.append([])
        for b, qa in enumerate(qas):
            chat, labels = text.conversation([qa], n_img)
            P = chat.index(text.vend) + 1  # the shared prefix ends with <|vision_end|>
            if b == 0:
                ids, pos, branch, tgt, w = chat[:P], list(range(P)), [-1] * P, [-100] * P, [0.0] * P
            start = len(ids)
            starts[-1].append(start)
            ids += chat[P:]
            pos += list(range(P, len(chat)))
            branch += [b] * (len(chat) - P)
            tgt += [-100] * (len(chat) - P)
            w += [0.0] * (len(chat) - P)
            learned = [k for k in range(P, len(chat)) if labels[k] != -100]
            for k in learned:  # the position before a learned token predicts it
                tgt[start + k - P - 1] = labels[k]
                w[start + k - P - 1] = FIRST_ANSWER_WEIGHT if k == learned[0] else 1.0
        rows.append((ids, pos, branch, tgt, w))
    L = max(len(r[0]) for r in rows)
    B = len(rows)
    ids = torch.full((B, L), text.eot, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    tgt = torch.full((B, L), -100, dtype=torch.long)
    w = torch.zeros((B, L))
    allow = torch.zeros((B, L, L), dtype=torch.bool)
    causal = torch.ones((L, L), dtype=torch.bool).tril()
    for b, (i, p, br, t, ww) in enumerate(rows):
        n = len(i)
        ids[b, :n], pos[b, :n], tgt[b, :n], w[b, :n] = torch.tensor(i), torch.tensor(p), torch.tensor(t), torch.tensor(ww)
        brt = torch.tensor(br)
        same = (brt[:, None] == brt[None, :]) | (brt[None, :] == -1)
        allow[b, :n, :n] = same & causal[:n, :n]
        allow[b, n:, n:] = torch.eye(L - n, dtype=torch.bool)  # padding sees itself (no empty row)
        pos[b, n:] = torch.arange(L - n)
    mask = torch.zeros((B, 1, L, L)).masked_fill(~allow[:, None], torch.finfo(torch.float32).min)
    return ids, pos, mask, tgt, w, starts


def batch(model: ShapesPoints, text: Text, proc, seeds: list[int], stage: int, rng: random.Random):
    pvs, grids, prompts, labels, targets, shown = [], [], [], [], [], []
    for s in seeds:
        scene = scenes.make_scene(s)
        f = proc(images=[scene.image], return_tensors="pt")
        pvs.append(f["pixel_values"])
        grids.append(f["image_grid_thw"])
        _, gh, gw = (int(x) for x in f["image_grid_thw"][0])
        labels.append(patch_labels(scene, gh, gw))
        targets.append(scene_targets(scene, gh, gw))
        if stage > 0:  # stage 0 trains the tower alone: no text
            prompts.append((gh * gw // 4, sample_questions(scene, rng, stage)))
            shown.append((scene, gh, gw))
    packed = None
    if prompts:
        *packed, starts = pack_questions(text, prompts)
        packed = (*packed, position_probes(text, shown, [q for _, q in prompts], starts))
    return torch.cat(pvs), torch.cat(grids), packed, torch.cat(labels), torch.stack(targets)


POSITION_ANSWERS = {"left", "right", "above", "below", "higher", "lower"}
PROBE_WEIGHT = 1.0
COORD_LAYER, RELATION_LAYER = 2, 3  # hidden_states[k]: the residual stream after k of the LLM's 4 layers


def position_probes(text: Text, shown, prompts, starts):
    """Intermediate targets for the position questions ("Is the {a} left or right of the {b}?"),
    read by linear probes off the LLM's residual stream (probe_loss; the probes are not exported): at
    the last token of each name, after COORD_LAYER layers, where that shape is (its offset from the
    shapes' centroid, what stage 0 taught the rows: offset_from_centroid); at the last token of b, after RELATION_LAYER layers, whether a lies
    left of and above b (masked where the two overlap along that axis). An answer alone says one bit
    per question, and 3000 steps of it left positions at chance: the LLM has to find two named shapes
    and compare them. The probes say what to look up where, one lookup per name, as the colour
    questions do. Returns (row, token of a, token of b) [P, 3], coordinates [P, 4], relations and
    their masks [P, 2] each; None without position questions."""
    where, coords, rel, known = [], [], [], []
    for r, ((scene, grid_h, grid_w), qas, st) in enumerate(zip(shown, prompts, starts)):
        for (q, a), start in zip(qas, st):
            if a not in POSITION_ANSWERS:
                continue
            first = next(s for s in scene.shapes if f"the {s.name} " in q)
            second = next(s for s in scene.shapes if f"the {s.name}?" in q)
            full = text.enc("\n" + q)
            ends = []
            for k in (q.index(f"the {first.name} ") + 4 + len(first.name), q.index(f"the {second.name}?") + 4 + len(second.name)):
                head = text.enc("\n" + q[:k])
                assert full[:len(head)] == head, (q, k)
                ends.append(start + len(head) - 1)
            where.append([r, *ends])
            off = offset_from_centroid(scene, grid_h, grid_w)
            coords.append([*off(first.cx, first.cy), *off(second.cx, second.cy)])
            rel.append([float(first.cx < second.cx), float(first.cy < second.cy)])
            known.append([float(abs(first.cx - second.cx) > first.r + second.r), float(abs(first.cy - second.cy) > first.r + second.r)])
    if not where:
        return None
    return torch.tensor(where), torch.tensor(coords), torch.tensor(rel), torch.tensor(known)


def probe_loss(probe, hidden, probes) -> torch.Tensor:
    where, coords, rel, known = probes
    h = hidden[COORD_LAYER]
    xy = torch.cat([probe["coords"](h[where[:, 0], where[:, 1]]), probe["coords"](h[where[:, 0], where[:, 2]])], 1)
    coord = (xy - coords).pow(2).mean()
    logits = probe["relation"](hidden[RELATION_LAYER][where[:, 0], where[:, 2]])
    bce = F.binary_cross_entropy_with_logits(logits, rel, weight=known, reduction="sum") / known.sum().clamp(min=1)
    return coord + bce


def rows_aux_loss(head, rows: torch.Tensor, grid: torch.Tensor, plab: torch.Tensor) -> torch.Tensor:
    """The projector's rows: which colours and kinds lie under the window's 4 patches and whether a
    shape's centre does (multi-label), and the mean row of each image kept small against the rows
    (so the rows differ by content, not share one large common part)."""
    nc, nk = len(scenes.COLOURS), len(scenes.SHAPES)
    win = plab.reshape(-1, 4, plab.shape[1])
    colours = F.one_hot(win[:, :, 0].long(), nc + 1)[:, :, 1:].amax(1)
    kinds = F.one_hot(win[:, :, 1].long(), nk + 1)[:, :, 1:].amax(1)
    centre = win[:, :, 2].amax(1, keepdim=True)
    target = torch.cat([colours.float(), kinds.float(), centre], 1)
    o = head(rows)
    bce = F.binary_cross_entropy_with_logits(o[:, :nc + nk + 1], target)
    # the relations of the first of the window's 4 patches that lies on a shape (none: masked out)
    on = (win[:, :, 1] > 0).float() * torch.tensor([4.0, 3.0, 2.0, 1.0])
    pick = win[torch.arange(win.shape[0]), on.argmax(1)] * (on.amax(1) > 0).float()[:, None]
    bce = bce + relation_loss(o[:, nc + nk + 1:], pick)
    mean_pen, at = 0.0, 0
    for n in (grid[:, 1] * grid[:, 2] // 4).tolist():
        r = rows[at:at + n]
        at += n
        mean_pen = mean_pen + r.mean(0).pow(2).sum() / r.pow(2).sum(1).mean()
    return bce + mean_pen / grid.shape[0]


def loss_of(model, head, probe, text, stage, frozen, pv, grid, packed, plab, targets):
    if frozen:  # the tower and the projector as stage 0 left them: the LLM learns to read fixed rows
        with torch.no_grad():
            rows = model.encode(pv, grid)
        return answer_loss(model, text, probe, rows, *packed)
    tokens = model.vision_tokens(pv, grid)
    rows = model.vision_projector(tokens)
    aux = (aux_loss(head["tokens"], tokens, plab) + rows_aux_loss(head["rows"], rows, grid, plab)
           + global_loss(head["global"], rows, grid, targets))
    if stage == 0:
        return aux, aux
    total, lm = answer_loss(model, text, probe, rows, *packed)
    return total + AUX_WEIGHT * aux, lm


def answer_loss(model, text, probe, rows, ids, pos, mask, tgt, w, probes):
    """Weighted cross-entropy of the answer tokens (the first one FIRST_ANSWER_WEIGHT times: it is
    the one read off the image; the rest mostly follow from it), plus PROBE_WEIGHT times probe_loss
    where the batch has position questions and `probe` is given. Returns (the sum, the answers' loss)."""
    emb = model.embed(ids, rows, text.pad)
    use = probe is not None and probes is not None
    out = model.llm(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=False, output_hidden_states=use)
    logits = out.logits
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100, reduction="none")
    lm = (ce * w.reshape(-1)).sum() / w.sum()
    return (lm + PROBE_WEIGHT * probe_loss(probe, out.hidden_states, probes) if use else lm), lm


def train_stage(model, head, text, proc, name, steps, batch_size, lr, seed0, log, t0, frozen=False, probe=None):
    stage = int(name[-1])
    trained = [model.vision_encoder, model.vision_projector] if stage == 0 else [model.llm] if frozen else [model]
    params = ([] if frozen else list(head.parameters())) + [p for m in trained for p in m.parameters()]
    params += [] if probe is None else list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.05)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))))
    rng = random.Random(seed0 * 7 + 1)
    model.train()
    ema = None
    for step in range(steps):
        seeds = list(range(seed0 + step * batch_size, seed0 + (step + 1) * batch_size))
        loss, lm_loss = loss_of(model, head, probe, text, stage, frozen, *batch(model, text, proc, seeds, stage, rng))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        v = float(lm_loss)
        ema = v if ema is None else 0.95 * ema + 0.05 * v
        log.append(OrderedDict(stage=name, step=step, loss=v, lr=sched.get_last_lr()[0], t=time.time() - t0))
        if CHECKPOINT and step % 250 == 249:
            torch.save(model.state_dict(), CHECKPOINT)
        if stage == 0 and EVAL_EVERY and step % EVAL_EVERY == EVAL_EVERY - 1:
            acc = global_accuracy(model, head, proc, EVAL_SCENES)
            log[-1]["heldout"] = acc
            print(f"{name} step {step}: global head on {EVAL_SCENES} held-out scenes {dict(acc)}", flush=True)
        if stage >= 2 and EVAL_EVERY and step % EVAL_EVERY == EVAL_EVERY - 1:
            acc = quick_accuracy(model, text, proc, EVAL_SCENES)
            log[-1]["heldout"] = acc
            print(f"{name} step {step}: held-out accuracy on {EVAL_SCENES} scenes {dict(acc)}", flush=True)
        if step % 25 == 0 or step == steps - 1:
            print(f"{name} step {step}/{steps} loss {v:.4f} (ema {ema:.4f}, with probes {float(loss):.4f}) lr {sched.get_last_lr()[0]:.2e} "
                  f"{time.time() - t0:.0f}s", flush=True)
    model.eval()
    return seed0 + steps * batch_size


@torch.no_grad()
def standardize_rows(model: ShapesPoints, proc, seeds) -> None:
    """Rescales the projector's last Linear so that its rows have mean 0 and variance 1 in every
    feature over the given scenes (an exact reparametrization of the same function up to that affine
    map). After stage 0 a few features carry most of the rows' size and the ones that tell the
    colours and kinds apart are small: the LLM, reading RMS-normalized rows, barely sees them."""
    rows = []
    for s in seeds:
        f = proc(images=[scenes.make_scene(s).image], return_tensors="pt")
        rows.append(model.encode(f["pixel_values"], f["image_grid_thw"]))
    rows = torch.cat(rows)
    mu, sd = rows.mean(0), rows.std(0) + 1e-3
    lin = model.vision_projector.mlp[2]
    lin.weight.div_(sd[:, None])
    lin.bias.sub_(mu).div_(sd)
    print(f"rows standardized: per-feature std was {float(sd.min()):.3g} .. {float(sd.max()):.3g}, "
          f"mean norm {float(mu.norm()):.3g}", flush=True)


def plot_loss(log, path, batch_size):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    x0 = 0
    for stage, colour in (("stage0", "#2ca02c"), ("stage1", "#1f77b4"), ("stage2", "#d62728"), ("stage3", "#9467bd")):
        ys = [e["loss"] for e in log if e["stage"] == stage]
        if not ys:
            continue
        k = 20
        sm = np.convolve(ys, np.ones(k) / k, mode="valid") if len(ys) > k else np.asarray(ys)
        ax.plot(range(x0, x0 + len(ys)), ys, color=colour, alpha=0.25, lw=0.8)
        ax.plot(range(x0 + len(ys) - len(sm), x0 + len(ys)), sm, color=colour, lw=1.6,
                label={"stage0": "stage 0: vision tower + projector, patch labels (auxiliary heads)",
                       "stage1": "stage 1: captions (alignment)", "stage2": "stage 2: questions (instruction tuning)",
                       "stage3": "stage 3: more position questions, with probes"}[stage])
        x0 += len(ys)
    ax.set_yscale("log")
    ax.set_xlabel(f"step (stage 0: {2 * batch_size} scenes each, then {batch_size})")
    ax.set_ylabel("loss (stage 0: auxiliary; then LM cross-entropy / answer token)")
    ax.set_title("shapes-tiny: training loss (tools/demo_model/train.py)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


@torch.no_grad()
def check_packing(model: ShapesPoints, text: Text) -> None:
    """pack_questions gives each answer token the logits of its own one-turn chat."""
    rng = random.Random(5)
    prompts = [(n, sample_questions(scenes.make_scene(s), rng, 2)[:3]) for s, n in ((3, 5), (4, 9))]
    rows = torch.randn(sum(n for n, _ in prompts), model.llm_config.hidden_size)
    ids, pos, mask, tgt, *_ = pack_questions(text, prompts)
    packed = model.llm(inputs_embeds=model.embed(ids, rows, text.pad), attention_mask=mask, position_ids=pos).logits
    at = 0
    for b, (n, qas) in enumerate(prompts):
        got = packed[b][tgt[b] != -100]
        want = []
        for qa in qas:
            i, lab = text.conversation([qa], n)
            lg = model.llm(inputs_embeds=model.embed(torch.tensor([i]), rows[at:at + n], text.pad)).logits[0]
            want.append(lg[[k - 1 for k, l in enumerate(lab) if l != -100]])
        at += n
        assert torch.allclose(got, torch.cat(want), atol=1e-4), float((got - torch.cat(want)).abs().max())


@torch.no_grad()
def global_accuracy(model: ShapesPoints, heads, proc, count: int) -> OrderedDict:
    """How well the rows tell the scene_targets of the first `count` held-out scenes: per group,
    the share of targets the global head gets right from one image's mean logits (xy_mae: the mean
    absolute error of the offsets, in OFFSET_UNIT); and the relations the rows head reads off the
    rows that lie on a shape (relations: the share of known relation bits it gets right)."""
    model.eval()
    head = heads["global"]
    nr = len(scenes.COLOURS) + len(scenes.SHAPES) + 1
    right = [0.0] * len(GLOBAL_GROUPS)
    xy_err = rel_right = rel_n = 0.0
    for k in range(count):
        scene = scenes.make_scene(HELDOUT_SEED0 + k)
        f = proc(images=[scene.image], return_tensors="pt")
        rows = model.encode(f["pixel_values"], f["image_grid_thw"])
        o = head(rows).mean(0)
        _, gh, gw = (int(x) for x in f["image_grid_thw"][0])
        win = patch_labels(scene, gh, gw).reshape(-1, 4, PATCH_REL + 2 * N_REL)
        on = win[:, 0, 1] > 0  # rows whose first patch lies on a shape
        if bool(on.any()):
            lab = win[on, 0]
            m = lab[:, PATCH_REL + N_REL:]
            got = (heads["rows"](rows[on])[:, nr:] > 0).float() == lab[:, PATCH_REL:PATCH_REL + N_REL]
            rel_right += float((got.float() * m).sum())
            rel_n += float(m.sum())
        t = scene_targets(scene, gh, gw)
        at = ti = 0
        for g, (_, n, c) in enumerate(GLOBAL_GROUPS):
            right[g] += float((o[at:at + n * c].reshape(n, c).argmax(1) == t[ti:ti + n].long()).float().mean())
            at += n * c
            ti += n
        present = t[ti:ti + N_COMBOS]
        xy = o[at + N_COMBOS:].reshape(N_COMBOS, 2)
        xy_err += float(((xy - t[ti + N_COMBOS:].reshape(N_COMBOS, 2)).abs().sum(1) * present).sum() / present.sum() / 2)
    model.train()
    out = OrderedDict((g[0], round(r / count, 3)) for g, r in zip(GLOBAL_GROUPS, right))
    out["xy_mae"] = round(xy_err / count, 3)
    out["relations"] = round(rel_right / max(1.0, rel_n), 3)
    return out


@torch.no_grad()
def quick_accuracy(model: ShapesPoints, text: Text, proc, count: int) -> OrderedDict:
    """Greedy answers on the first `count` held-out scenes, one question per category (as
    evaluate.py asks them): the accuracy per category, printed while training."""
    from evaluate import Runner, pick_questions
    model.eval()
    run = Runner(model, text, proc)
    per = OrderedDict((c, [0, 0]) for c in scenes.CATEGORIES)
    for k in range(count):
        scene = scenes.make_scene(HELDOUT_SEED0 + k)
        rows, _ = run.rows(scene.image)
        for cat, (q, truth) in pick_questions(scene).items():
            per[cat][0] += run.answer(rows, q)[2].strip() == truth
            per[cat][1] += 1
    model.train()
    return OrderedDict((c, round(a / max(1, n), 3)) for c, (a, n) in per.items())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "models", "shapes-tiny"))
    ap.add_argument("--steps0", type=int, default=2500)
    ap.add_argument("--steps1", type=int, default=0)
    ap.add_argument("--steps2", type=int, default=3000)
    ap.add_argument("--steps3", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr0", type=float, default=2e-3)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--lr2", type=float, default=1e-3)
    ap.add_argument("--lr3", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--qwen2-tokenizer", default=os.path.join(os.path.dirname(REPO), "shared", "data",
                                                              "qwen2-tokenizer"))
    ap.add_argument("--train-tower", action="store_true",
                    help="stage 2 trains every module (default: the LLM alone, on the rows stage 0 left)")
    ap.add_argument("--stage0-state", help="where stage 0's result is saved; when the file exists, stage 0 is "
                                           "loaded from it instead of trained (the same --steps0 and --batch)")
    ap.add_argument("--stage2-state", help="the same for the end of stage 2 (the model's weights and the log)")
    ap.add_argument("--loss-png", default=os.path.join(REPO, "docs", "images", "shapes_tiny_loss.png"))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    work = tempfile.mkdtemp(prefix="shapes_tiny_")
    text_lines = "\n".join(scenes.all_text_phrasings())
    tok_dir, tok_info = build_tokenizer(work, args.qwen2_tokenizer, text=text_lines, bpe_vocab=BPE_VOCAB, repeat=1)
    tok = Qwen2TokenizerFast.from_pretrained(tok_dir)
    text = Text(tok)
    n_tokens = len(tok)
    vocab = -(-n_tokens // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    # The piecewise ids equal the tokenizer's ids of the rendered string.
    sc = scenes.make_scene(12345)
    turns = sample_questions(sc, random.Random(1), 2)[:1] + [("What do you see?", "shapes")]
    ids, _ = text.conversation(turns, 7)
    assert ids == tok.encode(text.prompt_string(turns, 7), add_special_tokens=False)

    model = ShapesPoints(vocab, bos=text.eot, eos=text.im_end)
    # Training runs the blocks' attention image by image (the same math, without transformers'
    # [L, L] mask over the whole pack): checked equal here on one packed batch.
    pv, grid, *_ = batch(model, text, make_processor(), list(range(8)), 2, random.Random(2))
    head = torch.nn.ModuleDict(dict(tokens=torch.nn.Linear(model.vision_config.embed_dim, AUX_OUT),
                                    rows=torch.nn.Linear(model.llm_config.hidden_size,
                                                         len(scenes.COLOURS) + len(scenes.SHAPES) + 1 + N_REL),
                                    **{"global": torch.nn.Linear(model.llm_config.hidden_size, GLOBAL_OUT)}))
    with torch.no_grad():
        ref = model.encode(pv, grid)
        model.exact_blocks = False
        assert torch.allclose(model.encode(pv, grid), ref, atol=1e-5, rtol=1e-4)
        check_packing(model, text)
    print(f"tokenizer: {tok_dir}")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params} ({n_params * 4 / 1e6:.1f} MB f32); tokenizer {n_tokens} tokens, vocab {vocab}")
    proc = make_processor()
    log: list = []
    nxt = TRAIN_SEED0 + args.steps0 * 2 * args.batch
    if args.stage0_state and os.path.exists(args.stage0_state):
        state = torch.load(args.stage0_state, weights_only=True)
        # Stage 0 trains the tower and the projector only: the LLM keeps its initialization (so the
        # LLM's config may change between a saved stage 0 and the stage 2 run on it).
        res = model.load_state_dict(OrderedDict((k, v) for k, v in state["model"].items() if k.startswith("vision_")),
                                    strict=False)
        assert not res.unexpected_keys and not [k for k in res.missing_keys if k.startswith("vision_")], res
        head.load_state_dict(state["head"])
        log += state["log"]
        print(f"stage 0 (and the rows' standardization) loaded from {args.stage0_state}", flush=True)
    else:
        train_stage(model, head, text, proc, "stage0", args.steps0, 2 * args.batch, args.lr0, TRAIN_SEED0, log, t0)
        standardize_rows(model, proc, range(nxt, nxt + 64))
        if args.stage0_state:
            torch.save(dict(model=model.state_dict(), head=head.state_dict(), log=log), args.stage0_state)
    nxt += 64
    nxt = train_stage(model, head, text, proc, "stage1", args.steps1, args.batch, args.lr, nxt, log, t0)
    if args.stage2_state and os.path.exists(args.stage2_state):
        state = torch.load(args.stage2_state, weights_only=True)
        model.load_state_dict(state["model"])
        log[:] = state["log"]
        print(f"stages 0 to 2 loaded from {args.stage2_state}", flush=True)
        nxt += args.steps2 * args.batch
    else:
        nxt = train_stage(model, head, text, proc, "stage2", args.steps2, args.batch, args.lr2, nxt, log, t0,
                          frozen=not args.train_tower)
        if args.stage2_state:
            torch.save(dict(model=model.state_dict(), log=log), args.stage2_state)
    # Stage 3: the LLM alone again, position questions asked more often, and linear probes on its
    # residual stream that say where to look (position_probes). Seeded on its own, so a stage 2
    # loaded from --stage2-state gives the same probes.
    torch.manual_seed(args.seed + 3)
    h = model.llm_config.hidden_size
    probe = torch.nn.ModuleDict(dict(coords=torch.nn.Linear(h, 2), relation=torch.nn.Linear(h, 2)))
    train_stage(model, head, text, proc, "stage3", args.steps3, args.batch, args.lr3, nxt, log, t0, frozen=True,
                probe=probe)

    model.exact_blocks = True
    out = args.out
    os.makedirs(out, exist_ok=True)
    sd = OrderedDict((k, v.detach().float().contiguous()) for k, v in model.state_dict().items())
    safetensors.torch.save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(out, "config.json"), model.config_json())
    write_json(os.path.join(out, "preprocessor_config.json"), preprocessor_json())
    write_json(os.path.join(out, "generation_config.json"),
               OrderedDict(bos_token_id=text.eot, do_sample=False, eos_token_id=text.im_end, max_new_tokens=64,
                           transformers_version=transformers.__version__))
    for f in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tok_dir, f), os.path.join(out, f))
    os.makedirs(os.path.dirname(args.loss_png), exist_ok=True)
    plot_loss(log, args.loss_png, args.batch)
    info = OrderedDict(
        generator="tools/demo_model/train.py", command=" ".join(sys.argv),
        versions=OrderedDict(python=platform.python_version(), torch=torch.__version__,
                             transformers=transformers.__version__, numpy=np.__version__),
        seed=args.seed, threads=args.threads, parameters=n_params, vision=dict(model.vision_config.to_dict()),
        train_scenes=OrderedDict(first_seed=TRAIN_SEED0, count=(args.steps1 + args.steps2 + args.steps3) * args.batch),
        heldout=OrderedDict(first_seed=HELDOUT_SEED0, count=HELDOUT_COUNT),
        stages=OrderedDict(stage0=OrderedDict(steps=args.steps0, lr=args.lr0, batch=2 * args.batch,
                                              data="the vision tower and the projector alone, with auxiliary linear "
                                                   "heads (not exported): on the tower's tokens, per patch the colour "
                                                   "and kind of the shape under its centre, whether a shape's centre "
                                                   "lies in it, its (x, y) and where every other shape lies from the "
                                                   "shape under it; on the projector's rows, the colours "
                                                   "and kinds under the 2 x 2 window and the same relations, the mean row of each image "
                                                   "kept small, and per image (asked of every row) the number of "
                                                   "shapes, of each kind and colour, the colour of each kind, the kind "
                                                   "of each colour and where each shape is; kept with weight 0.5 in "
                                                   "stage 1 and in stage 2 when the tower is trained there"),
                           stage1=OrderedDict(steps=args.steps1, data="captions"),
                           stage2=OrderedDict(steps=args.steps2, trained="every module" if args.train_tower else
                                              "the LLM (the tower and the projector as stage 0 left them)",
                                              data=f"{QUESTIONS_PER_SCENE} questions per scene, each its own one-turn chat (the image encoded once; the "
                                                                  f"questions packed as a tree after the shared image prefix), {CAPTION_SHARE:.0%} captions; "
                                                                  f"loss on the answer tokens, the first one weighted {FIRST_ANSWER_WEIGHT:g}x"),
                           stage3=OrderedDict(steps=args.steps3, lr=args.lr3, trained="the LLM",
                                              data=f"as stage 2, with a position question {STAGE3_POSITION_SHARE:.0%} of the time, and "
                                                   f"linear probes (not exported, weight {PROBE_WEIGHT:g}) on the LLM's residual stream at "
                                                   f"the position questions' names: after {COORD_LAYER} layers where each named shape "
                                                   f"is, after {RELATION_LAYER} at the second name whether the first lies left of / above it")),
        batch=args.batch, lr=OrderedDict(stage0=args.lr0, stage1=args.lr, stage2=args.lr2, stage3=args.lr3),
        optimizer="AdamW(0.9, 0.98), weight decay 0.05, clip 1.0, 5% warmup, cosine",
        tokenizer=OrderedDict((k, tok_info[k]) for k in ("training", "added_tokens", "size")),
        seconds=time.time() - t0,
        loss=[(e["stage"], e["step"], round(e["loss"], 5)) for e in log])
    info["tokenizer"]["training"] = OrderedDict((k, v) for k, v in tok_info["training"].items() if k != "text")
    write_json(os.path.join(out, "training.json"), info)
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
