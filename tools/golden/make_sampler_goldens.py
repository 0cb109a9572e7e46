# SPDX-License-Identifier: Apache-2.0
"""Golden data for tessera's token sampler (tests/golden/test_golden_sampler.cpp).

Runs Hugging Face transformers' own generate() for one new token on a tiny Qwen2ForCausalLM whose
forward returns preset logits, and records what the logits processors made of them
(`output_scores`): RepetitionPenaltyLogitsProcessor, then with do_sample TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper, exactly as GenerationMixin._get_logits_processor
builds them. The script captures the list _get_logits_processor returned inside generate(), asserts
that it equals the list built by hand from the config (classes, order, parameters) and that applying
the hand-built list to the logits gives generate()'s scores bit for bit. Greedy cases also record
generate()'s token (torch.argmax of the scores).

Writes <out>/sampler_goldens.safetensors (per case: "<case>.logits" F32 [V], "<case>.history" I32 [L]
(the prompt = every id so far),
"<case>.scores" F32 [V] (generate()'s processed scores, -inf = removed), "<case>.greedy" I32 [1]
for greedy cases) and <out>/sampler_manifest.json (versions, settings, per case: vocab, config,
the processors, tie_split, the decision margins, sha256 of the data file).

Every case is checked to be well conditioned: the same processors run in float64 on the same f32
scores give the same mask, and the decision margins (relative distance of top-p's cumulative sums
and of min-p's probabilities from their thresholds) are recorded; a case whose mask depends on
float32 rounding of the softmax would make the golden test flaky, so the script refuses it.
`tie_split` marks cases where top-p's cut falls inside a group of equal scores: torch.sort is not
stable beyond 16 elements, so which members HF removes is then unspecified and the test compares
the removed count per group (up to 16 tokens torch's CPU sort is an insertion sort, stable, and the
test requires the exact mask: tessera's tie rule is a stable sort's).

Regenerate only on purpose; CI never runs this. The output is byte-for-byte reproducible.

    .venv/bin/python tools/golden/make_sampler_goldens.py --out tests/golden
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import warnings
from collections import OrderedDict

import numpy as np
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

FILE_NAME = "sampler_goldens.safetensors"
MANIFEST_NAME = "sampler_manifest.json"
MAX_FILE_BYTES = 2 * 1024 * 1024  # style guide §8: every golden file under 2 MB
MIN_MARGIN = 1e-4  # relative distance of every top-p / min-p decision from its threshold
QWEN_VOCAB = 151936


class FixedLogitsLM(Qwen2ForCausalLM):
    """A tiny random Qwen2ForCausalLM whose forward returns `next_logits` at the last position, so
    that generate() runs its real processor and selection code on logits we choose."""

    next_logits: torch.Tensor | None = None

    def forward(self, input_ids=None, attention_mask=None, **kwargs):  # noqa: D401 - HF signature
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], self.config.vocab_size)
        logits[:, -1] = self.next_logits
        return CausalLMOutputWithPast(logits=logits)


_models: dict[int, FixedLogitsLM] = {}


def model_for(vocab: int) -> FixedLogitsLM:
    if vocab not in _models:
        cfg = Qwen2Config(vocab_size=vocab, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096)
        torch.manual_seed(0)
        m = FixedLogitsLM(cfg).eval()
        m.captured = []
        original = m._get_logits_processor

        def capture(*args, **kwargs):
            processors = original(*args, **kwargs)
            m.captured.append(processors)
            return processors

        m._get_logits_processor = capture
        _models[vocab] = m
    return _models[vocab]


# --------------------------------------------------------------------------------------------- #
# inputs
# --------------------------------------------------------------------------------------------- #
def make_logits(kind: str, vocab: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "normal":
        return torch.randn(vocab, generator=gen) * 3.0
    if kind == "soft":  # N(0, 1): top-p and min-p keep hundreds of tokens
        return torch.randn(vocab, generator=gen)
    if kind == "ties":  # multiples of 0.5: many equal scores, also at the top-k / top-p boundaries
        return torch.round(torch.randn(vocab, generator=gen) * 4.0) / 2.0
    if kind == "wide":  # a large range (exp underflows for many) and 10 % -inf entries
        x = torch.randn(vocab, generator=gen) * 30.0
        x[torch.rand(vocab, generator=gen) < 0.1] = float("-inf")
        return x
    if kind == "peaked":  # LM-like: a background, a few strong and some medium candidates
        x = torch.randn(vocab, generator=gen) * 2.0
        idx = torch.randperm(vocab, generator=gen)
        x[idx[:3]] += 12.0
        x[idx[3:33]] += 6.0
        return x
    if kind == "qwen":  # vocab 151,936, LM-like: a background (~6 % of the mass at temperature 0.7)
        x = torch.randn(vocab, generator=gen)  # and a head of 300 plausible tokens
        idx = torch.randperm(vocab, generator=gen)
        x[idx[:300]] += 6.0 + torch.rand(300, generator=gen) * 2.0
        return x
    if kind == "flat":
        return torch.zeros(vocab)
    if kind == "tie_max":  # the maximum twice (greedy must take the first index)
        x = torch.randn(vocab, generator=gen) * 3.0
        m = float(x.max()) + 1.0
        x[17] = m
        x[400] = m
        return x
    if kind == "tiny5":
        assert vocab == 5
        return torch.tensor([2.0, 1.0, 0.5, 0.5, -1.0])
    if kind == "neg_inf_mix":  # some -inf entries in a small vocabulary
        assert vocab == 8
        return torch.tensor([1.5, float("-inf"), 0.25, 3.0, float("-inf"), -2.0, 3.0, 0.75])
    if kind == "ties12":  # 12 tokens in groups of equal scores (torch.sort is stable up to 16)
        assert vocab == 12
        return torch.tensor([1.0, 0.5, 1.0, 2.0, 0.5, 1.0, 2.0, 0.5, 1.0, -1.0, 0.5, 1.0])
    if kind == "one_finite":
        x = torch.full((vocab,), float("-inf"))
        x[vocab // 3] = -1.25
        return x
    raise ValueError(kind)


def make_history(vocab: int, length: int, gen: torch.Generator, must: list[int]) -> torch.Tensor:
    """`length` ids with repeats (drawn from a pool of about length / 2 ids), plus `must`."""
    if length == 0 and not must:
        return torch.zeros(1, dtype=torch.int64)  # generate() needs one prompt id; no penalty uses it
    pool = torch.randint(0, vocab, (max(1, length // 2),), generator=gen)
    h = pool[torch.randint(0, pool.numel(), (length,), generator=gen)]
    return torch.cat([h, torch.tensor(must, dtype=torch.int64)])


# --------------------------------------------------------------------------------------------- #
# HF's processors
# --------------------------------------------------------------------------------------------- #
def expected_processors(c: dict) -> LogitsProcessorList:
    """The list _get_logits_processor builds for these fields (num_beams 1: min_tokens_to_keep 1)."""
    procs = LogitsProcessorList()
    if c["repetition_penalty"] != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(penalty=c["repetition_penalty"]))
    if c["do_sample"]:
        if c["temperature"] != 1.0:
            procs.append(TemperatureLogitsWarper(c["temperature"]))
        if c["top_k"] != 0:
            procs.append(TopKLogitsWarper(top_k=c["top_k"], min_tokens_to_keep=1))
        if c["top_p"] < 1.0:
            procs.append(TopPLogitsWarper(top_p=c["top_p"], min_tokens_to_keep=1))
        if c["hf_min_p"] is not None:
            procs.append(MinPLogitsWarper(min_p=c["hf_min_p"], min_tokens_to_keep=1))
    return procs


def describe(p) -> dict:
    d = OrderedDict(cls=type(p).__name__)
    for attr in ("penalty", "temperature", "top_k", "top_p", "min_p", "min_tokens_to_keep"):
        if hasattr(p, attr):
            d[attr] = getattr(p, attr)
    return d


def run_generate(vocab: int, logits: torch.Tensor, history: torch.Tensor, c: dict):
    m = model_for(vocab)
    m.next_logits = logits
    m.captured.clear()
    kwargs = dict(do_sample=c["do_sample"], repetition_penalty=c["repetition_penalty"], max_new_tokens=1,
                  pad_token_id=0)
    if c["do_sample"]:
        kwargs.update(temperature=c["temperature"], top_k=c["top_k"], top_p=c["top_p"])
        if c["hf_min_p"] is not None:
            kwargs["min_p"] = c["hf_min_p"]
    gc = GenerationConfig(**kwargs)
    ids = history.view(1, -1)
    torch.manual_seed(1234)  # generate()'s own multinomial draw (not recorded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gc,
                         output_scores=True, output_logits=True, return_dict_in_generate=True, use_cache=False)
    assert len(m.captured) == 1
    got_list = m.captured[0]
    want_list = expected_processors(c)
    assert [describe(p) for p in got_list] == [describe(p) for p in want_list], (
        [describe(p) for p in got_list], [describe(p) for p in want_list])
    assert torch.equal(out.logits[0][0], logits)
    scores = out.scores[0][0].clone()
    manual = want_list(ids, logits.view(1, -1).clone())[0]
    assert torch.equal(manual, scores), "hand-built processors differ from generate()"
    token = int(out.sequences[0, -1])
    if not c["do_sample"]:
        assert token == int(torch.argmax(scores)), (token, int(torch.argmax(scores)))
    return scores, token, got_list


# --------------------------------------------------------------------------------------------- #
# conditioning, ties
# --------------------------------------------------------------------------------------------- #
def analyse(procs: LogitsProcessorList, ids: torch.Tensor, logits: torch.Tensor, scores: torch.Tensor) -> dict:
    """Runs the processors one by one in f32 (HF's arithmetic) and in f64 from the same f32
    inputs; checks that f64 gives the same mask at every step and measures the margins."""
    info = OrderedDict(top_p_margin=None, min_p_margin=None, tie_split=False)
    s32 = logits.view(1, -1).clone()
    for p in procs:
        before = s32.clone()
        s32 = p(ids, s32)
        s64 = p(ids, before.double())
        assert torch.equal(torch.isinf(s64) & (s64 < 0), torch.isinf(s32) & (s32 < 0)), (
            f"{type(p).__name__}: the float64 mask differs from float32: ill-conditioned case")
        fin = torch.isfinite(before[0])
        if isinstance(p, TopPLogitsWarper) and fin.any():
            b = before[0].double()
            sorted_logits, _ = torch.sort(b, descending=False)
            cum = sorted_logits.softmax(-1).cumsum(-1)
            thr = 1.0 - p.top_p
            rel = ((cum[:-1] - thr).abs() / thr)
            info["top_p_margin"] = float(rel.min()) if rel.numel() else None
            # a group of equal (finite) scores with both kept and removed members?
            after = s32[0]
            for v in torch.unique(before[0][fin]):
                grp = before[0] == v
                removed = torch.isinf(after[grp]) & (after[grp] < 0)
                if removed.any() and not removed.all():
                    info["tie_split"] = True
        if isinstance(p, MinPLogitsWarper) and fin.any() and p.min_p > 0:
            # Tokens tied with the maximum have p = max p >= min_p * max p exactly: no rounding
            # can change their fate, so they do not count (min_p = 1 keeps exactly them).
            probs = before[0].double().softmax(-1)
            thr = p.min_p * float(probs.max())
            rest = fin & (before[0] != before[0][fin].max())
            rel = ((probs[rest] - thr).abs() / thr)
            info["min_p_margin"] = float(rel.min()) if rel.numel() else None
    assert torch.equal(s32[0], scores)
    for k in ("top_p_margin", "min_p_margin"):
        if info[k] is not None:
            assert info[k] >= MIN_MARGIN or info["tie_split"], (k, info[k])
    return info


# --------------------------------------------------------------------------------------------- #
# the cases
# --------------------------------------------------------------------------------------------- #
def cfg(do_sample=False, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
        hf_min_p="same") -> dict:
    """tessera's sampling_config fields; hf_min_p is what generate() gets (None = not set, which
    is HF's off; 'same' = min_p when it is > 0, else None)."""
    if hf_min_p == "same":
        hf_min_p = min_p if min_p > 0 else None
    return OrderedDict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                       repetition_penalty=repetition_penalty, hf_min_p=hf_min_p)


CASES = [
    # name, vocab, logits kind, history length, ids forced into the history, config
    ("greedy_normal_v1000", 1000, "normal", 0, [], cfg()),
    ("greedy_tie_max_v1000", 1000, "tie_max", 0, [], cfg()),
    ("greedy_rep1.3_v1000", 1000, "normal", 300, ["argmax"], cfg(repetition_penalty=1.3)),
    ("greedy_rep0.7_ties_v257", 257, "ties", 60, [], cfg(repetition_penalty=0.7)),
    ("greedy_one_finite_rep1.2_v8", 8, "one_finite", 4, [2], cfg(repetition_penalty=1.2)),
    ("temp0.7_v1000", 1000, "normal", 0, [], cfg(True, temperature=0.7)),
    ("temp1.3_wide_v1000", 1000, "wide", 0, [], cfg(True, temperature=1.3)),
    ("topk20_v1000", 1000, "normal", 0, [], cfg(True, top_k=20)),
    ("topk50_ties_v1000", 1000, "ties", 0, [], cfg(True, top_k=50)),
    ("topk1_ties_v257", 257, "ties", 0, [], cfg(True, top_k=1)),
    ("topk2000_gt_vocab_v1000", 1000, "normal", 0, [], cfg(True, top_k=2000)),
    ("topp0.8_v1000", 1000, "normal", 0, [], cfg(True, top_p=0.8)),
    ("topp0.8_soft_v1000", 1000, "soft", 0, [], cfg(True, top_p=0.8)),
    ("topp0.95_ties_v1000", 1000, "ties", 0, [], cfg(True, top_p=0.95)),
    ("topp0.5_wide_v1000", 1000, "wide", 0, [], cfg(True, top_p=0.5)),
    ("temp0.6_topp0.9_peaked_v1000", 1000, "peaked", 0, [], cfg(True, temperature=0.6, top_p=0.9)),
    ("topp0.999_temp2_v1000", 1000, "normal", 0, [], cfg(True, temperature=2.0, top_p=0.999)),
    ("minp0.05_v1000", 1000, "normal", 0, [], cfg(True, min_p=0.05)),
    ("minp0.05_soft_v1000", 1000, "soft", 0, [], cfg(True, min_p=0.05)),
    ("minp0.0_is_noop_v1000", 1000, "normal", 0, [], cfg(True, temperature=0.9, min_p=0.0, hf_min_p=0.0)),
    ("minp1.0_ties_v257", 257, "ties", 0, [], cfg(True, min_p=1.0)),
    ("qwen25_defaults_peaked_v1000", 1000, "peaked", 200, [],
     cfg(True, temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.05)),
    ("all_processors_soft_v1000", 1000, "soft", 500, [],
     cfg(True, temperature=0.7, top_k=40, top_p=0.9, min_p=0.1, repetition_penalty=1.2)),
    ("temp1.5_topp0.3_minp0.02_wide_v1000", 1000, "wide", 0, [], cfg(True, temperature=1.5, top_p=0.3, min_p=0.02)),
    ("topk100_minp0.2_rep1.1_v1000", 1000, "normal", 100, [], cfg(True, top_k=100, min_p=0.2, repetition_penalty=1.1)),
    ("temp0.5_topk300_topp0.6_soft_v1000", 1000, "soft", 0, [], cfg(True, temperature=0.5, top_k=300, top_p=0.6)),
    ("tiny5_topp0.6", 5, "tiny5", 0, [], cfg(True, top_p=0.6)),
    ("neg_inf_mix_topk3_topp0.9_v8", 8, "neg_inf_mix", 3, [3], cfg(True, top_k=3, top_p=0.9, repetition_penalty=1.5)),
    ("flat_topp0.5_v33", 33, "flat", 0, [], cfg(True, top_p=0.5)),
    ("ties12_topp0.6", 12, "ties12", 0, [], cfg(True, top_p=0.6)),
    ("ties12_temp0.8_topp0.85", 12, "ties12", 0, [], cfg(True, temperature=0.8, top_p=0.85)),
    ("ties_topk10_topp0.7_rep1.1_v257", 257, "ties", 80, [], cfg(True, top_k=10, top_p=0.7, repetition_penalty=1.1)),
    ("one_finite_temp0.7_topp0.5_v8", 8, "one_finite", 0, [], cfg(True, temperature=0.7, top_p=0.5)),
    ("qwen_vocab_temp0.7_topp0.8_rep1.05", QWEN_VOCAB, "qwen", 2000, [],
     cfg(True, temperature=0.7, top_p=0.8, repetition_penalty=1.05)),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (tests/golden)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    # The two facts of torch's CPU arithmetic the sampler reproduces (recorded in the manifest).
    x = torch.rand(100000, generator=torch.Generator().manual_seed(7))
    cumsum_double = torch.equal(x.cumsum(-1), torch.from_numpy(np.cumsum(x.double().numpy()).astype(np.float32)))
    division_ieee = torch.equal(x / 0.7, torch.from_numpy(x.numpy() / np.float32(0.7)))
    assert cumsum_double and division_ieee

    tensors: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    cases = OrderedDict()
    for index, (name, vocab, kind, hist_len, must, c) in enumerate(CASES):
        seed = 5000 + index
        gen = torch.Generator().manual_seed(seed)
        logits = make_logits(kind, vocab, gen)
        must_ids = [int(torch.argmax(logits)) if m == "argmax" else m for m in must]
        history = make_history(vocab, hist_len, gen, must_ids)
        scores, token, procs = run_generate(vocab, logits, history, c)
        info = analyse(procs, history.view(1, -1), logits, scores)
        if name == "minp0.0_is_noop_v1000":
            # HF with min_p = 0.0: MinPLogitsWarper is in the list and removes nothing.
            assert isinstance(procs[-1], MinPLogitsWarper)
            without = LogitsProcessorList(list(procs)[:-1])(history.view(1, -1), logits.view(1, -1).clone())[0]
            assert torch.equal(without, scores)
        tensors[f"{name}.logits"] = logits.contiguous()
        tensors[f"{name}.history"] = history.to(torch.int32).contiguous()
        tensors[f"{name}.scores"] = scores.contiguous()
        if not c["do_sample"]:
            tensors[f"{name}.greedy"] = torch.tensor([token], dtype=torch.int32)
        n_kept = int(torch.isfinite(scores).sum())
        cases[name] = OrderedDict(
            vocab=vocab, logits=kind, seed=seed,
            history_len=int(history.numel()), history_distinct=int(torch.unique(history).numel()),
            config=OrderedDict((k, v) for k, v in c.items() if k != "hf_min_p"),
            hf_min_p=c["hf_min_p"], hf_processors=[describe(p) for p in procs], n_kept=n_kept,
            greedy_token=None if c["do_sample"] else token, **info)
        print(f"{name}: kept {n_kept}/{vocab}, processors {[type(p).__name__ for p in procs]}, "
              f"top_p margin {info['top_p_margin']}, min_p margin {info['min_p_margin']}, tie_split {info['tie_split']}")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, FILE_NAME)
    safetensors.torch.save_file(dict(tensors), path, metadata={"generator": "tools/golden/make_sampler_goldens.py"})
    size = os.path.getsize(path)
    if size >= MAX_FILE_BYTES:
        print(f"error: {path} is {size} bytes, over the 2 MB limit", file=sys.stderr)
        return 1
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {path} ({size} bytes, {len(tensors)} tensors)")

    manifest = OrderedDict()
    manifest["generator"] = "tools/golden/make_sampler_goldens.py"
    manifest["regenerate"] = ".venv/bin/python tools/golden/make_sampler_goldens.py --out tests/golden"
    manifest["versions"] = OrderedDict(
        python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
        safetensors=safetensors.__version__, numpy=np.__version__)
    manifest["settings"] = OrderedDict(
        reference="GenerationMixin.generate(max_new_tokens=1, output_scores=True) on a Qwen2ForCausalLM whose "
                  "forward returns the case's logits; scores = the processed scores, greedy = the chosen token",
        processors="captured from _get_logits_processor inside generate(), asserted equal to the hand-built "
                   "list (RepetitionPenalty, Temperature, TopK, TopP, MinP; min_tokens_to_keep 1), whose output "
                   "is asserted bit-identical",
        torch_num_threads=1, deterministic_algorithms=True,
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cumsum_f32_accumulates_in_double=cumsum_double, division_by_python_float_is_ieee_f32=division_ieee,
        conditioning=f"every step's mask is the same in float64; top_p_margin / min_p_margin = min relative "
                     f"distance of a decision from its threshold (>= {MIN_MARGIN} unless tie_split)",
        tie_split="top-p's cut falls inside a group of equal scores; torch.sort is unstable, the test compares "
                  "the removed count per group",
        min_p="tessera's min_p = 0 is off; HF runs MinPLogitsWarper(0.0), which removes nothing (case "
              "minp0.0_is_noop_v1000 asserts it)")
    manifest["file"] = OrderedDict(name=FILE_NAME, bytes=size, sha256=sha, n_tensors=len(tensors))
    manifest["cases"] = cases
    with open(os.path.join(args.out, MANIFEST_NAME), "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.join(args.out, MANIFEST_NAME)} ({len(cases)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
