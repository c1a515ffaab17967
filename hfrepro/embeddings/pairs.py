"""What each word2vec mode trains on, for one sentence, and why dense vectors beat one-hot ones.

    >>> skipgram_pairs(["The", "fat", "cat"], window=1)
    [('The', 'fat'), ('fat', 'The'), ('fat', 'cat'), ('cat', 'fat')]
    >>> cbow_examples(["The", "fat", "cat"], window=1)
    [(['fat'], 'The'), (['The', 'cat'], 'fat'), (['fat'], 'cat')]

These are the examples of the classic table for "The fat cat sat on the mat" (window 2): skip-gram makes one
(centre -> context) pair per neighbour, CBOW one (context words -> centre) example per position. gensim
additionally shrinks the window at random for each centre word (`reduced_windows`), so nearer neighbours are
used more often; the table shows the full window, as the papers' figures do.
"""

from __future__ import annotations

import re
from typing import Sequence

from hfrepro.embeddings.vectors import require_words
from hfrepro.errors import UserError
from hfrepro.report import md_table

WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def sentence_words(sentence: str) -> list[str]:
    """The words of a sentence as written (case kept, punctuation dropped): the table shows them as typed."""
    words = WORD_RE.findall(sentence)
    if not words:
        raise UserError(f"no words in {sentence!r}", fix='give a sentence, e.g. "The fat cat sat on the mat"')
    return words


def _check_window(window: int) -> None:
    if window < 1:
        raise UserError(f"--window must be at least 1, got {window}")


def context(words: Sequence[str], i: int, window: int) -> list[str]:
    """The up-to-2*window neighbours of position i, left to right."""
    return [words[j] for j in range(max(0, i - window), min(len(words), i + window + 1)) if j != i]


def skipgram_pairs(words: Sequence[str], window: int) -> list[tuple[str, str]]:
    """(centre, context) pairs: skip-gram predicts each neighbour from the centre word."""
    _check_window(window)
    return [(w, c) for i, w in enumerate(words) for c in context(words, i, window)]


def cbow_examples(words: Sequence[str], window: int) -> list[tuple[list[str], str]]:
    """(context words, centre) examples: CBOW predicts the centre word from its averaged neighbours."""
    _check_window(window)
    return [(context(words, i, window), w) for i, w in enumerate(words)]


def pairs_table(sentence: str, window: int, mode: str) -> str:
    """The Markdown table of training examples for `mode` ('cbow' or 'skipgram')."""
    words = sentence_words(sentence)
    if mode == "skipgram":
        rows = [{"#": k, "centre word (input)": c, "context word (target)": o}
                for k, (c, o) in enumerate(skipgram_pairs(words, window), 1)]
        head = (f"skip-gram, window {window}: each centre word predicts each neighbour "
                f"({len(rows)} (centre, context) pairs from {len(words)} words)")
    elif mode == "cbow":
        rows = [{"#": k, "context words (input)": ", ".join(ctx), "centre word (target)": c}
                for k, (ctx, c) in enumerate(cbow_examples(words, window), 1)]
        head = (f"CBOW, window {window}: the neighbours together predict the centre word "
                f"({len(rows)} examples from {len(words)} words)")
    else:
        raise UserError(f"unknown mode {mode!r}", fix="use --mode cbow, skipgram or both")
    return f"{head}\n\n{md_table(rows)}"


def one_hot_picture(sentence: str, word: str, vocab_size: int = 10_000, kv=None, vectors_label: str = "",
                    show_dims: int = 8, compare: Sequence[str] = ()) -> str:
    """One-hot vs dense for `word`: the one-hot vector over the sentence's vocabulary and over a
    `vocab_size`-word vocabulary, then (with `kv`) the word's dense vector and graded similarities."""
    vocab: list[str] = []
    for w in sentence_words(sentence):
        if w.lower() not in vocab:
            vocab.append(w.lower())
    w = word.lower()
    lines = [f'one-hot "{w}" over the {len(vocab)} distinct words of the sentence ({", ".join(vocab)}):']
    if w in vocab:
        lines.append("  [" + ", ".join("1" if v == w else "0" for v in vocab) + "]")
    else:
        lines.append(f'  "{w}" is not in the sentence: it would need a new dimension (all zeros here)')
    lines += [
        f"over a {vocab_size:,}-word vocabulary: {vocab_size:,} numbers, one 1 and {vocab_size - 1:,} zeros.",
        "Any two different one-hot vectors have dot product 0: cosine(cat, dog) = cosine(cat, mat) = 0, "
        "so one-hot vectors carry no notion of similarity.",
        "",
    ]
    if kv is None:
        lines.append("dense: pass --vectors DIR (a folder written by `hfrepro word2vec`) to see a trained "
                     "dense vector and its graded similarities.")
        return "\n".join(lines)
    require_words(kv, [w], vectors_label)
    vec = kv[w]
    shown = ", ".join(f"{x:+.3f}" for x in vec[:show_dims])
    lines.append(f'dense "{w}" from {vectors_label}: {kv.vector_size} real numbers, all in use '
                 f"(first {min(show_dims, kv.vector_size)}: [{shown}, ...]).")
    others = [o.lower() for o in (compare or [v for v in vocab if v != w])]
    sims = [(o, float(kv.similarity(w, o))) for o in others if o in kv.key_to_index and o != w]
    if sims:
        lines.append("cosine similarity with the dense vectors (graded, unlike one-hot):")
        lines += [f"  cosine({w}, {o}) = {s:+.3f}" for o, s in sorted(sims, key=lambda x: -x[1])]
    return "\n".join(lines)
