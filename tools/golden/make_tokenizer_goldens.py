# SPDX-License-Identifier: Apache-2.0
"""Golden data for tessera::text::tokenizer, from the reference: HF `transformers` Qwen2TokenizerFast
built from the shared Qwen2 vocab.json + merges.txt plus the Qwen2.5 added tokens (exactly as
transformers builds it), i.e. HF `tokenizers` 0.20.3.

Writes into --out (tests/golden):
  tokenizer_corpus.jsonl     >= 10,000 seeded strings with their ids (and, for strings holding added
                             tokens, the ids with special tokens not recognized: encode_special_tokens)
  tokenizer_decode.jsonl     id sequences (many decoding to invalid UTF-8) with decode() results,
                             with and without skip_special_tokens
  tokenizer_unicode.json     per-code-point facts of the reference: which code points Oniguruma's
                             \\p{L}, \\p{N}, \\s match inside tokenizers' Split (as ranges), which
                             characters (?i) folds in the contractions, and NFC results of probe strings
  tokenizer_synthetic.jsonl  ids of the committed tiny tokenizer (tests/text/data/tiny_tokenizer.json),
                             loaded by tokenizers itself, on strings exercising every added-token flag
  tokenizer_manifest.json    versions, seed, sizes, sha256 of every file, checksums of the inputs

No vocabulary entry is written: the tests read the shared vocabulary themselves.

  .venv/bin/python tools/golden/make_tokenizer_goldens.py --out tests/golden
  .venv/bin/python tools/golden/make_tokenizer_goldens.py --write-tiny-tokenizer   # (re)writes the tiny tokenizer
"""

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import sys
import unicodedata
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers  # noqa: E402
from transformers import AddedToken, Qwen2TokenizerFast  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "qwen2-tokenizer"
TINY_PATH = REPO / "tests" / "text" / "data" / "tiny_tokenizer.json"
SEED = 20241208
MAX_FILE_BYTES = 4 << 20

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

ALL_CPS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ------------------------------------------------------------------------------------------------
# The reference tokenizer
# ------------------------------------------------------------------------------------------------

def build_reference(data_dir: Path):
    """Qwen2TokenizerFast from the slow-tokenizer files, plus the Qwen2.5 added tokens as the
    released Qwen2.5 tokenizer_config.json declares them (normalized false, no strip flags)."""
    tok = Qwen2TokenizerFast(vocab_file=str(data_dir / "vocab.json"), merges_file=str(data_dir / "merges.txt"))
    added = json.loads((data_dir / "added_tokens_qwen2_5.json").read_text(encoding="utf-8"))
    for a in added:
        tok.add_tokens([AddedToken(a["content"], special=a["special"], normalized=False, lstrip=False, rstrip=False,
                                   single_word=False)], special_tokens=a["special"])
        got = tok.convert_tokens_to_ids(a["content"])
        assert got == a["id"], (a, got)
    return tok


# ------------------------------------------------------------------------------------------------
# Corpus
# ------------------------------------------------------------------------------------------------

EN_WORDS = ("the of and to in is was for on that with as by at from his her he she it they we you are were be "
            "been have has had not but or an this which their there all would will one can more other some what "
            "when into out up about time only so than them its new two first also after years may over most like "
            "people city river mountain garden window kitchen yellow quickly slowly beautiful language model token "
            "encoder decoder matrix vector image pixel camera morning evening station library science history "
            "network question answer simple complex running jumped walking thought brought through although "
            "unbelievable internationalization antidisestablishmentarianism Tokyo Paris London Berlin NASA GPU CPU "
            "JSON HTTP iPhone McDonald O'Brien naïve café résumé coöperate façade").split()
ZH_CHARS = ("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用"
            "发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从知道电脑语言模型图像文字处理")
ZH_PUNCT = "，。！？；：、“”‘’（）《》【】…—"
JA_KANA = ("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんがぎぐげござじずぜぞ"
           "だぢづでどばびぶべぼぱぴぷぺぽアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー")
JA_KANJI = "日本語東京大学先生学生時間今日明日電車会社仕事食事天気元気"
KO_WORDS = "안녕하세요 감사합니다 한국어 토크나이저 모델 이미지 사람 학교 컴퓨터 사랑 오늘 내일 서울 부산".split()
AR_WORDS = "مرحبا العالم اللغة العربية كتاب مدرسة الحاسوب نموذج صورة شكرا جزيلا السلام عليكم".split()
AR_MARKS = [chr(c) for c in range(0x064B, 0x0653)]
HI_WORDS = "नमस्ते दुनिया भाषा हिन्दी किताब विद्यालय कंप्यूटर मॉडल चित्र धन्यवाद क़लम ज़रूर फ़िल्म".split()
OTHER_WORDS = ("Привет мир язык модель Ελληνικά γλώσσα καλημέρα שלום עולם สวัสดี ภาษาไทย ሰላም Γειά σου "
               "Tiếng Việt rất đẹp Việt Nam Đà Nẵng Türkçe İstanbul ığüşöç Ærøskøbing Ångström").split()
EMOJI = ["😀", "😂", "🥲", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "❤️‍🔥", "🇯🇵", "🇺🇸", "🇩🇪",
         "🇨🇳", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "1️⃣", "#️⃣", "🧑🏿‍🚀", "🫠", "🐈‍⬛", "☺︎", "☺️", "🔥", "✨", "🤖", "🦀", "🐍"]
SPACES = ["\u00a0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007",
          "\u2008", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u0085", "\u180e",
          "\u200b", "\u200c", "\u200d", "\ufeff", "\u000b", "\u000c", "\u001c", "\u001f"]
COMBINING = [chr(c) for c in list(range(0x0300, 0x0370)) + [0x0483, 0x0591, 0x05BF, 0x0610, 0x0670, 0x093C,
                                                             0x094D, 0x0E31, 0x0E48, 0x1AB0, 0x1DC0, 0x20D0,
                                                             0x20E3, 0x302A, 0x3099, 0x309A, 0xFE20]]
SKEW_CHARS = [chr(c) for c in [0x07FD, 0x0898, 0x08CA, 0x09FE, 0x0C3C, 0x0D3B, 0x0EBA, 0x1715, 0x1ABF, 0x1AC1,
                               0x1DF6, 0x1DFA, 0xA82C, 0x10D24, 0x10EFD, 0x10F46, 0x11070, 0x1133B, 0x11930,
                               0x11935, 0x11938, 0x1193D, 0x11F41, 0x16FF0, 0x1E08F, 0x1E130, 0x1E4EC,
                               0x1123F, 0x11F04, 0x11F50, 0x1342F, 0x1B132, 0x1D2C0, 0x1DF25, 0x1E030, 0x1E4D0,
                               0x1E4F0, 0x2B739, 0x31350, 0x323AF]]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
            "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
PARTIALS = ["<|im_sta", "<|im_start|", "<|im_start", "|im_start|>", "<|im_end", "<|", "|>", "<||>", "< |im_start|>",
            "<|IM_START|>", "<|im_start |>", "<tool_call", "tool_call>", "</tool_call", "<|image_pad|", "<<|", "|>>"]


def rand_word(r: random.Random) -> str:
    w = r.choice(EN_WORDS)
    roll = r.random()
    if roll < 0.1:
        return w.upper()
    if roll < 0.25:
        return w.capitalize()
    return w


def english(r: random.Random) -> str:
    sents = []
    for _ in range(r.randint(1, 3)):
        words = [rand_word(r) for _ in range(r.randint(1, 16))]
        words[0] = words[0].capitalize()
        for i in range(1, len(words)):
            if r.random() < 0.08:
                words[i - 1] += r.choice([",", ";", ":", " -", " —", "'s", "s'", "n't", "'re", "'ll"])
        sents.append(" ".join(words) + r.choice([".", "!", "?", "...", "", ".\"", "?!"]))
    return r.choice([" ", "  ", "\n", "\n\n"]).join(sents)


def chinese(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(1, 30)):
        out.append(r.choice(ZH_CHARS))
        if r.random() < 0.12:
            out.append(r.choice(ZH_PUNCT))
        if r.random() < 0.03:
            out.append(r.choice([" ", "GPU", "2024年", "AI", "\n", "Qwen2.5"]))
    return "".join(out)


def japanese(r: random.Random) -> str:
    return "".join(r.choice(JA_KANA + JA_KANJI + "、。「」") for _ in range(r.randint(1, 40)))


def korean(r: random.Random) -> str:
    words = [r.choice(KO_WORDS) for _ in range(r.randint(1, 10))]
    text = " ".join(words) + r.choice([".", "?", "!", ""])
    roll = r.random()
    if roll < 0.3:  # conjoining jamo (NFD form): NFC must compose them back into syllables
        text = unicodedata.normalize("NFD", text)
    elif roll < 0.4:  # syllables followed by trailing consonants, old jamo
        text += "".join(chr(r.randint(0x1100, 0x11FF)) for _ in range(r.randint(1, 6)))
    return text


def arabic(r: random.Random) -> str:
    words = []
    for _ in range(r.randint(1, 8)):
        w = r.choice(AR_WORDS)
        if r.random() < 0.3:  # harakat, in random (non-canonical) order
            w = "".join(ch + "".join(r.choice(AR_MARKS) for _ in range(r.randint(0, 2))) for ch in w)
        words.append(w)
    return " ".join(words) + r.choice(["", "؟", "،", ".", " ١٢٣", " 2024"])


def hindi(r: random.Random) -> str:
    text = " ".join(r.choice(HI_WORDS) for _ in range(r.randint(1, 8))) + r.choice(["।", "", " १२३", "॥"])
    if r.random() < 0.3:  # decomposed nukta forms: U+0958.. are composition exclusions (NFC keeps them decomposed)
        text = unicodedata.normalize("NFD", text)
    return text


def other_scripts(r: random.Random) -> str:
    return " ".join(r.choice(OTHER_WORDS) for _ in range(r.randint(1, 8)))


def emoji(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 12)):
        roll = r.random()
        if roll < 0.6:
            parts.append(r.choice(EMOJI))
        elif roll < 0.8:
            parts.append(" " + rand_word(r))
        elif roll < 0.9:  # regional indicators, possibly odd counts
            parts.append("".join(chr(0x1F1E6 + r.randint(0, 25)) for _ in range(r.randint(1, 5))))
        else:
            parts.append(r.choice(["\u200d", "\ufe0f", "\U0001F3FB", " ", "!", "\u20e3"]))
    return "".join(parts)


def nfc_cases(r: random.Random) -> str:
    roll = r.random()
    base = rand_word(r) + " " + r.choice(OTHER_WORDS)
    if roll < 0.2:
        return unicodedata.normalize("NFD", base)
    if roll < 0.4:  # combining marks in non-canonical order, stacked (zalgo)
        return "".join(ch + "".join(r.choice(COMBINING) for _ in range(r.randint(0, 4))) for ch in base)
    if roll < 0.55:  # singletons and compatibility characters
        return "".join(r.choice(["\u212b", "\u2126", "\u212a", "\u00c5", "\u03a9", "K", "\ufb01", "\u2460", "\u00bd",
                                 "\uf900", "\uf9d1", "\U0002F800", "\u0340", "\u0341", "\u0343", "\u0344", "\u0374",
                                 "\u037e", "\u0387", "\u1f71", "\u0f73", "\u0f75", "\u0f81", "\u0958", "\u2adc",
                                 "\u1e9b\u0323", "\u0071\u0307\u0323", "\u1e0b\u0323", "\u00e9", "e\u0301",
                                 " ", "a"]) for _ in range(r.randint(1, 12)))
    if roll < 0.75:  # characters the reference's older Unicode tables do not know, next to marks
        return "".join(r.choice(SKEW_CHARS + ["a", "e", " ", "\u0301", "\u0316", "\u0345", "\u0334", "x"])
                       for _ in range(r.randint(1, 12)))
    if roll < 0.9:  # Vietnamese, precomposed and decomposed mixes
        text = "Tiếng Việt có dấu: ả ã ạ ằ ẳ ẵ ặ ề ể ễ ệ ỗ ộ ờ ở ỡ ợ ừ ử ữ ự ỳ ỷ ỹ ỵ"
        return "".join(unicodedata.normalize(r.choice(["NFC", "NFD"]), ch) for ch in text)
    return "".join(chr(r.choice([0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x1112, 0x1175, 0x11C2, 0x3131]))
                   for _ in range(r.randint(1, 10)))


def code(r: random.Random) -> str:
    name = r.choice(["foo", "bar_baz", "encodeWord", "x1", "MAX_LEN", "self", "tokenizer", "i"])
    templates = [
        f"def {name}(x, y=2):\n    return x ** y  # square\n",
        f"for (int i = 0; i < {r.randint(0, 99999)}; ++i) {{\n\t{name}[i] += i * 2;\n}}\n",
        f"#include <vector>\nstd::vector<int> {name}{{1, 2, 3}};\n",
        json.dumps({name: [r.randint(-1000, 1000), r.random(), None, True, "s p a c e"], "nested": {"k": "v"}},
                   indent=r.choice([None, 2, 4])),
        f"if x != None and y >= 0:\n    print(f\"{{x!r}} -> {{y:.3f}}\")\n\n\n",
        f"    {name} = lambda *args, **kwargs: [a for a in args if a]\r\n",
        f"SELECT id, name FROM users WHERE age > {r.randint(0, 99)} ORDER BY name;",
        f"<div class=\"{name}\">&nbsp;&lt;tag&gt;</div>",
        f"const {name} = async () => {{ await fetch('/api/v1/items?limit={r.randint(1, 50)}'); }};",
        f"// TODO: fix {name}\n/* block\n * comment */\n",
        "    \t  \n\t\t\treturn;\n" * r.randint(1, 3),
        f"$ ./run.sh --threads={r.randint(1, 64)} 2>&1 | tee log.txt",
    ]
    return "".join(r.choice(templates) for _ in range(r.randint(1, 2)))


def numbers(r: random.Random) -> str:
    pieces = [str(r.randint(0, 10 ** r.randint(1, 20))), f"{r.uniform(-1e6, 1e6):.{r.randint(0, 8)}f}",
              f"{r.randint(1, 12)}/{r.randint(1, 28)}/{r.randint(1900, 2100)}", f"+1 (555) {r.randint(100, 999)}-{r.randint(1000, 9999)}",
              "٠١٢٣٤٥٦٧٨٩", "１２３４５", "²³¹⁴", "½¾⅓", "ⅠⅡⅢⅫ", "①②⑳", "〇一二三", "१२३", "𝟘𝟙𝟚", "1e-10", "0x1F600",
              "3.14159", "1,000,000", "v2.5.1", "IPv4 192.168.0.1", f"{r.randint(0, 100)}%"]
    return r.choice([" ", "", ", ", "\n"]).join(r.choice(pieces) for _ in range(r.randint(1, 8)))


def whitespace(r: random.Random) -> str:
    atoms = [" ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", " \n", "\n ", "\t\n", " \t ", "\u3000", "\u00a0",
             "\u0085", "\u2028", "x", "word", "!", "'s", "12", "é", "中"]
    text = "".join(r.choice(atoms) for _ in range(r.randint(1, 30)))
    if r.random() < 0.2:
        text = r.choice(atoms[:12]) * r.randint(2, 40) + text
    if r.random() < 0.2:
        text += r.choice(atoms[:12]) * r.randint(2, 40)
    return text


def unusual_spaces(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 15)):
        roll = r.random()
        if roll < 0.4:
            parts.append(r.choice(SPACES) * r.randint(1, 3))
        elif roll < 0.8:
            parts.append(rand_word(r))
        else:
            parts.append(r.choice(["\n", " ", "!", "1", "中", "\r\n"]))
    return "".join(parts)


def contractions(r: random.Random) -> str:
    heads = ["it", "IT", "It", "we", "WE", "they", "you", "I", "she", "don", "can", "won", "x", "", " ", "'", "1", "中"]
    tails = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll", "'lL",
             "'d", "'D", "'ſ", "'ſt", "'K", "'\u212a", "'k", "'ß", "'ss", "\u2019s", "\u2019ll", "''s", "'", "'x",
             "'r", "'v", "'l", "'e", "'sé", "'s\u0301", "'\u017f\u0301", "'ﬆ", "'ﬅ"]
    return "".join(r.choice(heads) + r.choice(tails) + r.choice(["", " ", "s", "x", "\n", "!", "5"])
                   for _ in range(r.randint(1, 6)))


def specials(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.3:  # chat template
        msgs = [f"<|im_start|>{r.choice(['system', 'user', 'assistant'])}\n{rand_word(r)} {rand_word(r)}<|im_end|>"
                for _ in range(r.randint(1, 3))]
        return "\n".join(msgs) + r.choice(["", "\n<|im_start|>assistant\n"])
    if roll < 0.5:  # runs of <|image_pad|>
        return (r.choice(["", "Describe: ", "<|im_start|>user\n"]) + "<|vision_start|>" +
                "<|image_pad|>" * r.randint(1, 40) + "<|vision_end|>" + r.choice(["", "What is this?", "\n"]))
    parts = []
    for _ in range(r.randint(1, 10)):
        roll = r.random()
        if roll < 0.35:
            parts.append(r.choice(SPECIALS))
        elif roll < 0.6:
            parts.append(r.choice(PARTIALS))
        elif roll < 0.8:
            parts.append(rand_word(r))
        else:
            parts.append(r.choice([" ", "  ", "\n", "<", ">", "|", "<<", ">>", "中", "é", "e\u0301"]))
    return "".join(parts)


def random_bytes(r: random.Random) -> str:
    n = r.randint(1, 80)
    roll = r.random()
    if roll < 0.5:
        data = bytes(r.randint(0, 255) for _ in range(n))
    else:  # mostly valid UTF-8 with damage
        data = bytearray(r.choice(EN_WORDS + OTHER_WORDS + EMOJI + list(ZH_CHARS)).encode() * r.randint(1, 4))
        for _ in range(r.randint(1, 4)):
            if data:
                data[r.randrange(len(data))] = r.randint(0x80, 0xFF)
        data = bytes(data)
    return data.decode("utf-8", errors="replace")


def random_codepoints(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(1, 30)):
        roll = r.random()
        if roll < 0.3:
            c = r.randint(0x20, 0x2FFF)
        elif roll < 0.5:
            c = r.randint(0x3000, 0xFFFF)
        elif roll < 0.7:
            c = r.randint(0x10000, 0x3FFFF)
        elif roll < 0.8:
            c = r.randint(0xE0000, 0x10FFFF)
        elif roll < 0.9:
            c = ord(r.choice(SKEW_CHARS))
        else:
            c = r.randint(0, 0x1F)
        if 0xD800 <= c <= 0xDFFF:
            c = 0xFFFD
        out.append(chr(c))
    return "".join(out)


def mixed(r: random.Random) -> str:
    gens = [english, chinese, japanese, korean, arabic, hindi, other_scripts, emoji, code, numbers, whitespace,
            unusual_spaces, contractions, nfc_cases]
    return r.choice(["", " ", "\n"]).join(r.choice(gens)(r) for _ in range(r.randint(2, 3)))


def long_words(r: random.Random):
    """Words longer than 10,000 characters (the BPE heap path), and long runs of every class."""
    yield "a" * 12000
    yield " " + "".join(r.choice("etaoinshrdlu") for _ in range(10500))
    yield "".join(r.choice(ZH_CHARS) for _ in range(10200))
    yield "!" * 10007 + "\n\n"
    yield " " * 10003 + "x"
    yield "\n" * 10002 + "\t" * 3
    yield "ab" * 6000 + " " + "xyz" * 4000
    yield "é" * 10000 + "e\u0301" * 100
    yield "9" * 3001 + "".join(r.choice(EMOJI) for _ in range(300))


CATEGORIES = [  # (name, generator, count)
    ("english", english, 1200), ("chinese", chinese, 700), ("japanese", japanese, 400), ("korean", korean, 400),
    ("arabic", arabic, 350), ("hindi", hindi, 350), ("other_scripts", other_scripts, 300), ("emoji", emoji, 500),
    ("nfc", nfc_cases, 800), ("code", code, 700), ("numbers", numbers, 400), ("whitespace", whitespace, 800),
    ("unusual_spaces", unusual_spaces, 400), ("contractions", contractions, 700), ("specials", specials, 700),
    ("random_bytes", random_bytes, 500), ("random_codepoints", random_codepoints, 500), ("mixed", mixed, 400),
]


def make_corpus(seed: int):
    r = random.Random(seed)
    corpus = []
    fixed = ["", " ", "\n", "a", "é", "中", "<|im_start|>", "<|im_start|><|im_end|>", "Hello, world!",
             "it's", "IT'S", "'s", "'ſ", "''", "   ", "\r\n", "\u3000", "😀", "\u0301", "e\u0301"]
    corpus += [("fixed", s) for s in fixed]
    for name, gen, count in CATEGORIES:
        corpus += [(name, gen(r)) for _ in range(count)]
    corpus += [("long", s) for s in long_words(r)]
    return corpus


# ------------------------------------------------------------------------------------------------
# Decode cases
# ------------------------------------------------------------------------------------------------

def byte_token_ids(tok):
    """id of the token standing for each single byte (GPT-2 byte alphabet)."""
    alpha = byte_alphabet()
    return [tok.convert_tokens_to_ids(alpha[b]) for b in range(256)]


def make_decode_cases(r: random.Random, tok, corpus_ids):
    bt = byte_token_ids(tok)
    n_ids = len(tok)
    seqs = []

    def b(*values):
        return [bt[v] for v in values]

    # Ill-formed UTF-8 built from single-byte tokens: lone continuation bytes, truncated and
    # overlong sequences, encoded surrogates, bytes that never occur, mixed with valid text.
    named = [b(0x80), b(0xBF), b(0x80, 0x80), b(0xC0, 0x80), b(0xC1, 0xBF), b(0xE0, 0x80, 0x80), b(0xE0, 0x9F, 0xBF),
             b(0xED, 0xA0, 0x80), b(0xED, 0xBF, 0xBF), b(0xF0, 0x80, 0x80, 0x80), b(0xF0, 0x8F, 0xBF, 0xBF),
             b(0xF4, 0x90, 0x80, 0x80), b(0xF5, 0x80, 0x80, 0x80), b(0xFF), b(0xFE, 0xFF), b(0xC3), b(0xE4, 0xBD),
             b(0xF0, 0x9F, 0x98), b(0xF0, 0x9F), b(0xF0), b(0xE4, 0xBD, 0x41), b(0xF0, 0x9F, 0x41, 0x42),
             b(0xC3, 0xC3, 0xA9), b(0xE4, 0xBD, 0xA0), b(0xF0, 0x9F, 0x98, 0x80), b(0x41, 0x80, 0x42),
             b(0xE0, 0xA0), b(0xED, 0x9F, 0xBF), b(0xEE, 0x80), b(0xF4, 0x8F, 0xBF, 0xBF), b(0xF4, 0x8F, 0xBF),
             b(0xC2, 0x7F), b(0xDF, 0xC0)]
    seqs += named
    for _ in range(600):  # random single-byte tokens, biased to the high half
        seqs.append([bt[r.randint(0x80, 0xFF) if r.random() < 0.7 else r.randint(0, 0xFF)]
                     for _ in range(r.randint(1, 12))])
    specials_ids = list(range(151643, 151665))
    for _ in range(500):  # windows of real encodings, cut anywhere (splitting multi-byte tokens), with specials
        ids = r.choice(corpus_ids)
        if not ids:
            continue
        i = r.randrange(len(ids))
        j = min(len(ids), i + r.randint(1, 40))
        seq = list(ids[i:j])
        if r.random() < 0.4:
            seq.insert(r.randint(0, len(seq)), r.choice(specials_ids))
        seqs.append(seq)
    for _ in range(500):  # random ids anywhere in the vocabulary
        seqs.append([r.randrange(n_ids) for _ in range(r.randint(1, 20))])
    seqs.append(specials_ids)
    seqs.append([])
    return seqs


# ------------------------------------------------------------------------------------------------
# Unicode facts of the reference
# ------------------------------------------------------------------------------------------------

def to_ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def class_members(pattern: str):
    """Code points matched by `pattern` inside tokenizers' Split (Oniguruma), found by removing the
    matches from a string of all code points."""
    split = pre_tokenizers.Split(Regex(pattern), behavior="removed")
    members = set()
    chunk = 4096
    for i in range(0, len(ALL_CPS), chunk):
        part = ALL_CPS[i:i + chunk]
        kept = set(ord(ch) for piece, _ in split.pre_tokenize_str("".join(chr(c) for c in part)) for ch in piece)
        members.update(c for c in part if c not in kept)
    return members


def contraction_folds():
    """For each letter of the contractions, the characters c such that (?i:'letter) matches "'" + c."""
    out = {}
    for letter in "stmdrvel":
        split = pre_tokenizers.Split(Regex("(?i:'" + letter + ")"), behavior="removed")
        out[letter] = [c for c in ALL_CPS if split.pre_tokenize_str("'" + chr(c)) == []]
    return out


def nfc_probes():
    """NFC of probe strings by the reference's normalizer: for every code point c the string
    "a" c U+0301 c U+0316 (decomposition, composition with 'a' and with a following acute,
    canonical ordering against classes 230 and 220), and the NFD form of every canonically
    decomposable character (recomposition). Only results that differ from the probe are stored."""
    nfc = normalizers.NFC()
    changed = {}
    chunk = 2048
    probes = ["a" + chr(c) + "\u0301" + chr(c) + "\u0316" for c in ALL_CPS if c != 0]
    for i in range(0, len(probes), chunk):
        part = probes[i:i + chunk]
        outs = nfc.normalize_str("\x00".join(part)).split("\x00")
        assert len(outs) == len(part)
        for p, o in zip(part, outs):
            if p != o:
                changed[ord(p[1])] = o
    recompose = []
    for c in ALL_CPS:
        d = unicodedata.decomposition(chr(c))
        if d and not d.startswith("<"):
            s = unicodedata.normalize("NFD", chr(c))
            recompose.append([s, nfc.normalize_str(s)])
    return {"probe": "a{c}\u0301{c}\u0316", "changed": [[c, changed[c]] for c in sorted(changed)],
            "recompose": recompose}


# ------------------------------------------------------------------------------------------------
# Tiny synthetic tokenizer
# ------------------------------------------------------------------------------------------------

def byte_alphabet():
    """The GPT-2 byte alphabet: byte -> the character byte-level BPE writes for it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_tokenizer_json():
    """A small byte-level BPE tokenizer in tokenizers' exact tokenizer.json layout: the 256 byte
    symbols (id = byte value), merges for a few English words, one CJK character and runs of
    spaces (one merge listed twice: the later rank wins), and added tokens using every flag."""
    alpha = byte_alphabet()

    def bl(text):
        return "".join(alpha[b] for b in text.encode("utf-8"))

    vocab = {alpha[b]: b for b in range(256)}
    merge_texts = ["h e", "l l", "l o", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "t h", "th e",
                   "Ġ t", "Ġt h", "Ġth e", "i n", "in g", "Ġ Ġ", "ĠĠ ĠĠ", "e r", "Ġ a", "a n", "an d", "Ġ and",
                   "' s", "c a", "ca f", "Ã ©", "caf Ã©"]
    zh = bl("你")
    merge_texts += [zh[0] + " " + zh[1], zh[:2] + " " + zh[2]]
    merge_texts += ["Ġ Ġ"]  # duplicate: its rank becomes this later position
    merges = []
    for m in merge_texts:
        a, b = m.split(" ")
        merges.append([a, b])
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    n = len(vocab)
    hello = vocab["hello"]
    added_specs = [  # (content, special, normalized, lstrip, rstrip, single_word)
        ("<|endoftext|>", True, False, False, False, False),
        ("<|im_start|>", True, False, False, False, False),
        ("<|im_end|>", True, False, False, False, False),
        ("<tool>", False, False, False, False, False),
        ("[MASK]", True, False, True, True, False),
        ("<l>", False, False, True, False, False),
        ("<r>", False, False, False, True, False),
        ("<sw>", False, False, False, False, True),
        ("café", False, True, False, False, False),
        ("\u212b", False, True, False, False, False),
        ("hello world", False, False, False, False, False),
        ("hello", False, False, False, False, False),
        ("<|im", True, False, False, False, False),
    ]
    added = []
    next_id = n
    for content, special, normalized, lstrip, rstrip, single_word in added_specs:
        if content == "hello":
            tid = hello
        else:
            tid = next_id
            next_id += 1
        added.append({"id": tid, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
                      "normalized": normalized, "special": special})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": sorted(added, key=lambda a: a["id"]),
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


SYNTHETIC_STRINGS = [
    "hello", "hello world", "hello  world", "helloworld", "say hello world!", "the world", "and the thing",
    "<|im_start|>user\nhello<|im_end|>", "<|im", "<|im_", "<|im_start", "<|im_start|", "x<|im_start|>y",
    "<tool>", "a<tool>b", " <tool> ", "text [MASK] text", "text   [MASK]   text", "[MASK]", "  [MASK]",
    "[MASK]  ", "a[MASK]b", "\t[MASK]\n x", "<l>", "  <l>  ", "a <l> b", "x\u3000<l>", "<r>", "  <r>  ",
    "a <r> b", "<r>\u2028\u0085x", "<sw>", "a <sw> b", "a<sw>b", "a <sw>b", "a<sw> b", "_<sw>_", "1<sw>",
    "<sw>1", "é<sw>", "<sw>\u0301", "\u24b6<sw>", "<sw>\u2460", "\u200d<sw>", "\u203f<sw>", "-<sw>-", "中<sw>",
    "<sw><sw>", "<sw> <sw>", "\U00011F04<sw>", "café", "cafe\u0301", "un café noir", "cafés", "\u212b", "\u00c5",
    "A\u030a", "Å and \u212b", "你", "你你", "  你 ", "it's", "it 's", "ing", "sing", "    spaces", "\n\n\n",
    "[MASK]<tool>[MASK]", "<r><r>", "<l><l>", "<r> <l>", "hello<|endoftext|>", "<|endoftext|><|endoftext|>",
    "caf\u00e9<tool>\u212b", "", " ", "x",
]


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

def pack_ids(ids) -> str:
    """Token ids as base64 (RFC 4648, with padding) of their LEB128 unsigned varints: about 3.6
    characters per id instead of 6.5 in a JSON list, which keeps the corpus file under 2 MB."""
    out = bytearray()
    for v in ids:
        while True:
            byte = v & 0x7F
            v >>= 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return base64.b64encode(bytes(out)).decode("ascii")


def write_jsonl(path: Path, records):
    text = "".join(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n" for rec in records)
    data = text.encode("utf-8")
    assert len(data) <= MAX_FILE_BYTES, f"{path} would be {len(data)} bytes"
    path.write_bytes(data)
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "golden")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared qwen2-tokenizer directory")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--write-tiny-tokenizer", action="store_true",
                    help=f"(re)write {TINY_PATH.relative_to(REPO)} and exit")
    args = ap.parse_args()

    if args.write_tiny_tokenizer:
        TINY_PATH.parent.mkdir(parents=True, exist_ok=True)
        TINY_PATH.write_text(json.dumps(tiny_tokenizer_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        Tokenizer.from_file(str(TINY_PATH))  # the reference accepts it
        print(f"wrote {TINY_PATH}")
        return

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    tok = build_reference(args.data)
    fast = tok._tokenizer
    assert tok.clean_up_tokenization_spaces is False

    # Corpus ids, through transformers (add_special_tokens adds nothing for Qwen2) and checked
    # against the tokenizers object and against a reload of the tokenizer.json it saves.
    corpus = make_corpus(args.seed)
    texts = [t for _, t in corpus]
    ids = tok(texts, add_special_tokens=True)["input_ids"]
    assert ids == [e.ids for e in fast.encode_batch(texts, add_special_tokens=False)]
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        reloaded = Tokenizer.from_file(str(Path(tmp) / "tokenizer.json"))
        assert ids == [e.ids for e in reloaded.encode_batch(texts)], "tokenizer.json round trip changed ids"
    fast.encode_special_tokens = True
    ids_plain = [e.ids for e in fast.encode_batch(texts, add_special_tokens=False)]
    fast.encode_special_tokens = False
    records, long_records = [], []
    for (cat, text), i, ip in zip(corpus, ids, ids_plain):
        rec = {"cat": cat, "text": text, "ids": pack_ids(i)}
        if ip != i:  # absent: encode_special_tokens changes nothing
            rec["ids_no_special"] = pack_ids(ip)
        (long_records if cat == "long" else records).append(rec)
    corpus_bytes = write_jsonl(out / "tokenizer_corpus.jsonl", records)
    long_bytes = write_jsonl(out / "tokenizer_corpus_long.jsonl", long_records)

    # Decode cases.
    r = random.Random(args.seed + 1)
    seqs = make_decode_cases(r, tok, ids)
    dec = []
    for s in seqs:
        text = tok.decode(s, skip_special_tokens=False)
        assert text == fast.decode(s, skip_special_tokens=False)
        dec.append({"ids": s, "text": text, "text_skip_special": tok.decode(s, skip_special_tokens=True)})
    decode_bytes = write_jsonl(out / "tokenizer_decode.jsonl", dec)

    # Unicode facts.
    unicode_facts = {
        "letter": to_ranges(class_members(r"\p{L}")),
        "number": to_ranges(class_members(r"\p{N}")),
        "space": to_ranges(class_members(r"\s")),
        "contraction_folds": contraction_folds(),
        "nfc": nfc_probes(),
    }
    unicode_bytes = json.dumps(unicode_facts, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    assert len(unicode_bytes) <= MAX_FILE_BYTES
    (out / "tokenizer_unicode.json").write_bytes(unicode_bytes)

    # Tiny synthetic tokenizer, loaded by the reference from the committed file.
    tiny = Tokenizer.from_file(str(TINY_PATH))
    syn = []
    for s in SYNTHETIC_STRINGS:
        e = tiny.encode(s).ids
        tiny.encode_special_tokens = True
        e2 = tiny.encode(s).ids
        tiny.encode_special_tokens = False
        syn.append({"text": s, "ids": e, "ids_no_special": e2, "decode": tiny.decode(e, skip_special_tokens=False),
                    "decode_skip_special": tiny.decode(e, skip_special_tokens=True)})
    synthetic_bytes = write_jsonl(out / "tokenizer_synthetic.jsonl", syn)

    def file_entry(data, **extra):
        return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}

    inputs = {}
    for name in ["vocab.json", "merges.txt", "added_tokens_qwen2_5.json"]:
        data = (args.data / name).read_bytes()
        inputs[name] = {"bytes": len(data), "fnv1a64": f"{fnv1a64(data):016x}", "sha256": hashlib.sha256(data).hexdigest()}
    tiny_data = TINY_PATH.read_bytes()
    manifest = {
        "generator": "tools/golden/make_tokenizer_goldens.py",
        "regenerate": ".venv/bin/python tools/golden/make_tokenizer_goldens.py --out tests/golden",
        "versions": {"python": platform.python_version(), "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "python_unicodedata": unicodedata.unidata_version},
        "reference": "transformers.Qwen2TokenizerFast(vocab_file, merges_file) + add_tokens(AddedToken(content, "
                     "special, normalized=False)) for each entry of added_tokens_qwen2_5.json; clean_up_tokenization_spaces "
                     "False; ids_no_special with tokenizers' encode_special_tokens = True",
        "seed": args.seed,
        "corpus": {"n_strings": len(corpus), "n_text_bytes": sum(len(t.encode()) for t in texts),
                   "n_tokens": sum(len(i) for i in ids),
                   "n_strings_with_ids_no_special": sum(1 for i, ip in zip(ids, ids_plain) if i != ip),
                   "categories": {c: sum(1 for k, _ in corpus if k == c) for c in dict.fromkeys(k for k, _ in corpus)},
                   "record": "{cat, text, ids, ids_no_special (only where it differs from ids)}",
                   "id_encoding": "base64 (RFC 4648) of LEB128 unsigned varints, one per id"},
        "inputs": inputs,
        "tiny_tokenizer": {"path": str(TINY_PATH.relative_to(REPO)), "bytes": len(tiny_data),
                           "sha256": hashlib.sha256(tiny_data).hexdigest()},
        "files": {
            "tokenizer_corpus.jsonl": file_entry(corpus_bytes, n_strings=len(records)),
            "tokenizer_corpus_long.jsonl": file_entry(long_bytes, n_strings=len(long_records)),
            "tokenizer_decode.jsonl": file_entry(decode_bytes, n_sequences=len(dec)),
            "tokenizer_unicode.json": file_entry(unicode_bytes),
            "tokenizer_synthetic.jsonl": file_entry(synthetic_bytes, n_strings=len(syn)),
        },
    }
    (out / "tokenizer_manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
    print(f"{len(records)} corpus strings, {len(dec)} decode cases, {len(syn)} synthetic strings -> {out}")
    for name, entry in manifest["files"].items():
        print(f"  {name}: {entry['bytes']} bytes")


if __name__ == "__main__":
    sys.exit(main())
