"""Model plumbing for the harmlessness recipe (recipes/harmless.py): tokenizer, policy, reward model, scores.

- **Pad token distinct from EOS.** SmolLM2 ships pad = eos = `<|im_end|>`. A sequence classifier reads its
  score at the last token before the first pad; with pad = `<|im_end|>` that is the end of the *system prompt*,
  and every reward would be the same. We pad with `<|endoftext|>`, a token that never occurs in chat text.
- **A smaller reward model**: the first `layers` blocks of the base model with a one-output head (TRL's
  `RewardTrainer` trains it; only the top `trainable_layers` blocks, the final norm and the head learn).
"""

from __future__ import annotations

from typing import Sequence

from hfrepro.errors import UserError
from hfrepro.models import load_causal_lm, load_tokenizer, resolve

PAD_CANDIDATES = ("<|endoftext|>", "<unk>", "<pad>", "[PAD]")


def chat_tokenizer(name: str):
    """The model's tokenizer, its pad token made different from EOS (module docstring)."""
    tok = load_tokenizer(name)
    if not getattr(tok, "chat_template", None):
        raise UserError(f"{name} has no chat template: the harmlessness recipe needs a chat model",
                        fix="use an instruct/chat model such as smollm2-135m-instruct")
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        vocab = tok.get_vocab()
        cand = next((c for c in PAD_CANDIDATES if c in vocab and vocab[c] != tok.eos_token_id), None)
        if cand is None:
            raise UserError(f"{name}'s tokenizer has no token to pad with other than its EOS",
                            fix="use a tokenizer with an <|endoftext|>, <unk> or <pad> token")
        tok.pad_token = cand
    return tok


def sync_pad(model, tok):
    model.config.pad_token_id = tok.pad_token_id
    gc = getattr(model, "generation_config", None)
    if gc is not None:
        gc.pad_token_id = tok.pad_token_id
    return model


def load_policy(name: str, tok):
    return sync_pad(load_causal_lm(resolve(name)), tok)


def reward_model(name: str, tok, layers: int, trainable_layers: int, start=None):
    """A one-output sequence classifier: the first `layers` blocks of `name` (0: all), the top
    `trainable_layers` of them, the final norm and the new head trainable (0: everything). `start`: a causal LM
    of the same architecture (the SFT policy, as InstructGPT's reward model) whose blocks replace the shipped ones."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging

    path = resolve(name)
    total = AutoConfig.from_pretrained(path).num_hidden_layers
    keep = {"num_hidden_layers": layers} if 0 < layers < total else {}
    level = logging.get_verbosity()
    logging.set_verbosity_error()       # the blocks left out and the new head are meant: no load report
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32, **keep)
    finally:
        logging.set_verbosity(level)
    sync_pad(model, tok)
    if start is not None:
        body = getattr(model, model.base_model_prefix)
        missing = body.load_state_dict(getattr(start, start.base_model_prefix).state_dict(), strict=False).missing_keys
        if missing:
            raise ValueError(f"the reward model's start lacks {missing[:3]}: not the same architecture")
    if trainable_layers:
        prefix = model.base_model_prefix
        blocks = getattr(model, prefix).layers
        top = {f"{prefix}.layers.{i}." for i in range(max(0, len(blocks) - trainable_layers), len(blocks))}
        for n, p in model.named_parameters():
            p.requires_grad_(not n.startswith(prefix + ".") or n.startswith(prefix + ".norm")
                             or any(n.startswith(t) for t in top))
    return model


def scores(model, tok, conversations: Sequence[list[dict]], batch_size: int = 16) -> list[float]:
    """The reward model's score of each full conversation (chat template, right padding, read at its end)."""
    import torch

    texts = [tok.apply_chat_template(c, tokenize=False) for c in conversations]
    out: list[float] = []
    model.eval()
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out += model(**enc).logits[:, 0].float().tolist()
    finally:
        tok.padding_side = side
    return out


def pairwise_accuracy(model, tok, pairs: Sequence[dict], batch_size: int = 16) -> list[int]:
    """1 per pair whose chosen reply scores above its rejected one."""
    chosen = scores(model, tok, [p["prompt"] + p["chosen"] for p in pairs], batch_size)
    rejected = scores(model, tok, [p["prompt"] + p["rejected"] for p in pairs], batch_size)
    return [int(c > r) for c, r in zip(chosen, rejected)]
