"""Tokenisation: text -> pieces -> ids, and what a language costs in tokens.

    pieces("The quick brown fox jumped over the lazy dog.", tok)   # [{"id": 504, "piece": "The", ...}, ...]
    tokens_per_char(tok, texts)                                     # tokens / characters over the texts

A byte-level BPE (GPT-2, SmolLM2, our Shakespeare models) cuts text into pieces from its merge table; a
piece that starts a word carries its space (shown as `Ġ` in the vocabulary). Hangul is three UTF-8 bytes a
syllable, and an English-trained BPE has few Korean merges, so the same content costs several times more
tokens in Korean: `compare_languages` measures it on parallel sentences (LibreOffice's help, English and its
Korean translation, the same paragraphs).
"""

from __future__ import annotations

from typing import Sequence


def pieces(text: str, tokenizer) -> list[dict]:
    """One row per token: its id, its vocabulary entry and the text it decodes to on its own (a piece that
    holds part of a character's bytes decodes to �)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [{"#": i, "id": t, "piece": tokenizer.convert_ids_to_tokens(t), "text": tokenizer.decode([t])}
            for i, t in enumerate(ids)]


def per_character(text: str, tokenizer) -> list[tuple[str, int]]:
    """(character, number of tokens that carry a part of it) for each non-space character: a byte-level BPE
    without merges for a script spends one token per UTF-8 byte (three for a Hangul syllable)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    counts = [0] * len(text)
    for a, b in enc["offset_mapping"]:
        for i in range(a, b):
            counts[i] += 1
    return [(c, n) for c, n in zip(text, counts) if not c.isspace()]


def tokens_per_char(tokenizer, texts: Sequence[str]) -> float:
    n = sum(len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"])
    return n / max(1, sum(map(len, texts)))


def compare_languages(tokenizers: dict, pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """Tokens per character and per sentence of each tokenizer on parallel (English, Korean) pairs."""
    en, ko = [p[0] for p in pairs], [p[1] for p in pairs]
    rows = []
    for name, tok in tokenizers.items():
        te = sum(len(x) for x in tok(en, add_special_tokens=False)["input_ids"])
        tk = sum(len(x) for x in tok(ko, add_special_tokens=False)["input_ids"])
        rows.append({"tokenizer": name, "vocabulary": len(tok), "English tokens/char": te / sum(map(len, en)),
                     "Korean tokens/char": tk / sum(map(len, ko)), "English tokens/sentence": te / len(en),
                     "Korean tokens/sentence": tk / len(ko), "Korean / English tokens": tk / te})
    return rows
