"""Tokenisation and training corpora for word2vec.

Tokens are **lower-cased runs of letters** (`[^\\W\\d_]+` on the lower-cased text): digits, punctuation and
apostrophes split words ("King's" -> "king", "s"; "o'er" -> "o", "er"). Lower-casing matters for the
benchmarks: questions-words capitalises names ("Athens Greece"), and gensim's evaluation is case-insensitive,
so one lower-case vector per word is what gets looked up; keeping case would split the counts of "King" and
"king" and lose coverage.

Korean is written in eojeol: a word with its particles attached ("대한민국의", "대한민국은"). With
`language="ko"` the common particles are stripped from all-Hangul tokens when at least two syllables remain
("대한민국의" -> "대한민국", "calc에서" -> "calc", but "국가" stays). It is a crude rule, not a morphological
analyser (konlpy's taggers need a JVM and tokenise ~2-3k words/s here, minutes for the Korean corpus); it
merges the forms of one noun at the price of some wrong cuts ("고양이" -> "고양").

Corpora: `english` is every embedded English source (about 7.4M tokens); `korean` every embedded Korean
source (about 450k tokens); any embedded dataset name; or a file (.txt: one sentence/paragraph per line;
.jsonl/.json/.tsv/.csv with a text column). Several may be joined with commas.
"""

from __future__ import annotations

import collections
import functools
import itertools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from hfrepro import assets, data
from hfrepro.errors import UserError
from hfrepro.splits import split_dataset

TOKEN_RE = re.compile(r"[^\W\d_]+")
HANGUL_RE = re.compile(r"[\uac00-\ud7a3]")
ALL_HANGUL_RE = re.compile(r"^[\uac00-\ud7a3]+$")
LATIN_HANGUL_RE = re.compile(r"^([a-z]+)([\uac00-\ud7a3]+)$")  # "calc에서": a Latin word with a particle

# Common Korean particles (josa) and copula endings, longest first so "에서는" wins over "는".
KO_PARTICLES = tuple(sorted({
    "으로부터", "에게서는", "로부터", "에서는", "에게는", "으로는", "으로서", "으로써", "이라고", "에서의",
    "에서", "에게", "한테", "으로", "까지", "부터", "마다", "보다", "처럼", "만큼", "이나", "이며", "이고",
    "에는", "와는", "과는", "로는", "에도", "이다", "은", "는", "이", "가", "을", "를", "의", "에", "로",
    "와", "과", "도", "만",
}, key=len, reverse=True))
KO_PARTICLE_SET = frozenset(KO_PARTICLES)

# Every embedded English source. lo-help-en contributes only the paragraphs of the classification task's
# training pages (see lo_help_split), so the test paragraphs stay unseen by the embeddings.
ENGLISH = ("shakespeare", "milton", "kjv", "gcide", "fortunes", "lee", "lo-help-en")
KOREAN = ("kolaw", "kobill", "debian-faq-ko", "lo-help-ko")
ALIASES = {"english": ENGLISH, "korean": KOREAN}
MAX_SENTENCE = 10_000  # gensim silently truncates longer sentences: we cut them into pieces instead
LO_HELP = ("lo-help-en", "lo-help-ko")


def strip_particle(token: str) -> str:
    """'대한민국의' -> '대한민국', 'calc에서' -> 'calc'; a Hangul word that would keep < 2 syllables is unchanged."""
    m = LATIN_HANGUL_RE.match(token)
    if m:
        return m.group(1) if m.group(2) in KO_PARTICLE_SET else token
    if len(token) < 3 or not ALL_HANGUL_RE.match(token):
        return token
    for p in KO_PARTICLES:
        if token.endswith(p) and len(token) - len(p) >= 2:
            return token[: -len(p)]
    return token


def tokenize(text: str, language: str = "en") -> list[str]:
    """Lower-cased letter runs; for Korean, particles stripped (see the module docstring)."""
    toks = TOKEN_RE.findall(text.lower())
    if language == "ko":
        toks = [strip_particle(t) for t in toks]
    return toks


def detect_language(texts: Sequence[str], sample: int = 2000) -> str:
    """'ko' when Hangul makes up at least 30% of the letters of the first `sample` texts, else 'en'."""
    letters = hangul = 0
    for t in texts[:sample]:
        letters += sum(1 for ch in t if ch.isalpha())
        hangul += len(HANGUL_RE.findall(t))
    return "ko" if letters and hangul / letters >= 0.3 else "en"


@dataclass
class Corpus:
    """Tokenised sentences ready for gensim, with where they came from."""
    sentences: list[list[str]]
    language: str
    sources: list[dict] = field(default_factory=list)  # [{"source", "rows", "tokens"}]

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.sentences)

    def counts(self) -> collections.Counter:
        """Word frequencies, in first-occurrence order (what gensim's build_vocab would count)."""
        return collections.Counter(itertools.chain.from_iterable(self.sentences))


@functools.lru_cache(maxsize=4)
def lo_help_split(name: str = "lo-help-en"):
    """The LibreOffice-help classification split: by page, fixed seed, train/validation/test = 80/10/10.
    The word2vec corpora take only its training pages; hfrepro.embeddings.classify scores on its test pages."""
    return split_dataset(data.load(name, split="all"), seed=assets.SPLIT_SEED, group_by="page")


def _source_texts(name: str, text_column: str) -> tuple[list[str], str]:
    """(texts, label) of one corpus source: an embedded dataset, a file, or a saved dataset folder."""
    if name in LO_HELP:
        texts = lo_help_split(name)["train"]["text"][:]
        return [t for t in texts if t], f"{name} (classification train pages)"
    if name in assets.ASSETS:
        ds = data.load(name, split="all")
        col = text_column if text_column in ds.column_names else None
        if col is None:
            raise UserError(f"dataset {name!r} has no text column {text_column!r} (it has: "
                            f"{', '.join(ds.column_names)})", fix="pass --text_column NAME")
        return [t for t in ds[col][:] if t], name
    p = Path(name).expanduser()
    if p.is_file():
        ds = data.load_file(p)
    elif p.is_dir():
        ds = data.load(str(p), split="all")
    else:
        names = ", ".join(a.name for a in assets.ASSETS.values() if a.kind == "dataset")
        raise UserError(f"corpus {name!r} is neither a file nor an embedded dataset",
                        fix=f"use english, korean, a text file, or one of: {names}")
    if text_column not in ds.column_names:
        raise UserError(f"{name} has no column {text_column!r} (it has: {', '.join(ds.column_names)})",
                        where=str(p), fix="pass --text_column NAME, or use a .txt file with one text per line")
    return [t for t in ds[text_column][:] if isinstance(t, str) and t.strip()], str(p)


def load_corpus(spec: str, language: str = "auto", text_column: str = "text", max_tokens: int = 0,
                seed: int = 0) -> Corpus:
    """Tokenise the named corpora (comma-separated), shuffle the sentences with `seed`, keep the first
    `max_tokens` tokens' worth of sentences (0: all).

    Shuffling matters: gensim decays the learning rate linearly over the corpus, so an unshuffled
    concatenation would give the last source (lo-help) only the smallest updates.
    """
    names: list[str] = []
    for part in (s.strip() for s in spec.split(",")):
        if part:
            names.extend(ALIASES.get(part.lower(), (part,)))
    if not names:
        raise UserError("no corpus given", fix="pass --corpus english, korean, a dataset name or a text file")
    raw = [(label, texts) for texts, label in (_source_texts(n, text_column) for n in names)]
    if language == "auto":
        language = detect_language([t for _, texts in raw for t in texts[:500]])
    if language not in ("en", "ko"):
        raise UserError(f"unknown language {language!r}", fix="use auto, en or ko")
    sentences: list[tuple[int, list[str]]] = []
    for k, (_, texts) in enumerate(raw):
        for t in texts:
            toks = tokenize(t, language)
            for i in range(0, len(toks), MAX_SENTENCE):
                sentences.append((k, toks[i:i + MAX_SENTENCE]))
    if not sentences:
        where = ", ".join(lbl for lbl, _ in raw)
        raise UserError("the corpus has no words: no line contains a letter", where=where,
                        fix="give a text file with one sentence or paragraph per line")
    random.Random(seed).shuffle(sentences)
    if max_tokens and max_tokens > 0:
        kept, n = [], 0
        for item in sentences:
            if n >= max_tokens:
                break
            kept.append(item)
            n += len(item[1])
        sentences = kept
    sources = []
    for k, (lbl, texts) in enumerate(raw):
        mine = [s for j, s in sentences if j == k]
        sources.append({"source": lbl, "rows": len(mine), "tokens": sum(len(s) for s in mine)})
    return Corpus(sentences=[s for _, s in sentences], language=language, sources=sources)

