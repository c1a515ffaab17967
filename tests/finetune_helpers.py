"""Tiny stand-ins for SmolLM2 in unit tests: a 2-layer Llama with tied embeddings and a ChatML tokenizer
(bos = eos = pad are chat tokens, SmolLM2's chat template), built in a second from tests/fixtures/tiny.txt."""

from __future__ import annotations

from pathlib import Path

from hfrepro.finetune.chat import SMOLLM2_CHAT_TEMPLATE

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def tiny_chat_model(folder: Path) -> Path:
    """Write a tiny random Llama + ChatML tokenizer to `folder`; returns it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hfrepro.tokenizer import train_bpe

    text = (FIXTURES / "tiny.txt").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip()] * 4 + ["noun verb adjective adverb user assistant"]
    tok = train_bpe(lines, vocab_size=400, min_frequency=1,
                    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<mask>"))
    tok.pad_token = "<|im_end|>"
    tok.unk_token = "<|endoftext|>"
    tok.chat_template = SMOLLM2_CHAT_TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return tiny_chat_model(tmp_path_factory.mktemp("tiny-chat-model"))


@pytest.fixture(scope="session")
def tiny_tok(tiny_model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_model_dir)
