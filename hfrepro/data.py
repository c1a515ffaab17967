"""Datasets: the embedded corpora by name, the user's own files, or Hub datasets, all as `DatasetDict`s.

    from hfrepro import data
    dd = data.load("shakespeare")            # train / validation / test, split fixed by a seed
    test = data.load("kjv", split="test")
    allq = data.load("questions-words", split="all")   # benchmarks are evaluated on the whole set
    mine = data.load("notes.txt")            # a text file: one row per non-empty line
    pairs = data.load("pairs.tsv")           # tsv/csv with a header row, or jsonl

Files are read strictly: a byte that is not UTF-8, a malformed JSON line, a row with the wrong number of
columns each raise a `UserError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Sequence

from hfrepro.errors import UserError
from hfrepro.splits import split_dataset

TEXT_SUFFIXES = {".txt", ".text", ".cor"}
TABLE_SUFFIXES = {".tsv", ".csv"}
JSON_SUFFIXES = {".jsonl", ".json"}


# --- splitting ------------------------------------------------------------------------------------------

# --- loading --------------------------------------------------------------------------------------------

def load(name: str, seed: int | None = None, split: str | None = None,
         fractions: Sequence[float] = (0.8, 0.1, 0.1)):
    """Load an embedded dataset by name, a local file or saved dataset folder, or a Hub dataset id.

    seed: re-split with this seed (embedded datasets are stored split with `assets.SPLIT_SEED`).
    split: one of train/validation/test, or "all" for the concatenation of the three.
    """
    from hfrepro import assets

    if name in assets.ASSETS:
        asset = assets.ASSETS[name]
        if asset.kind != "dataset":
            raise UserError(f"{name!r} is a model, not a dataset", fix="`hfrepro assets` lists the datasets")
        dd = _load_saved(assets.path(name) / "data", name)
        if seed is not None and seed != assets.SPLIT_SEED:
            dd = split_dataset(_concat(dd), seed, fractions, getattr(asset, "group_by", None))
    else:
        p = Path(name).expanduser()
        if p.is_dir():
            dd = _load_saved(p, name)
        elif p.is_file():
            dd = split_dataset(load_file(p), seed if seed is not None else assets.SPLIT_SEED, fractions)
        elif _looks_like_path(name):
            raise UserError(f"dataset file not found: {name}", fix="check the path")
        else:
            dd = _load_hub(name, seed, fractions)
    if split is None:
        return dd
    if split == "all":
        return _concat(dd)
    return pick_split(dd, name, split, fix=f"use one of: {', '.join(dd)} or all")


def check_eval_split(split: str) -> None:
    """A recipe's --eval_split: `test` (the held-out items the claims use) or `validation` (others, to choose
    settings on); anything else is refused before any data or model loads."""
    if split not in ("test", "validation"):
        raise UserError(f"--eval_split {split!r}: not a split to score", fix="use test or validation")


def pick_split(dd, name: str, split: str, fix: str | None = None):
    """`dd[split]`, or one clear message naming the splits the dataset has."""
    if split not in dd:
        raise UserError(f"dataset {name!r} has no {split!r} split (it has: {', '.join(dd)})",
                        fix=fix or f"use one of: {', '.join(dd)}")
    return dd[split]


def _looks_like_path(name: str) -> bool:
    return (name.startswith((".", "/", "~")) or name.count("/") > 1
            or Path(name).suffix.lower() in TEXT_SUFFIXES | TABLE_SUFFIXES | JSON_SUFFIXES)


def _concat(dd):
    from datasets import concatenate_datasets
    return concatenate_datasets([dd[s] for s in dd])


def _load_saved(path: Path, name: str):
    from datasets import DatasetDict, load_from_disk
    try:
        dd = load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - any failure here means the folder is not a readable dataset
        raise UserError(f"cannot read dataset {name!r}: {type(e).__name__}: {e}", where=str(path),
                        fix=(f"rebuild it: hfrepro assets build --force {name}" if "datasets" in str(path)
                             else "point at a folder written by Dataset(Dict).save_to_disk")) from None
    return dd if isinstance(dd, DatasetDict) else DatasetDict({"train": dd})


def _load_hub(name: str, seed: int | None, fractions):
    from hfrepro import assets
    from hfrepro.hubenv import require_hub

    names = ", ".join(a.name for a in assets.ASSETS.values() if a.kind == "dataset")
    require_hub(name, "dataset", names, repo_type="dataset")
    from datasets import DatasetDict, load_dataset
    dd = load_dataset(name)
    if isinstance(dd, DatasetDict) and "validation" not in dd and "test" not in dd:
        dd = split_dataset(dd["train"], seed if seed is not None else assets.SPLIT_SEED, fractions)
    return dd


# --- files ----------------------------------------------------------------------------------------------

def read_text(path: str | Path) -> str:
    """The whole file as text; a non-UTF-8 byte raises a UserError with its line and column."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}", where=str(path)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x} at line {line}, column {col})",
                        where=f"{path}:{line}",
                        fix="convert it, e.g. `iconv -f cp949 -t utf-8 in.txt > out.txt` (use the real source "
                            "encoding: latin-1, cp1252, cp949, euc-kr, ...)") from None


def read_lines(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file (stripped)."""
    return [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file (or a JSON list). Errors name the line."""
    path = Path(path)
    text = read_text(path)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"invalid JSON: {e.msg}", where=f"{path}:{e.lineno}") from None
        if not all(isinstance(r, dict) for r in rows):
            raise UserError("a JSON file must hold a list of objects", where=str(path))
        return rows
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"invalid JSON on line {i}: {e.msg}", where=f"{path}:{i}") from None
        if not isinstance(obj, dict):
            raise UserError(f"line {i} is a JSON {type(obj).__name__}, expected an object", where=f"{path}:{i}")
        rows.append(obj)
    return rows


def read_table(path: str | Path, required: Sequence[str] = ()) -> list[dict]:
    """Rows of a TSV/CSV file with a header line. Every row must have every column, non-empty if required."""
    path = Path(path)
    text = read_text(path)
    delim = "\t" if path.suffix == ".tsv" else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError("file is empty", where=str(path)) from None
    header = [h.strip() for h in header]
    for col in required:
        if col not in header:
            raise UserError(f"missing column {col!r} (header has: {', '.join(header)})", where=f"{path}:1",
                            fix=f"add a header line naming the columns, including {', '.join(required)}")
    rows = []
    for row in reader:
        lineno = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise UserError(f"line {lineno} has {len(row)} column(s), the header has {len(header)}",
                            where=f"{path}:{lineno}")
        r = dict(zip(header, (c.strip() for c in row)))
        for col in required:
            if not r[col]:
                raise UserError(f"line {lineno}: column {col!r} is empty", where=f"{path}:{lineno}")
        rows.append(r)
    return rows


def load_file(path: str | Path):
    """A local file as a `datasets.Dataset`: .txt (one row per non-empty line, column `text`), .jsonl/.json,
    .tsv/.csv (header line)."""
    from datasets import Dataset

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES or suffix == "":
        rows = [{"text": t} for t in read_lines(path)]
    elif suffix in JSON_SUFFIXES:
        rows = read_jsonl(path)
    elif suffix in TABLE_SUFFIXES:
        rows = read_table(path)
    else:
        raise UserError(f"unsupported file type {suffix!r}", where=str(path),
                        fix="use .txt (one example per line), .jsonl, .json, .tsv or .csv")
    if not rows:
        raise UserError("file has no data rows", where=str(path))
    return Dataset.from_list(rows)


def texts(name: str, split: str = "train", column: str = "text", seed: int | None = None) -> list[str]:
    """The text column of a dataset split as a list of strings (convenience for corpora)."""
    ds = load(name, seed=seed, split=split)
    if column not in ds.column_names:
        raise UserError(f"dataset {name!r} has no column {column!r} (it has: {', '.join(ds.column_names)})")
    return [t for t in ds[column][:] if t]


# --- a task built from any text ---------------------------------------------------------------------------

WORD_ORDER_LABELS = ("shuffled", "as written")


def word_order(texts: Sequence[str], rng: random.Random, min_words: int,
               max_words: int) -> tuple[list[str], list[str]]:
    """The word-order task: (texts, labels) from the texts of at least `min_words` words, each cut to its first
    `max_words` and joined by single spaces; a seeded half keep their order ("as written"), the rest have their
    words shuffled ("shuffled"). The two classes hold the same words, so only their order tells them apart
    (GPT-1's and BERT's CoLA, grammatical acceptability, in small). `rng` (a seeded `random.Random`) draws the
    halves and the shuffles."""
    out, labels = [], []
    for text in texts:
        words = (text or "").split()
        if len(words) < min_words:
            continue
        words = words[:max_words]
        shuffled = rng.random() < 0.5
        if shuffled:
            order = list(words)
            while order == words:
                rng.shuffle(order)
            words = order
        out.append(" ".join(words))
        labels.append(WORD_ORDER_LABELS[int(not shuffled)])
    return out, labels


def check_task(task: str, tasks: Sequence[str], min_words: int, max_words: int) -> None:
    """A classifier recipe's `--task` is one of `tasks`; the word-order task (`order`) needs
    2 <= min_words <= max_words."""
    if task not in tasks:
        raise UserError(f"--task {task!r} is not a task", fix=f"use one of: {', '.join(tasks)}")
    if task == "order" and not 2 <= min_words <= max_words:
        raise UserError(f"--min_words {min_words} --max_words {max_words}: the word-order task needs "
                        "2 <= min_words <= max_words", fix="e.g. --min_words 12 --max_words 24")
