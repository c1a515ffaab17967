"""Parallel data for translation: the embedded LibreOffice pairs or the user's own TSV/CSV/JSONL file, one
shared BPE tokenizer, tokenised train/validation/test splits, and length buckets for evaluation.

A user file of pairs (UTF-8):

    pairs.tsv / pairs.csv   a header line, then one pair per line:   source<TAB>target
                            (or the two language codes as column names, e.g. en<TAB>ko, with
                            --source_lang en --target_lang ko; other columns are ignored)
    pairs.jsonl             one object per line: {"source": "...", "target": "..."}
                            (or {"en": "...", "ko": "..."} with --source_lang/--target_lang)

Every row needs both sides, non-empty. Mistakes are reported with the file and line number. The file is
split 80/10/10 into train/validation/test with hfrepro's fixed split seed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hfrepro import data
from hfrepro.assets import SPLIT_SEED
from hfrepro.errors import UserError
from hfrepro.splits import split_dataset
from hfrepro.tokenizer import train_bpe

# Embedded parallel datasets: name -> (source column, target column) of the default direction.
EMBEDDED = {"lo-help-en-ko": ("en", "ko"), "lo-help-en-fr": ("en", "fr")}

# Source-length buckets (in whitespace words of the source), as on the x-axis of Bahdanau et al.'s figure.
BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 30), (31, 40), (41, None))
LONG_FROM = 21  # "long" sentences for the claim: more than 20 source words


@dataclass
class Pairs:
    splits: object          # datasets.DatasetDict with columns source, target
    source_lang: str
    target_lang: str
    name: str


def bucket_of(n_words: int, buckets: Sequence = BUCKETS) -> str:
    for lo, hi in buckets:
        if n_words >= lo and (hi is None or n_words <= hi):
            return bucket_label((lo, hi))
    return bucket_label(buckets[0])  # an empty source counts as the shortest bucket


def bucket_label(b) -> str:
    lo, hi = b
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def n_words(text: str) -> int:
    return len(text.split())


# --- loading ----------------------------------------------------------------------------------------------

def load_pairs(dataset: str, source_lang: str | None = None, target_lang: str | None = None) -> Pairs:
    """Pairs from an embedded dataset name or a TSV/CSV/JSONL file, as train/validation/test with columns
    `source` and `target`. For embedded data the direction can be reversed (source_lang=ko target_lang=en)."""
    if dataset in EMBEDDED:
        default_src, default_tgt = EMBEDDED[dataset]
        src, tgt = source_lang or default_src, target_lang or default_tgt
        if {src, tgt} != {default_src, default_tgt}:
            raise UserError(f"dataset {dataset!r} has languages {default_src} and {default_tgt}, "
                            f"not {src}->{tgt}", fix=f"use --source_lang {default_src} --target_lang {default_tgt} "
                                                     f"(or the reverse)")
        dd = data.load(dataset)
        dd = dd.map(lambda r: {"source": r[src], "target": r[tgt]},
                    remove_columns=[c for c in dd["train"].column_names if c not in ("source", "target")])
        return Pairs(dd, src, tgt, dataset)

    path = Path(dataset).expanduser()
    if not path.exists():
        if "/" in dataset or path.suffix:
            raise UserError(f"pair file not found: {dataset}", fix="check the path")
        raise UserError(f"unknown parallel dataset {dataset!r}",
                        fix=f"use one of: {', '.join(EMBEDDED)}, or a .tsv/.csv/.jsonl file of pairs")
    rows, src_col, tgt_col = read_pair_file(path, source_lang, target_lang)
    if len(rows) < 10:
        raise UserError(f"only {len(rows)} pair(s) in {path}: too few to split into train/validation/test",
                        where=str(path), fix="give at least 10 pairs (thousands to learn anything)")
    from datasets import Dataset

    dd = split_dataset(Dataset.from_list(rows), seed=SPLIT_SEED)
    return Pairs(dd, source_lang or src_col, target_lang or tgt_col, path.name)


def _columns(available: Sequence[str], source_lang: str | None, target_lang: str | None, where: str):
    """Which two columns hold the pair: the language codes if given and present, else source/target."""
    if source_lang and target_lang and source_lang in available and target_lang in available:
        return source_lang, target_lang
    if "source" in available and "target" in available:
        return "source", "target"
    wanted = ("source", "target") if not (source_lang and target_lang) else (source_lang, target_lang)
    missing = [c for c in wanted if c not in available]
    raise UserError(f"missing column(s) {', '.join(map(repr, missing))} (found: {', '.join(available) or 'none'})",
                    where=where,
                    fix="name the columns `source` and `target` (a header line in TSV/CSV, keys in JSONL), or name "
                        "them by language and pass --source_lang/--target_lang")


def read_pair_file(path: str | Path, source_lang: str | None = None, target_lang: str | None = None):
    """Read and check a pair file. Returns (rows [{"source", "target"}], source column, target column)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        text = data.read_text(path)  # wrong encoding -> error with line and column
        first = text.splitlines()[0] if text.strip() else ""
        header = [h.strip() for h in next(csv.reader([first], delimiter="\t" if suffix == ".tsv" else ","), [])]
        src, tgt = _columns(header, source_lang, target_lang, where=f"{path}:1 (header line)")
        table = data.read_table(path, required=(src, tgt))  # empty side / wrong column count -> line number
        return [{"source": r[src], "target": r[tgt]} for r in table], src, tgt
    if suffix in (".jsonl", ".json"):
        objs = data.read_jsonl(path)  # wrong encoding / bad JSON -> line number
        lines = _object_line_numbers(path, len(objs))
        if not objs:
            raise UserError("file has no pairs", where=str(path))
        src, tgt = _columns(list(objs[0]), source_lang, target_lang, where=f"{path}:{lines[0]}")
        rows = []
        for obj, ln in zip(objs, lines):
            pair = {}
            for key, out in ((src, "source"), (tgt, "target")):
                if key not in obj:
                    raise UserError(f"line {ln}: no key {key!r} (keys: {', '.join(obj) or 'none'})",
                                    where=f"{path}:{ln}", fix=f"every line needs both {src!r} and {tgt!r}")
                v = obj[key]
                if not isinstance(v, str):
                    raise UserError(f"line {ln}: {key!r} is a {type(v).__name__}, expected a string",
                                    where=f"{path}:{ln}")
                if not v.strip():
                    raise UserError(f"line {ln}: {key!r} is empty", where=f"{path}:{ln}",
                                    fix="remove the line or fill in the missing side")
                pair[out] = v.strip()
            rows.append(pair)
        return rows, src, tgt
    raise UserError(f"unsupported pair file type {suffix or '(none)'!r}", where=str(path),
                    fix="use .tsv or .csv with a header line (source, target), or .jsonl with keys source/target")


def _object_line_numbers(path: Path, n: int) -> list[int]:
    """Line numbers of the JSON objects read by hfrepro.data.read_jsonl (it skips blank lines)."""
    text = data.read_text(path)
    if text.lstrip().startswith("["):  # a JSON list: no per-object lines; number the items instead
        return list(range(1, n + 1))
    return [i for i, line in enumerate(text.splitlines(), 1) if line.strip()][:n]


# --- tokenizer and features -------------------------------------------------------------------------------

def train_tokenizer(pairs: Pairs, vocab_size: int, max_examples: int = 0):
    """One byte-level BPE vocabulary for both languages, trained on the training split only."""
    train = pairs.splits["train"]
    if max_examples:
        train = train.select(range(min(max_examples, len(train))))
    texts = list(train["source"]) + list(train["target"])
    return train_bpe(texts, vocab_size=vocab_size, min_frequency=2)


def encode(tok, texts: Sequence[str], max_len: int | None = None) -> list[list[int]]:
    """Token ids + </s>, as Marian does for source and target alike."""
    ids = tok(list(texts), add_special_tokens=False)["input_ids"]
    out = [x + [tok.eos_token_id] for x in ids]
    return [x[:max_len - 1] + [tok.eos_token_id] if max_len and len(x) > max_len else x for x in out]


def features(tok, split, max_tokens: int = 0):
    """A tokenised split (input_ids, attention_mask, labels). With max_tokens, pairs longer than that on
    either side are dropped (training only: evaluation always uses every test pair)."""
    from datasets import Dataset

    src = encode(tok, split["source"])
    tgt = encode(tok, split["target"])
    keep = [i for i in range(len(src)) if not max_tokens or (len(src[i]) <= max_tokens and len(tgt[i]) <= max_tokens)]
    return Dataset.from_dict({"input_ids": [src[i] for i in keep], "attention_mask": [[1] * len(src[i]) for i in keep],
                              "labels": [tgt[i] for i in keep]})


def select_subset(split, max_examples: int = 0):
    """The first `max_examples` pairs of a split (all when 0): a split's order is already random (fixed split seed)."""
    return split.select(range(min(max_examples, len(split)))) if max_examples else split


def select_test(pairs: Pairs, max_examples: int = 0, seed: int = 0):
    """The test split, or a seeded subset of `max_examples` pairs of it (in their original order)."""
    test = pairs.splits["test"]
    if max_examples and max_examples < len(test):
        import numpy as np
        idx = sorted(np.random.default_rng(seed).choice(len(test), max_examples, replace=False).tolist())
        test = test.select(idx)
    return test


def length_grouped_order(lengths: Sequence[int], batch_size: int, steps: int, seed: int) -> list[int]:
    """Row indices for `steps` batches of `batch_size` pairs of similar length, to be read in sequence: each
    epoch shuffled, sorted by length inside mega-batches of 50 batches and cut into batches, and the batches
    shuffled. transformers' LengthGroupedSampler does the same but leaves each mega-batch's batches in order,
    longest first: runs of 50 batches from long to short, with which the Transformer here never learned to use
    its source and the GRU trained worse (docs/seq2seq.md). The last, incomplete batch of an epoch is left out."""
    import numpy as np

    if len(lengths) < batch_size:
        raise UserError(f"{len(lengths)} training pair(s) cannot fill a batch of {batch_size}",
                        fix="give more training pairs, or lower --per_device_train_batch_size")
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    mega = batch_size * 50
    order: list[int] = []
    while len(order) < steps * batch_size:
        perm = rng.permutation(len(lengths))
        batches = []
        for s in range(0, len(perm), mega):
            chunk = perm[s:s + mega]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches += [chunk[i:i + batch_size].tolist() for i in range(0, len(chunk), batch_size)]
        for i in rng.permutation(len(batches)):
            order += batches[i] if len(batches[i]) == batch_size else []
    return order[:steps * batch_size]
