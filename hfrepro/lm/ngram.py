"""Word n-gram language models: unigram, add-k bigram, interpolated Kneser-Ney, vectorised with numpy.

    vocab = Vocabulary.build(token_lists, min_count=2)           # rarer words become <unk>
    kn = KneserNeyLM(order=3).fit(vocab, token_lists)             # Ney's discounts n1/(n1+2 n2) per order
    kn.logprob2(ngrams)                                            # log2 P(w | context) for many n-grams at once
    speller = SpellingModel.fit(vocab, token_lists)              # prices the characters of <unk> words
    score_documents(kn, speller, docs)                            # total bits for the exact character string

Why not `nltk.lm`: it fits and scores one n-gram at a time in Python, and its KneserNeyInterpolated finds
each continuation count by scanning every higher-order context, so scoring a few thousand words takes
minutes (bench/lm.py measures it: about 60 ms per word). This module implements the same interpolated
formula on sorted arrays of packed n-gram ids (one `np.searchsorted` per order for a whole text) and is
checked against nltk in tests/test_lm_ngram.py: with nltk's discount (0.1 for every order above the
unigram, none on the unigram) it gives nltk's probabilities to 1e-12, except after <s> <s>, where nltk's
distribution does not sum to 1 (it counts the pad bigram <s> <s> among the continuations of <s>).

Interpolated Kneser-Ney (Chen & Goodman 1998; Jurafsky & Martin, 3rd ed., eq. 3.35-3.38), for order n,
context h and word w, with h' = h without its first word:

    top order:     P(w|h) = max(c(h w) - D, 0) / c(h •) + D * N1+(h •) / c(h •) * P(w|h')
    lower orders:  same with the continuation count N1+(• h w) (distinct words seen before h w) for c
    unigram:       P(w)   = max(N1+(• w) - D1, 0) / N1+(• •) + D1 * N1+(w: N1+(• w) > 0) / N1+(• •) / |V|
    unseen context h (c(h •) = 0): P(w|h) = P(w|h')

The probabilities of every word in the vocabulary (<s>, </s> and <unk> included) sum to 1 for any context
(tested). Sentences are padded on the left with n-1 <s> and end with one </s>, which stands for the
newline that ends the document.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_dir, atomic_write_json, read_json
from hfrepro.lm.text import PRETOKEN_PATTERN, pretokenize

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
BOS_ID, EOS_ID, UNK_ID = 0, 1, 2


# --- vocabulary -----------------------------------------------------------------------------------------

@dataclass
class Vocabulary:
    """Tokens seen at least `min_count` times in training, plus <s>, </s>, <unk> (ids 0, 1, 2)."""
    tokens: list[str]
    min_count: int = 1
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 2) -> "Vocabulary":
        counts = Counter(t for toks in token_lists for t in toks)
        kept = sorted((t for t, c in counts.items() if c >= min_count and t not in (BOS, EOS, UNK)),
                      key=lambda t: (-counts[t], t))
        return cls([BOS, EOS, UNK, *kept], min_count=min_count)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int64, count=len(tokens))


# --- packing n-grams into one int64 ---------------------------------------------------------------------

def _check_packable(vocab_size: int, order: int) -> None:
    if vocab_size ** order >= 2 ** 63:
        raise UserError(f"an order-{order} model over {vocab_size:,} word types does not fit 64-bit n-gram keys",
                        fix="lower the order, or raise min_count to shrink the vocabulary")


def pack(cols: np.ndarray, vocab_size: int) -> np.ndarray:
    """(N, k) ids -> (N,) int64 keys, big-endian in base |V| (so key // |V| is the key of the prefix)."""
    key = np.zeros(cols.shape[0], dtype=np.int64)
    for j in range(cols.shape[1]):
        key = key * vocab_size + cols[:, j]
    return key


def padded_stream(sequences: Sequence[np.ndarray], order: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate sentences padded with order-1 <s> on the left and </s> on the right.
    Returns (ids, sentence index of each position)."""
    pad = np.full(order - 1, BOS_ID, dtype=np.int64)
    eos = np.array([EOS_ID], dtype=np.int64)
    parts = [np.concatenate([pad, s, eos]) for s in sequences]
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    sid = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    return ids, sid


def ngram_matrix(ids: np.ndarray, sid: np.ndarray, k: int) -> np.ndarray:
    """Every k-gram inside one sentence of the padded stream, as an (N, k) array."""
    n = len(ids) - k + 1
    if n <= 0:
        return np.zeros((0, k), dtype=np.int64)
    start = np.arange(n)
    ok = sid[start] == sid[start + k - 1]
    start = start[ok]
    return np.stack([ids[start + j] for j in range(k)], axis=1)


def predicted_ngrams(ids: np.ndarray, sid: np.ndarray, order: int) -> np.ndarray:
    """The n-grams whose last token is predicted: every position that is not a left pad."""
    mat = ngram_matrix(ids, sid, order)
    return mat[mat[:, -1] != BOS_ID]


def _unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k, c = np.unique(keys, return_counts=True)
    return k, c.astype(np.int64)


@dataclass
class _Level:
    """One order of a model: sorted n-gram keys with their counts, and their contexts' totals."""
    keys: np.ndarray
    counts: np.ndarray
    ctx_keys: np.ndarray = None
    ctx_total: np.ndarray = None     # sum of counts after the context
    ctx_types: np.ndarray = None     # number of distinct words after the context

    def __post_init__(self):
        if self.ctx_keys is None:
            self.ctx_keys = np.zeros(0, dtype=np.int64)

    @classmethod
    def from_keys(cls, keys: np.ndarray, counts: np.ndarray, vocab_size: int) -> "_Level":
        lvl = cls(keys, counts)
        ctx = keys // vocab_size
        if len(ctx):
            starts = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]])
            lvl.ctx_keys = ctx[starts]
            lvl.ctx_total = np.add.reduceat(counts, starts)
            lvl.ctx_types = np.diff(np.r_[starts, len(ctx)])
        else:
            lvl.ctx_keys, lvl.ctx_total, lvl.ctx_types = (np.zeros(0, dtype=np.int64),) * 3
        return lvl

    @staticmethod
    def _lookup(sorted_keys: np.ndarray, values: np.ndarray, q: np.ndarray) -> np.ndarray:
        if len(sorted_keys) == 0:
            return np.zeros(len(q), dtype=np.int64)
        i = np.searchsorted(sorted_keys, q)
        i_c = np.minimum(i, len(sorted_keys) - 1)
        hit = sorted_keys[i_c] == q
        return np.where(hit, values[i_c], 0)

    def count(self, q: np.ndarray) -> np.ndarray:
        return self._lookup(self.keys, self.counts, q)

    def context(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._lookup(self.ctx_keys, self.ctx_total, h), self._lookup(self.ctx_keys, self.ctx_types, h)


# --- models ---------------------------------------------------------------------------------------------

class NgramLM:
    """Common plumbing: fit on token lists, log2-probabilities of n-grams, save/load as a model folder."""
    kind = "ngram"

    def __init__(self, order: int):
        if order < 1:
            raise UserError(f"n-gram order must be at least 1, got {order}")
        self.order = order
        self.vocab: Vocabulary | None = None
        self.raw: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # k -> (keys, counts) of raw k-grams

    # fitting ------------------------------------------------------------------------------------------
    def fit(self, vocab: Vocabulary, token_lists: Iterable[Sequence[str]]) -> "NgramLM":
        return self.fit_ids(vocab, [vocab.encode(t) for t in token_lists])

    def fit_ids(self, vocab: Vocabulary, sequences: Sequence[np.ndarray]) -> "NgramLM":
        """Fit on sentences already encoded with `vocab` (arrays of word ids, no padding)."""
        self.vocab = vocab
        _check_packable(len(vocab), self.order)
        ids, sid = padded_stream(sequences, self.order)
        for k in range(1, self.order + 1):
            mat = predicted_ngrams(ids, sid, k) if k == self.order else ngram_matrix(ids, sid, k)
            self.raw[k] = _unique_counts(pack(mat, len(vocab)))
        self._prepare()
        return self

    def _prepare(self) -> None:
        raise NotImplementedError

    # scoring ------------------------------------------------------------------------------------------
    def logprob2(self, ngrams: np.ndarray) -> np.ndarray:
        """log2 P(last | the order-1 before it) for each row of an (N, order) id array."""
        return np.log2(self.prob(np.asarray(ngrams, dtype=np.int64)))

    def prob(self, ngrams: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(w | context) for every word id w (for tests and sampling)."""
        V = len(self.vocab)
        ctx = np.tile(np.asarray(context, dtype=np.int64)[-(self.order - 1):] if self.order > 1 else
                      np.zeros(0, dtype=np.int64), (V, 1))
        return self.prob(np.concatenate([ctx, np.arange(V)[:, None]], axis=1))

    def document_ngrams(self, token_lists: Iterable[Sequence[str]]) -> np.ndarray:
        ids, sid = padded_stream([self.vocab.encode(t) for t in token_lists], self.order)
        return predicted_ngrams(ids, sid, self.order)

    # folders ------------------------------------------------------------------------------------------
    def config(self) -> dict:
        return {"model_type": "hfrepro-ngram", "smoothing": self.kind, "order": self.order,
                "vocab_size": len(self.vocab), "min_count": self.vocab.min_count,
                "pretokenizer": "hfrepro.lm.text.PRETOKEN_PATTERN", "bos": BOS, "eos": EOS, "unk": UNK}

    def save_pretrained(self, folder: str | Path, speller: "SpellingModel | None" = None) -> Path:
        """Counts as safetensors, config.json, vocab.json (the tokenizer), speller.json."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            tensors = {}
            for k, (keys, counts) in self.raw.items():
                tensors[f"order{k}.keys"], tensors[f"order{k}.counts"] = keys, counts
            save_file(tensors, str(tmp / "model.safetensors"))
            atomic_write_json(tmp / "config.json", {**self.config(), "pretoken_pattern": PRETOKEN_PATTERN})
            atomic_write_json(tmp / "vocab.json", self.vocab.tokens)
            if speller is not None:
                atomic_write_json(tmp / "speller.json", speller.to_dict())
        return folder

    @staticmethod
    def from_pretrained(folder: str | Path) -> tuple["NgramLM", "SpellingModel | None"]:
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise UserError(f"no n-gram model in {folder}", fix="point at a folder written by recipes/ngram.py")
        cfg = read_json(folder / "config.json")
        if cfg.get("model_type") != "hfrepro-ngram":
            raise UserError(f"{folder} holds a {cfg.get('model_type')!r} model, not an hfrepro n-gram model")
        cls = {"add-k": AddKLM, "kneser-ney": KneserNeyLM}[cfg["smoothing"]]
        lm = cls.from_config(cfg)
        lm.vocab = Vocabulary(read_json(folder / "vocab.json"), min_count=cfg.get("min_count", 1))
        t = load_file(str(folder / "model.safetensors"))
        lm.raw = {k: (t[f"order{k}.keys"], t[f"order{k}.counts"]) for k in range(1, lm.order + 1)}
        lm._prepare()
        sp = folder / "speller.json"
        return lm, (SpellingModel.from_dict(read_json(sp)) if sp.is_file() else None)


class AddKLM(NgramLM):
    """Add-k (Lidstone) smoothing; k = 1 is Laplace. P(w|h) = (c(h w) + k) / (c(h •) + k |V|).

    With `order` = 1 this is the unigram model (context ignored)."""
    kind = "add-k"

    def __init__(self, order: int = 2, k: float = 1.0):
        super().__init__(order)
        if k <= 0:
            raise UserError(f"add-k smoothing needs k > 0, got {k}")
        self.k = float(k)

    @classmethod
    def from_config(cls, cfg: dict) -> "AddKLM":
        return cls(order=cfg["order"], k=cfg["k"])

    def config(self) -> dict:
        return {**super().config(), "k": self.k}

    def _prepare(self) -> None:
        keys, counts = self.raw[self.order]
        self.top = _Level.from_keys(keys, counts, len(self.vocab))
        self.total = int(counts.sum())

    def prob(self, ngrams: np.ndarray) -> np.ndarray:
        V = len(self.vocab)
        c = self.top.count(pack(ngrams, V)).astype(np.float64)
        if self.order == 1:
            return (c + self.k) / (self.total + self.k * V)
        t, _ = self.top.context(pack(ngrams[:, :-1], V))
        return (c + self.k) / (t + self.k * V)


class KneserNeyLM(NgramLM):
    """Interpolated Kneser-Ney (see the module docstring).

    discount: None (default) estimates D = n1 / (n1 + 2 n2) for each order from its own counts-of-counts
    (Ney et al. 1994); a number uses it for every order above the unigram and none on the unigram (nltk's
    KneserNeyInterpolated); a list gives D for orders 1..n."""
    kind = "kneser-ney"

    def __init__(self, order: int = 3, discount: float | Sequence[float] | None = None):
        super().__init__(order)
        if order < 2:
            raise UserError("Kneser-Ney needs order >= 2 (a unigram has no lower order to interpolate with)")
        self.discount_arg = discount
        self.discounts: list[float] = []

    @classmethod
    def from_config(cls, cfg: dict) -> "KneserNeyLM":
        return cls(order=cfg["order"], discount=cfg.get("discount_arg"))

    def config(self) -> dict:
        d = self.discount_arg
        return {**super().config(), "discount_arg": list(d) if isinstance(d, (list, tuple)) else d,
                "discounts": self.discounts}

    def _prepare(self) -> None:
        V, n = len(self.vocab), self.order
        # level n: raw counts; level k < n: continuation counts N1+(• g) from the raw (k+1)-gram types
        level_counts = {n: self.raw[n]}
        for k in range(1, n):
            level_counts[k] = _unique_counts(self.raw[k + 1][0] % (V ** k))
        self.discounts = self._discounts({k: c for k, (_, c) in level_counts.items()})
        self.levels = {k: _Level.from_keys(*level_counts[k], V) for k in range(2, n + 1)}
        ukeys, ucounts = level_counts[1]
        cont = np.zeros(V, dtype=np.float64)
        cont[ukeys] = ucounts
        d1, total = self.discounts[0], cont.sum()
        self.p_unigram = np.maximum(cont - d1, 0) / total + d1 * np.count_nonzero(cont) / total / V

    def _discounts(self, counts: dict[int, np.ndarray]) -> list[float]:
        d = self.discount_arg
        if isinstance(d, (list, tuple)):
            if len(d) != self.order:
                raise UserError(f"give one discount per order (1..{self.order}), got {len(d)}")
            return [float(x) for x in d]
        if d is not None:
            return [0.0] + [float(d)] * (self.order - 1)
        out = []
        for k in range(1, self.order + 1):
            n1, n2 = int(np.sum(counts[k] == 1)), int(np.sum(counts[k] == 2))
            out.append(n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5)
        return out

    def prob(self, ngrams: np.ndarray) -> np.ndarray:
        V = len(self.vocab)
        p = self.p_unigram[ngrams[:, -1]]
        for k in range(2, self.order + 1):
            g = ngrams[:, -k:]
            c = self.levels[k].count(pack(g, V)).astype(np.float64)
            t, types = self.levels[k].context(pack(g[:, :-1], V))
            D = self.discounts[k - 1]
            seen = t > 0
            ts = np.where(seen, t, 1).astype(np.float64)
            p = np.where(seen, np.maximum(c - D, 0) / ts + D * types / ts * p, p)
        return p


# --- characters of unknown words ------------------------------------------------------------------------

UNICODE_SIZE = 0x110000


@dataclass
class SpellingModel:
    """A character unigram model (add-one, with an end-of-word symbol) for the words a word model calls
    <unk>, fitted on the training tokens that became <unk>. A character never seen costs the 'other'
    class plus a uniform choice among the remaining Unicode code points."""
    char_counts: dict[str, int]
    end_count: int
    other_count: int = 1

    @classmethod
    def fit(cls, vocab: Vocabulary, token_lists: Iterable[Sequence[str]]) -> "SpellingModel":
        chars: Counter = Counter()
        ends = 0
        for toks in token_lists:
            for t in toks:
                if t not in vocab:
                    chars.update(t)
                    ends += 1
        return cls(dict(chars), ends)

    def _total(self) -> int:
        return sum(self.char_counts.values()) + self.end_count + self.other_count + len(self.char_counts) + 1

    def bits(self, word: str) -> float:
        total = self._total()
        b = -math.log2((self.end_count + 1) / total)
        other = -math.log2((self.other_count) / total) + math.log2(UNICODE_SIZE - len(self.char_counts))
        for ch in word:
            c = self.char_counts.get(ch)
            b += -math.log2((c + 1) / total) if c is not None else other
        return b

    def to_dict(self) -> dict:
        return {"char_counts": self.char_counts, "end_count": self.end_count, "other_count": self.other_count}

    @classmethod
    def from_dict(cls, d: dict) -> "SpellingModel":
        return cls(dict(d["char_counts"]), int(d["end_count"]), int(d.get("other_count", 1)))


# --- scoring a text -------------------------------------------------------------------------------------

def score_documents(lm: NgramLM, speller: SpellingModel, docs: Sequence[str]) -> dict:
    """Bits for the exact character string of `docs` (each a line ending in '\\n').

    Each document is its pre-tokens plus </s> (the newline). An in-vocabulary token costs
    -log2 P(token | context); an out-of-vocabulary token costs -log2 P(<unk> | context) plus its spelling
    under `speller`. Characters counted: every character of every document, newlines included."""
    token_lists = []
    for d in docs:
        line = d[:-1] if d.endswith("\n") else d
        if "\n" in line:
            raise UserError("an n-gram document must be one line", fix="split the text into lines first")
        token_lists.append(pretokenize(line))
    grams = lm.document_ngrams(token_lists)
    lp = lm.logprob2(grams)
    flat = [t for toks in token_lists for t in (*toks, EOS)]
    oov = [t for t in flat if t != EOS and t not in lm.vocab]
    spell = sum(speller.bits(t) for t in oov)
    word_bits = float(-lp.sum())
    chars = sum(len(d) if d.endswith("\n") else len(d) + 1 for d in docs)
    bits = word_bits + spell
    # the same total, document by document (the rows of `grams` follow the documents' tokens and </s>)
    ends = np.cumsum([len(toks) + 1 for toks in token_lists])
    doc_bits = [float(-w.sum()) + sum(speller.bits(t) for t in toks if t not in lm.vocab)
                for w, toks in zip(np.split(lp, ends[:-1]), token_lists)]
    return {"bits": bits, "chars": chars, "tokens": len(flat), "oov_tokens": len(oov), "document_bits": doc_bits,
            "oov_rate": len(oov) / max(1, len(flat)), "spelling_bits": spell,
            "bits_per_character": bits / chars, "word_perplexity": 2 ** (bits / len(flat)),
            "closed_vocab_perplexity": 2 ** (word_bits / len(flat))}


# --- choosing the add-k bigram's k ---------------------------------------------------------------------

def choose_k(lm: AddKLM, speller: SpellingModel, val_docs: Sequence[str], k_grid: Sequence[float]) -> dict:
    """Set `lm.k` to the value of `k_grid` with the lowest bits per character on `val_docs`; returns
    {k: validation bits per character} (empty for a single k: nothing to choose)."""
    if len(k_grid) == 1:
        lm.k = float(k_grid[0])
        return {}
    if not val_docs:
        raise UserError("choosing the bigram's k needs validation documents")
    scores = {}
    for k in k_grid:
        lm.k = float(k)
        scores[k] = score_documents(lm, speller, val_docs)["bits_per_character"]
    lm.k = float(min(scores, key=scores.get))
    return scores


def describe(lm: NgramLM) -> str:
    if isinstance(lm, KneserNeyLM):
        return f"Kneser-Ney {lm.order}-gram (interpolated)"
    if lm.order == 1:
        return f"unigram (add-{lm.k:g})"
    return f"{'bigram' if lm.order == 2 else f'{lm.order}-gram'} (add-k, k={lm.k:g})"
