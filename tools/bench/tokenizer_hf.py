# SPDX-License-Identifier: Apache-2.0
"""HF tokenizers encode throughput on the corpus written by `bench_tokenizer --corpus-out`, for
scripts/bench_tokenizer.sh. Single thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false, set
before tokenizers is imported), one Tokenizer.encode() per document (the Rust tokenizer object of
transformers' Qwen2TokenizerFast, built from the shared vocab.json + merges.txt + Qwen2.5 added
tokens exactly as tools/golden/make_tokenizer_goldens.py builds the reference), a warm-up pass then
--reps timed passes. Writes JSON with min / median MB/s and the FNV-1a hash of all ids, which
bench_tokenizer computes the same way over tessera's ids.

  python tools/bench/tokenizer_hf.py --corpus corpus.bin --data ../shared/data/qwen2-tokenizer --json hf.json
"""

import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import tokenizers  # noqa: E402
import transformers  # noqa: E402
from transformers import AddedToken, Qwen2TokenizerFast  # noqa: E402


def read_corpus(path: Path):
    data = path.read_bytes()
    docs, at = [], 0
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at)
        docs.append(data[at + 4:at + 4 + n].decode("utf-8"))
        at += 4 + n
    return docs, len(data) - 4 * len(docs)


def build(data_dir: Path):
    tok = Qwen2TokenizerFast(vocab_file=str(data_dir / "vocab.json"), merges_file=str(data_dir / "merges.txt"))
    for a in json.loads((data_dir / "added_tokens_qwen2_5.json").read_text(encoding="utf-8")):
        tok.add_tokens([AddedToken(a["content"], special=a["special"], normalized=False)], special_tokens=a["special"])
    return tok._tokenizer


def fnv1a64_ids(all_ids) -> str:
    h = 0xCBF29CE484222325
    mask = 0xFFFFFFFFFFFFFFFF
    for ids in all_ids:
        for v in list(ids) + [len(ids)]:
            for k in range(4):
                h = ((h ^ ((v >> (8 * k)) & 0xFF)) * 0x100000001B3) & mask
    return f"{h:016x}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()

    docs, n_bytes = read_corpus(args.corpus)
    tok = build(args.data)
    encode = tok.encode
    ids = [encode(d, add_special_tokens=False).ids for d in docs]  # warm-up (fills the word cache, as tessera's)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for d in docs:
            encode(d, add_special_tokens=False)
        times.append(time.perf_counter() - t0)
    times.sort()
    mb = n_bytes / 1e6
    result = {
        "versions": {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__},
        "threads": {"RAYON_NUM_THREADS": os.environ["RAYON_NUM_THREADS"],
                    "TOKENIZERS_PARALLELISM": os.environ["TOKENIZERS_PARALLELISM"]},
        "documents": len(docs), "bytes": n_bytes, "reps": args.reps,
        "encode": {"min_s": times[0], "median_s": times[len(times) // 2], "mb_per_s": mb / times[0],
                   "mb_per_s_median": mb / times[len(times) // 2], "tokens": sum(len(i) for i in ids),
                   "ids_fnv1a64": fnv1a64_ids(ids)},
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"HF tokenizers {tokenizers.__version__}: encode {mb / times[0]:.2f} MB/s (min time), "
          f"{mb / times[len(times) // 2]:.2f} MB/s (median), {result['encode']['tokens']} tokens")


if __name__ == "__main__":
    main()
