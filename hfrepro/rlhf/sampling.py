"""KV-cached, batched sampling - and scoring - of several answers per prompt, each prompt run once.

A prompt here is ~30 tokens and its answer ~4. Generating n answers naively runs n copies of the prompt.
Instead: run the batch of prompts once (the "prefill"), keep every layer's keys and values (the KV cache), copy
the cache n times, then feed one new token per step, each step attending to the cache. The same trick serves
every later pass over (prompt, answer): the reference's log-probabilities and the reward model's score cost
about prompt + n x answer tokens per prompt instead of n x (prompt + answer).

    responses, logprobs = sample(policy, prompts, n=4, max_new_tokens=8, temperature=0.7, eos..., pad...)
    rows = rows_of(len(prompts), 4)                       # the prompt each answer belongs to
    ref_logprobs = answer_logprobs(reference, prompts, responses, rows, temperature=0.7, pad_token_id=...)
    scores = answer_scores(reward_model, prompts, responses, rows, pad_token_id=...)

Sampling draws `torch.multinomial` over the softmax of logits / temperature for every row at every step, as
transformers' `generate` does, so the same random stream gives the same answers (bench/ppo.py checks it
against trl 1.12, which used `generate`). After EOS a row receives the pad token.
"""

from __future__ import annotations

import torch

from hfrepro.rlhf.blocks import backbone_of


def left_pad(seqs: list[list[int]], pad_token_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_token_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, n - len(s):] = torch.tensor(s, dtype=torch.long)
    return ids.to(device), (ids != pad_token_id).long().to(device)


def pad_answers(answers: list[list[int]], pad_token_id: int) -> torch.Tensor:
    """Answers as one right-padded tensor (rows, longest answer)."""
    width = max(1, max(len(a) for a in answers))
    out = torch.full((len(answers), width), pad_token_id, dtype=torch.long)
    for i, a in enumerate(answers):
        out[i, :len(a)] = torch.tensor(a, dtype=torch.long)
    return out


def rows_of(n_prompts: int, n: int) -> torch.Tensor:
    """The prompt of each row when every prompt is answered n times (rows i*n .. i*n+n-1 belong to prompt i)."""
    return torch.arange(n_prompts).repeat_interleave(n)


def prefill(backbone, prompts: list[list[int]], pad_token_id: int, index: torch.Tensor | None = None):
    """Run the prompts once; returns (cache, last hidden state, attention mask, next position) for each row,
    row r a copy of prompt `index[r]` (default: one row per prompt)."""
    from transformers import DynamicCache

    device = next(backbone.parameters()).device
    ids, mask = left_pad(prompts, pad_token_id, device)
    pos = (mask.cumsum(1) - mask).clamp(min=0)
    cache = DynamicCache()
    out = backbone(input_ids=ids.masked_fill(mask == 0, 0), attention_mask=mask, position_ids=pos,
                   past_key_values=cache, use_cache=True)
    h = out.last_hidden_state[:, -1]
    if index is not None:
        index = index.to(device)
        cache.batch_select_indices(index)
        h, mask = h[index], mask[index]
    return cache, h, mask, mask.sum(1)


def extend(backbone, cache, mask: torch.Tensor, next_pos: torch.Tensor, tokens: torch.Tensor):
    """Feed `tokens` (rows, t) after what the cache holds; returns (their hidden states, the longer mask)."""
    t = tokens.shape[1]
    mask = torch.cat([mask, torch.ones_like(tokens)], 1)
    pos = next_pos.unsqueeze(1) + torch.arange(t, device=tokens.device).unsqueeze(0)
    out = backbone(input_ids=tokens, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
    return out.last_hidden_state, mask


@torch.no_grad()
def sample(model, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float | None,
           eos_token_id: int | None, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n answers per prompt: (token ids, rows x steps, the pad token after EOS; the log-probability of each
    at `temperature`, from the logits that chose it). Greedy when `temperature` is None or 0."""
    backbone, causal = backbone_of(model)
    head = causal.get_output_embeddings()
    cache, h, mask, pos = prefill(backbone, prompts, pad_token_id, rows_of(len(prompts), n) if n > 1 else None)
    done = torch.zeros(h.shape[0], dtype=torch.bool, device=h.device)
    tokens, logprobs = [], []
    for step in range(max_new_tokens):
        logits = head(h).float()
        if temperature:
            logits = logits / temperature
            nxt = torch.multinomial(torch.softmax(logits, -1), num_samples=1).squeeze(1)
        else:
            nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
        tokens.append(nxt)
        logprobs.append(torch.log_softmax(logits, -1).gather(1, nxt.unsqueeze(1)).squeeze(1))
        if eos_token_id is not None:
            done = done | (nxt == eos_token_id)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        hs, mask = extend(backbone, cache, mask, pos + step, nxt.unsqueeze(1))
        h = hs[:, -1]
    return torch.stack(tokens, 1), torch.stack(logprobs, 1)


def answer_hidden(backbone, prompts: list[list[int]], answers: torch.Tensor, index: torch.Tensor,
                  pad_token_id: int):
    """Hidden states at the positions that predict each answer token: the prompt's last position, then every
    answer token but the last ((rows, answer length, hidden)); row r answers prompt `index[r]`."""
    cache, h, mask, pos = prefill(backbone, prompts, pad_token_id, index)
    if answers.shape[1] == 1:
        return h.unsqueeze(1)
    rest, _ = extend(backbone, cache, mask, pos, answers[:, :-1].masked_fill(answers[:, :-1] == pad_token_id, 0))
    return torch.cat([h.unsqueeze(1), rest], 1)


ANSWER_ROWS = 16  # answers whose vocabulary logits answer_logprobs holds at once


@torch.no_grad()
def answer_logprobs(model, prompts: list[list[int]], answers: torch.Tensor, index: torch.Tensor, temperature: float,
                    pad_token_id: int) -> torch.Tensor:
    """log pi(y_t | prompt, y_<t) of each answer token at `temperature` ((rows, answer length)); row r answers
    prompt `index[r]` (`rows_of(len(prompts), n)` for n answers each). The vocabulary's logits are made for
    ANSWER_ROWS answers at a time: for all 128 answers of an evaluation batch at once they took 0.6 GB."""
    backbone, causal = backbone_of(model)
    head, h = causal.get_output_embeddings(), answer_hidden(backbone, prompts, answers, index, pad_token_id)
    return torch.cat([torch.log_softmax(head(h[i:i + ANSWER_ROWS]).float() / temperature, -1)
                      .gather(-1, answers[i:i + ANSWER_ROWS].unsqueeze(-1)).squeeze(-1)
                      for i in range(0, len(h), ANSWER_ROWS)])


@torch.no_grad()
def answer_scores(reward_model, prompts: list[list[int]], answers: torch.Tensor, index: torch.Tensor,
                  pad_token_id: int) -> torch.Tensor:
    """The reward model's score of each (prompt, answer), read at the answer's last token (before padding);
    row r answers prompt `index[r]`."""
    backbone, _ = backbone_of(reward_model)
    cache, h, mask, pos = prefill(backbone, prompts, pad_token_id, index)
    hs, _ = extend(backbone, cache, mask, pos, answers.masked_fill(answers == pad_token_id, 0))
    last = (answers != pad_token_id).long().cumsum(1).argmax(1)  # the last non-pad position
    return reward_model.score(hs[torch.arange(len(answers), device=answers.device), last]).squeeze(-1).float()
