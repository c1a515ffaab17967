"""Bits per character: the one number that compares word, subword and character models on the same text.

For a neural LM the bits are its token log-likelihoods from the project's `evaluate` perplexity module
(hfrepro/metrics/perplexity); for an n-gram model they come from hfrepro.lm.ngram.score_documents (word
probabilities plus the spelling of unknown words). Either way: total bits over the exact characters of the
held-out documents (each speech and its newline), so

    bits per character = total bits / characters,
    per-word perplexity = 2 ** (total bits / words), words = the n-gram pre-tokens plus one end-of-line each.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from hfrepro.errors import UserError
from hfrepro.fsutil import read_json
from hfrepro.lm.ngram import NgramLM, score_documents
from hfrepro.lm.text import pretokenize
from hfrepro.models import load_causal_lm, load_tokenizer, resolve
from hfrepro.paths import PACKAGE_DIR

METRIC_DIR = PACKAGE_DIR / "metrics" / "perplexity"


@functools.lru_cache(maxsize=1)
def perplexity_metric():
    """The project's perplexity metric, loaded offline by path with `evaluate.load`."""
    import evaluate
    return evaluate.load(str(METRIC_DIR))


def neural_bits(model, tokenizer, docs: list[str], max_length: int, stride: int | None = None,
                batch_size: int = 8, start_token: str | None = None, progress: bool = False,
                context: str | None = None) -> dict:
    """Bits of a neural LM on `docs` (each from its start token; after `context`, a prompt that is not scored,
    when one is given), in total and per document."""
    window = max_length - (len(tokenizer(context, add_special_tokens=False)["input_ids"]) if context else 0)
    r = perplexity_metric().compute(predictions=docs, model=model, tokenizer=tokenizer, max_length=max_length,
                                    stride=stride or max(1, window // 2), batch_size=batch_size,
                                    start_token=start_token, progress=progress, context=context)
    bits = r["nll"] / math.log(2)
    return {"bits": bits, "chars": r["num_chars"], "tokens": r["num_tokens"],
            "bits_per_character": r["bits_per_character"], "perplexity": r["perplexity"],
            "window": r["max_length"], "stride": r["stride"],
            "document_bits": [x / math.log(2) for x in r["nlls"]]}


def n_words(docs: list[str]) -> int:
    """Pre-tokens plus one end-of-line per document: the per-word perplexity's denominator."""
    return sum(len(pretokenize(d.rstrip("\n"))) + 1 for d in docs)


def word_perplexity(bits: float, words: int) -> float:
    return 2 ** (bits / words)


def start_token_for(tokenizer) -> str | None:
    """The start token to score a model's documents with. A chat model's bos is a chat-turn marker
    (SmolLM2: <|im_start|>); its pretraining document separator <|endoftext|> is the honest start."""
    if getattr(tokenizer, "chat_template", None) and "<|endoftext|>" in tokenizer.get_vocab():
        return "<|endoftext|>"
    return None


def model_kind(path: str) -> str:
    cfg = Path(path) / "config.json"
    t = read_json(cfg).get("model_type") if cfg.is_file() else None
    return {"hfrepro-ngram": "ngram", "hfrepro-lstm": "lstm"}.get(t, "causal-lm")


def load_lm(name: str):
    """(model, tokenizer, context) of a neural LM: an embedded name, a model or run folder (the LSTM's too: its
    folder carries its code, lstm.py, which only a local folder is trusted to run), or a Hub id."""
    path = resolve(name)
    trust = model_kind(path) == "lstm" and Path(path).is_dir()
    model, tok = load_causal_lm(path, trust_remote_code=trust).eval(), load_tokenizer(path)
    ctx = min(1024, getattr(model.config, "n_positions", None)
              or getattr(model.config, "max_position_embeddings", None) or 1024)
    return model, tok, ctx


def ngram_model_dir(name: str) -> str | None:
    """An n-gram model folder, or the highest-order Kneser-Ney model of an ngram run folder; else None."""
    p = Path(name)
    kn = sorted(p.glob("kn*/config.json"), key=lambda c: int(c.parent.name[2:]) if c.parent.name[2:].isdigit()
                else 0) if p.is_dir() else []
    if kn:
        return str(kn[-1].parent)
    return name if p.is_dir() and model_kind(name) == "ngram" else None


def score_model(name: str, docs: list[str], max_length: int | None = None, stride: int | None = None,
                batch_size: int = 4, progress: bool = False) -> dict:
    """Bits per character and per-word perplexity of any stage-2 model (or causal LM) on `docs`."""
    ngram = ngram_model_dir(name)
    if ngram:
        lm, speller = NgramLM.from_pretrained(ngram)
        if speller is None:
            raise UserError(f"the n-gram model in {ngram} has no speller.json to price unknown words",
                            fix="re-save it with recipes/ngram.py")
        r = score_documents(lm, speller, docs)
        out = {"model": name, "kind": f"{lm.order}-gram {lm.kind}", "tokens": r["tokens"]}
    else:
        model, tok, ctx = load_lm(name)
        r = neural_bits(model, tok, docs, max_length or ctx, stride=stride, batch_size=batch_size,
                        start_token=start_token_for(tok), progress=progress)
        out = {"model": name, "kind": model_kind(resolve(name)), "tokens": r["tokens"],
               "token perplexity": r["perplexity"]}
    words = n_words(docs)
    out.update({"documents": len(docs), "characters": r["chars"], "words": words, "bits": r["bits"],
                "bits per character": r["bits_per_character"],
                "per-word perplexity": word_perplexity(r["bits"], words)})
    return out
