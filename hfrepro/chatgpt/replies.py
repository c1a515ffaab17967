"""Replies of a chat model to many conversations at once: greedy, batched, with the shared prefix computed once.

The chapter's evaluations ask one model hundreds of questions. On a CPU, generation is dominated by reading the
prompt, and every prompt starts with the same tokens: the chat template's system prompt ("You are a helpful AI
assistant named SmolLM, ...", 25 of a typical question's 38 tokens). So:

1. the prompts' **longest common prefix** (in token ids) runs through the model once; its key/value cache is
   copied into every batch;
2. each batch holds prompts of similar length (sorted), laid out as `[prefix][padding][rest of the prompt]`
   with the padding masked out: positions continue after the prefix exactly as in the unpadded prompt;
3. decoding is greedy, so a reply is a function of the model and the conversation (no sampling noise in a
   rate).

`tests/test_chatgpt.py` checks that the replies equal plain one-by-one greedy generation.
"""

from __future__ import annotations

from typing import Sequence


def chat_prompts(tokenizer, conversations: Sequence[list[dict]]) -> list[str]:
    """Each conversation rendered by the model's own chat template, ending with the assistant cue."""
    return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]


def common_prefix(ids: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token id lists, leaving every list at least one token."""
    if not ids:
        return 0
    n = min(len(x) for x in ids) - 1
    first = ids[0]
    for k in range(max(n, 0)):
        if any(x[k] != first[k] for x in ids):
            return k
    return max(n, 0)


def _prefix_cache(model, prefix: list[int]):
    import torch

    if not prefix:
        return None
    with torch.no_grad():
        return model(input_ids=torch.tensor([prefix]), use_cache=True).past_key_values


def _batch_cache(cache, size: int):
    import copy

    if cache is None:
        return None
    c = copy.deepcopy(cache)
    c.batch_repeat_interleave(size)
    return c


def generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 16,
             progress=None, temperature: float = 0.0) -> list[str]:
    """Continuations of already-templated `prompts` (strings), in their order: greedy, or sampled at
    `temperature` (> 0) from the whole distribution (torch's global generator: seed it first)."""
    import torch

    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    k = common_prefix(ids)
    prefix = ids[0][:k] if ids else []
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[str] = [""] * len(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    cache = _prefix_cache(model, prefix)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        rows = [prefix + [pad] * (width - len(ids[i])) + ids[i][k:] for i in chunk]
        mask = [[1] * k + [0] * (width - len(ids[i])) + [1] * (len(ids[i]) - k) for i in chunk]
        with torch.no_grad():
            gen = model.generate(input_ids=torch.tensor(rows), attention_mask=torch.tensor(mask),
                                 past_key_values=_batch_cache(cache, len(chunk)), max_new_tokens=max_new_tokens,
                                 pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, **_sampling(temperature))
        for row, i in enumerate(chunk):
            out[i] = tokenizer.decode(gen[row, width:], skip_special_tokens=True).strip()
        if progress is not None:
            progress(len(chunk))
    return out


def _sampling(temperature: float) -> dict:
    """`generate`'s decoding settings: greedy at 0; else plain sampling at `temperature` (no top-k or top-p cut,
    as TRL's GRPOTrainer samples)."""
    if temperature <= 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}


def reply_all(model, tokenizer, conversations: Sequence[list[dict]], max_new_tokens: int, batch_size: int = 16,
              progress=None) -> list[str]:
    """Greedy replies to chat conversations (lists of {"role", "content"} messages)."""
    return generate(model, tokenizer, chat_prompts(tokenizer, conversations), max_new_tokens, batch_size, progress)


def sample_all(model, tokenizer, conversations: Sequence[list[dict]], n: int, max_new_tokens: int,
               temperature: float, batch_size: int = 16) -> list[list[str]]:
    """`n` sampled replies to each conversation (one list per conversation)."""
    prompts = [p for p in chat_prompts(tokenizer, conversations) for _ in range(n)]
    flat = generate(model, tokenizer, prompts, max_new_tokens, batch_size, temperature=temperature)
    return [flat[i:i + n] for i in range(0, len(flat), n)]
