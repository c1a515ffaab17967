"""Tokenizer and model set-up shared by the RLHF steps, with the classic pitfalls handled in one place.

- **Pad token distinct from EOS.** SmolLM2 ships pad = eos = `<|im_end|>`. RL code builds attention masks
  as `ids != pad_token_id`, so every `<|im_end|>` inside the chat-formatted prompt would be masked out, and it
  locates the response end as "first pad - 1", which would read the reward one token *before* EOS. We use a
  token that never occurs in text (`<|endoftext|>` for SmolLM2; a new `<|pad|>` only if none exists).
- **Reward read at the EOS token.** Reward-model inputs are `prompt + response + EOS` (prefs.encode_completion),
  right-padded: `AutoModelForSequenceClassification` reads the score at the last non-pad token = EOS, and PPO
  (`ppo.score_and_hidden`) reads it at the response's last token = the same EOS (tested).
- **One tokenizer, padded on the left** (generation needs it); TRL's SFT, reward and preference collators pad
  training batches on the right by themselves, and `score` pads on the right itself.
- **Reference model a separate object**, loaded fresh and frozen (`load_frozen`).
- **Smaller reward and value models**: the first `layers` blocks of the SFT model (`layer_kwargs`), only the top
  `trainable_layers` of them trained (`freeze_below`).
"""

from __future__ import annotations

from pathlib import Path

from hfrepro.errors import UserError
from hfrepro.models import load_causal_lm, resolve
from hfrepro.models import load_tokenizer as load_base_tokenizer

PAD_CANDIDATES = ("<|endoftext|>", "<unk>", "<pad>", "[PAD]")


def prepare_tokenizer(tok, padding_side: str = "left"):
    """Give `tok` a pad token different from its EOS token (see module docstring). Returns tok."""
    if tok.eos_token is None:
        raise UserError("the tokenizer has no EOS token: RLHF needs one to end responses and read rewards",
                        fix="use a chat/instruct model, or set tokenizer.eos_token before training")
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        vocab = tok.get_vocab()
        cand = next((c for c in PAD_CANDIDATES if c in vocab and vocab[c] != tok.eos_token_id), None)
        if cand is None:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
        else:
            tok.pad_token = cand
    tok.padding_side = padding_side
    return tok


def load_tokenizer(name: str):
    return prepare_tokenizer(load_base_tokenizer(name))


def sync_pad(model, tok):
    """Make the model's config and generation config agree with the tokenizer's pad/eos ids."""
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    gc = getattr(model, "generation_config", None)
    if gc is not None:
        gc.pad_token_id = tok.pad_token_id
        gc.eos_token_id = tok.eos_token_id
    return model


def load_policy(path: str | Path, tok, dtype: str = "float32"):
    """A causal LM (the policy), its pad/eos ids those of `tok`."""
    return sync_pad(load_causal_lm(str(path), dtype=dtype), tok)


def load_frozen(path: str | Path, tok, kind: str = "causal"):
    """A separate, frozen copy (reference policy, or the reward model at RL time): eval mode, no grads."""
    model = load_policy(path, tok) if kind == "causal" else load_scorer(path, tok)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def layer_kwargs(path: str | Path, layers: int) -> dict:
    """`from_pretrained` keyword arguments keeping only the first `layers` transformer blocks (0: all)."""
    from transformers import AutoConfig

    n_total = getattr(AutoConfig.from_pretrained(resolve(str(path))), "num_hidden_layers", None)
    return {"num_hidden_layers": layers} if layers and n_total and layers < n_total else {}


def load_scorer(path: str | Path, tok, layers: int = 0, trainable_layers: int = 0):
    """A one-output sequence classifier (reward or value model) from a causal-LM or scorer folder: the first
    `layers` blocks (0: all), only the top `trainable_layers` trained (0: everything)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    path = resolve(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32,
                                                               **layer_kwargs(path, layers))
    sync_pad(model, tok)
    if trainable_layers:
        freeze_below(model, trainable_layers)
    return model


def freeze_below(model, trainable_layers: int) -> None:
    """Freeze embeddings and all but the top `trainable_layers` blocks; keep final norm and head trainable."""
    if not trainable_layers:
        return
    backbone = getattr(model, model.base_model_prefix)
    blocks = backbone.layers
    keep = set(range(max(0, len(blocks) - trainable_layers), len(blocks)))
    for p in model.parameters():
        p.requires_grad_(False)
    for i in keep:
        for p in blocks[i].parameters():
            p.requires_grad_(True)
    for name, p in model.named_parameters():
        if not name.startswith(model.base_model_prefix + ".") or name.startswith(model.base_model_prefix + ".norm"):
            p.requires_grad_(True)


def save_policy(model, tok, folder: str | Path, is_main: bool = True) -> Path:
    """Save a trained policy as a complete model folder (a LoRA adapter is merged into the weights first), so
    `AutoModelForCausalLM.from_pretrained(folder)` loads it. Writes on the main process only."""
    from peft import PeftModel

    folder = Path(folder)
    if is_main:
        if isinstance(model, PeftModel):
            model = model.merge_and_unload()
        model.save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
    return folder


def score(model, seqs: list[list[int]], pad_token_id: int, batch_size: int = 64) -> list[float]:
    """Scalar score of each token sequence (right-padded; read at the last non-pad token), in batches of
    similar length."""
    import torch

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out: dict[int, float] = {}
    model.eval()
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            chunk = order[i:i + batch_size]
            n = max(len(seqs[j]) for j in chunk)
            ids = torch.full((len(chunk), n), pad_token_id, dtype=torch.long)
            for row, j in enumerate(chunk):
                ids[row, :len(seqs[j])] = torch.tensor(seqs[j])
            logits = model(input_ids=ids, attention_mask=(ids != pad_token_id).long()).logits
            out.update(zip(chunk, logits.squeeze(-1).float().tolist()))
    return [out[i] for i in range(len(seqs))]
