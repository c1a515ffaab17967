"""gensim's shipped benchmarks: questions-words analogies, WordSim353 and SimLex-999, with coverage.

Analogies follow `KeyedVectors.evaluate_word_analogies` exactly (the `compute-accuracy` protocol of the
original word2vec): only the first `restrict_vocab` words count; a question is *covered* when all four of its
words are among them (case-insensitive: the most frequent case form is used); the answer is the nearest word
to b - a + c by cosine (3CosAdd) among those words, a, b and c excluded; accuracy = correct / covered.
gensim answers one question at a time (about 225 s for the 10k covered questions on a 50k-word model on this
machine); `analogy_eval` answers them in batches with one matrix product and gives the same answers
(tests/test_embeddings.py checks it against gensim). We also report correct / all questions, where an
uncovered question counts as wrong (gensim's `dummy4unknown=True`), because a small corpus covers only half.

Word pairs use gensim's own `evaluate_word_pairs` (Spearman's rho over the covered pairs, coverage).
`king_queen` asks the one analogy everybody knows: the rank of queen nearest to king - man + woman.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hfrepro import data
from hfrepro.embeddings.vectors import lookup, rank_of
from hfrepro.errors import UserError

PAIR_SETS = ("wordsim353", "simlex999")


@dataclass(frozen=True)
class Question:
    section: str
    category: str  # "semantic" | "syntactic"
    a: str
    b: str
    c: str
    d: str


def _category(section: str) -> str:
    """Mikolov's split: the gram* sections are syntactic, the rest semantic."""
    return "syntactic" if section.startswith("gram") else "semantic"


def load_questions(source: str = "questions-words") -> list[Question]:
    """The embedded questions-words set, or a file in its format (': section' lines, then 'a b c d' lines)."""
    if source == "questions-words":
        ds = data.load("questions-words", split="all")
        d = ds.to_dict()  # column lists: iterating rows of a Dataset decodes them one by one (slow)
        return [Question(*row) for row in zip(d["section"], d["category"], d["a"], d["b"], d["c"], d["d"])]
    p = Path(source)
    if not p.is_file():
        raise UserError(f"analogy file not found: {source}",
                        fix="use questions-words or a file in its format (': section' lines, then 'a b c d')")
    out, section = [], None
    for i, line in enumerate(data.read_text(p).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith(":"):
            section = line.lstrip(": ").strip()
            continue
        parts = line.split()
        if len(parts) != 4:
            raise UserError(f"line {i} has {len(parts)} words, an analogy needs 4 (a b c d: a is to b as c is to d)",
                            where=f"{p}:{i}")
        section = section or "analogies"
        out.append(Question(section, _category(section), *parts))
    if not out:
        raise UserError("no analogy questions in the file", where=str(p))
    return out


def analogy_eval(kv, questions: Sequence[Question], restrict_vocab: int = 300_000, case_insensitive: bool = True,
                 batch: int = 256) -> dict:
    """Accuracy per section, per category and overall, with the number of covered questions."""
    import numpy as np

    keys = kv.index_to_key[:restrict_vocab]
    norm = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
    ok: dict[str, int] = {}
    for i in range(len(keys) - 1, -1, -1):  # reversed, so the most frequent case form wins (as gensim)
        ok[norm(keys[i])] = i
    normed = [norm(k) for k in keys]
    W = kv.get_normed_vectors()[: len(keys)]

    covered = [(n, q) for n, q in enumerate(questions)
               if all(norm(w) in ok for w in (q.a, q.b, q.c, q.d))]
    correct = np.zeros(len(questions), dtype=bool)
    for s in range(0, len(covered), batch):
        chunk = covered[s:s + batch]
        ia = np.array([ok[norm(q.a)] for _, q in chunk])
        ib = np.array([ok[norm(q.b)] for _, q in chunk])
        ic = np.array([ok[norm(q.c)] for _, q in chunk])
        target = W[ib] + W[ic] - W[ia]
        sims = target @ W.T
        rows = np.arange(len(chunk))
        for idx in (ia, ib, ic):
            sims[rows, idx] = -np.inf
        best = sims.argmax(axis=1)
        for r, (n, q) in enumerate(chunk):
            # gensim looks at its top 5 (inputs excluded) and takes the first that is not a case variant of
            # a, b or c; with a lower-case vocabulary that is always the first.
            ignore = {norm(q.a), norm(q.b), norm(q.c)}
            j = int(best[r])
            for _ in range(4):
                if normed[j] not in ignore:
                    break
                sims[r, j] = -np.inf
                j = int(sims[r].argmax())
            correct[n] = normed[j] == norm(q.d)

    is_cov = np.zeros(len(questions), dtype=bool)
    is_cov[[n for n, _ in covered]] = True
    sections: dict[str, dict] = {}
    for n, q in enumerate(questions):
        s = sections.setdefault(q.section, {"section": q.section, "category": q.category, "questions": 0,
                                            "covered": 0, "correct": 0})
        s["questions"] += 1
        s["covered"] += int(is_cov[n])
        s["correct"] += int(correct[n])

    def summary(rows: list[dict]) -> dict:
        qn, cov, cor = (sum(r[k] for r in rows) for k in ("questions", "covered", "correct"))
        return {"questions": qn, "covered": cov, "correct": cor, "coverage": cov / qn if qn else 0.0,
                "accuracy": cor / cov if cov else None, "accuracy_all": cor / qn if qn else 0.0}

    for s in sections.values():
        s.update(summary([s]))
    out = {"sections": list(sections.values()), "restrict_vocab": restrict_vocab,
           "total": summary(list(sections.values())), "answers": answers_string(is_cov, correct)}
    for cat in ("semantic", "syntactic"):
        out[cat] = summary([s for s in sections.values() if s["category"] == cat])
    return out


def answers_string(covered, correct) -> str:
    """One character per question, in the set's order: "1" right, "0" wrong, "-" not covered (what a paired
    bootstrap over the questions needs, in 20 KB)."""
    return "".join("-" if not c else ("1" if r else "0") for c, r in zip(covered, correct))


def paired_answers(a: str, b: str, category: str | None = None, questions: Sequence[Question] | None = None
                   ) -> tuple[list[float], list[float]]:
    """Two models' right/wrong (1.0/0.0) on the questions both cover (optionally one category's), in order."""
    if len(a) != len(b):
        raise ValueError(f"answer strings differ in length: {len(a)} vs {len(b)}")
    keep = [i for i in range(len(a)) if a[i] != "-" and b[i] != "-"
            and (category is None or questions[i].category == category)]
    return [float(a[i] == "1") for i in keep], [float(b[i] == "1") for i in keep]


def load_pairs(source: str) -> list[tuple[str, str, float]]:
    """(word1, word2, score) from an embedded set (wordsim353, simlex999) or a TSV/CSV file (header
    word1, word2, score; or a headerless tab-separated file as gensim ships them)."""
    if source in PAIR_SETS:
        ds = data.load(source, split="all")
        d = ds.to_dict()
        return [(a, b, float(x)) for a, b, x in zip(d["word1"], d["word2"], d["score"])]
    p = Path(source)
    if not p.is_file():
        raise UserError(f"word-pair file not found: {source}",
                        fix=f"use {' or '.join(PAIR_SETS)}, or a file of 'word1<TAB>word2<TAB>score' lines")
    out = []
    delim = "," if p.suffix.lower() == ".csv" else "\t"
    for i, line in enumerate(data.read_text(p).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = [x.strip() for x in line.split(delim)]
        if i == 1 and parts[:2] == ["word1", "word2"]:
            continue
        try:
            if len(parts) != 3:
                raise ValueError
            out.append((parts[0], parts[1], float(parts[2])))
        except ValueError:
            raise UserError(f"line {i} is not 'word1{delim!r}word2{delim!r}score'".replace("'\\t'", "<TAB>"),
                            where=f"{p}:{i}") from None
    if not out:
        raise UserError("no word pairs in the file", where=str(p))
    return out


def pairs_eval(kv, pairs: Sequence[tuple[str, str, float]], restrict_vocab: int = 300_000) -> dict:
    """Spearman/Pearson against human scores over the covered pairs, via gensim's evaluate_word_pairs."""
    covered = _covered_pairs(kv, pairs, restrict_vocab)
    res = {"pairs": len(pairs), "covered": covered, "coverage": covered / len(pairs) if pairs else 0.0,
           "spearman": None, "pearson": None}
    if covered < 3:
        return res
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "pairs.tsv"
        f.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs), encoding="utf-8")
        gl = logging.getLogger("gensim")
        old = gl.level
        gl.setLevel(logging.WARNING)
        try:
            pearson, spearman, oov = kv.evaluate_word_pairs(str(f), restrict_vocab=restrict_vocab)
        finally:
            gl.setLevel(old)
    res.update(spearman=float(spearman[0]), pearson=float(pearson[0]), oov_ratio_gensim=float(oov))
    return res


def _covered_pairs(kv, pairs, restrict_vocab: int) -> int:
    ok = {k.upper() for k in kv.index_to_key[:restrict_vocab]}
    return sum(1 for a, b, _ in pairs if a.upper() in ok and b.upper() in ok)


def evaluate_all(kv, analogies: str | None = "questions-words", pair_sets: Sequence[str] = PAIR_SETS,
                 restrict_vocab: int = 300_000) -> dict:
    out: dict = {}
    if analogies:
        out["analogies"] = analogy_eval(kv, load_questions(analogies), restrict_vocab=restrict_vocab)
        out["analogies"]["source"] = analogies
    for ps in pair_sets:
        out[Path(ps).stem if ps not in PAIR_SETS else ps] = pairs_eval(kv, load_pairs(ps), restrict_vocab)
    return out


def king_queen(kv, analogy=("king", "man", "woman"), target: str = "queen", topn: int = 5,
               restrict_vocab: int | None = None) -> dict:
    """Where `target` ranks among the nearest words to a - b + c (inputs excluded), and the top `topn`; among
    the `restrict_vocab` most frequent words when given (the analogy benchmark's candidates)."""
    a, b, c = analogy
    if not all(lookup(kv, w) for w in (a, b, c, target)):
        return {"rank": None, "cosine": None, "top": [],
                "missing": [w for w in (a, b, c, target) if not lookup(kv, w)]}
    rank, cos = rank_of(kv, a, b, c, target, restrict_vocab=restrict_vocab)
    top = kv.most_similar(positive=[lookup(kv, a), lookup(kv, c)], negative=[lookup(kv, b)], topn=topn,
                          restrict_vocab=restrict_vocab)
    return {"rank": rank, "cosine": cos, "top": [[w, round(float(s), 4)] for w, s in top],
            "restrict_vocab": restrict_vocab}


def section_table(res: dict) -> list[dict]:
    """Rows for a Markdown table: one per section, then semantic / syntactic / total."""
    a = res["analogies"]
    rows = [{"section": s["section"], "category": s["category"], "questions": s["questions"],
             "covered": s["covered"], "correct": s["correct"], "accuracy": s["accuracy"]} for s in a["sections"]]
    for k in ("semantic", "syntactic", "total"):
        t = a[k]
        rows.append({"section": f"**{k}**", "category": "", "questions": t["questions"], "covered": t["covered"],
                     "correct": t["correct"], "accuracy": t["accuracy"]})
    return rows
