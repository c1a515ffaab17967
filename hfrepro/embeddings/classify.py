"""Sentence vectors by averaging word vectors, used for classification, against two baselines.

The default task has real labels from the embedded corpora: which LibreOffice module (swriter, scalc,
simpress, sdraw, smath, sbasic, schart, sdatabase, shared) a help paragraph comes from (lo-help-en). Its
split is by help *page* (all paragraphs of a page on one side, seed `assets.SPLIT_SEED`), so a test paragraph
never has its page-mates in training; the English word2vec corpus uses only the training pages' paragraphs.

Three classifiers, all scikit-learn, trained on the train split, scored on the test split:
  - majority class (DummyClassifier): the floor;
  - bag of words: TF-IDF over the same tokens + logistic regression;
  - averaged word vectors: mean of the paragraph's in-vocabulary word vectors (zeros if none), standardised,
    + logistic regression.
Your own labelled file works too: .tsv/.csv with a header, or .jsonl; `--text_column`, `--label_column`.
"""

from __future__ import annotations

import random
import time
from typing import Mapping

from hfrepro import data
from hfrepro.embeddings.text import LO_HELP, lo_help_split, tokenize
from hfrepro.errors import UserError


def load_task(source: str = "lo-help-en", text_column: str = "text", label_column: str = "module",
              seed: int = 0) -> dict:
    """{"train": (texts, labels), "test": (texts, labels), "label_column": ...}; rows without text dropped."""
    if source in LO_HELP:
        dd = lo_help_split(source)
        label_column = "module" if label_column in ("label", "module") else label_column
    else:
        dd = data.load(source, seed=seed)
    out: dict = {"label_column": label_column}
    for split in ("train", "test"):
        ds = dd[split]
        for col in (text_column, label_column):
            if col not in ds.column_names:
                raise UserError(f"{source} has no column {col!r} (it has: {', '.join(ds.column_names)})",
                                where=source, fix="pass --text_column / --label_column with the right names")
        rows = [(t, str(y)) for t, y in zip(ds[text_column][:], ds[label_column][:])
                if isinstance(t, str) and t.strip() and y is not None and str(y).strip()]
        out[split] = ([t for t, _ in rows], [y for _, y in rows])
    if len(set(out["train"][1])) < 2:
        raise UserError(f"{source}: the training split has fewer than 2 labels in column {label_column!r}",
                        where=source, fix="a classification task needs at least two classes")
    if not out["test"][0]:
        raise UserError(f"{source}: the test split is empty (too few rows)", where=source,
                        fix="give at least 10 labelled rows")
    return out


def average_vectors(kv, texts, language: str = "en"):
    """One row per text: the mean of its in-vocabulary word vectors (zeros when none is known).
    Returns (matrix, fraction of tokens found in the vocabulary)."""
    import numpy as np

    X = np.zeros((len(texts), kv.vector_size), dtype=np.float32)
    known = total = 0
    k2i = kv.key_to_index
    for r, t in enumerate(texts):
        toks = tokenize(t, language)
        idx = [k2i[w] for w in toks if w in k2i]
        total += len(toks)
        known += len(idx)
        if idx:
            X[r] = kv.vectors[idx].mean(axis=0)
    return X, (known / total if total else 0.0)


def run(kvs: Mapping[str, object], source: str = "lo-help-en", text_column: str = "text",
        label_column: str = "module", language: str = "en", seed: int = 0, max_train: int = 0) -> dict:
    """Train and score the three kinds of classifier. `kvs`: name -> KeyedVectors (e.g. cbow, skipgram)."""
    import numpy as np
    from sklearn.dummy import DummyClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    task = load_task(source, text_column, label_column, seed)
    label_column = task["label_column"]
    xtr, ytr = task["train"]
    xte, yte = task["test"]
    if max_train and len(xtr) > max_train:
        keep = sorted(random.Random(seed).sample(range(len(xtr)), max_train))
        xtr, ytr = [xtr[i] for i in keep], [ytr[i] for i in keep]
    ytr, yte = np.array(ytr), np.array(yte)

    def score(name: str, pred, seconds: float, **extra) -> dict:
        return {"classifier": name, "accuracy": float(accuracy_score(yte, pred)),
                "macro_f1": float(f1_score(yte, pred, average="macro", zero_division=0)),
                "seconds": round(seconds, 2), **extra}

    rows = []
    t = time.time()
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(ytr), 1)), ytr)
    rows.append(score(f"majority class ({dummy.classes_[np.argmax(dummy.class_prior_)]})",
                      dummy.predict(np.zeros((len(yte), 1))), time.time() - t))
    t = time.time()
    bow = make_pipeline(TfidfVectorizer(tokenizer=lambda s: tokenize(s, language), lowercase=False,
                                        token_pattern=None, min_df=2),
                        LogisticRegression(max_iter=1000))
    bow.fit(xtr, ytr)
    rows.append(score("bag of words (TF-IDF) + logistic regression", bow.predict(xte), time.time() - t,
                      features=len(bow[0].vocabulary_)))
    for name, kv in kvs.items():
        t = time.time()
        Xtr, cov_tr = average_vectors(kv, xtr, language)
        Xte, cov_te = average_vectors(kv, xte, language)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(Xtr, ytr)
        rows.append(score(f"averaged {name} vectors + logistic regression", clf.predict(Xte), time.time() - t,
                          features=kv.vector_size, token_coverage=round(cov_te, 4)))
    labels = sorted(set(ytr.tolist()) | set(yte.tolist()))
    return {"task": source, "text_column": text_column, "label_column": label_column,
            "train": len(xtr), "test": len(xte), "labels": labels, "results": rows}


def table(res: dict) -> list[dict]:
    return [{"classifier": r["classifier"], "accuracy": r["accuracy"], "macro-F1": r["macro_f1"],
             "vocab coverage (test tokens)": r.get("token_coverage")} for r in res["results"]]
