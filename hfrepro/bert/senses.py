"""Contextual vs static word vectors: the same word in two senses.

word2vec gives a word one vector, whatever the sentence ("bank" of a river and "bank" of money alike). BERT gives
each occurrence its own vector, computed from the whole sentence. The test: for a word with two senses, take
sentences of each sense from the embedded Early Modern English (Shakespeare's plays and the King James Bible),
the sense read off the words around it (`SENSES`: "my will" is a wish, "I will" the verb; "a rose" the flower,
"he rose" the verb), and compare the cosine of the word's vectors within a sense with the cosine across senses.

Each sentence is one item: with a seeded draw it is paired with another sentence of its sense and one of the
other sense; the item's value is cos(same sense) − cos(other sense). A static model scores exactly 0 on every
item (one vector per word); a contextual model scores above 0 when its vectors separate the senses. The same
BERT architecture with random weights is the control: attention mixes some context into any vector, trained or
not, so what training adds is the difference between the two.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

from hfrepro import data
from hfrepro.bert.data import sentences

# word, then (sense, pattern) twice; the pattern's group `w` is the occurrence whose vector is taken.
SENSES = [
    ("will", ("wish (noun)", r"\b(?:my|thy|his|her|your|our|their|the|good|free|last) (?P<w>will)\b"),
             ("future (verb)", r"\b(?:I|you|we|they|he|she|thou|it) (?P<w>will)\b")),
    ("like", ("similar to", r"\b(?P<w>like) (?:a|an|the|to)\b"),
             ("be fond of", r"\b(?:I|you|we) (?:do |did |not )?(?P<w>like)\b(?! (?:a|an|the|to|as|unto|men)\b)")),
    ("rose", ("the flower", r"\b(?:a|the|red|white|sweet) (?P<w>rose)\b"),
             ("got up (verb)", r"\b(?:he|she|they|I|we|and|who|then) (?P<w>rose)\b")),
    ("lie", ("untruth (noun)", r"\b(?:a|the|thy|his|my) (?P<w>lie)\b"),
            ("recline (verb)", r"\b(?P<w>lie) (?:down|still|asleep|here|there|in|with|on)\b")),
    ("bear", ("the animal", r"\b(?:a|the) (?P<w>bear)\b(?! (?:it|him|her|them|me|us|the|a|witness|with|away))"),
             ("carry, endure", r"\b(?:to|not|will|shall|must|can|cannot|could|would) (?P<w>bear)\b")),
]
SOURCES = (("shakespeare", "text"), ("kjv", "text"))
MAX_WORDS = 40


@dataclass
class Occurrence:
    word: str
    sense: int            # 0 or 1
    text: str             # the sentence, at most MAX_WORDS words around the occurrence
    start: int            # character offset of the word in `text`


def occurrences(per_sense: int, seed: int = 0) -> list[Occurrence]:
    """Up to `per_sense` sentences for each sense of each word (a seeded draw; a sentence matching both senses
    of a word is left out)."""
    texts = [t for name, col in SOURCES for split in ("train", "validation", "test")
             for t in data.load(name, split=split)[col] if t]
    rng = random.Random(seed)
    out = []
    for word, *senses in SENSES:
        pats = [re.compile(p) for _, p in senses]
        found: list[list[Occurrence]] = [[], []]
        for t in texts:
            if word not in t:
                continue
            for s in sentences(" ".join(t.split())):
                hits = [p.search(s) for p in pats]
                if sum(h is not None for h in hits) == 1:
                    k = 0 if hits[0] else 1
                    found[k].append(_cut(word, k, s.strip(), hits[k].start("w") - (len(s) - len(s.lstrip()))))
        for k in (0, 1):
            out += rng.sample(found[k], min(per_sense, len(found[k])))
    return out


def _cut(word: str, sense: int, text: str, start: int) -> Occurrence:
    """The sentence, cut to MAX_WORDS words centred on the occurrence."""
    words = text.split(" ")
    if len(words) <= MAX_WORDS:
        return Occurrence(word, sense, text, start)
    at = text[:start].count(" ")
    lo = max(0, min(at - MAX_WORDS // 2, len(words) - MAX_WORDS))
    cut = " ".join(words[lo:lo + MAX_WORDS])
    return Occurrence(word, sense, cut, start - len(" ".join(words[:lo])) - (1 if lo else 0))


@torch.inference_mode()
def contextual_vectors(model, tokenizer, occ: list[Occurrence], batch_size: int = 32) -> torch.Tensor:
    """The last hidden state at the first token of each occurrence (the encoder of a BERT model); a sentence longer
    than the encoder's positions is cut to a window of tokens around the occurrence."""
    encoder = getattr(model, "bert", model)
    encoder.eval()
    limit = encoder.config.max_position_embeddings
    rows, at = [], []
    for o in occ:
        enc = tokenizer(o.text, return_offsets_mapping=True, truncation=False, verbose=False)
        ids, spans = enc["input_ids"], enc["offset_mapping"]
        idx = next(t for t in range(len(spans)) if spans[t][1] > o.start and spans[t][1] > spans[t][0])
        lo = max(0, min(idx - limit // 2, len(ids) - limit))
        rows.append(ids[lo:lo + limit])
        at.append(idx - lo)
    pad = tokenizer.pad_token_id or 0
    vecs = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        n = max(map(len, chunk))
        ids = torch.tensor([r + [pad] * (n - len(r)) for r in chunk])
        mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in chunk])
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        vecs += [hidden[j, at[i + j]] for j in range(len(chunk))]
    return torch.stack(vecs)


def triples(occ: list[Occurrence], seed: int = 0) -> list[tuple[int, int, int]]:
    """(item, another of its sense, one of the other sense) for every occurrence, drawn with the seed."""
    rng = random.Random(seed)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, o in enumerate(occ):
        groups.setdefault((o.word, o.sense), []).append(i)
    out = []
    for i, o in enumerate(occ):
        same = [j for j in groups[(o.word, o.sense)] if j != i]
        other = groups.get((o.word, 1 - o.sense), [])
        if same and other:
            out.append((i, rng.choice(same), rng.choice(other)))
    return out


def separation(vecs: torch.Tensor | None, trip: list[tuple[int, int, int]]) -> list[float]:
    """cos(item, same sense) − cos(item, other sense) per triple; a static model (vecs None) gives 0."""
    if vecs is None:
        return [0.0] * len(trip)
    v = torch.nn.functional.normalize(vecs.float(), dim=-1)
    return [float(v[i] @ v[s] - v[i] @ v[o]) for i, s, o in trip]


def cosines(vecs: torch.Tensor | None, occ: list[Occurrence], trip: list[tuple[int, int, int]]) -> list[dict]:
    """Per word: mean cosine within a sense and across senses."""
    rows = []
    for word, *_ in SENSES:
        ts = [t for t in trip if occ[t[0]].word == word]
        if not ts:
            continue
        if vecs is None:
            within = across = 1.0
        else:
            v = torch.nn.functional.normalize(vecs.float(), dim=-1)
            within = sum(float(v[i] @ v[s]) for i, s, _ in ts) / len(ts)
            across = sum(float(v[i] @ v[o]) for i, _, o in ts) / len(ts)
        rows.append({"word": word, "items": len(ts), "within": within, "across": across})
    return rows
