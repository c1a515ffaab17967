"""Word vectors on disk, and the questions people ask them (analogy, nearest words), with clear OOV errors.

A model folder written by `hfrepro word2vec` (runs/word2vec/cbow, runs/word2vec/skipgram) is a complete
Hub repo with no pickle in it:

    model.safetensors   the vectors, one float32 tensor "vectors" [vocab, dim] (safe to load from anywhere)
    vocab.txt           one "word<TAB>count" line per row of the tensor, most frequent first
    config.json         mode, sizes, window, tokeniser, corpus, seed
    vectors.txt         the word2vec text format (the original C tool's), readable by most libraries
    README.md           the model card, with the run's own numbers
    config.yaml, metrics.json   the run's record (the recipe writes them): `--config config.yaml` replays it
    checkpoint-N/       the full gensim model after epoch N, for resuming (never uploaded)

gensim's native KeyedVectors file (`KeyedVectors.load`, pickle-based) goes next to it, outside the repo:
runs/word2vec/gensim/<mode>.kv, so a push never uploads a pickle.

`load(path)` reads a folder from its safetensors + vocab (never the pickle), a word2vec .txt/.bin file,
or a gensim .kv file named explicitly.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_text

DEFAULT_RUN = Path("runs/word2vec")
FILES = ("model.safetensors", "vocab.txt", "config.json")


def quiet_gensim() -> None:
    """gensim logs every vocabulary scan and epoch at INFO: keep only its warnings."""
    logging.getLogger("gensim").setLevel(logging.WARNING)


def default_vectors() -> Path:
    """The vectors the CLI uses without --vectors: the skip-gram model of the default `hfrepro word2vec` run."""
    return DEFAULT_RUN / "skipgram"


def load(path: str | Path | None = None):
    """KeyedVectors from a model folder, a word2vec text/binary file, or a gensim .kv file."""
    from gensim.models import KeyedVectors

    p = Path(path) if path else default_vectors()
    if not p.exists():
        how = ("train them first: hfrepro word2vec   (a few minutes), or pass --vectors PATH"
               if path is None else "check the path: a folder written by `hfrepro word2vec`, a word2vec "
                                    ".txt/.bin file, or a gensim .kv file")
        raise UserError(f"no word vectors at {p}", where=str(p), fix=how)
    if p.is_dir():
        if (p / "skipgram" / "model.safetensors").is_file() and not (p / "model.safetensors").exists():
            p = p / "skipgram"  # a run folder: take its skip-gram model
        missing = [f for f in FILES[:2] if not (p / f).is_file()]
        if missing:
            raise UserError(f"{p} is not a word-vector folder (missing {', '.join(missing)})", where=str(p),
                            fix="point --vectors at a folder written by `hfrepro word2vec` (e.g. runs/word2vec/"
                                "skipgram or runs/word2vec/cbow), or at a word2vec .txt/.bin file")
        from safetensors.numpy import load_file
        vecs = load_file(str(p / "model.safetensors"))["vectors"]
        words, counts = [], []
        for i, line in enumerate((p / "vocab.txt").read_text(encoding="utf-8").splitlines(), 1):
            w, _, c = line.partition("\t")
            words.append(w)
            counts.append(int(c) if c.strip().isdigit() else 1)
        if len(words) != len(vecs):
            raise UserError(f"vocab.txt has {len(words)} words but the tensor has {len(vecs)} rows", where=str(p),
                            fix="the folder is damaged: train again or re-download it")
        kv = KeyedVectors(vector_size=vecs.shape[1], dtype=vecs.dtype)
        kv.add_vectors(words, vecs)
        for w, c in zip(words, counts):
            kv.set_vecattr(w, "count", c)
        return kv
    suffix = p.suffix.lower()
    try:
        if suffix == ".kv":
            return KeyedVectors.load(str(p))  # pickle: only because the user named this file
        if suffix in (".txt", ".vec", ".bin", ".w2v"):
            return KeyedVectors.load_word2vec_format(str(p), binary=suffix == ".bin")
    except (UnicodeDecodeError, ValueError, EOFError, OSError) as e:
        raise UserError(f"cannot read word vectors from {p}: {type(e).__name__}: {e}", where=str(p),
                        fix="give a word2vec text file (first line: '<words> <dims>'), a .bin file, or a folder "
                            "written by `hfrepro word2vec`") from None
    raise UserError(f"unknown word-vector file type {suffix!r}", where=str(p),
                    fix="use a model folder, a word2vec .txt/.bin file, or a gensim .kv file")


def label(path: str | Path | None) -> str:
    return str(path or default_vectors())


def lookup(kv, word: str) -> str | None:
    """The vocabulary key for `word`: itself, else its lower-case form (vocabularies here are lower-case)."""
    if word in kv.key_to_index:
        return word
    if word.lower() in kv.key_to_index:
        return word.lower()
    return None


def suggestions(kv, word: str, n: int = 5, scan: int = 60_000) -> list[str]:
    """In-vocabulary words that look like `word`: longer forms first (한국 -> 한국어), then close spellings."""
    w = word.lower()
    keys = kv.index_to_key[:scan]
    found = [k for k in keys if k.startswith(w) and k != w][:n]
    if len(found) < n:
        found += [k for k in difflib.get_close_matches(w, keys, n=n, cutoff=0.75) if k not in found]
    return found[:n]


def require_words(kv, words: Sequence[str], where: str = "") -> list[str]:
    """The vocabulary keys of `words`, or a UserError naming every out-of-vocabulary word."""
    keys = [lookup(kv, w) for w in words]
    missing = [w for w, k in zip(words, keys) if k is None]
    if missing:
        hints = []
        for w in missing:
            s = suggestions(kv, w)
            hints.append(f"{w!r} (close: {', '.join(s)})" if s else repr(w))
        raise UserError(
            f"not in the vocabulary ({len(kv):,} words): {', '.join(hints)}",
            where=where or None,
            fix="words are lower-cased runs of letters that occurred at least min_count times in the training "
                "text; use a word that does, or train on text that contains it (hfrepro word2vec --corpus FILE)")
    return keys  # type: ignore[return-value]


def analogy(kv, a: str, b: str, c: str, topn: int = 10, where: str = "") -> list[tuple[str, float]]:
    """a - b + c (king - man + woman): gensim's most_similar (3CosAdd), the three inputs excluded."""
    ka, kb, kc = require_words(kv, [a, b, c], where)
    return [(w, float(s)) for w, s in kv.most_similar(positive=[ka, kc], negative=[kb], topn=topn)]


def similar(kv, word: str, topn: int = 10, where: str = "") -> list[tuple[str, float]]:
    (k,) = require_words(kv, [word], where)
    return [(w, float(s)) for w, s in kv.most_similar(k, topn=topn)]


def rank_of(kv, a: str, b: str, c: str, target: str, restrict_vocab: int | None = None
            ) -> tuple[int | None, float | None]:
    """1-based rank of `target` among a - b + c's neighbours (inputs excluded; among the `restrict_vocab` most
    frequent words when given), and its cosine; None if OOV (or outside `restrict_vocab`)."""
    keys = [lookup(kv, w) for w in (a, b, c, target)]
    if any(k is None for k in keys):
        return None, None
    ka, kb, kc, kt = keys
    import numpy as np

    sims = kv.most_similar(positive=[ka, kc], negative=[kb], topn=None, restrict_vocab=restrict_vocab)
    order = np.argsort(-sims)
    excluded = {kv.key_to_index[k] for k in (ka, kb, kc)}
    ti = kv.key_to_index[kt]
    rank = 0
    for i in order:
        if int(i) in excluded:
            continue
        rank += 1
        if int(i) == ti:
            return rank, float(sims[i])
    return None, None


def how_to_load(repo: str, language: str = "en") -> str:
    """A Python snippet (for model cards) that loads a model folder or its Hub repository with gensim, without
    hfrepro and without pickle."""
    probe = {"en": 'positive=["king", "woman"], negative=["man"]', "ko": '"대통령"'}.get(language, '"the"')
    return ("import os\n"
            "from gensim.models import KeyedVectors\n"
            "from huggingface_hub import snapshot_download\n"
            "from safetensors.numpy import load_file\n\n"
            f'repo = "{repo}"\n'
            "folder = repo if os.path.isdir(repo) else snapshot_download(repo)\n"
            'vecs = load_file(os.path.join(folder, "model.safetensors"))["vectors"]\n'
            'with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:\n'
            '    words = [line.split("\\t")[0] for line in f.read().splitlines()]\n'
            "kv = KeyedVectors(vecs.shape[1])\n"
            "kv.add_vectors(words, vecs)\n"
            '# or: kv = KeyedVectors.load_word2vec_format(os.path.join(folder, "vectors.txt"))\n'
            f"print(kv.most_similar({probe}))")


def save_folder(kv, folder: str | Path, config: dict[str, Any], text_format: bool = True, card=None,
                gensim_path: str | Path | None = None) -> Path:
    """Write the model files (see the module docstring) into `folder`, each atomically and model.safetensors
    last, next to whatever the folder already holds (the run's record, checkpoints). `card(folder)` writes
    README.md; `gensim_path`: where to write gensim's native (pickle-based) KeyedVectors, outside the folder."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = [int(kv.get_vecattr(w, "count")) if kv.has_index_for(w) and "count" in kv.expandos else 0
              for w in kv.index_to_key]
    atomic_write_text(folder / "vocab.txt", "".join(f"{w}\t{c}\n" for w, c in zip(kv.index_to_key, counts)))
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    if text_format:
        kv.save_word2vec_format(str(folder / ".vectors.txt.tmp"), binary=False)
        os.replace(folder / ".vectors.txt.tmp", folder / "vectors.txt")
    if card is not None:
        card(folder)
    save_file({"vectors": np.ascontiguousarray(kv.vectors, dtype=np.float32)}, str(folder / ".model.safetensors.tmp"))
    os.replace(folder / ".model.safetensors.tmp", folder / "model.safetensors")
    if gensim_path is not None:
        gensim_path = Path(gensim_path)
        gensim_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = gensim_path.with_name(f".{gensim_path.name}.tmp")
        kv.save(str(tmp))
        for side in gensim_path.parent.glob(f".{gensim_path.name}.tmp.*"):  # large arrays go to side .npy files
            side.replace(gensim_path.with_name(gensim_path.name + side.name[len(tmp.name):]))
        tmp.replace(gensim_path)
    return folder
