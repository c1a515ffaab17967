"""Generation is repeated next-token prediction; temperature reshapes the next-token distribution.

    generate(model, tok, "ROMEO:", temperature=0.8, top_k=50, top_p=0.95)   # pipeline("text-generation")
    temperature_study(model, tok, prompts, (0, 0.5, 1.0, 1.5), judge=(smol, smol_tok, "<|endoftext|>"))

softmax(logits / T): T -> 0 puts all the mass on the top token (greedy decoding); T = 1 is the model's own
distribution; T > 1 flattens it towards uniform. That much holds by definition. What temperature does to the
*text* is measured: for every prompt and temperature the study samples continuations and scores each

    distinct-2   distinct word bigrams / word bigrams of the continuation (Li et al. 2016): 1 = no repetition,
    judge bits   bits per character of the continuation, given its prompt, under another model (the judge:
                 the pretrained SmolLM2), i.e. how unlikely the text is to a model that knows English,

so that the trade-off (more diverse, less likely) has numbers per prompt, and intervals over prompts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from hfrepro.errors import UserError
from hfrepro.lm.data import start_id
from hfrepro.lm.text import pretokenize
from hfrepro.models import load_causal_lm, load_tokenizer, resolve
from hfrepro.report import pyplot, save_figure


def load_for_generation(name: str):
    """(model, tokenizer) of a causal LM: an embedded name, a model folder, or a run folder."""
    path = resolve(name)
    cfg = Path(path) / "config.json"
    if cfg.is_file() and '"hfrepro-' in cfg.read_text(encoding="utf-8"):
        raise UserError(f"{name} is an hfrepro n-gram or LSTM model: it scores text (hfrepro perplexity) but "
                        "has no `generate`, which transformers' text-generation pipeline needs",
                        fix="use a GPT run folder (runs/clm) or smollm2-135m-instruct")
    return load_causal_lm(path), load_tokenizer(path)


def text_pipeline(model, tokenizer):
    from transformers import pipeline
    return pipeline("text-generation", model=model, tokenizer=tokenizer, device=model.device)


def generate(model, tokenizer, prompt: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             max_new_tokens: int = 50, num_return_sequences: int = 1, seed: int = 0, chat: bool = False,
             pipe=None) -> list[str]:
    """Sample continuations with `pipeline("text-generation")` (`pipe`, or one built for the model).
    temperature 0 means greedy decoding; top_k 0 and top_p 1 switch those filters off."""
    from transformers import set_seed

    if temperature < 0:
        raise UserError(f"temperature must be >= 0, got {temperature}", fix="0 is greedy; 1 is the model's own")
    if not 0 < top_p <= 1:
        raise UserError(f"top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise UserError(f"top-k must be >= 0 (0 switches it off), got {top_k}")
    if chat and not getattr(tokenizer, "chat_template", None):
        raise UserError("--chat needs a model with a chat template", fix="drop --chat for this model")
    pipe = pipe or text_pipeline(model, tokenizer)
    greedy = temperature == 0
    kw = dict(max_new_tokens=max_new_tokens, do_sample=not greedy, pad_token_id=tokenizer.pad_token_id)
    if not greedy:
        kw.update(temperature=temperature, top_k=top_k or None, top_p=top_p,
                  num_return_sequences=num_return_sequences)
    set_seed(seed)
    if chat:
        outs = pipe([{"role": "user", "content": prompt}], **kw)
        return [o["generated_text"][-1]["content"] for o in outs]
    outs = pipe(prompt, return_full_text=False, **kw)
    return [o["generated_text"] for o in outs]


# --- the temperature study ------------------------------------------------------------------------------

def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams / all word n-grams over `texts` (Li et al. 2016); NaN when there are none."""
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def prompts_from(docs: Sequence[str], n: int, words: int = 3, min_words: int = 8) -> list[str]:
    """The first `words` pre-tokens of the first `n` documents that have at least `min_words`."""
    out = []
    for d in docs:
        toks = pretokenize(d.rstrip("\n"))
        if len(toks) >= min_words:
            out.append("".join(toks[:words]))
        if len(out) == n:
            break
    return out


def continuation_bits(model, tokenizer, prompts: Sequence[str], texts: Sequence[str], start_token: str | None = None,
                      batch_size: int = 8) -> list[float]:
    """-log2 P(text | start, prompt) under `model`, one number per (prompt, text) pair; only the text's tokens
    are scored (prompt and text tokenized separately, so the text's tokens are exactly its own)."""
    import torch

    s = tokenizer.convert_tokens_to_ids(start_token) if start_token else start_id(tokenizer)
    rows = []
    for p, t in zip(prompts, texts):
        pi = tokenizer(p, add_special_tokens=False)["input_ids"]
        rows.append(([s] + pi + tokenizer(t, add_special_tokens=False)["input_ids"], 1 + len(pi)))
    out = []
    with torch.inference_mode():
        for k in range(0, len(rows), batch_size):
            batch = rows[k:k + batch_size]
            width = max(len(ids) for ids, _ in batch)
            x = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros_like(x)
            for r, (ids, _) in enumerate(batch):
                x[r, :len(ids)], mask[r, :len(ids)] = torch.tensor(ids), 1
            logp = torch.log_softmax(model(input_ids=x, attention_mask=mask).logits[:, :-1].double(), -1)
            lp = logp.gather(2, x[:, 1:, None])[..., 0]
            for r, (ids, first) in enumerate(batch):
                out.append(float(-lp[r, first - 1:len(ids) - 1].sum()) / math.log(2))
    return out


def temperature_study(model, tokenizer, prompts: Sequence[str], temperatures: Sequence[float], judge=None,
                      samples_per_prompt: int = 2, max_new_tokens: int = 32, seed: int = 0,
                      greedy_check_temperature: float = 1e-3) -> dict:
    """Sample continuations of every prompt at every temperature (T = 0: greedy, one per prompt) and score
    them. Returns {"rows": one row per (temperature, prompt, sample), "greedy_check": ...}; `judge` is
    (model, tokenizer, start_token) or None. The greedy check samples once per prompt at a tiny temperature
    and counts how many continuations equal greedy decoding's."""
    pipe = text_pipeline(model, tokenizer)
    rows = []
    for T in temperatures:
        for k, p in enumerate(prompts):
            n = 1 if T == 0 else samples_per_prompt
            texts = generate(model, tokenizer, p, temperature=T, max_new_tokens=max_new_tokens,
                             num_return_sequences=n, seed=seed * 1000 + k, pipe=pipe)
            rows += [{"temperature": T, "prompt_index": k, "prompt": p, "sample": j, "text": t, "chars": len(t),
                      "distinct_2": distinct_n([t], 2)} for j, t in enumerate(texts)]
    if judge is not None:
        bits = continuation_bits(judge[0], judge[1], [r["prompt"] for r in rows], [r["text"] for r in rows],
                                 start_token=judge[2])
        for r, b in zip(rows, bits):
            r["judge_bits_per_char"] = b / max(1, r["chars"])
    greedy = [r["text"] for r in rows if r["temperature"] == 0]
    tiny = [generate(model, tokenizer, p, temperature=greedy_check_temperature, max_new_tokens=max_new_tokens,
                     seed=seed * 1000 + k, pipe=pipe)[0] for k, p in enumerate(prompts)] if greedy else []
    return {"rows": rows, "greedy_check": {"temperature": greedy_check_temperature, "prompts": len(tiny),
                                           "identical": sum(a == b for a, b in zip(greedy, tiny))}}


def per_prompt(rows: Sequence[dict], temperature: float, key: str) -> dict[int, float]:
    """prompt index -> the mean of `key` over that prompt's samples at `temperature` (prompts without the
    number, e.g. a continuation of fewer than two words for distinct-2, are left out)."""
    by: dict[int, list[float]] = {}
    for r in rows:
        if r["temperature"] == temperature and r.get(key) is not None and not math.isnan(r[key]):
            by.setdefault(r["prompt_index"], []).append(r[key])
    return {k: sum(v) / len(v) for k, v in sorted(by.items())}


def plot_study(summary: list[dict], path) -> None:
    """distinct-2 and the judge's bits/char against temperature, with 95% intervals over prompts."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ts = [r["temperature"] for r in summary]
    for ax, key, label in ((axes[0], "distinct_2", "distinct-2 of a continuation (1 = no repeated bigram)"),
                           (axes[1], "judge_bits_per_char", "SmolLM2 bits/char of the continuation")):
        rs = [r for r in summary if r.get(key) is not None]
        if not rs:
            continue
        m = [r[key] for r in rs]
        err = [[r[key] - r[f"{key}_lo"] for r in rs], [r[f"{key}_hi"] - r[key] for r in rs]]
        ax.errorbar([r["temperature"] for r in rs], m, yerr=err, marker="o", capsize=3)
        ax.set(xlabel="temperature T (0 = greedy)", ylabel=label, xticks=ts)
        ax.grid(alpha=0.3)
    axes[0].set_title("Diversity rises with T")
    axes[1].set_title("Likelihood under a pretrained model falls with T")
    save_figure(fig, path)
