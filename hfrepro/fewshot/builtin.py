"""Build the data files of the built-in few-shot tasks, deterministically, from the embedded datasets.

    python -m hfrepro.fewshot.builtin            # rewrites hfrepro/fewshot/tasks/data/*.jsonl
    python -m hfrepro.fewshot.builtin --check    # rebuilds in memory and compares with the shipped files

The files are shipped with hfrepro (a few hundred rows each), so the tasks work without the asset cache;
this module says exactly how they were made (data_cards/fewshot-tasks.md describes them). Every file has a
`split` column: `test` rows are scored, `train` rows are the demonstration pool. Items never appear in both.

| file | built from | columns |
|---|---|---|
| words.jsonl (uppercase) | English words of SimLex-999 + WordSim-353 | word, upper |
| unscramble_{swap,cycle,anagram}.jsonl | the same words, letters moved by a seeded RNG | word, scrambled |
| arithmetic_{add,sub}_{2,3}digit.jsonl | seeded random operands (no source data) | a, b, answer |
| translate_en_{fr,ko}.jsonl | 1-3 word English UI strings of LibreOffice help | en, fr/ko, aliases |
| capitals.jsonl | capital sections of questions-words | country, capital, choices |
| synonyms.jsonl | SimLex-999 pairs scored >= 7.5 + 3 random distractors | word, synonym, choices |
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

from hfrepro import data
from hfrepro.fewshot.tasks import TASKS_DIR
from hfrepro.fsutil import write_or_check

SEED = 1234
DATA_DIR = TASKS_DIR / "data"
N_TEST = 300   # at most this many scored rows per file
N_DEMO = 64    # at most this many demonstration rows per file


def _vocab() -> list[str]:
    """Lower-case alphabetic English words (3-10 letters) from SimLex-999 and WordSim-353, sorted."""
    ws: set[str] = set()
    for name in ("simlex999", "wordsim353"):
        d = data.load(name, split="all")
        ws |= set(d["word1"]) | set(d["word2"])
    return sorted(w for w in ws if re.fullmatch(r"[a-z]{3,10}", w))


def _split(items: list, rng: random.Random, n_demo: int = N_DEMO, n_test: int = N_TEST) -> list[tuple[str, object]]:
    """Shuffle, then the first rows (up to n_test, keeping at least a third for demos) are test, the next demos."""
    items = list(items)
    rng.shuffle(items)
    n_demo = min(n_demo, max(8, len(items) // 3))
    demo, test = items[:n_demo], items[n_demo:n_demo + n_test]
    return [("test", x) for x in test] + [("train", x) for x in demo]


def uppercase_rows(vocab: list[str]) -> list[dict]:
    rng = random.Random(f"{SEED}:uppercase")
    return [{"word": w, "upper": w.upper(), "split": s} for s, w in _split(vocab, rng)]


def _swap(w: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(w) - 1)          # swap letters i and i+1; the first letter stays
    return w[:i] + w[i + 1] + w[i] + w[i + 2:]


def _cycle(w: str, rng: random.Random) -> str:
    r = rng.randrange(1, len(w))
    return w[r:] + w[:r]


def _anagram(w: str, rng: random.Random) -> str:
    inner = list(w[1:-1])                     # GPT-3's A1: all letters but the first and last shuffled
    rng.shuffle(inner)
    return w[0] + "".join(inner) + w[-1]


def unscramble_rows(vocab: list[str], kind: str) -> list[dict]:
    fn = {"swap": _swap, "cycle": _cycle, "anagram": _anagram}[kind]
    rng = random.Random(f"{SEED}:unscramble_{kind}")
    words = set(vocab)
    rows = []
    for w in vocab:
        if len(w) < 4:
            continue
        for _ in range(10):                   # a scramble that is neither the word nor another word
            s = fn(w, rng)
            if s != w and s not in words:
                rows.append((w, s))
                break
    return [{"word": w, "scrambled": s, "split": sp} for sp, (w, s) in _split(rows, rng)]


def arithmetic_rows(op: str, digits: int) -> list[dict]:
    rng = random.Random(f"{SEED}:arithmetic_{op}_{digits}")
    lo, hi = 10 ** (digits - 1), 10 ** digits - 1
    seen, items = set(), []
    while len(items) < N_TEST + N_DEMO:
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        if op == "sub" and a < b:
            a, b = b, a                       # answers are never negative
        if (a, b) in seen:
            continue
        seen.add((a, b))
        items.append((a, b, a + b if op == "add" else a - b))
    return [{"a": a, "b": b, "answer": str(c), "split": s} for s, (a, b, c) in _split(items, rng)]


_EN = re.compile(r"[A-Za-z]+(?: [A-Za-z]+){0,2}")
_FR = re.compile(r"[A-Za-zÀ-ÿœŒ'’\- ]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def translation_rows(lang: str) -> list[dict]:
    """Short English UI strings and their translations. English strings are deduplicated (case-insensitive)
    before the split, so no string is both a demonstration and a test item; every translation seen for a
    string is an accepted answer (`aliases`), the most frequent one is the reference."""
    d = data.load(f"lo-help-en-{lang}", split="all")
    trans: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    forms: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for en, xx in zip(d["en"], d[lang]):
        en, xx = " ".join(en.split()), " ".join(xx.split())
        if not _EN.fullmatch(en) or en.isupper() or len(en) > 30:
            continue
        if lang == "ko":
            if not _HANGUL.search(xx) or re.search(r"[A-Za-z]", xx) or len(xx.split()) > 4:
                continue
        elif not _FR.fullmatch(xx) or len(xx.split()) > 5 or xx.lower() == en.lower() or xx.isupper():
            continue
        trans[en.lower()][xx] += 1
        forms[en.lower()][en] += 1
    items = []
    for key in sorted(trans):
        counts, fc = trans[key], forms[key]
        best = sorted(counts, key=lambda t: (-counts[t], t))[0]
        en = sorted(fc, key=lambda t: (-fc[t], t))[0]   # the most frequent spelling of the English string
        items.append((en, best, sorted(t for t in counts if t != best)))
    rng = random.Random(f"{SEED}:translate_en_{lang}")
    return [{"en": en, lang: ref, "aliases": al, "split": s} for s, (en, ref, al) in _split(items, rng)]


def capital_rows() -> list[dict]:
    q = data.load("questions-words", split="all")
    pairs: dict[str, str] = {}
    for sec, a, b, c, dd in zip(q["section"], q["a"], q["b"], q["c"], q["d"]):
        if sec in ("capital-common-countries", "capital-world"):
            pairs.setdefault(b, a)
            pairs.setdefault(dd, c)
    rng = random.Random(f"{SEED}:capitals")
    capitals = sorted(set(pairs.values()))
    rows = []
    for s, country in _split(sorted(pairs), rng):
        gold = pairs[country]
        choices = [gold] + rng.sample([c for c in capitals if c != gold], 3)
        rng.shuffle(choices)
        rows.append({"country": country, "capital": gold, "choices": choices, "split": s})
    return rows


def synonym_rows(vocab: list[str]) -> list[dict]:
    d = data.load("simlex999", split="all")
    related: dict[str, set[str]] = defaultdict(set)
    for w1, w2 in zip(d["word1"], d["word2"]):   # any scored pair counts as related: never a distractor
        related[w1].add(w2)
        related[w2].add(w1)
    best: dict[str, tuple[float, str]] = {}
    for w1, w2, sc in zip(d["word1"], d["word2"], d["score"]):
        if sc >= 7.5 and w1.isalpha() and w2.isalpha() and (w1 not in best or sc > best[w1][0]):
            best[w1] = (sc, w2)
    rng = random.Random(f"{SEED}:synonyms")
    rows = []
    for s, w in _split(sorted(best), rng):
        gold = best[w][1]
        pool = [v for v in vocab if v != w and v != gold and v not in related[w]]
        choices = [gold] + rng.sample(pool, 3)
        rng.shuffle(choices)
        rows.append({"word": w, "synonym": gold, "choices": choices, "split": s})
    return rows


def build_all() -> dict[str, list[dict]]:
    vocab = _vocab()
    files = {"words.jsonl": uppercase_rows(vocab)}
    for kind in ("swap", "cycle", "anagram"):
        files[f"unscramble_{kind}.jsonl"] = unscramble_rows(vocab, kind)
    for op in ("add", "sub"):
        for digits in (2, 3):
            files[f"arithmetic_{op}_{digits}digit.jsonl"] = arithmetic_rows(op, digits)
    for lang in ("fr", "ko"):
        files[f"translate_en_{lang}.jsonl"] = translation_rows(lang)
    files["capitals.jsonl"] = capital_rows()
    files["synonyms.jsonl"] = synonym_rows(vocab)
    return files


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare a fresh build with the shipped files")
    ap.add_argument("--out", default=str(DATA_DIR))
    a = ap.parse_args(argv)
    built = build_all()
    files = {Path(a.out) / name: to_jsonl(rows) for name, rows in built.items()}
    counts = {Path(a.out) / name: {s: sum(r["split"] == s for r in rows) for s in ("test", "train")}
              for name, rows in built.items()}
    return write_or_check(files, a.check, lambda path, text: f"{path.name:34s} test {counts[path]['test']:4d}  "
                                                             f"train {counts[path]['train']:3d}  ({path})")


if __name__ == "__main__":
    sys.exit(main())
