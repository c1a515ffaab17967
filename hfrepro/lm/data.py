"""Data for the neural LMs: one BPE tokenizer, and the training text as fixed-length token blocks.

The training stream is every training document (speech + newline) with the start token in front,
concatenated and cut into blocks of `block_size` tokens (GPT-2 / run_clm.py `group_texts` style). So the
models learn exactly what they are scored on: a start token, then a speech, then its newline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hfrepro.errors import UserError
from hfrepro.models import load_tokenizer
from hfrepro.tokenizer import train_bpe


@dataclass
class LMDataArguments:
    """The corpus, the tokenizer and the held-out text: the same for the LSTM, the GPT and the BERT."""
    dataset: str = field(default="shakespeare", metadata={"help": "embedded dataset name, a saved dataset "
                                                                  "folder, or a .txt file (one document per line)"})
    text_column: str = field(default="text", metadata={"help": "the column holding the text"})
    tokenizer: str | None = field(default=None, metadata={"help": "a tokenizer (or model/run folder) to reuse; "
                                                                   "default: train a byte-level BPE on the training "
                                                                   "text"})
    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary size when training the tokenizer"})
    train_max_chars: int | None = field(default=None, metadata={"help": "use a seeded sample of at most this many "
                                                                        "training characters (0 or null: all)"})
    block_size: int = field(default=128, metadata={"help": "tokens per training example (and scoring window)"})
    eval_max_chars: int = field(default=40000, metadata={"help": "held-out test characters scored for bits per "
                                                                 "character"})
    val_max_chars: int = field(default=20000, metadata={"help": "validation characters for the loss curve"})


def lm_tokenizer(args: LMDataArguments, train_docs: list[str]):
    """The tokenizer from `args.tokenizer`, or a byte-level BPE trained on `train_docs` (deterministic: every
    process of a launch, and a resumed run, trains the same one)."""
    if args.tokenizer:
        if (Path(args.tokenizer) / "tokenizer.json").is_file():  # a tokenizer, model or run folder
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(args.tokenizer)
        else:                                                       # an embedded model name
            tok = load_tokenizer(args.tokenizer)
        start_id(tok)
        return tok
    return train_tokenizer(train_docs, args.vocab_size, model_max_length=max(1024, args.block_size))


def train_tokenizer(docs: list[str], vocab_size: int, model_max_length: int = 1024):
    """hfrepro.tokenizer.train_bpe, plus a post-processor that puts <s> in front of every encoded text
    (when special tokens are asked for, as pipelines do): the models here learn documents that start with
    <s>, so `pipeline("text-generation")` and `pipeline("fill-mask")` give them the same start."""
    from tokenizers.processors import TemplateProcessing

    tok = train_bpe(docs, vocab_size=vocab_size, model_max_length=model_max_length)
    bos = tok.bos_token
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.bos_token_id)])
    return tok


def start_id(tokenizer) -> int:
    """The token every document starts with: bos, or [CLS] for BERT-style tokenizers."""
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    if tid is None:
        raise UserError("the tokenizer has neither a bos nor a cls token to start documents with",
                        fix="use a tokenizer with a bos token, or let the recipe train one (drop --tokenizer)")
    return tid


_STREAMS: dict = {}


def token_stream(tokenizer, docs: list[str]) -> list[int]:
    """[start] + ids(doc) for every document, concatenated (start = bos, or [CLS]).
    Remembered per process for a saved tokenizer, so models of one run sharing it tokenize the text once."""
    key = (tokenizer.name_or_path, len(tokenizer), len(docs), sum(map(len, docs)), docs[0] if docs else "",
           docs[-1] if docs else "") if tokenizer.name_or_path else None
    if key is not None and key in _STREAMS:
        return _STREAMS[key]
    bos = start_id(tokenizer)
    out: list[int] = []
    for ids in tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"]:
        out.append(bos)
        out.extend(ids)
    if key is not None:
        while len(_STREAMS) >= 3:  # the training and validation streams of one run; memory stays small
            _STREAMS.pop(next(iter(_STREAMS)))
        _STREAMS[key] = out
    return out


def blocks(stream: list[int], block_size: int) -> list[list[int]]:
    n = len(stream) // block_size
    if n == 0:
        raise UserError(f"the text gives {len(stream)} tokens, fewer than one block of {block_size}",
                        fix="use more text or a smaller --block_size")
    return [stream[i * block_size:(i + 1) * block_size] for i in range(n)]


def block_dataset(tokenizer, docs: list[str], block_size: int):
    """A `datasets.Dataset` of `input_ids` blocks."""
    from datasets import Dataset
    return Dataset.from_dict({"input_ids": blocks(token_stream(tokenizer, docs), block_size)})
