"""Tokenizers trained locally with the `tokenizers` library, returned as transformers fast tokenizers."""

from __future__ import annotations

from typing import Iterable, Sequence


def train_bpe(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
              special_tokens: Sequence[str] = ("<pad>", "<s>", "</s>", "<unk>", "<mask>"),
              model_max_length: int = 1024):
    """A byte-level BPE tokenizer (GPT-2 style) trained on `texts`.

    Special tokens: pad, bos (<s>), eos (</s>), unk, mask (the mask token is there for masked-LM use).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    pad, bos, eos, unk, mask = special_tokens
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, bos_token=bos, eos_token=eos,
                                   unk_token=unk, mask_token=mask, model_max_length=model_max_length)
