"""The text every stage-2 model trains on and is scored on.

One corpus, one held-out text, one way to count. The default corpus is Shakespeare's plays (the embedded
`shakespeare` dataset: 38.9k speeches, one row each, split 80/10/10 by speech with a fixed seed): the
classic small English LM corpus (char-rnn, nanoGPT), with a large vocabulary and old spellings that make
the n-gram models work for their numbers.

A *document* is one speech followed by a newline. Every model scores each held-out document on its own,
from a start-of-text state: the n-gram models pad it with <s> and predict </s> for the newline; the neural
models get their start token and predict the newline as text. So all models see exactly the same
information and are charged for exactly the same characters.

Word-level models need words: `pretokenize` splits a line the way GPT-2 pre-tokenises (a run of letters,
digits or punctuation, with the single space before it), so that the line is exactly the concatenation of
its tokens. A word model's probability of the token sequence is then a probability of the character string.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from hfrepro import data
from hfrepro.errors import UserError

# A run of letters / digits / other non-space characters, each with the one space before it; any other
# whitespace stands alone. Reversible: "".join(pretokenize(s)) == s for every string s.
PRETOKEN_PATTERN = r" ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"
_PRETOKEN = re.compile(PRETOKEN_PATTERN)


def pretokenize(line: str) -> list[str]:
    """GPT-2-style pre-tokens: ' heard', ' not', ',', "'", 'd' ... (the concatenation is the line)."""
    return _PRETOKEN.findall(line)


@dataclass
class LMCorpus:
    """Speeches (no trailing newline) of one dataset's three splits."""
    name: str
    train: list[str]
    validation: list[str]
    test: list[str]

    def documents(self, split: str, max_chars: int | None = None, seed: int = 0) -> list[str]:
        """Held-out documents (speech + '\\n'): a seeded sample of the split, in a fixed random order,
        cut to at most `max_chars` characters (None or 0: all of it). A smaller `max_chars` gives a prefix of
        the larger sample, so the small held-out text is part of the big one."""
        import numpy as np

        lines = getattr(self, split)
        max_chars = max_chars or None
        order = np.random.default_rng(seed).permutation(len(lines))
        out, n = [], 0
        for i in order:
            doc = lines[i] + "\n"
            if max_chars is not None and n + len(doc) > max_chars:
                if out:
                    break
                continue  # a first speech longer than the budget: try the next one
            out.append(doc)
            n += len(doc)
        if not out:
            raise UserError(f"no {split} text fits in {max_chars} characters", fix="raise max_chars")
        return out


@functools.lru_cache(maxsize=4)
def load_corpus(dataset: str = "shakespeare", column: str = "text") -> LMCorpus:
    """An embedded dataset name, a saved dataset folder, or a text file (one document per line).
    Cached per process: several models of one run read it once (treat it as read-only)."""
    dd = data.load(dataset)
    parts = {}
    for split in ("train", "validation", "test"):
        if split not in dd:
            raise UserError(f"dataset {dataset!r} has no {split!r} split",
                            fix="use a dataset with train/validation/test splits, or a .txt file")
        ds = dd[split]
        if column not in ds.column_names:
            raise UserError(f"dataset {dataset!r} has no column {column!r} (it has: {', '.join(ds.column_names)})",
                            fix="pass --text_column NAME")
        parts[split] = [" ".join(t.split()) for t in ds[column] if t and t.strip()]
        if not parts[split]:
            raise UserError(f"the {split} split of {dataset!r} has no text")
    return LMCorpus(name=dataset, **parts)

