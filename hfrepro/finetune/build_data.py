"""Build stage 7's shipped data files, deterministically, from the embedded GCIDE dictionary.

    python -m hfrepro.finetune.build_data            # rewrites the files below
    python -m hfrepro.finetune.build_data --check    # rebuilds in memory and compares with the shipped files

- `tasks/data/word_class.jsonl` (word, pos, split): word -> part of speech (noun / verb / adjective / adverb),
  balanced, `split` train/test: the comparison task (a stage-6 task; `train` rows are also the fine-tuning data);
- `data/dictionary.jsonl` (messages): chat examples "What does X mean?" -> "X (noun): definition.", some with a
  follow-up turn; 6 defects put in on purpose so `prepare-data` has something to fix.

Words: headwords of GCIDE with exactly one part of speech over all their entries (n., v. t./v. i., a., adv.;
entries like "n. & v. t." count as two), that are also ordinary modern English: written in lower case at
least 3 times in the embedded `fortunes`, `lee` and `lo-help-en` texts. Definitions: the first sense of the
entry, cleaned of etymology, labels and citations, kept only when it is a plain sentence of 3-25 words.
data_cards/finetune-word-class.md and data_cards/finetune-dictionary.md describe them.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from hfrepro import data
from hfrepro.fsutil import write_or_check

PKG = Path(__file__).resolve().parent
WORD_CLASS = PKG / "tasks" / "data" / "word_class.jsonl"
DICTIONARY = PKG / "data" / "dictionary.jsonl"
SEED = 1234
LABELS = ("noun", "verb", "adjective", "adverb")
N_TEST_PER_CLASS = 60
N_TRAIN_PER_CLASS = 150
N_MORE_TEST_PER_CLASS = 75   # held-out words added after the first 240 (every adverb left: 285 - 60 - 150)
RARE_TEST_PER_CLASS = 135    # and after the first 540, from words written in lower case only once or twice
N_DICTIONARY = 300

_POS = {"n": "noun", "v. t": "verb", "v. i": "verb", "v": "verb", "a": "adjective", "adj": "adjective",
        "adv": "adverb"}
_ENTRY = re.compile(r"^(?P<w>[A-Za-z]+)\s*(\([^)]*\))?\s*,\s*(?P<p>n|v\. t|v\. i|v|a|adj|adv)\.\s*(?P<rest>.*)$",
                    re.S)


@functools.lru_cache(maxsize=1)  # read once per process: build() asks for two vocabularies
def _word_counts() -> Counter:
    """How often each lower-case word of 3+ letters is written in the embedded modern texts (read-only)."""
    c: Counter = Counter()
    for name in ("fortunes", "lee", "lo-help-en"):
        for t in data.texts(name, split="all"):
            c.update(re.findall(r"\b[a-z]{3,}\b", t))
    return c


@functools.lru_cache(maxsize=1)
def _entries() -> dict[str, list[tuple[str, str]]]:
    """headword (lower case) -> [(part of speech or '?', rest of the entry)] over every GCIDE entry (read-only)."""
    g = data.load("gcide", split="all")
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for t in g["text"]:
        # the entry's own headword starts its text (the `word` column may be a phrase indexed to it)
        m = _ENTRY.match(t)
        if not m:
            head = re.match(r"^([A-Za-z]+)\s*[,(]", t)
            if head:
                out[head.group(1).lower()].append(("?", ""))
            continue
        w, rest = m.group("w").lower(), m.group("rest")
        if rest.lstrip().startswith("&"):  # "n. & v. t.": two parts of speech
            out[w].append(("?", ""))
        out[w].append((_POS[m.group("p")], rest))
    return out


def first_sense(rest: str) -> str | None:
    """The first definition of an entry as one clean sentence, or None."""
    s = rest
    for _ in range(3):
        s = re.sub(r"^\s*\[[^\]]*\]\s*", "", s)                  # etymology
        s = re.sub(r"^\s*\d+\.\s*", "", s)                        # sense number
        s = re.sub(r"^\s*(\((?:[A-Z][A-Za-z.]*\s*)+\)\s*)+", "", s)  # (Mus.) labels
    m = re.match(r"(.+?[.;])(\s+(\d+\.|--|[A-Z][a-z]+ ,)|\s*$)", s, re.S)
    d = (m.group(1) if m else s).split(" --")[0].split("; as,")[0].strip().rstrip(";.").strip()
    if not d or not d[0].isupper() or not re.fullmatch(r"[A-Za-z ,;:'()-]+\.?", d):
        return None
    if d.startswith(("See ", "Same as", "Alt. of", "Obs.", "Of ", "Pl. ")) or "(" in d or ")" in d:
        return None
    n = len(d.split())
    if not 3 <= n <= 25:
        return None
    return d if d.endswith(".") else d + "."


def vocabulary(min_count: int = 3, max_count: float = float("inf")) -> dict[str, tuple[str, list[str]]]:
    """word -> (part of speech, [clean definitions]) for single-POS words written in lower case min_count to
    max_count times in the modern texts (the default: at least 3, ordinary modern English)."""
    written = _word_counts()
    out = {}
    for w, ents in _entries().items():
        if not min_count <= written[w] <= max_count:
            continue
        kinds = {p for p, _ in ents}
        if len(kinds) != 1 or "?" in kinds:
            continue
        defs = [d for d in (first_sense(r) for _, r in ents) if d]
        out[w] = (kinds.pop(), defs)
    return out


def word_class_rows(vocab: dict, rare: dict) -> list[dict]:
    """The first 240 test rows and the 600 train rows as first built (unchanged, in the same order), then
    N_MORE_TEST_PER_CLASS more test words per class from the words no split used, then RARE_TEST_PER_CLASS more
    per class from the `rare` words (written in lower case once or twice): the file keeps its test rows first
    (the few-shot evaluator's `limit` takes the first N, so `--eval_limit 240` and `540` are the older sets)."""
    rng = random.Random(f"{SEED}:word_class")
    by = defaultdict(list)
    for w in sorted(vocab):
        by[vocab[w][0]].append(w)
    rows, more = [], []
    used = N_TEST_PER_CLASS + N_TRAIN_PER_CLASS
    for pos in LABELS:
        ws = by[pos][:]
        rng.shuffle(ws)
        rows += [{"word": w, "pos": pos, "split": "test"} for w in ws[:N_TEST_PER_CLASS]]
        rows += [{"word": w, "pos": pos, "split": "train"} for w in ws[N_TEST_PER_CLASS:used]]
        if len(ws) < used + N_MORE_TEST_PER_CLASS:
            raise ValueError(f"only {len(ws) - used} unused {pos}s for {N_MORE_TEST_PER_CLASS} more test words")
        more += [{"word": w, "pos": pos, "split": "test"} for w in ws[used:used + N_MORE_TEST_PER_CLASS]]
    rng.shuffle(rows)
    random.Random(f"{SEED}:word_class:more").shuffle(more)
    return ([r for r in rows if r["split"] == "test"] + more + _rare_test_rows(rare)
            + [r for r in rows if r["split"] == "train"])


def _rare_test_rows(rare: dict) -> list[dict]:
    """RARE_TEST_PER_CLASS test words per class from `rare`, drawn with their own seeded RNG, shuffled."""
    rng = random.Random(f"{SEED}:word_class:rare")
    out = []
    for pos in LABELS:
        ws = sorted(w for w in rare if rare[w][0] == pos)
        if len(ws) < RARE_TEST_PER_CLASS:
            raise ValueError(f"only {len(ws)} rare {pos}s for {RARE_TEST_PER_CLASS} more test words")
        out += [{"word": w, "pos": pos, "split": "test"} for w in rng.sample(ws, RARE_TEST_PER_CLASS)]
    rng.shuffle(out)
    return out


QUESTIONS = ('What does "{w}" mean?', "Define {w}.", "What is the meaning of the word {w}?",
             "What does the word {w} mean?", "{w}: what does it mean?", "Meaning of {w}, please.")
FOLLOW_UPS = (("What part of speech is it?", "\"{w}\" is {a} {pos}."),
              ("Is it a noun, a verb, an adjective or an adverb?", "It is {a} {pos}."))


def dictionary_rows(vocab: dict, word_class: list[dict]) -> list[dict]:
    """Chat examples from words NOT among the comparison task's first 240 test words (the file as first built:
    no comparison model trains on it, and the later test words were added without changing it)."""
    rng = random.Random(f"{SEED}:dictionary")
    first_test = [r for r in word_class if r["split"] == "test"][:len(LABELS) * N_TEST_PER_CLASS]
    test_words = {r["word"] for r in first_test}
    words = sorted(w for w, (_, defs) in vocab.items() if defs and w not in test_words)
    rng.shuffle(words)
    rows = []
    for w in words[:N_DICTIONARY]:
        pos, defs = vocab[w]
        msgs = [{"role": "user", "content": rng.choice(QUESTIONS).format(w=w)},
                {"role": "assistant", "content": f"{w} ({pos}): {defs[0]}"}]
        if rng.random() < 0.2:
            q, a = rng.choice(FOLLOW_UPS)
            msgs += [{"role": "user", "content": q},
                     {"role": "assistant", "content": a.format(w=w, pos=pos, a="an" if pos[0] in "aeiou" else "a")}]
        rows.append({"messages": msgs})
    return rows


DEFECTS = """Defects put into dictionary.jsonl on purpose (so `prepare-data` has something to find and fix):
an exact duplicate of an earlier conversation, a role written "User", an answer with trailing spaces, a
conversation ending on an unanswered user turn, an empty answer, and a line cut off mid-JSON."""


def inject_defects(rows: list[dict]) -> list[str]:
    """The JSONL lines of `rows` with the six documented defects (at fixed places)."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    r = [json.loads(x) for x in lines]
    r[20]["messages"][0]["role"] = "User"
    r[40]["messages"][1]["content"] += "   "
    r[60]["messages"].append({"role": "user", "content": "And its plural?"})
    r[80]["messages"][1]["content"] = ""
    lines = [json.dumps(x, ensure_ascii=False) for x in r]
    lines[100] = lines[100][: len(lines[100]) // 2]     # truncated JSON
    lines.insert(150, lines[10])                          # duplicate of line 11
    return lines


def build() -> dict[Path, str]:
    vocab = vocabulary()
    wc = word_class_rows(vocab, vocabulary(1, 2))
    dic = dictionary_rows(vocab, wc)
    return {WORD_CLASS: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in wc),
            DICTIONARY: "\n".join(inject_defects(dic)) + "\n"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="rebuild in memory and compare with the shipped files")
    a = ap.parse_args(argv)
    files = build()
    return write_or_check(files, a.check,
                          lambda path, text: f"{path.relative_to(PKG.parent.parent)} ({text.count(chr(10))} lines)")


if __name__ == "__main__":
    sys.exit(main())
