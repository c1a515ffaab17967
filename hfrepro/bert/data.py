"""BERT's training text: documents of sentences, sentence-pair examples for next-sentence prediction, blocks.

A corpus split is read in its own order (Shakespeare: speech after speech, play after play) and grouped into
*documents* by a column (`work`: one play is one document; a dataset without that column is one document).
A speech is cut into *sentences* after `.`, `!` or `?`; its last sentence keeps the speech's newline. The
sentences of a document, concatenated, are exactly its speeches + newlines, so the token stream is the one the
stage-2 models read.

Next-sentence prediction follows Devlin et al. (2019) and Google's `create_pretraining_data.py`: sentences are
gathered until a chunk reaches the target length; a random cut makes segment A; half of the time B is the rest
of the chunk (label 0, *IsNext*), otherwise B is a run of sentences from another document (label 1, *NotNext*,
and the unused sentences go back to the pool); the longer segment is trimmed, at its front or back at random,
until `[CLS] A [SEP] B [SEP]` fits. Token types: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
"""

from __future__ import annotations

import random
import re

from hfrepro import data
from hfrepro.errors import UserError

_SENTENCE_END = re.compile(r"(?<=[.!?])(?= )")


def sentences(text: str) -> list[str]:
    """'Nay, a mother. Why not?' -> ['Nay, a mother.', ' Why not?'] (the pieces concatenate to the text)."""
    return [s for s in _SENTENCE_END.split(text) if s]


def load_documents(dataset: str, split: str, text_column: str = "text",
                   document_column: str | None = "work") -> list[list[str]]:
    """The split's rows in corpus order as documents, each a list of sentences (every speech ends in '\\n')."""
    ds = data.load(dataset, split=split)
    if text_column not in ds.column_names:
        raise UserError(f"dataset {dataset!r} has no column {text_column!r} (it has: {', '.join(ds.column_names)})",
                        fix="pass --text_column NAME")
    texts = ds[text_column]
    keys = ds[document_column] if document_column and document_column in ds.column_names else [None] * len(texts)
    docs: list[list[str]] = []
    last = object()
    for text, key in zip(texts, keys):
        text = " ".join((text or "").split())
        if not text:
            continue
        if key != last or not docs:
            docs.append([])
            last = key
        parts = sentences(text)
        parts[-1] += "\n"
        docs[-1].extend(parts)
    if not docs:
        raise UserError(f"the {split} split of {dataset!r} has no text")
    return docs


def tokenize_documents(tokenizer, docs: list[list[str]]) -> list[list[list[int]]]:
    """Token ids of every sentence (no special tokens), with `datasets.Dataset.map` in batches."""
    from datasets import Dataset

    flat = [s for d in docs for s in d]
    ds = Dataset.from_dict({"text": flat}).map(
        lambda b: {"ids": tokenizer(b["text"], add_special_tokens=False, verbose=False)["input_ids"]},
        batched=True, batch_size=4096, remove_columns=["text"], keep_in_memory=True)
    ids = ds.with_format(None)["ids"][:]
    out, k = [], 0
    for d in docs:
        out.append([list(x) for x in ids[k:k + len(d)]])
        k += len(d)
    return out


def stream(tok_docs: list[list[list[int]]]) -> list[int]:
    """Every sentence of every document, concatenated: the running text as token ids."""
    return [t for d in tok_docs for s in d for t in s]


def windows(flat: list[int], width: int, limit: int | None = None) -> list[list[int]]:
    """Non-overlapping windows of `width` tokens (the last partial one dropped), at most `limit` of them."""
    n = len(flat) // width
    if n == 0:
        raise UserError(f"the text gives {len(flat)} tokens, fewer than one block of {width}",
                        fix="use more text or a smaller --block_size")
    return [flat[i * width:(i + 1) * width] for i in range(n if limit is None else min(n, limit))]


def sentence_pairs(tok_docs: list[list[list[int]]], max_length: int, cls_id: int, sep_id: int,
                   seed: int = 0) -> dict[str, list]:
    """BERT's next-sentence-prediction examples from one pass over the documents (module docstring)."""
    rng = random.Random(seed)
    target = max_length - 3
    out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "next_sentence_label": []}
    for d, doc in enumerate(tok_docs):
        chunk: list[list[int]] = []
        i = 0
        while i < len(doc):
            chunk.append(doc[i])
            if i == len(doc) - 1 or sum(map(len, chunk)) >= target:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = [t for s in chunk[:a_end] for t in s]
                if len(chunk) == 1 or rng.random() < 0.5:
                    label, b = 1, _random_run(tok_docs, d, max(1, target - len(a)), rng)
                    i -= len(chunk) - a_end          # the sentences not used go back to the pool
                else:
                    label, b = 0, [t for s in chunk[a_end:] for t in s]
                a, b = _truncate_pair(a, b, target, rng)
                if a and b:
                    out["input_ids"].append([cls_id, *a, sep_id, *b, sep_id])
                    out["token_type_ids"].append([0] * (len(a) + 2) + [1] * (len(b) + 1))
                    out["next_sentence_label"].append(label)
                chunk = []
            i += 1
    if not out["input_ids"]:
        raise UserError("the text gives no sentence pairs", fix="use more text")
    return out


def _random_run(tok_docs, current: int, length: int, rng: random.Random) -> list[int]:
    """Sentences of a random other document (any document when there is only one), from a random start."""
    others = [k for k in range(len(tok_docs)) if k != current] or [current]
    doc = tok_docs[rng.choice(others)]
    start = rng.randrange(len(doc))
    out: list[int] = []
    for s in doc[start:]:
        out.extend(s)
        if len(out) >= length:
            break
    return out


def _truncate_pair(a: list[int], b: list[int], target: int, rng: random.Random) -> tuple[list[int], list[int]]:
    a, b = list(a), list(b)
    while len(a) + len(b) > target:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    return a, b


def pair_dataset(tokenizer, tok_docs, max_length: int, seed: int = 0):
    """`datasets.Dataset` of NSP examples (input_ids, token_type_ids, next_sentence_label)."""
    from datasets import Dataset

    cls_id, sep_id = special_ids(tokenizer)
    return Dataset.from_dict(sentence_pairs(tok_docs, max_length, cls_id, sep_id, seed=seed))


def block_dataset(tokenizer, tok_docs, max_length: int, causal: bool = False):
    """One segment per example: `[CLS] + max_length-2 tokens + [SEP]` for a masked LM, `[CLS] + max_length-1
    tokens` for a left-to-right model (no end token: it predicts the next token at every position)."""
    from datasets import Dataset

    cls_id, sep_id = special_ids(tokenizer)
    flat = stream(tok_docs)
    if causal:
        rows = [[cls_id, *w] for w in windows(flat, max_length - 1)]
    else:
        rows = [[cls_id, *w, sep_id] for w in windows(flat, max_length - 2)]
    return Dataset.from_dict({"input_ids": rows})


def special_ids(tokenizer) -> tuple[int, int]:
    """([CLS], [SEP]): the tokenizer's cls/sep, or bos/eos for a byte-level BPE (RoBERTa's <s> and </s>)."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls_id is None or sep_id is None:
        raise UserError("the tokenizer has no [CLS]/[SEP] (or <s>/</s>) tokens to build BERT's inputs",
                        fix="use a BERT tokenizer, or let the recipe train one (drop --tokenizer)")
    return cls_id, sep_id


# --- a labelled task for fine-tuning ------------------------------------------------------------------------

# The genre of each play as the First Folio (1623) catalogues it: "Comedies, Histories, & Tragedies". Plays the
# catalogue does not list (Troilus and Cressida, printed unlisted between the histories and the tragedies;
# Pericles; The Two Noble Kinsmen) and the poems have no label.
FIRST_FOLIO = {
    **dict.fromkeys([
        "The Tempest", "Two Gentlemen of Verona", "The Merry Wives of Windsor", "Measure for Measure",
        "The Comedy of Errors", "Much Ado About Nothing", "Love's Labour's Lost", "A Midsummer Night's Dream",
        "The Merchant of Venice", "As You Like It", "The Taming of the Shrew", "All's Well That Ends Well",
        "Twelfth Night", "The Winter's Tale"], "comedy"),
    **dict.fromkeys([
        "King John", "King Richard II", "King Henry IV, Part 1", "King Henry IV, Part 2", "King Henry V",
        "King Henry VI, Part 1", "King Henry VI, Part 2", "King Henry VI, Part 3", "King Richard III",
        "King Henry VIII"], "history"),
    **dict.fromkeys([
        "Coriolanus", "The Tragedy of Titus Andronicus", "Romeo and Juliet", "Timon of Athens", "Julius Caesar",
        "Macbeth", "Hamlet", "King Lear", "Othello", "Antony and Cleopatra", "Cymbeline"], "tragedy"),
}
LABEL_MAPS = {"first_folio": FIRST_FOLIO}


def labelled_examples(dataset: str, split: str, text_column: str, label_column: str, label_map: str | None = None,
                      min_words: int = 0) -> tuple[list[str], list[str]]:
    """(texts, labels) of a split; with `label_map` the label is looked up in that table (rows without an entry
    are left out); texts shorter than `min_words` words are left out."""
    if label_map is not None and label_map not in LABEL_MAPS:
        raise UserError(f"unknown label map {label_map!r}", fix=f"use one of: {', '.join(LABEL_MAPS)}, or none")
    ds = data.load(dataset, split=split)
    for col in (text_column, label_column):
        if col not in ds.column_names:
            raise UserError(f"dataset {dataset!r} has no column {col!r} (it has: {', '.join(ds.column_names)})",
                            fix="pass --text_column / --label_column")
    table = LABEL_MAPS.get(label_map)
    texts, labels = [], []
    for text, label in zip(ds[text_column], ds[label_column]):
        text = " ".join((text or "").split())
        label = table.get(label) if table is not None else (str(label) if label not in (None, "") else None)
        if label is not None and text and len(text.split()) >= min_words:
            texts.append(text)
            labels.append(label)
    if not texts:
        raise UserError(f"the {split} split of {dataset!r} has no labelled text of {min_words}+ words")
    return texts, labels
