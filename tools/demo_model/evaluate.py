# SPDX-License-Identifier: Apache-2.0
"""Measures models/shapes-tiny in PyTorch and writes what the C++ tests check it against.

    .venv/bin/python tools/demo_model/evaluate.py [--model models/shapes-tiny]

 1. accuracy: the held-out scenes (seeds HELDOUT_SEED0 .. +HELDOUT_COUNT-1, never trained on),
    one question per category per scene where the scene allows one, greedy answers compared with
    the generator's answer (exact string); a caption exact-match rate besides. Written to
    models/shapes-tiny/eval.json.
 2. the identity fixture tests/golden/shapes_tiny/: N_FIXTURE (scene, question) pairs from the
    held-out set, each scene as a PNG (the image the PyTorch model was given, read back from that
    PNG), the prompt ids and the PyTorch model's greedy answer ids; tests/model/test_points15.cpp
    checks that tessera's greedy answers are the same ids.
 3. the bundled scenes models/shapes-tiny/examples/: the first scenes from EXAMPLES_SEED0 with at
    least three shapes, one per aspect-ratio class (tall, square-ish, wide), with their questions,
    the generator's answers and the model's answers (questions.json).
The model runs as the reference runs it: transformers' eager attention in the vision blocks
(one mask over the packed sequence), the projector, the Qwen2 LLM, greedy decoding to <|im_end|>.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import sys
from collections import OrderedDict

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import Qwen2TokenizerFast  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "golden"))
import scenes  # noqa: E402
from model import ShapesPoints, greedy  # noqa: E402
from train import EXAMPLES_SEED0, HELDOUT_COUNT, HELDOUT_SEED0, Text  # noqa: E402
from make_points15_goldens import write_json  # noqa: E402

N_FIXTURE = 64
FIXTURE_PNG_BYTES = 60_000   # a fixture scene's PNG is at most this big (scenes over it are passed over)
MAX_NEW_TOKENS = 48


def load(model_dir: str, attn: str = "eager"):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tok = Qwen2TokenizerFast.from_pretrained(model_dir)
    text = Text(tok)
    m = ShapesPoints(cfg["llm_config"]["vocab_size"], bos=text.eot, eos=text.im_end, attn=attn)
    sd = safetensors.torch.load_file(os.path.join(model_dir, "model.safetensors"))
    m.load_state_dict(sd, strict=True)
    m.eval()
    proc = Qwen2VLImageProcessor.from_pretrained(model_dir)
    return m, text, proc


def png_bytes(img: Image.Image) -> bytes:
    b = io.BytesIO()
    img.save(b, format="PNG", optimize=True)
    return b.getvalue()


class Runner:
    def __init__(self, model, text, proc):
        self.model, self.text, self.proc = model, text, proc

    @torch.no_grad()
    def rows(self, img: Image.Image):
        f = self.proc(images=[img], return_tensors="pt")
        rows = self.model.encode(f["pixel_values"], f["image_grid_thw"])
        return rows, [int(x) for x in f["image_grid_thw"][0]]

    @torch.no_grad()
    def answer(self, rows, question: str) -> tuple[list[int], list[int], str]:
        ids, _ = self.text.conversation([(question, None)], rows.shape[0])
        emb = self.model.embed(torch.tensor([ids]), rows, self.text.pad)
        out = greedy(self.model, emb, self.text.im_end, MAX_NEW_TOKENS)
        body = out[:-1] if out and out[-1] == self.text.im_end else out
        return ids, out, self.text.tok.decode(body)


def pick_questions(scene) -> OrderedDict:
    """One question per category (where the scene has one), drawn with the scene's seed."""
    rng = random.Random(scene.seed * 31 + 7)
    qs = scenes.questions(scene, rng)
    return OrderedDict((c, rng.choice(v)) for c, v in qs.items() if v)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(REPO, "models", "shapes-tiny"))
    ap.add_argument("--fixture", default=os.path.join(REPO, "tests", "golden", "shapes_tiny"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--count", type=int, default=HELDOUT_COUNT)
    ap.add_argument("--no-write", action="store_true", help="measure only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    model, text, proc = load(args.model)
    run = Runner(model, text, proc)

    per = OrderedDict((c, [0, 0]) for c in scenes.CATEGORIES)
    per["caption"] = [0, 0]
    fixture, wrong = [], []
    fixture_bytes = 0
    for k in range(args.count):
        scene = scenes.make_scene(HELDOUT_SEED0 + k)
        png = png_bytes(scene.image)
        img = Image.open(io.BytesIO(png)).convert("RGB")  # what the fixture's PNG decodes to
        assert np.array_equal(np.asarray(img), np.asarray(scene.image))
        rows, grid = run.rows(img)
        asked = pick_questions(scene)
        asked["caption"] = ("Describe this image.", scenes.caption(scene))
        take = len(png) <= FIXTURE_PNG_BYTES and len(fixture) < N_FIXTURE
        for cat, (q, truth) in asked.items():
            prompt_ids, ids, ans = run.answer(rows, q)
            ok = ans.strip() == truth
            per[cat][0] += ok
            per[cat][1] += 1
            if not ok:
                wrong.append(OrderedDict(seed=scene.seed, category=cat, question=q, truth=truth, answer=ans))
            # The fixture: every question of the first scenes whose PNG is small (captions included).
            if take and len(fixture) < N_FIXTURE:
                name = f"scene_{scene.seed}.png"
                fixture.append(OrderedDict(image=name, category=cat, question=q, truth=truth, answer=ans,
                                           correct=ok, grid_thw=grid, prompt_ids=prompt_ids, answer_ids=ids,
                                           _png=png))
        if (k + 1) % 20 == 0:
            print(f"{k + 1} scenes: " + ", ".join(f"{c} {a}/{n}" for c, (a, n) in per.items()), flush=True)

    acc = OrderedDict((c, OrderedDict(correct=a, asked=n, accuracy=round(a / max(1, n), 4))) for c, (a, n) in per.items())
    main4 = [per[c] for c in ("count", "colour", "shape", "position")]
    acc["count_colour_shape_position"] = OrderedDict(correct=sum(a for a, _ in main4), asked=sum(n for _, n in main4),
                                                     accuracy=round(sum(a for a, _ in main4) / sum(n for _, n in main4), 4))
    print(json.dumps(acc, indent=1))
    if args.no_write:
        for w in wrong[:40]:
            print(w)
        return 0

    versions = OrderedDict(python=platform.python_version(), torch=torch.__version__,
                           transformers=transformers.__version__, pillow=PIL.__version__, numpy=np.__version__)
    write_json(os.path.join(args.model, "eval.json"), OrderedDict(
        generator="tools/demo_model/evaluate.py", versions=versions,
        heldout=OrderedDict(first_seed=HELDOUT_SEED0, count=args.count,
                            regenerate="scenes.make_scene(first_seed + k) for k in range(count)"),
        questions="one per category per scene where the scene allows one (scenes.questions, drawn with "
                  "random.Random(seed * 31 + 7)), plus 'Describe this image.'", greedy_max_new_tokens=MAX_NEW_TOKENS,
        accuracy=acc, wrong=wrong))

    # Fixture.
    fx = args.fixture
    if os.path.isdir(fx):
        shutil.rmtree(fx)
    os.makedirs(fx)
    for e in fixture:
        p = os.path.join(fx, e["image"])
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(e["_png"])
            fixture_bytes += len(e["_png"])
        del e["_png"]
    write_json(os.path.join(fx, "manifest.json"), OrderedDict(
        generator="tools/demo_model/evaluate.py", versions=versions, model="models/shapes-tiny (model.safetensors f32)",
        reference="tools/demo_model/model.py: transformers' Qwen2-VL vision blocks (eager attention over the packed "
                  "sequence), PatchMerger, Qwen2ForCausalLM; greedy decoding to <|im_end|> "
                  f"(max_new_tokens {MAX_NEW_TOKENS}), the image given as the PNG's decoded pixels",
        max_new_tokens=MAX_NEW_TOKENS,
        prompt="spec 5.1: <|im_start|>user\\n<|vision_start|><|image_pad|> x N<|vision_end|>\\n{question}<|im_end|>\\n"
               "<|im_start|>assistant\\n",
        pairs=fixture))
    print(f"fixture: {len(fixture)} pairs, {len({e['image'] for e in fixture})} images, {fixture_bytes} bytes")

    # Bundled scenes: one tall, one square-ish, one wide, one small, from EXAMPLES_SEED0 on.
    ex = os.path.join(args.model, "examples")
    if os.path.isdir(ex):
        shutil.rmtree(ex)
    os.makedirs(ex)
    want = OrderedDict(tall=lambda s: s.width / s.height < 0.6, square=lambda s: 0.8 < s.width / s.height < 1.25,
                       wide=lambda s: s.width / s.height > 1.8, small=lambda s: max(s.width, s.height) < 200)
    bundled, seed = [], EXAMPLES_SEED0
    while want:
        s = scenes.make_scene(seed)
        seed += 1
        if len(s.shapes) < 3 and "small" not in want:
            continue
        for name, pred in list(want.items()):
            if pred(s) and (len(s.shapes) >= 3 or name == "small"):
                del want[name]
                fname = f"{name}_{s.seed}.png"
                s.image.save(os.path.join(ex, fname), optimize=True)
                img = Image.open(os.path.join(ex, fname)).convert("RGB")
                rows, grid = run.rows(img)
                qa = pick_questions(s)
                qa["caption"] = ("Describe this image.", scenes.caption(s))
                answers = OrderedDict()
                for cat, (q, truth) in qa.items():
                    _, _, ans = run.answer(rows, q)
                    answers[cat] = OrderedDict(question=q, truth=truth, model=ans)
                bundled.append(OrderedDict(image=fname, seed=s.seed, size=[s.width, s.height], grid_thw=grid,
                                           questions=answers))
                break
    write_json(os.path.join(ex, "questions.json"), OrderedDict(
        generator="tools/demo_model/evaluate.py", scenes=bundled))
    for b in bundled:
        print(b["image"], b["size"], [(v["question"], v["truth"], v["model"]) for v in b["questions"].values()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
